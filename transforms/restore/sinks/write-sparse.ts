/**
 * The hole-aware write of restore's directory sink, in one function so that any way of writing
 * files can use it: a piece of a file's content is either data (a DataItem) or a hole (a
 * HoleItem's length). With `sparse` (restore --sparse, the default) a hole, and every block of
 * RESTORE_SPARSE_MIN bytes (aligned in the file) of data that is all zeros (as restic's --sparse
 * does for zero blobs), is not written: the position just moves past it, and the caller sets
 * the file's length with ftruncate at the end (`skipped` says it must), which leaves holes where
 * the filesystem has them and zeros where it has not. Without `sparse`, holes are written as zeros, so every byte gets a real block.
 *
 * The file must have been created empty by this restore (O_EXCL, as the sink does): a skipped
 * range reads as zeros only in a file that never held anything there. Memory: a shared 64 KiB
 * buffer of zeros.
 */
import { RESTORE_SPARSE_MIN } from '../../../lib/limits.js'
import { isAllZero } from '../../../lib/bytes.js'

/** Writes `buf[off..]` at file position `pos`; resolves to the bytes written (maybe fewer). */
export type PositionalWrite = (buf: Uint8Array, off: number, pos: number) => Promise<number>

const ZEROS = Buffer.alloc(64 * 1024)

/**
 * Puts one piece of content at `pos`: `piece` is data, or a number of zero bytes (a hole).
 * Returns how far the file's position moved (the piece's length) and whether any of it was
 * left as a hole instead of written (then the file must be ftruncated to its size at the end).
 * With `sparse`, data is looked at in RESTORE_SPARSE_MIN blocks aligned to the file: blocks of
 * zeros are skipped, the runs between them written (a block of random data costs one byte's
 * look).
 */
export async function writeSparse(write: PositionalWrite, piece: Uint8Array | number, pos: number, sparse: boolean): Promise<{ length: number; skipped: boolean }> {
  if (typeof piece === 'number') {
    if (!sparse) for (let done = 0; done < piece; ) done += await write(ZEROS.subarray(0, Math.min(ZEROS.length, piece - done)), 0, pos + done)
    return { length: piece, skipped: sparse }
  }
  const length = piece.length
  const writeRun = async (from: number, to: number): Promise<void> => {
    const run = piece.subarray(0, to)
    for (let done = from; done < to; ) done += await write(run, done, pos + done)
  }
  if (!sparse) {
    await writeRun(0, length)
    return { length, skipped: false }
  }
  const B = RESTORE_SPARSE_MIN
  let skipped = false
  let run = -1 // where the run of data being gathered starts, or -1
  for (let at = 0; at < length; ) {
    const end = Math.min(length, (Math.floor((pos + at) / B) + 1) * B - pos)
    const zero = piece[at] === 0 && piece[end - 1] === 0 && isAllZero(piece.subarray(at, end))
    if (zero) {
      if (run >= 0) await writeRun(run, at)
      run = -1
      skipped = true
    } else if (run < 0) {
      run = at
    }
    at = end
  }
  if (run >= 0) await writeRun(run, length)
  return { length, skipped }
}
