/**
 * The body of a seal worker thread: compresses and seals chunks sent by seal.ts, with the same
 * pure codecs as inline sealing (lib/repo/objects.ts).
 *
 * A chunk in the arena (shared memory) is sealed in place and only its length goes back: no
 * buffer is made per chunk. (A spilled region, not shared, comes and goes by transfer.) Other
 * chunks (metadata) arrive as buffers of their own and die here once sealed; the worker's heap
 * sees little allocation, so V8 would let those pile up, and it forces collections at the
 * main thread's pace for chunks (lib/memory.ts).
 */
import { parentPort, workerData } from 'node:worker_threads'
import { compressAndSeal, compressAndSealInPlace } from '../../lib/repo/objects.js'
import { collectEvery } from '../../lib/memory.js'

type Job =
  | { seq: number; id: Uint8Array; data: Uint8Array }
  | { seq: number; id: Uint8Array; buffer: SharedArrayBuffer | ArrayBuffer; offset: number; capacity: number; size: number }

const { encKey, level, windowLog } = workerData as { encKey: Uint8Array; level: number; windowLog: number }
const collect = collectEvery('chunks')

parentPort!.on('message', (job: Job) => {
  try {
    if ('buffer' in job) {
      const region = Buffer.from(job.buffer, job.offset, job.capacity)
      const r = compressAndSealInPlace(encKey, job.id, region, job.size, level, windowLog)
      if (job.buffer instanceof SharedArrayBuffer) {
        parentPort!.postMessage({ seq: job.seq, length: r.length, compression: r.compression })
      } else {
        // A spilled region came by transfer: it goes back the same way.
        parentPort!.postMessage({ seq: job.seq, length: r.length, compression: r.compression, buffer: job.buffer }, [job.buffer])
      }
      return
    }
    const c = compressAndSeal(encKey, job.id, job.data, level, windowLog)
    const obj = c.obj
    const out = obj.byteOffset === 0 && obj.byteLength === obj.buffer.byteLength ? obj : Buffer.from(obj)
    parentPort!.postMessage({ seq: job.seq, obj: out, compression: c.compression }, [out.buffer as ArrayBuffer])
    collect(job.data.length)
  } catch (err) {
    parentPort!.postMessage({ seq: job.seq, error: err instanceof Error ? err.message : String(err) })
  }
})
