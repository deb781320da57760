/**
 * Reading a walked file's content, one file at a time (prefetch.ts reads runs of small files in
 * batches). The walk gives each file entry a `content()` that calls a ContentReader; tests
 * inject their own reader through WalkOptions.
 *
 * Nothing changes silently, as GNU tar has it: a file whose size, mtime or ctime after reading
 * differ from its lstat, or that grew past its lstat size, gets an ERR_CHANGED warning "file
 * changed as we read it" (the snapshot keeps the bytes read, at most the lstat size). A file
 * with size -1 (prefetch sets it for files whose lstat says 0 bytes but that have content, as
 * procfs and sysfs files do) is read to its end and the chunker records the size read, as
 * restic does.
 *
 * Memory: two READ_BLOCK buffers per file being read (a smaller first one for a file of unknown
 * size), one block read ahead of the consumer.
 */
import fs, { constants as fsc, type BigIntStats } from 'node:fs'
import { displayPath } from '../../../lib/bytes.js'
import { SluiceError } from '../../../lib/errors.js'
import { READ_BLOCK, READ_UNSIZED_FIRST } from '../../../lib/limits.js'
import type { LStat } from '../../../lib/native.js'

/** What the reader needs of a file: where it is, the size to read (-1: to its end), and what
 *  lstat said before (to notice a change). */
export interface FileToRead {
  fsPath: Buffer
  size: number
  before: StatStamp
}

/** The lstat fields whose change means the content changed. */
export type StatStamp = Pick<LStat, 'size' | 'mtimeSec' | 'mtimeNsec' | 'ctimeSec' | 'ctimeNsec'>

/** Yields a file's content in pieces; a piece is the consumer's until it asks for the next.
 *  Throws ERR_READ when the file cannot be opened or read; reports changes to `onWarning`. */
export type ContentReader = (file: FileToRead, onWarning: (err: SluiceError) => void) => AsyncIterable<Uint8Array>

const NS = 1_000_000_000n

/** The warning for a file that changed while it was read; `how` says what changed. */
export function changedWhileRead(fsPath: Buffer, how: string): SluiceError {
  return new SluiceError('ERR_CHANGED', `file changed as we read it: ${displayPath(fsPath)} (${how})`, { path: fsPath })
}

/** What differs between two stamps of one file, or null when they agree. */
export function stampChange(before: StatStamp, after: StatStamp): string | null {
  if (after.size !== before.size) return `size ${before.size} became ${after.size}`
  if (after.mtimeSec !== before.mtimeSec || after.mtimeNsec !== before.mtimeNsec) return 'modification time changed'
  if (after.ctimeSec !== before.ctimeSec || after.ctimeNsec !== before.ctimeNsec) return 'change time changed'
  return null
}

/** Splits nanoseconds since the epoch into seconds (floored, so negative times keep a
 *  non-negative nanosecond part) and nanoseconds. */
function splitNs(ns: bigint): [number, number] {
  let sec = ns / NS
  let nsec = ns - sec * NS
  if (nsec < 0n) {
    sec -= 1n
    nsec += NS
  }
  return [Number(sec), Number(nsec)]
}

/** The fields of a bigint fs.Stats as lstatNumbers gives them. */
export function statNumbers(st: BigIntStats): LStat {
  const [mtimeSec, mtimeNsec] = splitNs(st.mtimeNs)
  const [ctimeSec, ctimeNsec] = splitNs(st.ctimeNs)
  return {
    mode: Number(st.mode), uid: Number(st.uid), gid: Number(st.gid), size: Number(st.size), mtimeSec, mtimeNsec,
    ctimeSec, ctimeNsec, ino: Number(st.ino), dev: Number(st.dev), nlink: Number(st.nlink), rdev: Number(st.rdev),
  }
}

/**
 * The default ContentReader. Yields at most `size` bytes (the size the snapshot records), in
 * pieces of at most READ_BLOCK, read into two buffers in turn; a file up to READ_BLOCK is one
 * read into one buffer. The file is opened on the first `next()` and closed when the consumer
 * finishes, returns early or throws. A file that shrank yields fewer bytes, with an ERR_READ
 * warning; one that grew or changed gets ERR_CHANGED; one that cannot be opened or read throws
 * ERR_READ.
 */
