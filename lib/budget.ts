/**
 * The memory budget: one number, `--memory SIZE` on the command line and `{ memory }` in the
 * library's options, split here, in one place, among everything that holds sizable buffers.
 * Pure: no I/O, no state; the stages read their share from the split they are handed.
 *
 * The number is the peak RSS a workload is sized for (default MEMORY_DEFAULT, just under
 * 100 MB). From it the runtime's share is set aside first: RUNTIME_RESERVE, what Node and
 * Sluice's modules hold before any data moves (measured in docs/TUNING.md "The memory budget";
 * the KDF's few MiB are returned before the pipeline starts, so they fit inside the same room).
 * The rest, the room, is split:
 *
 * - backup: the chunk arena (the chunks between chunker and upload), the prefetch batches, the
 *   lookups in flight in dedup (and its cache of ids known stored), the uploads in flight, the seal worker, which may start
 *   only when its SEAL_WORKER_RESERVE fits beside the rest; the zstd window of levels above
 *   ZSTD_LEVEL (`--compression max`) is capped, its match tables (ZSTD_HIGH_RESERVE) come
 *   out of the arena's share, and its jobs on the thread pool at once (SEAL_POOL_JOBS_HIGH,
 *   one context and output each) go down to one in budgets nearer the floor than the default;
 * - restore (and cat): the decoded-chunk cache and the downloads in flight (`budget.restore`,
 *   read by transforms/restore, which decides how to use them);
 * - check: the cache of chunk ids already looked up;
 * - prune: the external sort's run buffer and merge fan-in;
 * - copy: the chunks in flight, the decoded-chunk cache and the ids known in the destination.
 *
 * At the default the split is exactly the defaults in lib/limits.ts (CHUNK_ARENA_BYTES,
 * PREFETCH_*, ...), which are its numbers, not knobs of their own; a smaller budget moves each
 * share linearly from that default down to its floor (the least that still works: one chunk in
 * flight per stage, no worker), reached when the room is empty. A larger budget keeps the
 * default split (the pipeline is not faster with more memory than that; measured). A budget
 * below RUNTIME_RESERVE runs the floor split: it works, more slowly, but the peak cannot go
 * below what the runtime itself holds (README, "Memory").
 */
import { SluiceError } from './errors.js'
import { parseSize } from './filter-rules.js'
import {
  CHUNK_ARENA_BYTES, CHUNK_MAX, COPY_CONCURRENCY, COPY_KNOWN_IDS_CACHE, DEDUP_CONCURRENCY, DOWNLOAD_CONCURRENCY, GC_MERGE_FANIN, GC_RUN_IDS, KNOWN_IDS_CACHE, MEMORY_DEFAULT,
  MEMORY_MIN, MiB, PREFETCH_BATCH_BYTES, PREFETCH_BATCHES, READ_BLOCK, RESTORE_AHEAD_BYTES, RESTORE_CHUNK_CACHE_BYTES, RUNTIME_RESERVE, SEAL_POOL_JOBS_HIGH, SEAL_WORKER_RESERVE,
  UPLOAD_CONCURRENCY, ZSTD_HIGH_RESERVE, ZSTD_HIGH_WINDOW_LOG,
} from './limits.js'

export interface BackupBudget {
  /** Bytes of the chunk arena (lib/chunk-arena.ts). */
  arenaBytes: number
  /** Prefetch: batches in flight and bytes per batch (transforms/backup/prefetch.ts). */
  prefetchBatches: number
  prefetchBatchBytes: number
  /** Storage lookups in flight in dedup; uploads in flight. */
  dedupConcurrency: number
  uploadConcurrency: number
  /** Whether the seal worker may start (transforms/backup/seal.ts): only when its reserve fits. */
  sealWorker: boolean
  /** zstd window (log2 bytes) for levels above ZSTD_LEVEL, and the arena at those levels: their
   *  match tables take ZSTD_HIGH_RESERVE from it (the compressor is the bottleneck there, so a
   *  smaller arena costs no speed). */
  zstdHighWindowLog: number
  zstdHighArenaBytes: number
  /** zstd jobs on the thread pool at once above ZSTD_LEVEL, each with its own context and
   *  output buffer (~4 MB at level 19, window 2^17; transforms/backup/seal.ts). */
  zstdPoolJobs: number
  /** Chunk ids known stored, cached in dedup (about 100 bytes each). */
  knownIds: number
}

export interface RestoreBudget {
  /** Bytes of decoded chunks kept for small files that share a chunk. */
  cacheBytes: number
  /** Chunks downloaded and decoded ahead (a storage's readAhead replaces it)... */
  downloadConcurrency: number
  /** ...and at most this many of their bytes (by their extents). */
  aheadBytes: number
}

export interface PruneBudget {
  /** Ids per sorted run of the external sort (32 bytes each), and runs merged at once. */
  runIds: number
  fanIn: number
}

export interface CopyBudget {
  /** Chunks fetched, resealed and stored at a time; decoded chunks cached. */
  concurrency: number
  cacheBytes: number
  /** Chunk ids known present in the destination, cached (about 100 bytes each). */
  knownIds: number
}

export interface MemoryBudget {
  /** The budget asked for (bytes). */
  memory: number
  /** Set aside for the runtime (Node and the modules): RUNTIME_RESERVE. */
  runtime: number
  /** What is left to split (0 when the budget is below the runtime's share). */
  room: number
  backup: BackupBudget
  restore: RestoreBudget
  /** check: chunk ids already looked up, cached (about 100 bytes each). */
  check: { knownIds: number }
  prune: PruneBudget
  copy: CopyBudget
}

