/**
 * mark: every chunk id a snapshot needs — the nodes of its metadata id tree, its metadata
 * chunks, and the content chunks its records name — into prune's sorted runs (markSnapshot,
 * which decodes metadata that snapshots share once per sorter), or as a stream for a backup that
 * must prove its chunks before (or after) it commits (snapshotIds, proveSnapshot).
 * Memory: snapshotIds, one snapshot reader (transforms/restore/read-snapshot.ts) plus the few
 * ids its read-ahead reported; markSnapshot, see markTree; proveSnapshot, a capped cache.
 */
import { isHole, type ExtentsItem, type RecordItem } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { hex } from '../../lib/bytes.js'
import { Lru } from '../../lib/flow.js'
import { collectEvery } from '../../lib/memory.js'
import { GC_MARKED_CHUNKS, KNOWN_IDS_CACHE, META_TREE_OBJECTS_MAX, META_TREE_REPEATS } from '../../lib/limits.js'
import { chunkKey, decodeTreeNode } from '../../lib/repo/objects.js'
import { decodeRecord, MAX_RECORD_BYTES } from '../../lib/repo/record.js'
import { fossilKey } from '../../lib/repo/gc-objects.js'
import { moveObject } from '../../lib/storage/move.js'
import type { Repository } from '../../lib/repo/repository.js'
import type { BackupLease } from '../../lib/repo/lease.js'
import { snapshotRecords, type ChunkLoader, type TreeRef } from '../restore/read-snapshot.js'
import type { IdSorter } from './external-sort.js'

/** Every id the snapshot with this tree needs, in stored order (repeats left in, but for
 *  neighbouring extents of one chunk). */
export async function* snapshotIds(loader: ChunkLoader, tree: TreeRef): AsyncGenerator<Buffer> {
  const tier: Buffer[] = []
  let last: Buffer | undefined
  for await (const item of snapshotRecords(loader, tree, id => tier.push(id)) as AsyncIterable<RecordItem | ExtentsItem>) {
    while (tier.length > 0) yield tier.shift()!
    for (const e of item.extents) {
      if (isHole(e) || (last && last.equals(e.id))) continue // a hole names no chunk
      last = e.id
      yield e.id
    }
  }
  while (tier.length > 0) yield tier.shift()!
}

/** Adds every id of a snapshot to `sorter`; an unreadable snapshot is ERR_UNSAFE (prune must
 *  not delete what it could not see referenced). Metadata that an earlier snapshot given to the
 *  same sorter shares is loaded but not decoded again (`markedOf`); returns how many metadata
 *  chunks that spared. */
export async function markSnapshot(loader: ChunkLoader, tree: TreeRef, sorter: IdSorter, what: string): Promise<number> {
  let marked = markedOf.get(sorter)
  if (!marked) markedOf.set(sorter, (marked = new Lru<string, true>(GC_MARKED_CHUNKS)))
  try {
    return await markTree(loader, tree, sorter, marked)
  } catch (err) {
    const detail = err instanceof SluiceError ? `${err.code}: ${err.message}` : String(err)
    throw new SluiceError('ERR_UNSAFE', `${what} cannot be read (${detail}); prune deleted nothing`, { cause: err })
  }
}

/**
 * The metadata chunks whose records a sorter has been given, each keyed by its id and by where
 * the first record that starts in it starts (`at`). The record stream is cut into chunks
 * anywhere, so one chunk's bytes do not frame its records alone; but the records that start at
 * or after `at` and end inside the chunk are its bytes from `at` on, whatever came before. Met
 * again with the same `at`, those records are framed (to find where the next chunk's first
 * record starts) and not decoded: their ids are in the sorter. The record that reaches into the
 * chunk from the one before, and the one that reaches out of it, are decoded every time. Only
 * re-marking is ever skipped; a key is remembered after all its records were added.
 */
const markedOf = new WeakMap<IdSorter, Lru<string, true>>()

function corrupt(msg: string): SluiceError {
  return new SluiceError('ERR_CORRUPT', `snapshot metadata: ${msg}`)
}

/**
 * snapshotIds into a sorter: the id tree walked depth first (as read-snapshot.ts walks it, with
 * its limits on objects and repeats), each metadata chunk framed into records, each record's
 * extents added. The checks a restore needs of the records (paths, sizes against extents) are
 * not made here: they guard writes, and a snapshot that breaks them still references the chunks
 * it names, which is all marking needs. Memory: one tree node per level, one metadata chunk, at
 * most one partial record (MAX_RECORD_BYTES), the 8-byte prefixes of the tree's objects
 * (META_TREE_OBJECTS_MAX), and the sorter's cache of GC_MARKED_CHUNKS keys.
 */