export async function* readContent(file: FileToRead, onWarning: (err: SluiceError) => void): AsyncGenerator<Uint8Array> {
  const { fsPath, size } = file
  const toEnd = size < 0
  let fd: number
  try {
    // The entry was a regular file at lstat time. O_NOFOLLOW: never read through a symlink that
    // replaced it since; O_NONBLOCK: a FIFO that replaced it must not hang the backup in open().
    // The callback API, not fs.promises: a FileHandle costs twice as much per small file.
    fd = await cb<number>((done) => fs.open(fsPath, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK, done))
  } catch (err) {
    throw new SluiceError('ERR_READ', `cannot open ${displayPath(fsPath)}: ${(err as Error).message}`, { cause: err, path: fsPath })
  }
  // Read one block ahead, into the other of two buffers: the next read runs on the thread pool
  // while the consumer works on this piece. A file of unknown size starts with a small buffer
  // (most are empty or a page long) and goes on in READ_BLOCKs.
  const blocks: Buffer[] = []
  const bufferFor = (i: number, want: number): Buffer => {
    if (!blocks[i] || blocks[i]!.length < want) blocks[i] = Buffer.allocUnsafeSlow(want)
    return blocks[i]!.subarray(0, want)
  }
  let left = toEnd ? Infinity : size
  let done = 0
  let turn = 0
  let eof = false
  const readNext = (): Promise<{ buf: Buffer; want: number; got: number }> | undefined => {
    if (left <= 0 || eof) return undefined
    const want = toEnd ? (done === 0 && turn === 0 ? READ_UNSIZED_FIRST : READ_BLOCK) : Math.min(left, READ_BLOCK)
    left -= want
    const buf = bufferFor(turn, want)
    turn = size > READ_BLOCK || toEnd ? 1 - turn : 0
    return readFull(fd, buf, fsPath).then((got) => {
      if (got < want) eof = true
      return { buf, want, got }
    })
  }
  let ahead = readNext()
  let shrank = false
  try {
    while (ahead) {
      const { buf, want, got } = await ahead
      ahead = undefined
      done += got
      if (got < want && !toEnd) {
        if (got > 0) yield buf.subarray(0, got)
        onWarning(new SluiceError('ERR_READ', `file shrank while reading (${done} of ${size} bytes): ${displayPath(fsPath)}`, { path: fsPath }))
        shrank = true
        break
      }
      ahead = readNext()
      if (got > 0) yield got < want ? buf.subarray(0, got) : buf
    }
    if (!shrank) {
      // One byte more than lstat said: there should be none. Then what fstat says now.
      const grew = !toEnd && (await readFull(fd, Buffer.allocUnsafe(1), fsPath)) > 0
      const now = statNumbers(await cb<BigIntStats>((cbDone) => fs.fstat(fd, { bigint: true }, cbDone)))
      const change = grew ? `grew past its ${size} bytes; the snapshot keeps those` : stampChange(file.before, now)
      if (change !== null) onWarning(changedWhileRead(fsPath, change))
    }
  } finally {
    // A read still in flight must end before its descriptor is closed (and maybe reused).
    if (ahead) await ahead.catch(() => {})
    await cb<void>((cbDone) => fs.close(fd, cbDone))
  }
}

/** A node-style callback call as a promise. */
function cb<T>(call: (done: (err: NodeJS.ErrnoException | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => call((err, value) => (err ? reject(err) : resolve(value as T))))
}

/** Fills `buf` from the current position; fewer bytes only at end of file. */
async function readFull(fd: number, buf: Buffer, fsPath: Buffer): Promise<number> {
  let got = 0
  try {
    while (got < buf.length) {
      const bytesRead = await cb<number>((done) => fs.read(fd, buf, got, buf.length - got, null, done))
      if (bytesRead === 0) break
      got += bytesRead
    }
  } catch (err) {
    throw new SluiceError('ERR_READ', `cannot read ${displayPath(fsPath)}: ${(err as Error).message}`, { cause: err, path: fsPath })
  }
  return got
}
