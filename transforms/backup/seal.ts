/**
 * seal: compress and encrypt in one stage, inline on the main thread or on a worker thread.
 * zstd and XChaCha20 are the pipeline's most expensive steps per byte (about half its CPU
 * time: docs/TUNING.md) and both libraries are synchronous, so on one thread they cap
 * throughput; one worker lets them run beside the main thread's reading, chunking and hashing.
 * The result is the same object that createCompressor followed by createEncryptor makes
 * (lib/repo/objects.ts), in the same order.
 *
 * A worker costs about 20 MB of RSS (its own V8 isolate, zstd context and buffers), which a
 * tree of small files, bound by per-file work rather than by compression, should not pay. So
 * chunks are sealed inline on the main thread until sealing takes SEAL_WORKER_SHARE of its time
 * over a window (SEAL_WORKER_WINDOW_MS; the first, SEAL_WORKER_FIRST_WINDOW_MS) whose files, when
 * the backup's counters are given, average SEAL_WORKER_MIN_MEAN_FILE or more, or whose
 * metadata sealed outweighs the content read (`wantsWorkers`); from then on, on the workers. A stream source (stdin, tar) is all content and asks for the
 * workers from the start (mode 'worker'), so that a short stream and a long one run the same
 * pipeline in the same memory. backup() asks for 'inline' when its memory budget has no room
 * for the worker (lib/budget.ts).
 *
 * A chunk assembled in the arena (lib/chunk-arena.ts) is sealed where it lies: the worker sees the
 * arena's shared memory, so only the region's place crosses between the threads, and the object
 * replaces the plaintext in the same region. Other chunks (metadata, a script's own) are
 * transferred or copied to the worker and back, as before the arena.
 *
 * While the workers are off (the default budget has no room for them: lib/budget.ts), a chunk
 * of SEAL_POOL_MIN_CHUNK or more is compressed on libuv's thread pool instead
 * (native/zstdpool.c, PoolZstd) and encrypted on the main thread when that returns: the main
 * thread reads, chunks and hashes the next chunks meanwhile, and the second CPU compresses
 * without a worker's isolate. At ZSTD_LEVEL and below that is one chunk at a time, and smaller
 * chunks are sealed inline: a round trip costs more than compressing them. Above ZSTD_LEVEL
 * (`--compression max`) compressing costs far more than the round trip, so every chunk goes to
 * the pool, up to SEAL_POOL_JOBS_HIGH (the budget's `zstdPoolJobs`) at once, each on a context
 * and output buffer of its own, and the workers are not used: the pool's jobs keep both CPUs
 * compressing, where one worker would take one CPU and its isolate's memory.
 *
 * Memory: up to 2 chunks in flight (per worker, with workers; above ZSTD_LEVEL,
 * SEAL_POOL_AHEAD items per pool job), in the arena; each worker's own heap (capped); one zstd
 * context and output buffer per thread that seals (the pool's: one per job, a context and an
 * output buffer of the largest chunk's compress bound, ~4 MiB of which only what outputs reach
 * is touched: ~4 MB a job at level 19 on 4 MiB of text, ~1.5 MB on small files).
 */
import os from 'node:os'
import type { Duplex } from 'node:stream'
import { Worker } from 'node:worker_threads'
import type { BackupItem, ChunkItem } from '../../lib/entry.js'
import type { BackupStats } from '../../lib/stats.js'
import { ByteGate, orderedMap, stage } from '../../lib/flow.js'
import { SluiceError } from '../../lib/errors.js'
import { CHUNK_MAX, SEAL_POOL_AHEAD, SEAL_POOL_JOBS_HIGH, SEAL_POOL_MIN_CHUNK, SEAL_WORKER_FIRST_WINDOW_MS, SEAL_WORKER_MIN_MEAN_FILE, SEAL_WORKER_SHARE, SEAL_WORKER_WINDOW_MS, SEAL_WORKERS, ZSTD_HIGH_WINDOW_LOG, ZSTD_LEVEL } from '../../lib/limits.js'
import { compressAndSeal, compressAndSealInPlace, compressAndSealInPlacePooled, compressAndSealPooled } from '../../lib/repo/objects.js'
import { PoolZstd } from '../../lib/native.js'

