/**
 * check(): every snapshot's metadata decodes and every chunk it names exists; with readData,
 * every stored chunk decrypts and hashes to its id. Each problem is one message that starts
 * with its code (`ERR_CORRUPT: chunk ... failed authentication`); a snapshot whose records
 * break the rules read-snapshot enforces (unsafe paths, sizes that disagree with their extents,
 * a tree that repeats itself) is one problem, named.
 */
import { randomInt } from 'node:crypto'
import { isHole, type EntryMeta, type ExtentsItem, type RecordItem } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { hex, displayPath } from '../../lib/bytes.js'
import { parseSize } from '../../lib/filter-rules.js'
import { Lru } from '../../lib/flow.js'
import { budgetOf } from '../../lib/budget.js'
import { idFromChunkKey } from '../../lib/repo/objects.js'
import { hasChunkOrFossil } from '../../lib/repo/fossils.js'
import type { PhaseProgress } from '../../lib/progress.js'
import type { Repository } from '../../lib/repo/repository.js'
import type { Leftovers } from '../../lib/storage/storage.js'
import { snapshotRecords, treeOf } from '../restore/read-snapshot.js'
import { paceMemory } from '../../lib/memory.js'

/** The code of a failure; one without (a bug, a library's bare error) is ERR_INTERNAL. */
function codeOf(err: unknown): string {
  return err instanceof SluiceError ? err.code : 'ERR_INTERNAL'
}

/** restic's `--read-data-subset`: group `part` of `of` (by the chunk id's first byte, so
 *  1/t … t/t together read every chunk once), a random `percent` of the chunks, or random
 *  chunks until `bytes` have been read. */
export type DataSubset = { part: number; of: number } | { percent: number } | { bytes: number }

/** The most groups n/t may have: groups are chosen by one byte of the id (restic's limit). */
export const SUBSET_GROUPS_MAX = 256

/** Parses restic's three forms, `n/t`, `x%` (x.y% too) and a size (k, M, G, T suffixes),
 *  refusing what restic refuses, in its words. */
export function parseDataSubset(text: string): DataSubset {
  const invalid = () => new SluiceError('ERR_ARGS', 'check flag --read-data-subset has invalid value, please see documentation')
  const part = /^(\d+)\/(\d+)$/.exec(text)
  if (part) {
    const [n, t] = [Number(part[1]), Number(part[2])]
    if (n === 0 || t === 0 || n > t) throw new SluiceError('ERR_ARGS', 'check flag --read-data-subset=n/t values must be positive integers, and n <= t, e.g. --read-data-subset=1/2')
    if (t > SUBSET_GROUPS_MAX) throw new SluiceError('ERR_ARGS', `check flag --read-data-subset=n/t t must be at most ${SUBSET_GROUPS_MAX}`)
    return { part: n, of: t }
  }
  if (text.endsWith('%')) {
    if (!/^(\d+(\.\d*)?|\.\d+)%$/.test(text)) throw invalid()
    const percent = Number(text.slice(0, -1))
    if (!(percent > 0 && percent <= 100)) throw new SluiceError('ERR_ARGS', 'check flag --read-data-subset=x% x must be above 0.0% and at most 100.0%')
    return { percent }
  }
  let bytes: number
  try {
    bytes = parseSize(text)
  } catch {
    throw invalid()
  }
  if (bytes <= 0) throw new SluiceError('ERR_ARGS', 'check flag --read-data-subset=n n must be above 0')
  return { bytes }
}

export interface CheckOptions {
  repo: Repository
  /** The peak RSS, in bytes, to size the cache of ids looked up for (lib/budget.ts). */
  memory?: number
  /** Also decrypt every chunk and verify its id. */
  readData?: boolean
  /** Decrypt and verify only this subset of the chunks (not with readData). */
  readDataSubset?: DataSubset
  /** Each problem found, as it is found: `ERR_CODE: what`. */
  onProblem: (message: string, problem: Problem) => void
  /** Where the check stands: phase `snapshots` (snapshots checked of those listed), then
   *  `read-data` (chunks verified and their bytes, of the count or bytes to read when known).
   *  The object is updated in place after the call. */
  onProgress?: (p: PhaseProgress) => void
}