/** The room at the default budget: where the split equals lib/limits.ts's defaults. */
const DEFAULT_ROOM = MEMORY_DEFAULT - RUNTIME_RESERVE

/** The floor of each share: what still works with no room at all. */
const FLOOR = {
  arenaBytes: 2 * CHUNK_MAX,
  prefetchBatches: 1,
  prefetchBatchBytes: READ_BLOCK / 4,
  dedupConcurrency: 1,
  uploadConcurrency: 1,
  restoreCacheBytes: 2 * CHUNK_MAX,
  downloadConcurrency: 1,
  restoreAheadBytes: CHUNK_MAX,
  runIds: 8 * 1024,
  fanIn: 16,
  copyConcurrency: 1,
  zstdHighWindowLog: 16,
  zstdPoolJobs: 1,
  knownIds: 4096,
} as const

/** From `floor` (f = 0) to `full` (f = 1), rounded down to a multiple of `unit`, never below floor. */
function share(floor: number, full: number, f: number, unit = 1): number {
  const v = floor + (full - floor) * f
  return Math.max(floor, Math.floor(v / unit) * unit)
}

/**
 * Splits `memory` bytes (default MEMORY_DEFAULT). Throws ERR_ARGS below MEMORY_MIN or for
 * anything but a finite integer number of bytes.
 */
export function memoryBudget(memory: number = MEMORY_DEFAULT): MemoryBudget {
  if (!Number.isSafeInteger(memory) || memory < MEMORY_MIN) {
    throw new SluiceError('ERR_ARGS', `--memory must be at least ${MEMORY_MIN / MiB} MiB, not ${Number.isFinite(memory) ? `${(memory / MiB).toFixed(1)} MiB` : String(memory)}`)
  }
  const room = Math.max(0, memory - RUNTIME_RESERVE)
  // The seal worker (~20 MB measured) may start only when its reserve fits beside the default
  // split: at the default budget a large file's backup peaks at the budget without it, so the
  // worker needs SEAL_WORKER_RESERVE more (`--memory 115M` or above; docs/TUNING.md).
  const sealWorker = room >= DEFAULT_ROOM + SEAL_WORKER_RESERVE
  const f = Math.min(1, room / DEFAULT_ROOM)
  return {
    memory,
    runtime: RUNTIME_RESERVE,
    room,
    backup: {
      arenaBytes: share(FLOOR.arenaBytes, CHUNK_ARENA_BYTES, f, MiB),
      prefetchBatches: share(FLOOR.prefetchBatches, PREFETCH_BATCHES, f),
      prefetchBatchBytes: share(FLOOR.prefetchBatchBytes, PREFETCH_BATCH_BYTES, f, 64 * 1024),
      dedupConcurrency: share(FLOOR.dedupConcurrency, DEDUP_CONCURRENCY, f),
      uploadConcurrency: share(FLOOR.uploadConcurrency, UPLOAD_CONCURRENCY, f),
      sealWorker,
      zstdHighWindowLog: Math.round(share(FLOOR.zstdHighWindowLog, ZSTD_HIGH_WINDOW_LOG, f)),
      zstdHighArenaBytes: Math.max(FLOOR.arenaBytes, share(FLOOR.arenaBytes, CHUNK_ARENA_BYTES, f, MiB) - ZSTD_HIGH_RESERVE),
      zstdPoolJobs: Math.round(FLOOR.zstdPoolJobs + (SEAL_POOL_JOBS_HIGH - FLOOR.zstdPoolJobs) * f),
      knownIds: share(FLOOR.knownIds, KNOWN_IDS_CACHE, f, 1024),
    },
    restore: {
      cacheBytes: share(FLOOR.restoreCacheBytes, RESTORE_CHUNK_CACHE_BYTES, f, CHUNK_MAX),
      downloadConcurrency: share(FLOOR.downloadConcurrency, DOWNLOAD_CONCURRENCY, f),
      aheadBytes: share(FLOOR.restoreAheadBytes, RESTORE_AHEAD_BYTES, f, MiB),
    },
    check: { knownIds: share(FLOOR.knownIds, KNOWN_IDS_CACHE, f, 1024) },
    prune: {
      runIds: share(FLOOR.runIds, GC_RUN_IDS, f, 1024),
      fanIn: share(FLOOR.fanIn, GC_MERGE_FANIN, f),
    },
    copy: {
      concurrency: share(FLOOR.copyConcurrency, COPY_CONCURRENCY, f),
      cacheBytes: share(FLOOR.restoreCacheBytes, RESTORE_CHUNK_CACHE_BYTES, f, CHUNK_MAX),
      knownIds: share(FLOOR.knownIds, COPY_KNOWN_IDS_CACHE, f, 1024),
    },
  }
}

/** `--memory`'s text ('64M', '100MiB', '1G'; binary units as every size option) as bytes,
 *  checked by memoryBudget. */
export function parseMemory(text: string): number {
  const bytes = parseSize(text)
  memoryBudget(bytes)
  return bytes
}

/** The budget of a library call's `memory` option, or of the SLUICE_MEMORY default. */
export function budgetOf(memory: number | undefined): MemoryBudget {
  return memoryBudget(memory ?? MEMORY_DEFAULT)
}