export interface SealOptions {
  workers?: number
  level?: number
  /** zstd window (log2) of levels above ZSTD_LEVEL; default ZSTD_HIGH_WINDOW_LOG (lib/budget.ts). */
  windowLog?: number
  /** 'auto' (default): inline until sealing takes SEAL_WORKER_SHARE of the main thread's time;
   *  'worker': on the workers from the first chunk; 'inline': never on a worker. Above
   *  ZSTD_LEVEL every mode seals on the thread pool (no workers). On a machine
   *  with one CPU a worker cannot run beside the main thread, so 'auto' stays inline. */
  mode?: 'auto' | 'worker' | 'inline'
  /** The backup's counters (updated by the chunker upstream): with them, 'auto' also asks that
   *  the files read in a window be large on average. */
  stats?: BackupStats
  /** zstd jobs on the thread pool at once above ZSTD_LEVEL (default SEAL_POOL_JOBS_HIGH;
   *  lib/budget.ts `zstdPoolJobs`); at ZSTD_LEVEL and below, one. */
  poolJobs?: number
}

/** A zstd context for the thread pool and the output buffer its jobs write into. */
interface PoolContext {
  zstd: PoolZstd
  out: Buffer
}

/** One window of inline sealing: its length, the time spent sealing in it, the files read
 *  and bytes read upstream meanwhile (from the backup's counters; both 0 when there are none),
 *  and the plaintext bytes of metadata chunks sealed in it. */
export interface SealWindow {
  ms: number
  sealMs: number
  files: number
  bytes: number
  metaBytes?: number
}

/** Whether a window asks for the workers: sealing took SEAL_WORKER_SHARE of it or more, and
 *  the files read in it average SEAL_WORKER_MIN_MEAN_FILE or more (or none began: the middle of
 *  a large one), or the metadata it sealed outweighs the content read. A tree of small files is
 *  bound by per-file work, and its pipeline holds the most in flight already; the worker's
 *  ~10-20 MB would take it past its budget for a tenth of its time. But where the metadata
 *  outweighs the content (small files with large xattrs: 4 KB of records per 1.5 KB file),
 *  sealing it is the main thread's largest single cost (a quarter of it, measured), and the
 *  worker takes that off. Without the backup's counters `files` and `bytes` are 0 and the share
 *  decides alone. */
export function wantsWorkers(w: SealWindow): boolean {
  if (w.sealMs < SEAL_WORKER_SHARE * w.ms) return false
  return w.files === 0 || w.bytes / w.files >= SEAL_WORKER_MIN_MEAN_FILE || (w.metaBytes ?? 0) > w.bytes
}

interface Pending {
  resolve: (r: Sealed) => void
  reject: (e: Error) => void
}

/** The worker's module: beside this one when built; when this runs from source (tsx, whose
 *  loader worker threads do not get), the built copy in dist/ (npm test builds first). */
function workerUrl(): URL {
  return import.meta.url.endsWith('.ts')
    ? new URL('../../dist/transforms/backup/seal-worker.js', import.meta.url)
    : new URL('./seal-worker.js', import.meta.url)
}

/** A sealed chunk: the object (its own buffer), or the object's length in the chunk's region. */
type Sealed = { obj: Buffer; compression: number } | { length: number; compression: number; buffer?: ArrayBuffer }

