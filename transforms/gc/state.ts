/**
 * What a collection leaves in the repository for its sweep (docs/FORMAT.md): the record written
 * before anything moves, the paged lists of the snapshot roots it saw, and the done record
 * written after the last move with the backups then running. Also the ordered-listing guard
 * every merge-join of prune goes through.
 *
 *   gc/<generation, 8 digits>/collection
 *   gc/<generation>/snapshots.<page, 6 digits>    ids of snapshots/ it marked
 *   gc/<generation>/forgotten.<page>              ids of forgotten/ it saw (the sweep deletes them)
 *   gc/<generation>/done
 *
 * Memory: one page of GC_SEEN_PAGE_IDS ids.
 */
import fs from 'node:fs'
import path from 'node:path'
import { SluiceError } from '../../lib/errors.js'
import { GC_CONCURRENCY, GC_LOCK_CHECK_EVERY, GC_SEEN_PAGE_IDS } from '../../lib/limits.js'
import { IdFileReader, IdFileWriter } from './external-sort.js'
import type { Storage } from '../../lib/storage/storage.js'
import { fossilKey, openRecord, pad, sealRecord } from '../../lib/repo/gc-objects.js'
import { chunkKey } from '../../lib/repo/objects.js'
import { moveObject } from '../../lib/storage/move.js'
import type { PhaseProgress } from '../../lib/progress.js'
import type { LeaseInfo } from '../../lib/repo/lease.js'
import type { Repository, SnapshotRoot } from '../../lib/repo/repository.js'

export interface GcRepo {
  storage: Storage
  keys: { encKey: Uint8Array }
}

export interface CollectionRecord {
  version: 1
  generation: number
  /** When marking started (ms since the epoch, this host's clock). */
  started: number
  snapshots: number
  forgotten: number
  /** Chunks to move aside, their bytes, and referenced fossils to move back. */
  candidates: number
  candidateBytes: number
  resurrect: number
  /** Backups live when marking started: no chunk newer than the earliest start is a candidate. */
  leases: { id: string; host: string; pid: number; started: number }[]
}

export interface DoneRecord {
  version: 1
  generation: number
  /** When the last move had been made. */
  ended: number
  moved: number
  movedBytes: number
  /** Every backup lease present after the last move: the sweep waits for each to commit,
   *  end, or lapse. */
  leases: ({ id: string } & Partial<LeaseInfo> & { tombstone: boolean })[]
}

export function gcKey(gen: number, name: string): string {
  return `gc/${pad(gen, 8)}/${name}`
}

export async function putRecord(repo: GcRepo, key: string, value: unknown): Promise<void> {
  // put-if-absent: a rerun of the same generation never happens (a new one is started).
  await repo.storage.put(key, sealRecord(repo.keys.encKey, key, value))
}

export async function getRecord<T>(repo: GcRepo, key: string): Promise<T | undefined> {
  let obj: Buffer
  try {
    obj = await repo.storage.get(key)
  } catch (err) {
    if (err instanceof SluiceError && err.code === 'ERR_NOT_FOUND') return undefined
    throw err
  }
  try {
    return openRecord<T>(repo.keys.encKey, key, obj)
  } catch (err) {
    throw new SluiceError('ERR_UNSAFE', `${key} does not open (${(err as Error).message}); prune deleted nothing`, { cause: err })
  }
}

/** The generations present under gc/, newest last. */
export async function generations(storage: Storage): Promise<{ latest: number; all: number[] }> {
  const all: number[] = []
  for await (const key of orderedList(storage, 'gc/')) {
    const m = /^gc\/(\d{8})\//.exec(key)
    if (m && all[all.length - 1] !== Number(m[1])) all.push(Number(m[1]))
  }
  return { latest: all[all.length - 1] ?? 0, all }
}

/** `storage.list(prefix)`, refusing (ERR_UNSAFE) a key that does not come after the one before:
 *  a merge-join over an unordered listing would call live chunks unreferenced. */
export async function* orderedList(storage: Storage, prefix: string): AsyncGenerator<string> {
  let last: string | undefined
  for await (const key of storage.list(prefix)) {
    if (last !== undefined && key <= last) {
      throw new SluiceError('ERR_UNSAFE', `${storage.describe()} listed ${key} after ${last}: the listing is out of order; prune deleted nothing`)
    }
    last = key
    yield key
  }
}

/** The 64-hex ids under `prefix` (snapshots/, forgotten/), in order. */
export async function* rootIds(storage: Storage, prefix: string): AsyncGenerator<string> {
  for await (const key of orderedList(storage, prefix)) {
    const id = key.slice(prefix.length)
    if (/^[0-9a-f]{64}$/.test(id)) yield id
  }
}

