/**
 * The body of a seal worker thread: compresses and seals chunks sent by transforms/seal.ts,
 * with the same pure codecs the single-threaded stages use (lib/objects.ts). Holds one chunk.
 *
 * The chunks it receives die here once sealed; its own heap is small and sees little
 * allocation, so V8 would let those chunk-sized buffers pile up (measured: 35 MB more RSS with
 * the worker than without). So it collects every GC_EVERY_BYTES, as the main thread does.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { compressAndSeal } from './objects.js'
import { gcEvery } from './gc.js'
import { GC_EVERY_BYTES } from './limits.js'

interface Job {
  seq: number
  id: Uint8Array
  data: Uint8Array
}

const { encKey, level } = workerData as { encKey: Uint8Array; level: number }
const collect = gcEvery(GC_EVERY_BYTES)

parentPort!.on('message', (job: Job) => {
  try {
    const c = compressAndSeal(encKey, job.id, job.data, level)
    const obj = c.obj
    const out = obj.byteOffset === 0 && obj.byteLength === obj.buffer.byteLength ? obj : Buffer.from(obj)
    parentPort!.postMessage({ seq: job.seq, obj: out, compression: c.compression }, [out.buffer as ArrayBuffer])
    collect(job.data.length)
  } catch (err) {
    parentPort!.postMessage({ seq: job.seq, error: err instanceof Error ? err.message : String(err) })
  }
})
