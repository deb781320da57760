/**
 * copy(): snapshots of one repository into another, as restic's `copy`. Each source snapshot
 * whose original id (its `original`, else its own id) the destination already holds is
 * skipped; the others are copied chunk by chunk, then their root is written last, with
 * `original` set and `parent` dropped (it names a snapshot of the source, as restic drops it).
 *
 * When both repositories have the same chunk ids (a destination made with `init
 * --copy-chunker-params --from-repo SRC`: same id key, gear key and chunker params), chunks
 * move as they are, resealed under the destination's key, and only those it lacks. Otherwise
 * each snapshot is re-chunked: read as a backup source (snapshot-source.ts, every entry's
 * metadata as recorded) and run through the destination's backup pipeline, whose dedup stores
 * only chunks the destination lacks (all content is read and cut again, though); memory is
 * then that of a backup from a stream.
 *
 * Resumable: chunk puts are idempotent and a root is written only after every chunk it needs,
 * so a killed copy leaves no snapshot behind, and the next one finds the chunks already there.
 *
 * Memory (same chunk ids): one snapshot reader at a time (read-snapshot.ts: a tree node per
 * level, a metadata chunk and the next); the budget's `copy.concurrency` (COPY_CONCURRENCY by
 * default, lib/budget.ts) chunk objects in flight, each a single buffer of at most CHUNK_MAX +
 * CHUNK_OBJECT_OVERHEAD, as a chunk is resealed in place; an LRU of `copy.knownIds` ids known
 * present in the destination (COPY_KNOWN_IDS_CACHE by default, ~100 bytes each); and the
 * original ids of the destination's snapshots up to COPY_ORIGINALS_CAP (beyond it, the
 * destination's roots are scanned again for each source snapshot). Nothing grows with the
 * number of files, chunks or bytes. The process's memory policy is backup's (paceMemory), with
 * the chunks dropped counted towards a collection. Re-chunking: a backup's bound, plus the
 * snapshot source's decoded-chunk cache (`copy.cacheBytes`).
 */
import { isHole } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { hex } from '../../lib/bytes.js'
import { Lru } from '../../lib/flow.js'
import { budgetOf } from '../../lib/budget.js'
import { collectEvery, paceMemory } from '../../lib/memory.js'
import { CHUNK_MAX, COPY_ORIGINALS_CAP } from '../../lib/limits.js'
import { chunkKey, openChunk, resealChunk, CHUNK_OBJECT_OVERHEAD } from '../../lib/repo/objects.js'
import { matchesFilter, type SnapshotFilter } from '../../lib/repo/retention.js'
import type { Repository, SnapshotInfo, SnapshotRoot } from '../../lib/repo/repository.js'
import { snapshotRecords, treeOf, type ChunkLoader } from '../restore/read-snapshot.js'
import { backup } from '../backup/backup.js'
import { createSnapshotSource } from './snapshot-source.js'

export interface CopyOptions {
  from: Repository
  to: Repository
  /** Snapshot references in the source (`latest`, id prefixes); none: every snapshot. */
  snapshots?: string[]
  /** restic's --host/--tag/--path: which snapshots (and which one `latest` means). */
  filter?: SnapshotFilter
  /** Told of each source snapshot: copied (with the new id) or skipped (already there). */
  onSnapshot?: (event: CopyEvent) => void
  /** The peak RSS, in bytes, to size the chunks in flight, the decoded-chunk cache and the ids known present for (lib/budget.ts, `budget.copy`; a re-chunked copy runs a backup under the same budget). */
  memory?: number
}

export interface CopyEvent {
  id: string
  snap: SnapshotRoot
  /** The destination's id of the copy; undefined when skipped. */
  copiedTo?: string
}

export interface CopyResult {
  /** Source snapshots copied, and skipped because the destination has them. */
  copied: number
  skipped: number
  /** Chunks (content, metadata, tree nodes) stored in the destination, and their bytes as
   *  stored; chunks found already there. */
  chunksCopied: number
  bytesCopied: number
  chunksPresent: number
}

/** True when chunks can move between the two as they are: the same keyed ids. */
export function sameChunkIds(from: Repository, to: Repository): boolean {
  return from.keys.idKey.equals(to.keys.idKey)
}

