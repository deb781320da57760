/**
 * The body of a seal worker thread: compresses and seals chunks sent by transforms/seal.ts,
 * with the same pure codecs the single-threaded stages use (lib/objects.ts). Holds one chunk.
 */
import { parentPort, workerData } from 'node:worker_threads'
import { compressPayload, sealChunk } from './objects.js'

interface Job {
  seq: number
  id: Uint8Array
  data: Uint8Array
}

const { encKey, level } = workerData as { encKey: Uint8Array; level: number }

parentPort!.on('message', (job: Job) => {
  try {
    const c = compressPayload(job.data, level)
    const obj = sealChunk(encKey, job.id, c.compression, c.data)
    const out = obj.byteOffset === 0 && obj.byteLength === obj.buffer.byteLength ? obj : Buffer.from(obj)
    parentPort!.postMessage({ seq: job.seq, obj: out, compression: c.compression }, [out.buffer as ArrayBuffer])
  } catch (err) {
    parentPort!.postMessage({ seq: job.seq, error: err instanceof Error ? err.message : String(err) })
  }
})
