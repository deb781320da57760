/**
 * collect: the first step of prune (docs/DESIGN-prune.md). Marks every chunk every snapshot in
 * snapshots/ references into sorted runs on disk, merge-joins them with the sorted listings of
 * chunks/ and fossils/, and writes two lists to the temporary directory: candidates (stored,
 * unreferenced, older than the minimum age, older than the start of every live backup) and
 * fossils some snapshot references again. Only when every listing was complete and in order is
 * the collection recorded; then fossils are moved back and candidates moved aside, and the done
 * record names the backups running at the end.
 *
 * Memory: the external sort's buffers (transforms/gc/external-sort.ts), one snapshot reader, one
 * page of seen ids, and the leases live at the start (one per running backup). With onProgress,
 * a second listing of snapshots/ beside the marking counts the roots (a number, no list).
 */
import type { PhaseProgress } from '../../lib/progress.js'
import type { Repository } from '../../lib/repo/repository.js'
import { SluiceError } from '../../lib/errors.js'
import { idFromChunkKey, chunkKey } from '../../lib/repo/objects.js'
import { fossilKey, idFromFossilKey } from '../../lib/repo/gc-objects.js'
import { lapsed, listLeases } from '../../lib/repo/lease.js'
import { moveObject } from '../../lib/storage/move.js'
import type { Storage } from '../../lib/storage/storage.js'
import { stopPoint } from '../../lib/test-point.js'
import { collectEvery } from '../../lib/memory.js'
import { GC_LISTED_KEY_GARBAGE } from '../../lib/limits.js'
import { treeOf } from '../restore/read-snapshot.js'
import { IdSorter, type SorterOptions } from './external-sort.js'
import { markSnapshot } from './mark.js'
import {
  forEachId, gcKey, moveBack, idFile, loadRoot, orderedList, PageWriter, putRecord, rootIds,
  type CollectionRecord, type DoneRecord, type LockCheck,
} from './state.js'

export interface CollectOptions {
  repo: Repository
  generation: number
  lock: LockCheck
  /** A fresh directory of this collection's own, for sorted runs and lists. */
  tmpDir: string
  /** The external sort's run size and fan-in (the memory budget's, lib/budget.ts). */
  sort?: SorterOptions
  minChunkAgeMs: number
  leaseLifetimeMs: number
  now: () => number
  dryRun?: boolean
  /** Called as the collection advances: mark (snapshots of those listed), collect (chunks
   *  listed; then moved back and aside, of a known count). */
  onProgress?: (p: PhaseProgress) => void
}

export interface CollectResult {
  generation: number
  snapshots: number
  forgotten: number
  /** Stored chunks, referenced ones, and referenced ids stored nowhere (a damaged repository). */
  chunks: number
  referenced: number
  missing: number
  candidates: number
  candidateBytes: number
  /** Unreferenced chunks kept for now: too young, or newer than a running backup's start. */
  young: number
  resurrected: number
  /** Fossils of earlier collections left for the sweep. */
  fossils: number
  /** Backups running when marking started. */
  leases: CollectionRecord['leases']
  ended?: number
}

/** Chunk ids stored in chunks/ and fossils/, merged in id order (each listing checked). */
async function* storedIds(storage: Storage): AsyncGenerator<{ id: Buffer; chunk: boolean; fossil: boolean }> {
  const chunks = orderedList(storage, 'chunks/')[Symbol.asyncIterator]()
  const fossils = orderedList(storage, 'fossils/')[Symbol.asyncIterator]()
  const next = async (it: AsyncIterator<string>, parse: (k: string) => Buffer | null): Promise<Buffer | null> => {
    for (;;) {
      const r = await it.next()
      if (r.done) return null
      const id = parse(r.value)
      if (id) return id
    }
  }
  let c = await next(chunks, idFromChunkKey)
  let f = await next(fossils, idFromFossilKey)
  while (c || f) {
    const cmp = !c ? 1 : !f ? -1 : c.compare(f)
    yield { id: (cmp <= 0 ? c : f)!, chunk: cmp <= 0, fossil: cmp >= 0 }
    if (cmp <= 0) c = await next(chunks, idFromChunkKey)
    if (cmp >= 0) f = await next(fossils, idFromFossilKey)
  }
}

