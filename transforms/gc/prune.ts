/**
 * prune(): one run of the two-step collection (docs/DESIGN-prune.md). Under the prune lock:
 * if the latest collection is complete, sweep it (or say what it waits for); then start the next
 * collection. An interrupted collection (no done record) is abandoned: the next one re-marks
 * everything and moves back any fossil still referenced, so its moves are never trusted.
 *
 * Memory: that of collect and sweep, one at a time (each states its bound); nothing grows with
 * the number of snapshots, files or chunks.
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { PhaseProgress } from '../../lib/progress.js'
import type { Repository } from '../../lib/repo/repository.js'
import { GC_MIN_CHUNK_AGE_MS, GC_SWEEP_MIN_GAP_MS, LEASE_LIFETIME_MS } from '../../lib/limits.js'
import { budgetOf } from '../../lib/budget.js'
import { PruneLock } from '../../lib/repo/lease.js'
import { collect, type CollectResult } from './collect.js'
import { sweep, type SweepResult } from './sweep.js'
import { gcKey, generations, getRecord, orderedList, type DoneRecord, type LockCheck } from './state.js'

export interface PruneOptions {
  repo: Repository
  /** Say what would be done; write, move and delete nothing (and take no lock). */
  dryRun?: boolean
  /** An unreferenced chunk younger than this is kept (default GC_MIN_CHUNK_AGE_MS). */
  minChunkAgeMs?: number
  /** A backup's lease not refreshed for this long has lapsed (default LEASE_LIFETIME_MS). The
   *  prune lock keeps LEASE_LIFETIME_MS: a killed prune of this host is seen dead at once. */
  leaseLifetimeMs?: number
  /** Least time between a collection's end and its sweep (default GC_SWEEP_MIN_GAP_MS). */
  sweepGapMs?: number
  /** Parent of the temporary directory for sorted runs (default the OS's). */
  tmpDir?: string
  /** The peak RSS, in bytes, to size the external sort for (lib/budget.ts, `budget.prune`). */
  memory?: number
  now?: () => number
  /** Where the run stands (phases mark, collect, sweep); the object is updated in place after
   *  the call, so a caller may keep it and read it on its own clock. */
  onProgress?: (p: PhaseProgress) => void
}

export interface PruneResult {
  /** The sweep of the previous collection, when there was one to sweep. */
  sweep?: SweepResult
  /** The collection this run made (none while a sweep waits). */
  collect?: CollectResult
  /** Earliest time a next run can free what this one moved aside or found waiting (ms). */
  nextFreeAt?: number
  dryRun: boolean
}

export async function prune(opts: PruneOptions): Promise<PruneResult> {
  const { repo } = opts
  const now = opts.now ?? Date.now
  const leaseLifetimeMs = opts.leaseLifetimeMs ?? LEASE_LIFETIME_MS
  const sweepGapMs = opts.sweepGapMs ?? GC_SWEEP_MIN_GAP_MS
  const dryRun = !!opts.dryRun
  const { runIds, fanIn } = budgetOf(opts.memory).prune
  const sort = { runIds, fanIn }
  const tmpRoot = fs.mkdtempSync(path.join(opts.tmpDir ?? os.tmpdir(), 'sluice-prune-'))
  const lock: PruneLock | undefined = dryRun ? undefined : await PruneLock.acquire(repo, { now })
  const held: LockCheck = lock ?? { assertHeld: async () => {} }
  const result: PruneResult = { dryRun }
  try {
    const { latest, all } = await generations(repo.storage)
    const done = latest ? await getRecord<DoneRecord>(repo, gcKey(latest, 'done')) : undefined
    if (done) {
      const dir = fs.mkdtempSync(path.join(tmpRoot, 'sweep-'))
      result.sweep = await sweep({ repo, generation: latest, lock: held, tmpDir: dir, sort, leaseLifetimeMs, sweepGapMs, now, dryRun, ...(opts.onProgress ? { onProgress: opts.onProgress } : {}) })
      if (!result.sweep.swept) {
        result.nextFreeAt = Math.max(...result.sweep.waiting.map(w => w.until))
        return result
      }
    }
    if (!dryRun) {
      // The done record first: a generation without one is never swept, only superseded.
      for (const gen of all) await repo.storage.delete(gcKey(gen, 'done'))
      for (const gen of all) for await (const key of orderedList(repo.storage, gcKey(gen, ''))) await repo.storage.delete(key)
    }
    const dir = fs.mkdtempSync(path.join(tmpRoot, 'collect-'))
    result.collect = await collect({
      repo, generation: latest + 1, lock: held, tmpDir: dir, sort, now, dryRun, leaseLifetimeMs,
      minChunkAgeMs: opts.minChunkAgeMs ?? GC_MIN_CHUNK_AGE_MS,
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    })
    if (result.collect.candidates > 0 || result.collect.fossils > 0) result.nextFreeAt = (result.collect.ended ?? now()) + sweepGapMs
    return result
  } finally {
    await lock?.release().catch(() => {})
    fs.rmSync(tmpRoot, { recursive: true, force: true })
  }
}
