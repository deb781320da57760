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
 * Sparse files: a file larger than READ_BLOCK whose first hole (SEEK_HOLE) lies before its end
 * is read region by region (readSparse): data regions only, holes yielded as Holes, which the
 * chunker records as hole extents. Smaller files (read in batches by prefetch.ts) are read
 * whole: a hole in a file of at most 1 MiB saves little, and probing every small file would cost
 * a syscall each.
 *
 * Memory: two READ_BLOCK buffers per file being read, one block read ahead of the consumer, and
 * at most READ_BLOCKS_KEPT more between files: a finished reader gives its blocks back and the
 * next file reads into them. Fresh blocks per file would leave 2 MiB of dead buffers outside
 * V8's heap for every file over READ_BLOCK until a full collection (a real tree's hundreds of
 * shared libraries: docs/TUNING.md "The memory budget").
 */
import fs, { constants as fsc, type BigIntStats } from 'node:fs'
import { displayPath } from '../../../lib/bytes.js'
import { SluiceError } from '../../../lib/errors.js'
import { READ_BLOCK, READ_BLOCKS_KEPT, READ_UNSIZED_FIRST } from '../../../lib/limits.js'
import { seekData, type LStat } from '../../../lib/native.js'
import { Hole } from '../../../lib/entry.js'

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

/** Read blocks (READ_BLOCK bytes each) of finished readers, for the next file's. */
const freeBlocks: Buffer[] = []
const takeBlock = (): Buffer => freeBlocks.pop() ?? Buffer.allocUnsafeSlow(READ_BLOCK)
const giveBlocks = (blocks: Buffer[]): void => {
  for (const b of blocks) if (b.length === READ_BLOCK && freeBlocks.length < READ_BLOCKS_KEPT) freeBlocks.push(b)
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
  // A file larger than a read block may be sparse: one SEEK_HOLE says. With a hole before its
  // end, only its data regions are read and the holes are yielded as Holes (readSparse).
  if (size > READ_BLOCK) {
    const firstHole = holeAt(fd, 0)
    if (firstHole < size) {
      try {
        yield* readSparse(fd, file, firstHole, onWarning)
      } finally {
        await cb<void>((cbDone) => fs.close(fd, cbDone))
      }
      return
    }
    if (firstHole !== Infinity) seekData(fd, 0, false) // back to 0: SEEK_HOLE moved the position
  }
  // Read one block ahead, into the other of two buffers: the next read runs on the thread pool
  // while the consumer works on this piece. A file of unknown size starts with a small read
  // (most are empty or a page long) and goes on in READ_BLOCKs. The blocks are the free list's
  // and go back to it when the file is done (a piece is the consumer's only until it asks for
  // the next: SourceEntry.content).
  const blocks: Buffer[] = []
  const bufferFor = (i: number, want: number): Buffer => {
    blocks[i] ??= takeBlock()
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
    giveBlocks(blocks)
  }
}

/** Where the first hole at or after `pos` starts (the end of the file when none comes before
 *  it), or Infinity where the filesystem cannot tell (the file is then read as all data). */
function holeAt(fd: number, pos: number): number {
  try {
    const at = seekData(fd, pos, true)
    return at < 0 ? Infinity : at
  } catch {
    return Infinity
  }
}

/**
 * A sparse file's content: its data regions (SEEK_DATA, SEEK_HOLE), read in pieces of at most
 * READ_BLOCK into one buffer, and its holes as Holes, up to `size` bytes in all. Only data is
 * read: a 2 GiB file holding 8 KiB costs a few syscalls and one 8 KiB read. A region that
 * changes between the seeks reads as what is there (a hole reads as zeros). Shrinking, growing
 * and changes are reported as by readContent (an fstat first: SEEK_HOLE cannot tell a file that
 * shrank from one that ends in a hole). Memory: one READ_BLOCK buffer (of the free list).
 */
async function* readSparse(fd: number, file: FileToRead, firstHole: number, onWarning: (err: SluiceError) => void): AsyncGenerator<Uint8Array> {
  const { fsPath, size } = file
  // SEEK_HOLE also finds the end of a file that shrank since lstat: only what is there now is
  // content; the rest is reported as shrunk (and padded by the chunker), not taken for a hole.
  const opened = await cb<BigIntStats>((cbDone) => fs.fstat(fd, { bigint: true }, cbDone))
  const end = Math.min(size, Number(opened.size))
  const buf = takeBlock()
  try {
    yield* sparseRegions(fd, file, buf, firstHole, end, onWarning)
  } finally {
    giveBlocks([buf])
  }
}

async function* sparseRegions(fd: number, file: FileToRead, buf: Buffer, firstHole: number, end: number, onWarning: (err: SluiceError) => void): AsyncGenerator<Uint8Array> {
  const { fsPath, size } = file
  let pos = 0
  let hole = Math.min(firstHole, end)
  while (pos < end) {
    if (pos >= hole) {
      let data: number
      try {
        data = seekData(fd, pos, false)
      } catch (err) {
        throw new SluiceError('ERR_READ', `cannot read ${displayPath(fsPath)}: ${(err as Error).message}`, { cause: err, path: fsPath })
      }
      // No data up to the end (ENXIO): the rest is a hole.
      if (data < 0 || data > end) data = end
      if (data > pos) yield new Hole(data - pos)
      pos = data
      hole = Math.min(holeAt(fd, pos), end)
      continue
    }
    const want = Math.min(READ_BLOCK, hole - pos)
    const got = await readFull(fd, buf.subarray(0, want), fsPath, pos)
    if (got > 0) yield buf.subarray(0, got)
    pos += got
    if (got < want) {
      onWarning(new SluiceError('ERR_READ', `file shrank while reading (${pos} of ${size} bytes): ${displayPath(fsPath)}`, { path: fsPath }))
      return
    }
  }
  if (end < size) {
    onWarning(new SluiceError('ERR_READ', `file shrank while reading (${end} of ${size} bytes): ${displayPath(fsPath)}`, { path: fsPath }))
    return
  }
  const grew = (await readFull(fd, Buffer.allocUnsafe(1), fsPath, size)) > 0
  const now = statNumbers(await cb<BigIntStats>((cbDone) => fs.fstat(fd, { bigint: true }, cbDone)))
  const change = grew ? `grew past its ${size} bytes; the snapshot keeps those` : stampChange(file.before, now)
  if (change !== null) onWarning(changedWhileRead(fsPath, change))
}

/** A node-style callback call as a promise. */
function cb<T>(call: (done: (err: NodeJS.ErrnoException | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => call((err, value) => (err ? reject(err) : resolve(value as T))))
}

/** Fills `buf` from the current position (or from `pos`); fewer bytes only at end of file. */
async function readFull(fd: number, buf: Buffer, fsPath: Buffer, pos: number | null = null): Promise<number> {
  let got = 0
  try {
    while (got < buf.length) {
      const bytesRead = await cb<number>((done) => fs.read(fd, buf, got, buf.length - got, pos === null ? null : pos + got, done))
      if (bytesRead === 0) break
      got += bytesRead
    }
  } catch (err) {
    throw new SluiceError('ERR_READ', `cannot read ${displayPath(fsPath)}: ${(err as Error).message}`, { cause: err, path: fsPath })
  }
  return got
}