export function createSealer(encKey: Uint8Array, opts: SealOptions = {}): Duplex {
  const n = Math.max(1, opts.workers ?? SEAL_WORKERS)
  const level = opts.level ?? ZSTD_LEVEL
  const windowLog = opts.windowLog ?? ZSTD_HIGH_WINDOW_LOG
  let workers: { w: Worker; pending: Map<number, Pending> }[] | undefined
  let seq = 0
  let failure: Error | undefined
  const start = () =>
    Array.from({ length: n }, () => {
      const w = new Worker(workerUrl(), {
        workerData: { encKey: Buffer.from(encKey), level, windowLog },
        resourceLimits: { maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 32 },
      })
      const pending = new Map<number, Pending>()
      w.on('message', (m: { seq: number; obj?: Uint8Array; length?: number; compression?: number; buffer?: ArrayBuffer; error?: string }) => {
        const p = pending.get(m.seq)
        if (!p) return
        pending.delete(m.seq)
        if (m.error !== undefined) p.reject(new SluiceError('ERR_ABORTED', `seal worker: ${m.error}`))
        else if (m.obj) p.resolve({ obj: Buffer.from(m.obj.buffer, m.obj.byteOffset, m.obj.byteLength), compression: m.compression! })
        else p.resolve({ length: m.length!, compression: m.compression!, ...(m.buffer ? { buffer: m.buffer } : {}) })
      })
      w.on('error', err => {
        failure = err
        for (const p of pending.values()) p.reject(err)
        pending.clear()
      })
      return { w, pending }
    })
  const seal = (item: ChunkItem): Promise<Sealed> => {
    if (failure) return Promise.reject(failure)
    workers ??= start()
    const s = seq++
    const worker = workers[s % n]!
    const slot = item.slot
    if (slot) {
      // Shared memory is seen by the worker as it is; a spilled region's buffer is transferred
      // there and back.
      const shared = slot.buffer instanceof SharedArrayBuffer
      const capacity = slot.region.length // a transfer detaches the region: keep its length
      return new Promise((resolve, reject) => {
        worker.pending.set(s, {
          resolve: r => {
            if ('buffer' in r && r.buffer) slot.region = Buffer.from(r.buffer, slot.offset, capacity)
            resolve(r)
          },
          reject,
        })
        const job = { seq: s, id: item.id, buffer: slot.buffer, offset: slot.offset, capacity, size: item.size }
        worker.w.postMessage(job, shared ? [] : [slot.buffer as ArrayBuffer])
      })
    }
    // Transfer the bytes when the view owns its whole buffer (not a slice of a read block or of
    // Node's shared pool); copy them otherwise.
    const d = item.data
    const owned = d.byteOffset === 0 && d.byteLength === d.buffer.byteLength && d.byteLength > 4096
    const data = owned ? d : Buffer.from(d)
    return new Promise((resolve, reject) => {
      worker.pending.set(s, { resolve, reject })
      worker.w.postMessage({ seq: s, id: item.id, data }, [data.buffer as ArrayBuffer])
    })
  }
  // Time spent sealing inline since windowStart; the workers start when it is a large share.
  // The first window starts at the first chunk and is short (SEAL_WORKER_FIRST_WINDOW_MS).
  let windowSealMs = 0
  let windowMetaBytes = 0
  let windowStart = -1
  const stats = opts.stats
  const readSoFar = () => (stats ? { files: stats.filesNew + stats.filesChanged, bytes: stats.bytesRead } : { files: 0, bytes: 0 })
  let windowRead = readSoFar()
  let windowMs = SEAL_WORKER_FIRST_WINDOW_MS
  // Above ZSTD_LEVEL the pool's jobs seal on every CPU, where one worker would take one and
  // its isolate's memory: the workers are not used there.
  const mode = level > ZSTD_LEVEL ? 'inline' : opts.mode ?? 'auto'
  const oneCpu = os.availableParallelism() < 2
  let useWorkers = mode === 'worker'
  const inline = (item: ChunkItem): Sealed => {
    const t0 = performance.now()
    if (windowStart < 0) {
      windowStart = t0
      windowRead = readSoFar()
    }
    const r = item.slot
      ? compressAndSealInPlace(encKey, item.id, item.slot.region, item.size, level, windowLog)
      : compressAndSeal(encKey, item.id, item.data, level, windowLog)
    const t1 = performance.now()
    windowSealMs += t1 - t0
    if (item.meta) windowMetaBytes += item.size
    if (mode === 'auto' && !oneCpu && t1 - windowStart >= windowMs) {
      const read = readSoFar()
      useWorkers = wantsWorkers({
        ms: t1 - windowStart, sealMs: windowSealMs, files: read.files - windowRead.files, bytes: read.bytes - windowRead.bytes, metaBytes: windowMetaBytes,
      })
      windowRead = read
      windowSealMs = 0
      windowMetaBytes = 0
      windowStart = t1
      windowMs = SEAL_WORKER_WINDOW_MS
    }
    return r
  }
  // zstd on the thread pool for chunks when the workers are off: up to `jobs` chunks at once
  // (the gate, first come first served), each on a context and output buffer of its own, made
  // on first use and given back when sealed: at most `jobs` of them.
  const jobs = level > ZSTD_LEVEL ? Math.max(1, opts.poolJobs ?? SEAL_POOL_JOBS_HIGH) : 1
  const gate = new ByteGate(jobs)
  const idle: PoolContext[] = []
  const running = new Set<Promise<unknown>>()
  let closed = false
  const pooled = async (item: ChunkItem): Promise<Sealed> => {
    await gate.take(1)
    if (closed) {
      // The stage ended (an error downstream) while this chunk waited: start nothing more.
      gate.give(1)
      throw new SluiceError('ERR_ABORTED', 'seal: the stage was closed')
    }
    // The output once at the largest chunk's bound: its pages are touched only as far as outputs
    // reach, where growing it chunk by chunk left each smaller one as garbage (real-tree: 8).
    const c = idle.pop() ?? { zstd: new PoolZstd(level, level > ZSTD_LEVEL ? windowLog : 0), out: Buffer.allocUnsafeSlow(PoolZstd.bound(CHUNK_MAX)) }
    // A script's own chunk may exceed CHUNK_MAX (readers then refuse it): the output grows for it.
    const bound = PoolZstd.bound(item.size)
    if (c.out.length < bound) c.out = Buffer.allocUnsafeSlow(bound)
    const job = item.slot
      ? compressAndSealInPlacePooled(encKey, item.id, item.slot.region, item.size, level, c.zstd, c.out)
      : compressAndSealPooled(encKey, item.id, item.data, level, c.zstd, c.out)
    const settled = job.then(() => {}, () => {}).finally(() => {
      running.delete(settled)
      idle.push(c)
      gate.give(1)
    })
    running.add(settled)
    return job
  }
  // Above ZSTD_LEVEL compressing costs so much more than the round trip that every chunk goes
  // to the pool; at lower levels only those of SEAL_POOL_MIN_CHUNK or more.
  const usePool = (item: ChunkItem): boolean => level !== 0 && (level > ZSTD_LEVEL || item.size >= SEAL_POOL_MIN_CHUNK)
  // Items in flight: with more than one job, enough that a context freed finds a chunk waiting.
  const inFlight = jobs > 1 ? jobs * SEAL_POOL_AHEAD : n * 2
  return stage<BackupItem, BackupItem>(async function* (source) {
    try {
      yield* orderedMap(source, inFlight, async item => {
        if (item.kind !== 'chunk') return item
        const r = useWorkers ? await seal(item) : usePool(item) ? await pooled(item) : inline(item)
        item.data = 'obj' in r ? r.obj : item.slot!.region.subarray(0, r.length)
        item.compression = r.compression
        return item
      })
    } finally {
      // A pool job still running writes into its region and output: let it finish first (and
      // start none of those waiting for a context).
      closed = true
      await Promise.all(running)
      if (workers) await Promise.all(workers.map(({ w }) => w.terminate()))
    }
  })
}
