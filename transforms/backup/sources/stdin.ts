/**
 * The single-stream sources: one unnamed byte stream (stdin, or the stdout of a command run for
 * --stdin-from-command) becomes one file entry, so `pg_dump | sluice backup --stdin` stores the
 * dump as a file named by --stdin-filename.
 *
 * Size: the length is not known until the stream ends, so the entry's `size` is -1, the
 * chunker's "size unknown" mark: it holds that one record back until the content has ended and
 * then records the number of bytes it read. (Updating `entry.size` as bytes flow would not
 * help: the chunker copies the metadata before it reads the content.)
 *
 * The source ends only after the content has been read to its end, and errors if reading it
 * failed — or, for a command, if the command could not be started or exited non-zero — so that a
 * failed producer fails the backup instead of leaving a snapshot with a short file.
 *
 * Input: a file descriptor (the CLI's stdin) is read with fs.read into one reused READ_BLOCK
 * buffer, so a stream of any length allocates nothing per piece. A Readable (a command's stdout,
 * a script's stream) hands out a fresh buffer per piece; those die in the chunker, which copies
 * them, and V8 would let them pile up (it collects by its own small heap, not by these external
 * buffers), so a collection is forced every STREAM_GC_EVERY_BYTES of them.
 *
 * Memory: the read buffer, or the one piece of input being handed on (plus at most
 * STREAM_GC_EVERY_BYTES of dead ones). For a command, also one PassThrough (two 16 KiB buffers)
 * between its stdout and us.
 */
import fs from 'node:fs'
import { spawn } from 'node:child_process'
import { userInfo } from 'node:os'
import { PassThrough, Readable, type Writable } from 'node:stream'
import { displayPath } from '../../../lib/bytes.js'
import type { SourceEntry } from '../../../lib/entry.js'
import { SluiceError } from '../../../lib/errors.js'
import { collectEvery } from '../../../lib/memory.js'
import { READ_BLOCK } from '../../../lib/limits.js'

/** Options of {@link createStdinSource} and {@link createCommandSource}. */
export interface StdinSourceOptions {
  /** The snapshot path of the entry (--stdin-filename), raw bytes; default 'stdin'. A leading
   *  '/' is dropped; empty, '.' and '..' components are refused with ERR_ARGS (thrown by the
   *  factory). */
  name?: Buffer
  /** Permission bits of the entry; default 0o644. */
  mode?: number
}

/** Options of {@link createCommandSource}. */
export interface CommandSourceOptions extends StdinSourceOptions {
  /** Where the command's stderr goes; default: our own stderr (inherited, unbuffered). */
  stderr?: Writable
}

/** Creates a source (objectMode Readable) yielding one file entry whose content is `input`. */
export function createStdinSource(input: Readable | number, opts: StdinSourceOptions = {}): Readable {
  const path = snapshotPath(opts.name ?? Buffer.from('stdin'))
  const source: Readable = Readable.from(single(input, path, opts, async () => {}, (err) => source.destroy(err)), { objectMode: true, highWaterMark: 1 })
  return source
}

/**
 * Runs `argv` (no shell) and creates a source yielding its stdout as one file entry. The
 * source errors with ERR_COMMAND, naming the command, if it cannot be started or exits
 * non-zero or by a signal; `done` settles the same way once the command has exited (a rejection
 * nobody waits for is not reported as unhandled). Destroying the source kills the command.
 */
export function createCommandSource(argv: string[], opts: CommandSourceOptions = {}): { source: Readable; done: Promise<void> } {
  if (argv.length === 0) throw new SluiceError('ERR_ARGS', '--stdin-from-command needs a command')
  const path = snapshotPath(opts.name ?? Buffer.from('stdin'))
  const shown = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ')
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', opts.stderr ? 'pipe' : 'inherit'] })
  if (opts.stderr && child.stderr) child.stderr.pipe(opts.stderr, { end: false })
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', (err) => reject(new SluiceError('ERR_COMMAND', `cannot start command ${shown}: ${err.message}`, { cause: err })))
    child.once('close', (code, signal) => {
      if (code === 0) resolve()
      else reject(new SluiceError('ERR_COMMAND', `command ${shown} ${signal ? `was killed by ${signal}` : `exited with code ${code}`}`))
    })
  })
  done.catch(() => {})
  // Read the command's stdout from the start: when a child exits, Node resumes (and so throws
  // away) any of its output streams nobody is reading yet, and the chunker gets to the content
  // only after the repository is open — a short command has long exited by then. The pipe keeps
  // backpressure: it pauses the child's stdout once the PassThrough holds its highWaterMark.
  const stdout = new PassThrough()
  child.stdout!.on('error', (err) => stdout.destroy(err))
  child.stdout!.pipe(stdout)
  const gen = single(stdout, path, opts, () => done, (err) => source.destroy(err))
  const source: Readable = Readable.from(gen, { objectMode: true, highWaterMark: 1 })
  source.once('close', () => {
    if (child.exitCode === null && child.signalCode === null) child.kill()
  })
  return { source, done }
}

