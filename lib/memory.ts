/**
 * Memory pacing: the one policy that keeps Sluice's peak RSS set by the pipeline. backup(),
 * restore() and check() apply it themselves (`paceMemory`), so a script using the library gets
 * what the CLI gets; nothing depends on node's command line. Its numbers are in lib/limits.ts,
 * the measurements behind them in docs/TUNING.md. Three parts, all process-wide:
 *
 * - V8's heap. Node sizes it for throughput: the young generation grows to 16 MB semispaces and
 *   the old generation may grow fourfold between full collections on a machine with RAM, so a
 *   backup's short-lived garbage piles up for seconds. Flags set at run time keep the young
 *   generation at V8's initial size and the old one growing by V8_HEAP_GROWING_PERCENT. (The
 *   flags that size the heap, --max-semi-space-size and --max-old-space-size, are read only when
 *   the heap is set up and do nothing here; these two are read at every resize.)
 * - glibc malloc: a fixed mmap threshold and few arenas, chosen by workload: chunks written
 *   (backup) or chunks read (restore, cat, check); and the free pages that parsing the modules
 *   and the key derivation left in malloc's arenas given back before the work starts (trim),
 *   and, for a reading workload, after each forced collection too (and, in a restore, every so
 *   many bytes restored: `trimEvery`).
 * - Forced full collections for the garbage V8 does not see: buffers outside its heap (chunks,
 *   stream pieces) die without the heap growing, so the stages that drop them count their bytes
 *   and force a collection every so many (`collectEvery`).
 * - The file pages start-up touched: node's binary is 99 MB, and starting Node and parsing the
 *   modules leave ~44 MB of file pages in RSS, most of them its, of which a backup runs 28-32.
 *   `releaseFilePages` drops them from the page tables (the CLI right after Node's own start,
 *   paceMemory before the work, releaseMemory before a key derivation); what runs again faults
 *   back in from the page cache (real-tree backup: -15 to -18 MB at the peak; docs/TUNING.md).
 */
import v8 from 'node:v8'
import vm from 'node:vm'
import {
  GC_EVERY_BYTES,
  LOW_MEMORY_RELEASE_MS,
  MARK_GC_EVERY_BYTES,
  MALLOC_ARENA_MAX,
  MALLOC_MMAP_THRESHOLD,
  READ_MALLOC_MMAP_THRESHOLD,
  RESTORE_GC_EVERY_BYTES,
  RESTORE_TRIM_EVERY_BYTES,
  STREAM_GC_EVERY_BYTES,
  V8_HEAP_GROWING_PERCENT,
  V8_SEMI_SPACE_GROWTH_FACTOR,
} from './limits.js'
import { releaseFilePages, trimMalloc, tuneMalloc } from './native.js'

/** What a process is about to do: write chunks (backup) or read them (restore, cat, check). */
export type Workload = 'backup' | 'read'

let gc: (() => void) | undefined | null
let heapPaced = false
/** The workload paceMemory last applied: 'read' keeps chunk-sized blocks in malloc's heap. */
let workloadNow: Workload | undefined

/** V8's full collection (global.gc without --expose-gc on node's command line), or null where
 *  V8 refuses the flag. */
function collector(): (() => void) | null {
  if (gc !== undefined) return gc
  try {
    v8.setFlagsFromString('--expose-gc')
    gc = vm.runInNewContext('gc') as () => void
  } catch {
    gc = null
  }
  return gc
}

/**
 * Applies the memory policy for `workload` to this process: V8's heap flags (once; they stay),
 * then glibc malloc's thresholds for the workload (the last call wins), then a trim of malloc's
 * free pages (~4 MB after the CLI's modules load; docs/TUNING.md "The memory budget") and the
 * release of the file pages loading left mapped (`releaseFilePages`). Called by backup(),
 * restore() and check() before they start; a script running stages by hand calls it itself.
 * Throws ERR_NATIVE when the native addon is missing (every workload needs it).
 */
export function paceMemory(workload: Workload): void {
  paceHeap()
  tuneMalloc(workload === 'read' ? READ_MALLOC_MMAP_THRESHOLD : MALLOC_MMAP_THRESHOLD, MALLOC_ARENA_MAX)
  workloadNow = workload
  trimMalloc()
  releaseFilePages()
}

/** The V8 part of the policy alone, once per process (it needs no addon). paceMemory calls it;
 *  the CLI calls it before anything else, as the young generation never shrinks back to size. */