/** What a problem is about: its kind, and the object, snapshot and path where known. */
export interface Problem {
  kind: 'missing_chunk' | 'unreadable_snapshot' | 'unreadable_metadata' | 'chunk_hash_mismatch' | 'unreadable_chunk'
  /** The chunk's id. */
  object?: string
  snapshot?: string
  /** The snapshot path of the file that needs the chunk. */
  path?: string
}

/**
 * Checks that every snapshot's metadata decodes and every chunk it names exists; with
 * `readData`, that every stored chunk decrypts and hashes to its id (with `readDataSubset`,
 * those of the subset). Streams: memory is one snapshot's reader plus a capped cache of ids
 * already seen, under the memory policy for reading (lib/memory.ts); subsets are chosen as the
 * listing streams by (a second listing for x%). With onProgress, a listing beside each pass
 * counts what it will check (names only: a number, no list).
 */
export async function check(opts: CheckOptions): Promise<{ problems: number; snapshots: number; chunks: number; bytesRead: number; leftovers: Leftovers }> {
  paceMemory('read')
  const { repo } = opts
  if (opts.readData && opts.readDataSubset) throw new SluiceError('ERR_ARGS', 'check flags --read-data and --read-data-subset cannot be used together')
  let problems = 0
  const progress: PhaseProgress = { phase: 'snapshots', step: 'checking snapshots', done: 0, unit: 'snapshots', errors: 0 }
  const report = opts.onProgress ? () => opts.onProgress!(progress) : () => {}
  const problem = (m: string, p: Problem) => {
    problems++
    progress.errors = problems
    opts.onProblem(m, p)
  }
  // Totals for the progress line, counted beside the check by a listing of names (no list kept).
  const count = (prefix: string, keep: (key: string) => boolean, phase: string) =>
    opts.onProgress ? (async () => {
      let n = 0
      for await (const key of repo.storage.list(prefix)) if (keep(key)) n++
      if (progress.phase === phase) progress.total = Math.max(n, progress.done)
    })().catch(() => {}) : undefined
  report()
  const snapshotsCounted = count('snapshots/', k => /^snapshots\/[0-9a-f]{64}$/.test(k), 'snapshots')
  const seen = new Lru<string, boolean>(budgetOf(opts.memory).check.knownIds)
  const exists = async (id: Buffer): Promise<boolean> => {
    const k = hex(id)
    const cached = seen.get(k)
    if (cached !== undefined) return cached
    // A chunk a prune moved aside still restores (lib/repo/fossils.ts).
    const ok = await hasChunkOrFossil(repo.storage, id)
    seen.set(k, ok)
    if (!ok) problem(`ERR_MISSING: chunk ${k} is missing`, { kind: 'missing_chunk', object: k })
    return ok
  }
  let snapshots = 0
  // An unreadable snapshot is a problem; the others are still checked.
  const unreadable = (id: string, err: SluiceError) => problem(`${err.code}: snapshot ${id} cannot be read: ${err.message}`, { kind: 'unreadable_snapshot', snapshot: id })
  for await (const { id, snap } of repo.snapshots(unreadable)) {
    snapshots++
    progress.current = `snapshot ${id.slice(0, 8)}`
    report()
    try {
      let current: EntryMeta | undefined
      for await (const item of snapshotRecords(repo, treeOf(snap)) as AsyncIterable<RecordItem | ExtentsItem>) {
        if (item.kind === 'record') current = item.entry
        for (const e of item.extents) {
          if (isHole(e)) continue // a hole names no chunk
          if (!(await exists(e.id)) && current) problem(`ERR_MISSING: snapshot ${id.slice(0, 8)}: ${displayPath(current.path)} needs missing chunk ${hex(e.id)}`, { kind: 'missing_chunk', object: hex(e.id), snapshot: id, path: '/' + displayPath(current.path) })
        }
      }
    } catch (err) {
      problem(`${codeOf(err)}: snapshot ${id.slice(0, 8)}: metadata cannot be read: ${(err as Error).message ?? String(err)}`, { kind: 'unreadable_metadata', snapshot: id })
    }
    progress.done = snapshots
  }
  await snapshotsCounted
  if (progress.total !== undefined) progress.total = Math.max(progress.total, snapshots)
  report()
  // `chunks`: those verified, or without readData and a subset the stored ones (a listing).
  let chunks = 0
  let bytesRead = 0
  const verify = async (id: Buffer) => {
    chunks++
    progress.current = hex(id).slice(0, 8)
    try {
      const plain = await repo.loadChunk(id)
      bytesRead += plain.length
      progress.bytes = bytesRead
      if (!repo.chunkId(plain).equals(id)) problem(`ERR_CORRUPT: chunk ${hex(id)} does not hash to its id`, { kind: 'chunk_hash_mismatch', object: hex(id) })
    } catch (err) {
      problem(`${codeOf(err)}: ${(err as Error).message ?? String(err)}`, { kind: 'unreadable_chunk', object: hex(id) })
    }
    progress.done = chunks
  }
  const subset = opts.readDataSubset
  const group = subset && 'part' in subset ? subset : undefined
  const reading = (totals: { total?: number; totalBytes?: number }) => {
    Object.assign(progress, { phase: 'read-data', step: 'reading chunks', done: 0, unit: 'chunks', bytes: 0, total: undefined, current: undefined, ...totals })
    report()
  }
  if (opts.readData || group) {
    reading({})
    const counted = count('chunks/', key => {
      const id = idFromChunkKey(key)
      return !!id && (!group || id[0]! % group.of === group.part - 1)
    }, 'read-data')
    for await (const id of chunkIds(repo, 'chunks/')) {
      if (!group || id[0]! % group.of === group.part - 1) await verify(id)
    }
    await counted
  } else if (subset && 'percent' in subset) {
    // restic's count (at least one chunk), chosen by selection sampling over a second listing:
    // each chunk with probability wanted-left / chunks-left, so memory stays flat.
    let total = 0
    for await (const _ of chunkIds(repo, 'chunks/')) total++
    let want = total > 0 ? Math.max(1, Math.floor((total * subset.percent) / 100)) : 0
    reading({ total: want })
    let left = total
    for await (const id of chunkIds(repo, 'chunks/')) {
      if (want === 0 || left === 0) break
      if (randomInt(left--) < want) {
        want--
        await verify(id)
      }
    }
  } else if (subset && 'bytes' in subset) {
    // Chunk ids are keyed hashes, uniform to whoever lacks the key: the chunks from a random
    // first byte on, wrapping around, are a random sample. Read until `bytes` are read.
    const start = randomInt(256)
    reading({ totalBytes: subset.bytes })
    outer: for (let i = 0; i < 256; i++) {
      for await (const id of chunkIds(repo, `chunks/${((start + i) % 256).toString(16).padStart(2, '0')}/`)) {
        await verify(id)
        if (bytesRead >= subset.bytes) break outer
      }
    }
  } else {
    for await (const _ of chunkIds(repo, 'chunks/')) chunks++
  }
  if (progress.phase === 'read-data') report()
  // Temp files of killed writers are no damage: reported, left for the next backup to remove.
  const leftovers = await repo.leftovers(false)
  return { problems, snapshots, chunks, bytesRead, leftovers }
}

/** The ids of the chunk objects under `prefix`, streamed (other names are skipped). */
async function* chunkIds(repo: Repository, prefix: string): AsyncIterable<Buffer> {
  for await (const key of repo.storage.list(prefix)) {
    const id = idFromChunkKey(key)
    if (id) yield id
  }
}

