/**
 * The hole-aware write of restore's directory sink, in one function so that any way of writing
 * files can use it: a piece of a file's content is either data (a DataItem) or a hole (a
 * HoleItem's length). With `sparse` (restore --sparse, the default) a hole, and data that is all
 * zeros for at least RESTORE_SPARSE_MIN bytes (restic's --sparse), is not written: the position
 * just moves past it, and the caller sets the file's length with ftruncate at the end
 * (`skipped` says it must), which leaves holes where the filesystem has them and zeros where it
 * has not. Without `sparse`, holes are written as zeros, so every byte gets a real block.
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
 * Returns how far the file's position moved (the piece's length) and whether the piece was
 * left as a hole instead of written (then the file must be ftruncated to its size at the end).
 */
export async function writeSparse(write: PositionalWrite, piece: Uint8Array | number, pos: number, sparse: boolean): Promise<{ length: number; skipped: boolean }> {
  const length = typeof piece === 'number' ? piece : piece.length
  if (sparse && (typeof piece === 'number' || (length >= RESTORE_SPARSE_MIN && isAllZero(piece)))) return { length, skipped: true }
  for (let done = 0; done < length; ) {
    const n = typeof piece === 'number'
      ? await write(ZEROS.subarray(0, Math.min(ZEROS.length, length - done)), 0, pos + done)
      : await write(piece, done, pos + done)
    done += n
  }
  return { length, skipped: false }
}
