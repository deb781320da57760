/**
 * The content sink of `sluice cat SNAP PATH`: writes the content (`DataItem`s) of the one
 * selected file to the output as it comes, with backpressure; a hole (`HoleItem`) as its zeros;
 * records and extents are ignored.
 * If the reader goes away (EPIPE, `| head`), the rest is swallowed quietly.
 *
 * Memory: the one DataItem being written, and 64 KiB of zeros.
 */
import { Writable } from 'node:stream'
import type { RestoreItem } from '../../../lib/entry.js'
import { STAGE_HWM } from '../../../lib/limits.js'
import { OutputPort } from '../../../lib/output-port.js'

const ZEROS = Buffer.alloc(64 * 1024)

/** Options of {@link createContentWriter}. */
export interface ContentWriterOptions {
  /** Called once if the reader of the output goes away (EPIPE), so the caller can stop. */
  onOutputClosed?: () => void
}

/** Creates the content sink over `output` (objectMode Writable of `RestoreItem`); the output is
 *  ended when the stream finishes. */
export function createContentWriter(output: Writable, opts: ContentWriterOptions = {}): Writable {
  const out = new OutputPort(output, opts.onOutputClosed)
  // A hole (HoleItem) is its length of zeros, written from one shared buffer.
  const zeros = async (n: number): Promise<void> => {
    for (; n > 0; n -= ZEROS.length) await out.write(n >= ZEROS.length ? ZEROS : ZEROS.subarray(0, n))
  }
  return new Writable({
    objectMode: true,
    highWaterMark: STAGE_HWM,
    write(item: RestoreItem, _enc, done) {
      if (item.kind === 'hole') return zeros(item.length).then(() => done(), done)
      if (item.kind !== 'data') return done()
      out.write(item.data).then(() => done(), done)
    },
    final(done) {
      out.end().then(() => done(), done)
    },
  })
}
