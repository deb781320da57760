/**
 * sweep: the second step of prune, on a later run (docs/DESIGN-prune.md). Runs only when the
 * collect→sweep gap has passed and every backup whose lease existed at the collection's end has
 * committed, ended, or lapsed; lapsed leases are tombstoned first. Then the snapshot roots that
 * appeared since the collection (in snapshots/, or forgotten since) are marked, the fossils they
 * reference are moved back, and the other fossils are deleted, after the forgotten roots the
 * collection saw.
 *
 * Memory: as collect (external sort, one snapshot reader, one page of seen ids) plus the done
 * record's leases (one per backup running at the collection's end).
 */
import type { PhaseProgress } from '../../lib/progress.js'
import type { Repository } from '../../lib/repo/repository.js'
import { SluiceError } from '../../lib/errors.js'
import { openSnapshot } from '../../lib/repo/objects.js'
import { fossilKey, idFromFossilKey, sealRecord } from '../../lib/repo/gc-objects.js'
import { lapsed, listLeases, tombstoneKey } from '../../lib/repo/lease.js'
import { stopPoint } from '../../lib/test-point.js'
import { collectEvery } from '../../lib/memory.js'
import { GC_LISTED_KEY_GARBAGE } from '../../lib/limits.js'
import type { SnapshotRoot } from '../../lib/repo/repository.js'
import { treeOf } from '../restore/read-snapshot.js'
import { IdSorter, type SorterOptions } from './external-sort.js'
import { markSnapshot } from './mark.js'
import {
  compareSorted, forEachId, gcKey, getRecord, moveBack, idFile, loadRoot, orderedList, readPages, rootIds,
  type DoneRecord, type LockCheck,
} from './state.js'

export interface SweepOptions {
  repo: Repository
  generation: number
  lock: LockCheck
  tmpDir: string
  /** The external sort's run size and fan-in (the memory budget's, lib/budget.ts). */
  sort?: SorterOptions
  leaseLifetimeMs: number
  sweepGapMs: number
  now: () => number
  dryRun?: boolean
  /** Called as the sweep advances (phase `sweep`): new snapshots marked, fossils listed, then
   *  chunks deleted of a known count, with their bytes. */
  onProgress?: (p: PhaseProgress) => void
}

/** Why a sweep cannot run yet, and the earliest time it may. */
export interface Waiting {
  reason: 'gap' | 'backup'
  /** The backup waited for: its host and pid, and when its lease started. */
  host?: string
  pid?: number
  since?: number
  lease?: string
  /** Earliest time this reason goes away (the gap's end, the lease's lapse if not refreshed). */
  until: number
}

export interface SweepResult {
  generation: number
  swept: boolean
  waiting: Waiting[]
  tombstoned: number
  newSnapshots: number
  movedBack: number
  deleted: number
  deletedBytes: number
  forgottenDeleted: number
}

async function loadForgotten(repo: Repository, id: string): Promise<SnapshotRoot | undefined> {
  let obj: Buffer
  try {
    obj = await repo.storage.get(`forgotten/${id}`)
  } catch (err) {
    if (err instanceof SluiceError && err.code === 'ERR_NOT_FOUND') return undefined // undone meanwhile
    throw err
  }
  try {
    const snap = JSON.parse(openSnapshot(repo.keys.encKey, Buffer.from(id, 'hex'), obj).toString('utf8')) as SnapshotRoot
    if (!snap?.tree) throw new Error('no tree')
    return snap
  } catch (err) {
    throw new SluiceError('ERR_UNSAFE', `forgotten snapshot ${id.slice(0, 8)} cannot be read (${(err as Error).message}); prune deleted nothing`, { cause: err })
  }
}