export async function collect(opts: CollectOptions): Promise<CollectResult> {
  const { repo, generation: gen, now } = opts
  if (!repo.storage.stat) throw new SluiceError('ERR_STORAGE', `${repo.storage.describe()} cannot tell how old an object is; prune needs that (Storage.stat)`)
  const started = now()
  const result: CollectResult = {
    generation: gen, snapshots: 0, forgotten: 0, chunks: 0, referenced: 0, missing: 0,
    candidates: 0, candidateBytes: 0, young: 0, resurrected: 0, fossils: 0, leases: [],
  }
  // Leases first: a backup that starts after this listing uploads only chunks newer than
  // `started`, which are never candidates.
  let earliest = Infinity
  for await (const l of listLeases(repo)) {
    if (!l.info || l.tombstone || lapsed(l.info, started, opts.leaseLifetimeMs)) continue
    result.leases.push({ id: l.id, host: l.info.host, pid: l.info.pid, started: l.info.started })
    earliest = Math.min(earliest, l.info.started)
  }

  const progress: PhaseProgress = { phase: 'mark', step: 'marking snapshots', done: 0, unit: 'snapshots', errors: 0 }
  const report = opts.onProgress ? () => opts.onProgress!(progress) : () => {}
  // The count of roots for the progress total: one more listing of snapshots/, names only.
  const counting = opts.onProgress ? (async () => {
    let n = 0
    for await (const _ of rootIds(repo.storage, 'snapshots/')) n++
    if (progress.phase === 'mark') progress.total = n
  })().catch(() => {}) : undefined
  const sorter = new IdSorter(opts.tmpDir, opts.sort)
  const seen = new PageWriter(repo, gen, 'snapshots', opts.dryRun)
  const forgotten = new PageWriter(repo, gen, 'forgotten', opts.dryRun)
  try {
    for await (const id of rootIds(repo.storage, 'snapshots/')) {
      const snap = await loadRoot(repo, id)
      if (!snap) continue // forgotten meanwhile
      progress.current = `snapshot ${id.slice(0, 8)}`
      report()
      await markSnapshot(repo, treeOf(snap), sorter, `snapshot ${id.slice(0, 8)}`)
      await seen.add(id)
      result.snapshots++
      progress.done = result.snapshots
      // A root added after the count was taken.
      if (progress.total !== undefined && progress.done > progress.total) progress.total = progress.done
    }
    await counting
    report()
    await seen.flush()
    for await (const id of rootIds(repo.storage, 'forgotten/')) await forgotten.add(id)
    await forgotten.flush()
    result.forgotten = forgotten.count
    stopPoint('prune-marked')

    // The join: nothing is written to the repository until both listings were read in order.
    Object.assign(progress, { phase: 'collect', step: 'listing chunks', done: 0, unit: 'chunks', total: undefined, current: undefined })
    report()
    const cand = idFile(opts.tmpDir, 'candidates')
    const back = idFile(opts.tmpDir, 'resurrect')
    try {
      const refs = sorter.sorted()
      let ref = refs.next()
      const listed = collectEvery('restore')
      for await (const s of storedIds(repo.storage)) {
        listed(GC_LISTED_KEY_GARBAGE)
        while (!ref.done && ref.value.compare(s.id) < 0) {
          result.missing++
          ref = refs.next()
        }
        const referenced = !ref.done && ref.value.equals(s.id)
        if (referenced) ref = refs.next()
        if (s.chunk) result.chunks++
        progress.done++
        progress.errors = result.missing
        if (referenced) {
          result.referenced++
          if (s.fossil) {
            back.writer.write(s.id, 0)
            result.resurrected++
          }
          continue
        }
        if (!s.chunk) {
          result.fossils++
          continue
        }
        const st = await repo.storage.stat!(chunkKey(s.id))
        if (!st) continue // gone meanwhile
        if (started - st.mtimeMs < opts.minChunkAgeMs || st.mtimeMs >= earliest || st.mtimeMs >= started) {
          result.young++
          continue
        }
        cand.writer.write(s.id, 0)
        result.candidates++
        result.candidateBytes += st.size
      }
      while (!ref.done) {
        result.missing++
        ref = refs.next()
      }
      progress.errors = result.missing
      progress.total = progress.done
      report()
    } finally {
      cand.writer.close()
      back.writer.close()
    }
    if (opts.dryRun) return result

    const record: CollectionRecord = {
      version: 1, generation: gen, started, snapshots: result.snapshots, forgotten: result.forgotten,
      candidates: result.candidates, candidateBytes: result.candidateBytes, resurrect: result.resurrected, leases: result.leases,
    }
    await putRecord(repo, gcKey(gen, 'collection'), record)
    stopPoint('prune-recorded')

    await moveBack(repo.storage, back.path, opts.lock, progress, result.resurrected, report)
    Object.assign(progress, { step: 'moving aside', done: 0, total: result.candidates })
    report()
    await forEachId(
      cand.path,
      opts.lock,
      async id => {
        await moveObject(repo.storage, chunkKey(id), fossilKey(id))
        progress.done++
      },
      () => stopPoint('prune-moving'),
    )
    report()

    // Every backup whose lease exists now may have reused a chunk just moved: the sweep waits
    // for each (or for its lease to lapse). One that starts later can no longer find those.
    const done: DoneRecord = { version: 1, generation: gen, ended: now(), moved: result.candidates, movedBytes: result.candidateBytes, leases: [] }
    for await (const l of listLeases(repo)) done.leases.push({ id: l.id, tombstone: l.tombstone, ...(l.info ?? {}) })
    await putRecord(repo, gcKey(gen, 'done'), done)
    result.ended = done.ended
    stopPoint('prune-collected')
    return result
  } finally {
    sorter.close()
  }
}