export function paceHeap(): void {
  if (heapPaced) return
  heapPaced = true
  heapFlags()
  // Every new isolate (a worker thread's) puts V8's growth factor back to at least 2: set it
  // again once the worker runs.
  process.on('worker', worker => worker.once('online', heapFlags))
  // Until its first full collection V8 keeps a very large old-generation limit (up to half its
  // maximum); one collection now puts the growing percent in charge from the start.
  collector()?.()
}

function heapFlags(): void {
  v8.setFlagsFromString(`--semi-space-growth-factor=${V8_SEMI_SPACE_GROWTH_FACTOR}`)
  v8.setFlagsFromString(`--heap-growing-percent=${V8_HEAP_GROWING_PERCENT}`)
}

/**
 * Gives back what the process holds but no longer uses, for a moment whose peak counts: a full
 * collection, then glibc's malloc_trim (the free pages inside its heaps; free() returns only a
 * heap's top), then the file pages no longer in use (`releaseFilePages`). Called before each
 * key derivation (lib/repo/keys.ts), whose Argon2id memory
 * (16 MiB by default) comes on top of whatever the process holds: loading the AWS SDK and
 * parsing modules leave several MB free but resident (docs/TUNING.md "Key derivation").
 * Safe without the addon (the collection alone).
 */
export function releaseMemory(): void {
  collector()?.()
  trimMalloc()
  releaseFilePages()
}

/**
 * For a budget below the default (the CLI's `--memory 64M`): the file pages of Node's binary
 * that the work faults back in after `releaseFilePages` (28-32 MB of a backup's peak) are
 * dropped again every LOW_MEMORY_RELEASE_MS, on a timer that keeps no process alive. What runs
 * again faults back in from the page cache: slower, as a low budget is allowed to be
 * (docs/TUNING.md "The file pages start-up leaves"). Returns a function that stops it.
 */
export function releaseFilePagesEvery(ms: number = LOW_MEMORY_RELEASE_MS): () => void {
  const timer = setInterval(releaseFilePages, ms)
  timer.unref()
  return () => clearInterval(timer)
}

/** Garbage outside V8's heap, by where it comes from; each kind has its own pace (limits.ts). */
export type Garbage =
  /** Chunks that are buffers of their own (tree nodes, spilled from the arena): backup. */
  | 'chunks'
  /** Pieces handed out by a stream source (stdin, a command, a tar). */
  | 'streams'
  /** Decoded chunks of a restore, counted by the bytes restored from them. */
  | 'restore'
  /** Metadata chunks prune's marking loaded and decoded. */
  | 'mark'

const EVERY: Record<Garbage, number> = {
  chunks: GC_EVERY_BYTES,
  streams: STREAM_GC_EVERY_BYTES,
  restore: RESTORE_GC_EVERY_BYTES,
  mark: MARK_GC_EVERY_BYTES,
}

/** Returns a function to call with the size of each dead buffer of kind `garbage`; it forces a
 *  full collection each time their bytes add up to that kind's pace. Under the read workload the
 *  collection is followed by a malloc_trim: its chunk-sized blocks come from malloc's heap
 *  (READ_MALLOC_MMAP_THRESHOLD), and what the collection freed there stayed resident in holes
 *  between live blocks, which free() never returns (real-tree restore: 105-108 MB without,
 *  99-100 MB with; docs/TUNING.md "glibc malloc"). */
export function collectEvery(garbage: Garbage): (bytes: number) => void {
  return every(EVERY[garbage], () => {
    collector()?.()
    if (workloadNow === 'read') trimMalloc()
  })
}

/** Returns a function to call with the bytes a restore wrote; under the read workload it trims
 *  malloc's free pages (no collection) each time they add up to RESTORE_TRIM_EVERY_BYTES. Chunk
 *  memory is reused (transforms/restore/chunk-pool.ts), so collections are rare, and what the
 *  writes and V8's scavenges free in malloc's heap would otherwise stay resident in its holes. */
export function trimEvery(): (bytes: number) => void {
  return every(RESTORE_TRIM_EVERY_BYTES, () => {
    if (workloadNow === 'read') trimMalloc()
  })
}

/** A function to call with byte counts; it runs `act` each time they add up to `bytes`. */
function every(bytes: number, act: () => void): (n: number) => void {
  let since = 0
  return (n: number) => {
    since += n
    if (since < bytes) return
    since = 0
    act()
  }
}
