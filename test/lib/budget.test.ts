/**
 * The memory budget (lib/budget.ts): at the default it is exactly lib/limits.ts's defaults; a
 * smaller one never gives any share more, and reaches the floor (one chunk in flight per stage,
 * no seal worker) when nothing is left past the runtime's share; the worker only with its
 * reserve; sizes parse as every size option does and nonsense is one ERR_ARGS.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { memoryBudget, parseMemory, type MemoryBudget } from '../../lib/budget.js'
import { SluiceError } from '../../lib/errors.js'
import {
  CHUNK_ARENA_BYTES, CHUNK_MAX, COPY_CONCURRENCY, COPY_KNOWN_IDS_CACHE, DEDUP_CONCURRENCY, DOWNLOAD_CONCURRENCY, RESTORE_AHEAD_BYTES, GC_MERGE_FANIN, GC_RUN_IDS, KNOWN_IDS_CACHE,
  MEMORY_DEFAULT, MEMORY_MIN, MiB, PREFETCH_BATCH_BYTES, PREFETCH_BATCHES, RESTORE_CHUNK_CACHE_BYTES, RUNTIME_RESERVE, SEAL_POOL_JOBS_HIGH, SEAL_WORKER_RESERVE,
  UPLOAD_CONCURRENCY, ZSTD_HIGH_RESERVE, ZSTD_HIGH_WINDOW_LOG,
} from '../../lib/limits.js'

/** Every number of a split, by name, for comparing two splits share by share. */
function shares(b: MemoryBudget): Map<string, number> {
  const out = new Map<string, number>()
  for (const part of ['backup', 'restore', 'check', 'prune', 'copy'] as const) {
    for (const [k, v] of Object.entries(b[part])) if (typeof v === 'number') out.set(`${part}.${k}`, v)
  }
  return out
}

test('the default budget is lib/limits.ts\'s defaults', () => {
  const b = memoryBudget()
  assert.equal(b.memory, MEMORY_DEFAULT)
  assert.deepEqual(b.backup, {
    arenaBytes: CHUNK_ARENA_BYTES, prefetchBatches: PREFETCH_BATCHES, prefetchBatchBytes: PREFETCH_BATCH_BYTES,
    dedupConcurrency: DEDUP_CONCURRENCY, uploadConcurrency: UPLOAD_CONCURRENCY, sealWorker: false,
    zstdHighWindowLog: ZSTD_HIGH_WINDOW_LOG, zstdHighArenaBytes: Math.max(2 * CHUNK_MAX, CHUNK_ARENA_BYTES - ZSTD_HIGH_RESERVE), zstdPoolJobs: SEAL_POOL_JOBS_HIGH, knownIds: KNOWN_IDS_CACHE,
  })
  assert.deepEqual(b.restore, { cacheBytes: RESTORE_CHUNK_CACHE_BYTES, downloadConcurrency: DOWNLOAD_CONCURRENCY, aheadBytes: RESTORE_AHEAD_BYTES })
  assert.deepEqual(b.prune, { runIds: GC_RUN_IDS, fanIn: GC_MERGE_FANIN })
  assert.deepEqual(b.copy, { concurrency: COPY_CONCURRENCY, cacheBytes: RESTORE_CHUNK_CACHE_BYTES, knownIds: COPY_KNOWN_IDS_CACHE })
  assert.equal(b.check.knownIds, KNOWN_IDS_CACHE)
})

test('a smaller budget gives no share more, and the floor works with one of everything', () => {
  let prev = shares(memoryBudget())
  for (let mib = MEMORY_DEFAULT / MiB - 1; mib >= MEMORY_MIN / MiB; mib--) {
    const now = shares(memoryBudget(mib * MiB))
    for (const [k, v] of now) assert.ok(v <= prev.get(k)!, `${k} grew from ${prev.get(k)} to ${v} at ${mib} MiB`)
    prev = now
  }
  const floor = memoryBudget(RUNTIME_RESERVE)
  assert.equal(floor.room, 0)
  assert.deepEqual(floor, { ...memoryBudget(MEMORY_MIN), memory: RUNTIME_RESERVE })
  assert.equal(floor.backup.dedupConcurrency, 1)
  assert.equal(floor.backup.uploadConcurrency, 1)
  assert.equal(floor.backup.prefetchBatches, 1)
  assert.equal(floor.backup.sealWorker, false)
  assert.ok(floor.backup.arenaBytes >= 2 * CHUNK_MAX, 'the arena holds the open chunk and one more')
  assert.ok(floor.backup.zstdHighArenaBytes >= 2 * CHUNK_MAX)
  assert.ok(floor.restore.cacheBytes >= 2 * CHUNK_MAX)
  assert.ok(floor.backup.zstdHighWindowLog < ZSTD_HIGH_WINDOW_LOG)
  assert.equal(floor.backup.zstdPoolJobs, 1, 'one zstd context at the floor')
  assert.equal(memoryBudget(80 * MiB).backup.zstdPoolJobs, SEAL_POOL_JOBS_HIGH, 'two from halfway')
  assert.equal(memoryBudget(79 * MiB).backup.zstdPoolJobs, 1)
  const half = memoryBudget(RUNTIME_RESERVE + (MEMORY_DEFAULT - RUNTIME_RESERVE) / 2)
  assert.ok(half.backup.prefetchBatchBytes < PREFETCH_BATCH_BYTES && half.backup.prefetchBatchBytes > floor.backup.prefetchBatchBytes, 'halfway is between')
  assert.ok(half.backup.arenaBytes <= CHUNK_ARENA_BYTES && half.backup.arenaBytes >= floor.backup.arenaBytes)
})

test('the seal worker runs only in a budget that holds its reserve beside the default split', () => {
  assert.equal(memoryBudget(MEMORY_DEFAULT + SEAL_WORKER_RESERVE - 1).backup.sealWorker, false)
  const big = memoryBudget(MEMORY_DEFAULT + SEAL_WORKER_RESERVE)
  assert.equal(big.backup.sealWorker, true)
  assert.equal(big.backup.arenaBytes, CHUNK_ARENA_BYTES, 'more memory than the default keeps the default split')
})

test('--memory parses sizes with binary units and refuses nonsense with ERR_ARGS', () => {
  assert.equal(parseMemory('64M'), 64 * MiB)
  assert.equal(parseMemory('1g'), 1024 * MiB)
  assert.equal(parseMemory('100MiB'), 100 * MiB)
  for (const bad of ['', 'lots', '-64M', '10M', String(MEMORY_MIN - 1)]) {
    assert.throws(() => parseMemory(bad), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_ARGS', bad)
  }
  assert.throws(() => memoryBudget(Number.NaN), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_ARGS')
})