export async function copy(opts: CopyOptions): Promise<CopyResult> {
  const { from, to } = opts
  const budget = budgetOf(opts.memory).copy
  paceMemory('backup')
  if (from.config.id === to.config.id) {
    throw new SluiceError('ERR_ARGS', `source and destination are the same repository (${to.storage.describe()})`)
  }
  const same = sameChunkIds(from, to)
  const result: CopyResult = { copied: 0, skipped: 0, chunksCopied: 0, bytesCopied: 0, chunksPresent: 0 }
  const originals = await destinationOriginals(to)
  const known = new Lru<string, true>(budget.knownIds)
  const maxObject = CHUNK_MAX + CHUNK_OBJECT_OVERHEAD
  // Chunk objects and decoded metadata chunks die outside V8's heap: collect at backup's pace.
  const dropped = collectEvery('chunks')

  /** Stores the chunk in the destination unless it is there; `obj` is its source object when
   *  already fetched. */
  const ensure = (id: Buffer, obj?: Buffer): Promise<void> => {
    const k = hex(id)
    if (known.get(k)) return Promise.resolve()
    // The same chunk named again while it is being stored (files packed into one chunk) waits
    // for that one instead of asking and storing twice. At most `budget.concurrency` + 1 entries.
    let p = inflight.get(k)
    if (!p) {
      p = store(id, k, obj).finally(() => inflight.delete(k))
      inflight.set(k, p)
    }
    return p
  }
  const inflight = new Map<string, Promise<void>>()
  const store = async (id: Buffer, k: string, obj?: Buffer): Promise<void> => {
    if (await to.hasChunk(id)) {
      result.chunksPresent++
    } else {
      // Resealed in place: a chunk being copied is one buffer.
      const sealed = resealChunk(from.keys.encKey, to.keys.encKey, id, obj ?? (await sourceObject(id)))
      const stored = await to.putChunk(id, sealed)
      dropped(sealed.length)
      if (stored) {
        result.chunksCopied++
        result.bytesCopied += sealed.length
      } else {
        result.chunksPresent++
      }
    }
    known.set(k, true)
  }
  const sourceObject = async (id: Buffer): Promise<Buffer> => {
    try {
      return await from.storage.get(chunkKey(id), maxObject)
    } catch (err) {
      if (err instanceof SluiceError && err.code === 'ERR_NOT_FOUND') {
        throw new SluiceError('ERR_MISSING', `chunk ${hex(id)} is missing from ${from.storage.describe()}`, { cause: err })
      }
      throw err
    }
  }
  // Tree nodes and metadata chunks: copied as the reader loads them, one fetch for both.
  const metaLoader: ChunkLoader = {
    loadChunk: async id => {
      const obj = await sourceObject(Buffer.from(id))
      // Opened before it is stored: storing reseals it in place.
      const plain = openChunk(from.keys.encKey, id, obj)
      await ensure(Buffer.from(id), obj)
      // Dead once the reader moves past it.
      dropped(plain.length)
      return plain
    },
  }

  const copyOne = async ({ id, snap }: SnapshotInfo): Promise<void> => {
    const original = snap.original ?? id
    if (await originals.has(original)) {
      result.skipped++
      opts.onSnapshot?.({ id, snap })
      return
    }
    if (!same) {
      const r = await rechunk(from, to, { id, snap }, original, opts.memory)
      originals.add(original)
      result.copied++
      result.chunksCopied += r.stats.chunksNew
      result.bytesCopied += r.stats.bytesStored
      opts.onSnapshot?.({ id, snap, copiedTo: r.snapshotId })
      return
    }
    const pool = new Pool(budget.concurrency)
    try {
      for await (const item of snapshotRecords(metaLoader, treeOf(snap))) {
        if (item.kind === 'record' && item.entry.hardlinkTo) continue
        for (const e of item.extents) if (!isHole(e)) await pool.run(() => ensure(e.id))
      }
    } finally {
      await pool.drain()
    }
    const { parent: _parent, ...rest } = snap
    const copiedTo = await to.saveSnapshot({ ...rest, original })
    originals.add(original)
    result.copied++
    opts.onSnapshot?.({ id, snap, copiedTo })
  }

  if (opts.snapshots && opts.snapshots.length > 0) {
    const seen = new Set<string>()
    for (const ref of opts.snapshots) {
      const found = await from.findSnapshot(ref, opts.filter ? s => matchesFilter(s, opts.filter!) : undefined)
      if (seen.has(found.id)) continue
      seen.add(found.id)
      await copyOne(found)
    }
  } else {
    for await (const s of from.snapshots()) {
      if (opts.filter && !matchesFilter(s.snap, opts.filter)) continue
      await copyOne(s)
    }
  }
  return result
}


/** A snapshot copied by re-chunking: its records as a backup source into the destination's
 *  pipeline, the root keeping the source's time, host, user, paths and tags. Any per-file
 *  trouble would make the copy differ from the snapshot: it aborts the copy (no root). */
function rechunk(from: Repository, to: Repository, { id, snap }: SnapshotInfo, original: string, memory: number | undefined) {
  return backup({
    repo: to,
    ...(memory === undefined ? {} : { memory }),
    source: createSnapshotSource(from, treeOf(snap), budgetOf(memory).copy.cacheBytes),
    sourcePaths: snap.paths,
    host: snap.host,
    tags: snap.tags,
    time: snap.time,
    username: snap.username,
    original,
    parent: false,
    onWarning: err => {
      throw new SluiceError(err.code, `snapshot ${id.slice(0, 8)} cannot be copied as it is: ${err.message}`, { cause: err })
    },
  })
}

/** The original ids the destination holds: a set up to COPY_ORIGINALS_CAP, a scan beyond. */
async function destinationOriginals(to: Repository): Promise<{ has(id: string): Promise<boolean>; add(id: string): void }> {
  const set = new Set<string>()
  let overflow = false
  for await (const { id, snap } of to.snapshots()) {
    if (set.size >= COPY_ORIGINALS_CAP) {
      overflow = true
      break
    }
    set.add(snap.original ?? id)
  }
  return {
    async has(original) {
      if (set.has(original)) return true
      if (!overflow) return false
      for await (const { id, snap } of to.snapshots()) if ((snap.original ?? id) === original) return true
      return false
    },
    add(original) {
      if (set.size < COPY_ORIGINALS_CAP) set.add(original)
    },
  }
}

/** At most `size` tasks at a time; the first failure is thrown by the next run() or drain(). */
class Pool {
  private readonly running = new Set<Promise<void>>()
  private failure: { err: unknown } | undefined
  constructor(private readonly size: number) {}

  async run(task: () => Promise<void>): Promise<void> {
    while (this.running.size >= this.size) await Promise.race(this.running)
    if (this.failure) throw this.failure.err
    const p: Promise<void> = task()
      .catch(err => {
        this.failure ??= { err }
      })
      .finally(() => this.running.delete(p))
    this.running.add(p)
  }

  async drain(): Promise<void> {
    await Promise.all(this.running)
    if (this.failure) throw this.failure.err
  }
}