/** Writes a sorted list of ids as sealed pages; returns how many ids. */
export class PageWriter {
  private page: string[] = []
  private pages = 0
  count = 0

  /** With `dryRun`, counts and writes nothing. */
  constructor(private readonly repo: GcRepo, private readonly gen: number, private readonly name: string, private readonly dryRun = false) {}

  async add(id: string): Promise<void> {
    this.page.push(id)
    this.count++
    if (this.page.length >= GC_SEEN_PAGE_IDS) await this.flush()
  }

  async flush(): Promise<void> {
    if (this.page.length === 0) return
    if (!this.dryRun) await putRecord(this.repo, gcKey(this.gen, `${this.name}.${pad(this.pages++, 6)}`), this.page)
    this.page = []
  }
}

/** The ids a PageWriter wrote, in order, one page in memory at a time. */
export async function* readPages(repo: GcRepo, gen: number, name: string): AsyncGenerator<string> {
  for await (const key of orderedList(repo.storage, gcKey(gen, `${name}.`))) {
    const ids = await getRecord<string[]>(repo, key)
    if (!Array.isArray(ids)) throw new SluiceError('ERR_UNSAFE', `${key} is not a list of ids; prune deleted nothing`)
    yield* ids
  }
}

/** The ids of `current` that are not in `seen` (both sorted), and those of `seen` that are still
 *  in `current` — by one merge-join, in constant memory. */
export async function* compareSorted(current: AsyncIterable<string>, seen: AsyncIterable<string>): AsyncGenerator<{ id: string; seen: boolean }> {
  const s = seen[Symbol.asyncIterator]()
  let next = await s.next()
  for await (const id of current) {
    while (!next.done && next.value < id) next = await s.next()
    yield { id, seen: !next.done && next.value === id }
  }
}

/** Something that says whether this prune still holds its lock (lib/repo/lease.ts PruneLock). */
export interface LockCheck {
  assertHeld(): Promise<void>
}

/**
 * Runs `act` on every id of an id file, GC_CONCURRENCY at a time, checking the lock before each
 * batch of GC_LOCK_CHECK_EVERY: a prune that lost its lock (stopped past its lifetime, taken
 * over) stops within one batch. `afterFirst` runs once, after the first batch (a test stop point).
 */
export async function forEachId(file: string, lock: LockCheck, act: (id: Buffer) => Promise<void>, afterFirst?: () => void): Promise<void> {
  const reader = new IdFileReader(fs.openSync(file, 'r'))
  try {
    let first = true
    for (;;) {
      const batch: Buffer[] = []
      for (let id = reader.current(); id && batch.length < GC_LOCK_CHECK_EVERY; id = reader.current()) {
        batch.push(Buffer.from(id))
        reader.advance()
      }
      if (batch.length === 0) return
      await lock.assertHeld()
      for (let i = 0; i < batch.length; i += GC_CONCURRENCY) await Promise.all(batch.slice(i, i + GC_CONCURRENCY).map(act))
      if (first) afterFirst?.()
      first = false
    }
  } finally {
    reader.close()
  }
}

/** A file of ids written in order (candidates, fossils to move back or delete). */
export function idFile(dir: string, name: string): { path: string; writer: IdFileWriter } {
  const p = path.join(dir, name)
  return { path: p, writer: new IdFileWriter(fs.openSync(p, 'wx', 0o600)) }
}

/** A root of snapshots/ to mark: undefined when it was forgotten meanwhile, ERR_UNSAFE when it
 *  cannot be read (prune must not delete what it could not see referenced). */
export async function loadRoot(repo: Repository, id: string): Promise<SnapshotRoot | undefined> {
  try {
    return await repo.loadSnapshot(id)
  } catch (err) {
    if (err instanceof SluiceError && err.code === 'ERR_SNAPSHOT_NOT_FOUND') return undefined
    throw new SluiceError('ERR_UNSAFE', `snapshot ${id.slice(0, 8)} cannot be read (${(err as Error).message}); prune deleted nothing`, { cause: err })
  }
}

/** Moves the fossils listed in an id file back to chunks (collect's and sweep's "moving back"
 *  step), counting them in `progress` against `total`. */
export async function moveBack(storage: Storage, file: string, lock: LockCheck, progress: PhaseProgress, total: number, report: () => void): Promise<void> {
  Object.assign(progress, { step: 'moving back', done: 0, total })
  report()
  await forEachId(file, lock, async id => {
    await moveObject(storage, fossilKey(id), chunkKey(id))
    progress.done++
  })
  report()
}
