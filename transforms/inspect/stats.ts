/**
 * stats(): restic's `stats` in two of its modes over the chosen snapshots (all by default).
 * restore-size: every entry counted, file sizes summed as a restore writes them (the later links
 * of a hardlink add nothing). raw-data: the distinct chunks the snapshots reference (content,
 * metadata and metadata tree nodes), each read once for its stored and plaintext size (as
 * `check --read-data` reads them), plus the restore size, so the dedup ratio can be given.
 *
 * Memory: one snapshot's reader, one chunk, and a capped set of distinct chunk ids
 * (STATS_DISTINCT_CHUNKS): past it the raw-data counts are upper bounds, and the result says so.
 */
import { isHole, type EntryMeta, type ExtentsItem, type RecordItem } from '../../lib/entry.js'
import { Lru } from '../../lib/flow.js'
import { CHUNK_MAX, STATS_DISTINCT_CHUNKS } from '../../lib/limits.js'
import { paceMemory } from '../../lib/memory.js'
import { chunkKey, openChunk, CHUNK_OBJECT_OVERHEAD, COMPRESSION_ZSTD } from '../../lib/repo/objects.js'
import type { Repository, SnapshotInfo } from '../../lib/repo/repository.js'
import { matchesFilter, type SnapshotFilter } from '../../lib/repo/retention.js'
import { SluiceError } from '../../lib/errors.js'
import { hex } from '../../lib/bytes.js'
import { snapshotRecords, treeOf, type ChunkLoader } from '../restore/read-snapshot.js'

export type StatsMode = 'restore-size' | 'raw-data'

export interface StatsOptions {
  repo: Repository
  mode?: StatsMode
  /** Snapshot references (`latest` or id prefixes); default every snapshot the filter matches. */
  snapshots?: string[]
  filter?: SnapshotFilter
  /** Distinct chunk ids remembered (default STATS_DISTINCT_CHUNKS). */
  distinctCache?: number
  /** After each snapshot is walked. */
  onSnapshot?: (id: string) => void
}

/** restic's JSON names; the last three are Sluice's. */
export interface StatsResult {
  mode: StatsMode
  snapshots_count: number
  /** Entries of every kind (restic counts directories and links too). */
  total_file_count: number
  /** restore-size: bytes a restore writes; raw-data: stored bytes of the distinct chunks. */
  total_size: number
  total_uncompressed_size?: number
  total_blob_count?: number
  compression_ratio?: number
  compression_progress?: number
  compression_space_saving?: number
  /** raw-data: the restore-size total of the same snapshots, and it over the distinct chunks'
   *  plaintext bytes (how much deduplication saves before compression). */
  restore_size?: number
  dedup_ratio?: number
  /** raw-data: true when more distinct chunks were met than the cache holds: blob counts and
   *  sizes are then upper bounds. */
  upper_bound?: boolean
}

export async function stats(opts: StatsOptions): Promise<StatsResult> {
  paceMemory('read')
  const { repo } = opts
  const mode = opts.mode ?? 'restore-size'
  if (mode !== 'restore-size' && mode !== 'raw-data') throw new SluiceError('ERR_ARGS', `unknown counting mode: ${mode} (use restore-size or raw-data)`)
  const r: StatsResult = { mode, snapshots_count: 0, total_file_count: 0, total_size: 0 }
  let restoreSize = 0
  const raw = { stored: 0, plain: 0, count: 0, zStored: 0, zPlain: 0 }
  const seen = new Lru<string, true>(opts.distinctCache ?? STATS_DISTINCT_CHUNKS)
  let overflowed = false
  const count = (id: Uint8Array, obj: Buffer, plain: Buffer) => {
    raw.count++
    raw.stored += obj.length
    raw.plain += plain.length
    if (obj[1] === COMPRESSION_ZSTD) {
      raw.zStored += obj.length
      raw.zPlain += plain.length
    }
    seen.set(Buffer.from(id).toString('latin1'), true)
    if (seen.size < raw.count) overflowed = true
  }
  const isNew = (id: Uint8Array) => !seen.has(Buffer.from(id).toString('latin1'))
  const fetch = async (id: Uint8Array) => {
    let obj: Buffer
    try {
      obj = await repo.storage.get(chunkKey(id), CHUNK_MAX + CHUNK_OBJECT_OVERHEAD)
    } catch (err) {
      if (err instanceof SluiceError && err.code === 'ERR_NOT_FOUND') throw new SluiceError('ERR_MISSING', `chunk ${hex(id)} is missing from the repository`, { cause: err })
      throw err
    }
    const plain = openChunk(repo.keys.encKey, id, obj)
    if (isNew(id)) count(id, obj, plain)
    return plain
  }
  // raw-data reads the metadata through a loader that counts what it loads (tree nodes too).
  const loader: ChunkLoader = mode === 'raw-data' ? { loadChunk: fetch } : repo

  const walk = async ({ id, snap }: SnapshotInfo) => {
    r.snapshots_count++
    let file: EntryMeta | undefined
    for await (const item of snapshotRecords(loader, treeOf(snap)) as AsyncIterable<RecordItem | ExtentsItem>) {
      if (item.kind === 'record') {
        file = item.entry
        r.total_file_count++
        if (file.type === 'file' && !file.hardlinkTo) restoreSize += file.size
      }
      if (mode === 'raw-data') for (const e of item.extents) if (!isHole(e) && isNew(e.id)) await fetch(e.id)
    }
    opts.onSnapshot?.(id)
  }
  if (opts.snapshots && opts.snapshots.length > 0) {
    const done = new Set<string>()
    for (const ref of opts.snapshots) {
      const s = await repo.findSnapshot(ref, x => matchesFilter(x, opts.filter ?? {}))
      if (done.has(s.id)) continue
      done.add(s.id)
      await walk(s)
    }
  } else {
    for await (const s of repo.snapshots()) if (matchesFilter(s.snap, opts.filter ?? {})) await walk(s)
  }

  if (mode === 'restore-size') {
    r.total_size = restoreSize
    return r
  }
  r.total_size = raw.stored
  r.total_uncompressed_size = raw.plain
  r.total_blob_count = raw.count
  if (raw.zStored > 0) r.compression_ratio = raw.zPlain / raw.zStored
  if (raw.plain > 0) {
    r.compression_progress = (raw.zPlain / raw.plain) * 100
    r.compression_space_saving = (1 - raw.stored / raw.plain) * 100
    r.dedup_ratio = restoreSize / raw.plain
  }
  r.restore_size = restoreSize
  r.upper_bound = overflowed
  return r
}
