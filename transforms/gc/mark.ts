/**
 * mark: every chunk id a snapshot needs — the nodes of its metadata id tree, its metadata
 * chunks, and the content chunks its records name — as a stream, for prune's sorted runs and
 * for a backup that must prove its chunks before (or after) it commits. Memory: one snapshot
 * reader (transforms/restore/read-snapshot.ts) plus the few ids its read-ahead reported.
 */
import { isHole, type ExtentsItem, type RecordItem } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { hex } from '../../lib/bytes.js'
import { Lru } from '../../lib/flow.js'
import { KNOWN_IDS_CACHE } from '../../lib/limits.js'
import { chunkKey } from '../../lib/repo/objects.js'
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
 *  not delete what it could not see referenced). */
export async function markSnapshot(loader: ChunkLoader, tree: TreeRef, sorter: IdSorter, what: string): Promise<void> {
  try {
    for await (const id of snapshotIds(loader, tree)) sorter.add(id)
  } catch (err) {
    const detail = err instanceof SluiceError ? `${err.code}: ${err.message}` : String(err)
    throw new SluiceError('ERR_UNSAFE', `${what} cannot be read (${detail}); prune deleted nothing`, { cause: err })
  }
}

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