/** `fail` errors the source itself: a failed input fails the whole backup, and the source must
 *  say so before the reader of the content hears of it (that reader, the chunker, would take it
 *  for one unreadable file, warn and go on). */
async function* single(input: Readable | number, path: Buffer, opts: StdinSourceOptions, after: () => Promise<void>, fail: (err: Error) => void): AsyncGenerator<SourceEntry> {
  const now = Date.now()
  const sec = Math.floor(now / 1000)
  const nsec = (now % 1000) * 1_000_000
  let state: 'unread' | 'reading' | 'done' = 'unread'
  let failure: unknown = null
  let settle!: () => void
  const settled = new Promise<void>((resolve) => (settle = resolve))
  const entry: SourceEntry = {
    kind: 'entry',
    path,
    type: 'file',
    mode: (opts.mode ?? 0o644) & 0o7777,
    uid: process.getuid?.() ?? 0,
    gid: process.getgid?.() ?? 0,
    size: -1,
    mtimeSec: sec,
    mtimeNsec: nsec,
    ctimeSec: sec,
    ctimeNsec: nsec,
    ino: 0,
    dev: 0,
    nlink: 0,
    content: async function* () {
      if (state !== 'unread') throw new SluiceError('ERR_READ', `content of ${displayPath(path)} was already read`, { path })
      state = 'reading'
      try {
        if (typeof input === 'number') {
          yield* readFd(input)
        } else {
          const collect = collectEvery('streams')
          for await (const piece of input as AsyncIterable<Buffer>) {
            yield piece
            collect(piece.length)
          }
        }
        await after()
      } catch (err) {
        const e = err instanceof SluiceError ? err : new SluiceError('ERR_READ', `cannot read stdin: ${(err as Error).message}`, { cause: err, path })
        failure = e
        fail(e)
        throw e
      } finally {
        state = 'done'
        settle()
      }
    },
  }
  const user = ownerName()
  if (user) entry.user = user
  yield entry
  await settled
  if (failure) throw failure
}

/**
 * Reads `fd` to its end into one reused buffer; each piece is the consumer's only until it asks
 * for the next. A descriptor left non-blocking by whoever opened it (EAGAIN) is polled, backing
 * off to 50 ms: rare, and cheaper than a second way to read.
 */
async function* readFd(fd: number): AsyncGenerator<Buffer> {
  const buf = Buffer.allocUnsafeSlow(READ_BLOCK)
  let wait = 1
  for (;;) {
    let got: number
    try {
      got = await new Promise<number>((resolve, reject) => fs.read(fd, buf, 0, buf.length, null, (err, n) => (err ? reject(err) : resolve(n))))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err
      await new Promise(resolve => setTimeout(resolve, wait))
      wait = Math.min(wait * 2, 50)
      continue
    }
    wait = 1
    if (got === 0) return
    yield buf.subarray(0, got)
  }
}

function ownerName(): string | undefined {
  try {
    return userInfo().username
  } catch {
    return undefined
  }
}

/** --stdin-filename as a snapshot path: relative, no empty, '.' or '..' components. */
function snapshotPath(name: Buffer): Buffer {
  let start = 0
  while (start < name.length && name[start] === 0x2f) start++
  let end = name.length
  while (end > start && name[end - 1] === 0x2f) end--
  const path = name.subarray(start, end)
  const bad = path.length === 0 || path.toString('latin1').split('/').some((c) => c === '' || c === '.' || c === '..')
  if (bad) throw new SluiceError('ERR_ARGS', `--stdin-filename ${JSON.stringify(displayPath(name))} is not a usable snapshot path`)
  return Buffer.from(path)
}
