/**
 * Reads a small file whole with three synchronous system calls. On a warm page cache a
 * synchronous open/read/close costs about a third of the asynchronous ones (which hop through
 * libuv's thread pool and back, about 20 µs of CPU each here), and a tree of small files is
 * bound by exactly that per-file cost. Used only for files of at most SMALL_FILE_SYNC bytes, so
 * a cold cache blocks the event loop for one short read at a time.
 */
import fs from 'node:fs'
import { SluiceError } from './errors.js'
import { displayPath } from './bytes.js'

const FLAGS = fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK

/** At most `size` bytes of the file (fewer if it shrank). Throws ERR_READ. */
export function readSmallFileSync(fsPath: Buffer, size: number): Buffer {
  let fd: number
  try {
    fd = fs.openSync(fsPath, FLAGS)
  } catch (cause) {
    throw new SluiceError('ERR_READ', `cannot open ${displayPath(fsPath)}: ${(cause as Error).message}`, { cause, path: fsPath })
  }
  try {
    const buf = Buffer.allocUnsafe(size)
    let got = 0
    while (got < size) {
      const n = fs.readSync(fd, buf, got, size - got, null)
      if (n === 0) break
      got += n
    }
    return got === size ? buf : buf.subarray(0, got)
  } catch (cause) {
    throw new SluiceError('ERR_READ', `cannot read ${displayPath(fsPath)}: ${(cause as Error).message}`, { cause, path: fsPath })
  } finally {
    fs.closeSync(fd)
  }
}