export async function sweep(opts: SweepOptions): Promise<SweepResult> {
  const { repo, generation: gen, now } = opts
  const result: SweepResult = { generation: gen, swept: false, waiting: [], tombstoned: 0, newSnapshots: 0, movedBack: 0, deleted: 0, deletedBytes: 0, forgottenDeleted: 0 }
  const done = await getRecord<DoneRecord>(repo, gcKey(gen, 'done'))
  if (!done || done.version !== 1 || !Array.isArray(done.leases)) throw new SluiceError('ERR_UNSAFE', `${gcKey(gen, 'done')} is missing or not a done record; prune deleted nothing`)
  const t = now()
  if (t < done.ended + opts.sweepGapMs) result.waiting.push({ reason: 'gap', until: done.ended + opts.sweepGapMs })
  const recorded = new Set(done.leases.map(l => l.id))
  const lapsedIds: string[] = []
  for await (const l of listLeases(repo)) {
    if (!recorded.has(l.id) || l.tombstone || !l.info) continue
    if (lapsed(l.info, t, opts.leaseLifetimeMs)) lapsedIds.push(l.id)
    else result.waiting.push({ reason: 'backup', host: l.info.host, pid: l.info.pid, since: l.info.started, lease: l.id, until: l.info.refreshed + opts.leaseLifetimeMs })
  }
  if (result.waiting.length > 0) return result

  // Tombstones before the listing of snapshots below: a backup that writes its root after that
  // listing finds its tombstone afterwards and proves its chunks (mark.ts commitGuard).
  if (!opts.dryRun) {
    for (const id of lapsedIds) {
      const key = tombstoneKey(id)
      await repo.storage.put(key, sealRecord(repo.keys.encKey, key, { version: 1, generation: gen, at: t }))
      result.tombstoned++
    }
  }
  stopPoint('prune-tombstoned')

  const progress: PhaseProgress = { phase: 'sweep', step: 'marking new snapshots', done: 0, unit: 'snapshots', errors: 0 }
  const report = opts.onProgress ? () => opts.onProgress!(progress) : () => {}
  report()
  const sorter = new IdSorter(opts.tmpDir, opts.sort)
  try {
    for await (const { id, seen } of compareSorted(rootIds(repo.storage, 'snapshots/'), readPages(repo, gen, 'snapshots'))) {
      if (seen) continue
      const snap = await loadRoot(repo, id)
      if (!snap) continue
      progress.current = `snapshot ${id.slice(0, 8)}`
      report()
      await markSnapshot(repo, treeOf(snap), sorter, `snapshot ${id.slice(0, 8)}`)
      result.newSnapshots++
      progress.done = result.newSnapshots
    }
    const roots = idFile(opts.tmpDir, 'forgotten-roots')
    try {
      for await (const { id, seen } of compareSorted(rootIds(repo.storage, 'forgotten/'), readPages(repo, gen, 'forgotten'))) {
        if (seen) {
          roots.writer.write(Buffer.from(id, 'hex'), 0)
          continue
        }
        // Forgotten since the collection: a backup may still be reusing it as its parent.
        const snap = await loadForgotten(repo, id)
        if (!snap) continue
        progress.current = `forgotten snapshot ${id.slice(0, 8)}`
        report()
        await markSnapshot(repo, treeOf(snap), sorter, `forgotten snapshot ${id.slice(0, 8)}`)
        result.newSnapshots++
        progress.done = result.newSnapshots
      }
    } finally {
      roots.writer.close()
    }

    const back = idFile(opts.tmpDir, 'sweep-back')
    const gone = idFile(opts.tmpDir, 'sweep-delete')
    try {
      const refs = sorter.sorted()
      let ref = refs.next()
      // The fossils are about those the collection moved aside (and any left by earlier ones).
      // (A record's numbers only drive this display; one that is not a count leaves the total unknown.)
      const count = (n: unknown) => (Number.isSafeInteger(n) && (n as number) >= 0 ? (n as number) : undefined)
      Object.assign(progress, { step: 'listing moved-aside chunks', done: 0, unit: 'chunks', total: count(done.moved), current: undefined })
      report()
      const listed = collectEvery('restore')
      for await (const key of orderedList(repo.storage, 'fossils/')) {
        listed(GC_LISTED_KEY_GARBAGE)
        const id = idFromFossilKey(key)
        if (!id) continue
        progress.done++
        if (progress.total !== undefined && progress.done > progress.total) progress.total = progress.done
        while (!ref.done && ref.value.compare(id) < 0) ref = refs.next()
        if (!ref.done && ref.value.equals(id)) {
          back.writer.write(id, 0)
          result.movedBack++
        } else {
          gone.writer.write(id, 0)
          result.deleted++
        }
      }
      progress.total = progress.done
      report()
    } finally {
      back.writer.close()
      gone.writer.close()
    }
    if (opts.dryRun) return { ...result, swept: true }

    await moveBack(repo.storage, back.path, opts.lock, progress, result.movedBack, report)
    // The forgotten roots before their chunks: once a chunk may be gone, no `forget --undo` can
    // bring back a root that needs it.
    await forEachId(roots.path, opts.lock, async id => {
      await repo.storage.delete(`forgotten/${id.toString('hex')}`)
      result.forgottenDeleted++
    })
    // The collection's record has the bytes it moved aside: the total to delete, near enough.
    Object.assign(progress, { step: 'deleting', done: 0, total: result.deleted, bytes: 0, ...(result.movedBack === 0 && result.deleted === done.moved && Number.isSafeInteger(done.movedBytes) ? { totalBytes: done.movedBytes } : {}) })
    report()
    await forEachId(
      gone.path,
      opts.lock,
      async id => {
        const key = fossilKey(id)
        const st = await repo.storage.stat?.(key)
        await repo.storage.delete(key)
        result.deletedBytes += st?.size ?? 0
        progress.done++
        progress.bytes = result.deletedBytes
      },
      () => stopPoint('prune-deleting'),
    )
    report()
    // Tombstones whose backups have released their leases are of no more use.
    for await (const l of listLeases(repo)) if (l.tombstone && l.keys.length === 1) await repo.storage.delete(l.keys[0]!)
    stopPoint('prune-swept')
    return { ...result, swept: true }
  } finally {
    sorter.close()
  }
}