async function markTree(loader: ChunkLoader, tree: TreeRef, sorter: IdSorter, marked: Lru<string, true>): Promise<number> {
  if (tree.depth < 1 || tree.depth > 16) throw new SluiceError('ERR_CORRUPT', `metadata tree depth ${tree.depth} is out of range`)
  const seen = new Set<string>()
  let repeats = 0
  let pending = EMPTY
  let last: Buffer | undefined
  let spared = 0
  // Loaded chunks die outside V8's heap; sparing their decoding leaves V8 little reason to collect.
  const dead = collectEvery('mark')
  const visit = (id: Buffer): void => {
    const key = id.toString('latin1', 0, 8)
    if (seen.has(key)) {
      if (++repeats > META_TREE_REPEATS * seen.size) throw corrupt(`the metadata tree names its objects over and over (chunk ${hex(id)} again)`)
      return
    }
    if (seen.size >= META_TREE_OBJECTS_MAX) throw corrupt(`the metadata tree has more than ${META_TREE_OBJECTS_MAX} objects`)
    seen.add(key)
  }
  const addRecord = (body: Buffer): void => {
    const rec = decodeRecord(body)
    if (!rec) return
    for (const e of rec.extents) {
      if (isHole(e) || (last && last.equals(e.id))) continue // a hole names no chunk
      last = e.id
      sorter.add(e.id)
    }
  }
  /** Where the record that starts at `pos` of `bytes(i)` (of `n` bytes) ends, after its length
   *  prefix at `[pos, body)`; undefined when the prefix or the record does not end there. */
  const frame = (byte: (i: number) => number, n: number, pos: number): { body: number; end: number } | undefined => {
    let len = 0
    let mul = 1
    let p = pos
    for (;;) {
      if (p >= n) return undefined
      const b = byte(p++)
      len += (b & 0x7f) * mul
      if (b < 0x80) break
      mul *= 0x80
      if (mul > 2 ** 35) throw corrupt('a record length prefix is too long')
    }
    if (len > MAX_RECORD_BYTES) throw corrupt(`a record of ${len} bytes`)
    return p + len > n ? undefined : { body: p, end: p + len }
  }
  const metadata = (id: Buffer, data: Buffer): void => {
    let pos = 0
    if (pending.length > 0) {
      // The record reaching in from the chunks before: always decoded (its start differs).
      const head = pending
      const f = frame(i => (i < head.length ? head[i]! : data[i - head.length]!), head.length + data.length, 0)
      if (!f) {
        pending = Buffer.concat([head, data]) // it reaches past this chunk too
        return
      }
      pos = f.end - head.length
      addRecord(Buffer.concat([head.subarray(Math.min(f.body, head.length)), data.subarray(Math.max(0, f.body - head.length), pos)]))
      pending = EMPTY
    }
    // The records that start in this chunk: decoded unless this chunk, framed from `pos`, was.
    const key = `${id.toString('latin1')}${pos}`
    const skip = marked.has(key)
    if (skip) spared++
    const byte = (i: number) => data[i]!
    for (let f = frame(byte, data.length, pos); f; f = frame(byte, data.length, pos)) {
      if (!skip) addRecord(data.subarray(f.body, f.end))
      pos = f.end
    }
    if (pos < data.length) pending = Buffer.from(data.subarray(pos))
    if (!skip) marked.set(key, true)
    dead(data.length)
  }
  const walk = async (id: Buffer, depth: number): Promise<void> => {
    visit(id)
    sorter.add(id)
    const data = await loader.loadChunk(id)
    if (depth === 0) return metadata(id, data)
    for (const child of decodeTreeNode(data)) await walk(child, depth - 1)
  }
  await walk(tree.root, tree.depth)
  if (pending.length > 0) throw corrupt('the record stream ends inside a record')
  return spared
}

const EMPTY = Buffer.alloc(0)

/**
 * Proves that every chunk of a backup's snapshot is in chunks/: one moved aside by a prune is
 * moved back (readers find fossils, backups rely only on chunks/). Returns the first id found in
 * neither place, or undefined when all are there. Memory: a capped cache of ids proven.
 */
export async function proveSnapshot(repo: Repository, tree: TreeRef): Promise<string | undefined> {
  const proven = new Lru<string, true>(KNOWN_IDS_CACHE)
  try {
    for await (const id of snapshotIds(repo, tree)) {
      const k = hex(id)
      if (proven.has(k)) continue
      if (!(await repo.hasChunk(id)) && !(await moveObject(repo.storage, fossilKey(id), chunkKey(id))) && !(await repo.hasChunk(id))) return k
      proven.set(k, true)
    }
  } catch (err) {
    if (err instanceof SluiceError && err.code === 'ERR_MISSING') return /chunk ([0-9a-f]{64})/.exec(err.message)?.[1] ?? 'a metadata chunk'
    throw err
  }
  return undefined
}

function lapsedError(lease: BackupLease, missing: string): SluiceError {
  return new SluiceError(
    'ERR_LEASE_LAPSED',
    `this backup was stopped past its lease (${lease.id.slice(0, 8)}) and a prune deleted chunk ${missing} it reused; no snapshot was written, run the backup again`,
  )
}

/**
 * The two lease checks around a backup's commit (docs/DESIGN-prune.md "The window"):
 * before: a lapsed lease must prove every chunk first; after the root is written: a tombstone
 * means a sweep may have run after the first check, so the chunks are proven again and the root
 * is removed if one is gone.
 */
export const commitGuard = {
  async before(repo: Repository, lease: BackupLease, tree: TreeRef): Promise<void> {
    if (!lease.isLapsed() && !(await lease.tombstoned())) return
    await lease.refresh()
    const missing = await proveSnapshot(repo, tree)
    if (missing) throw lapsedError(lease, missing)
  },
  async after(repo: Repository, lease: BackupLease, snapshotId: string, tree: TreeRef): Promise<void> {
    if (!(await lease.tombstoned())) return
    const missing = await proveSnapshot(repo, tree)
    if (!missing) return
    await repo.storage.delete(`snapshots/${snapshotId}`)
    throw lapsedError(lease, missing)
  },
}
