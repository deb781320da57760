/**
 * The tar source: reads a tar stream (ustar, GNU or PAX, as GNU tar and bsdtar write them) and
 * yields one `SourceEntry` per archive member, in archive order, paths put under `prefix`.
 *
 * It streams: a file's `content()` yields the member's bytes straight from the input, and the
 * next member is not parsed until that content has been read to its end (or the iteration was
 * stopped, after which the source skips the rest itself). So the consumer must read a file's
 * content before it can get the next entry — see `unreadContent` for consumers that never do.
 *
 * Names are raw bytes: header names are decoded as latin1 and turned back into the same bytes,
 * and PAX records (which tar-stream decodes as UTF-8, losing non-UTF-8 bytes) are decoded by our
 * own byte-exact decoder, so a name GNU tar wrote as raw bytes in a PAX `path` record, and binary
 * xattr values, survive. A PAX `path` that is UTF-8 (as the spec wants) is kept as its UTF-8
 * bytes, i.e. the name the file had on a UTF-8 system.
 *
 * Memory: one input piece in tar-stream's buffer, one PAX header (at most tar-stream's 4 MiB
 * cap), and the path of the last dropped directory; dead content pieces up to
 * STREAM_GC_EVERY_BYTES. Nothing grows with the archive.
 */
import { Readable } from 'node:stream'
import { extract } from 'tar-stream'
import { displayPath, isUnder, joinPath } from '../../../lib/bytes.js'
import type { EntryType, SourceEntry, Xattr } from '../../../lib/entry.js'
import { SluiceError, asSluiceError } from '../../../lib/errors.js'
import { collectEvery } from '../../../lib/memory.js'

/** Options of {@link createTarSource}. */
export interface TarSourceOptions {
  /** Every path is put under this snapshot path (e.g. `srv` from --stdin-filename). The
   *  archive's own '.' entry becomes the entry of the prefix directory itself. */
  prefix?: Buffer
  /** Receives per-member trouble (a member type we cannot store, e.g. GNU sparse or volume
   *  headers); the member is skipped and the source goes on. */
  onWarning?: (err: SluiceError) => void
  /** Called for every entry before it is emitted: false drops it (and, for a directory, the
   *  members below it that follow it), and the source skips its content itself. Pass
   *  `FilterRules.canDescend` here: a stage after this source must not drop file entries, since
   *  their content would never be read (see `unreadContent`). */
  descend?: (entry: SourceEntry) => boolean
  /** What to do when the next entry is asked for while a file's `content()` has not been called.
   *  'wait' (default): wait for the consumer to read it — right for a pipeline, where stages
   *  buffer entries ahead of the chunker, so "asked for the next entry" does not mean "done with
   *  this one". 'skip': skip the content; a later `content()` call then throws ERR_TAR. Use it
   *  for consumers that only look at metadata (listings). */
  unreadContent?: 'wait' | 'skip'
}

const TRUNCATED = 'tar stream on stdin is truncated'
const BLOCK = 512

/** One tar member as tar-stream parses it, with PAX values as latin1 strings (raw bytes). */
interface TarHeader {
  name: string
  type: string | null
  mode: number
  uid: number
  gid: number
  size: number
  mtime: Date
  linkname: string | null
  uname: string
  gname: string
  devmajor: number
  devminor: number
  byteOffset: number
  pax: Record<string, string> | null
}

/** The part of tar-stream's extract (a streamx Writable) that we use. */
interface ExtractStream extends AsyncIterable<{ header: TarHeader } & AsyncIterable<Buffer>> {
  write(data: Buffer): boolean
  end(): void
  destroy(err?: Error): void
  readonly destroying: boolean
  on(event: 'drain' | 'close', fn: () => void): void
  off(event: 'drain' | 'close', fn: () => void): void
}

/** The pull side of a streamx Readable's async iterator (never `return()`ed: that would destroy
 *  the whole extract). */
interface Pull {
  next(): Promise<IteratorResult<Buffer>>
}

/** Creates the tar source over `input` (objectMode Readable of `SourceEntry`). A truncated or
 *  corrupt archive, or a member path with a '..' component, makes the stream error with ERR_TAR. */
export function createTarSource(input: Readable, opts: TarSourceOptions = {}): Readable {
  // A broken archive fails the whole backup: the source errors (and so the pipeline) before the
  // reader of the content hears of it, so that reader cannot mistake it for one unreadable file.
  const source: Readable = Readable.from(tarEntries(input, opts, (err) => source.destroy(err)), { objectMode: true, highWaterMark: 1 })
  return source
}

async function* tarEntries(input: Readable, opts: TarSourceOptions, fail: (err: SluiceError) => void): AsyncGenerator<SourceEntry> {
  const collect = collectEvery('streams')
  const prefix = opts.prefix ?? Buffer.alloc(0)
  const skipUnread = opts.unreadContent === 'skip'
  // tar-stream's bundled types omit the options its extract() takes; the streamx Writable is
  // used through the few members below.
  const ex = extract({ filenameEncoding: 'latin1' } as never) as unknown as ExtractStream
  patchPaxDecoder(ex)

  let fed = 0
  let lastEnd = 0
  let inputDone = false
  const feeding = feed()

  async function feed(): Promise<void> {
    try {
      for await (const piece of input as AsyncIterable<Buffer>) {
        fed += piece.length
        if (!ex.write(piece)) {
          if (ex.destroying) return
          await drained()
        }
        if (ex.destroying) return
      }
      inputDone = true
      ex.end()
    } catch (err) {
      ex.destroy(asSluiceError(err, 'ERR_TAR', 'cannot read the tar stream on stdin'))
    }
  }

  function drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        ex.off('drain', done)
        ex.off('close', done)
        resolve()
      }
      ex.on('drain', done)
      ex.on('close', done)
    })
  }

  const members = ex[Symbol.asyncIterator]()
  let droppedDir: Buffer | null = null
  let finished = false
  try {
    for (;;) {
      let step: IteratorResult<{ header: TarHeader } & AsyncIterable<Buffer>>
      try {
        step = await members.next()
      } catch (err) {
        throw tarError(err)
      }
      if (step.done) break
      const member = step.value
      const header = member.header
      const pull = member[Symbol.asyncIterator]() as Pull
      lastEnd = header.byteOffset + header.size + pad(header.size)

      const entry = toEntry(header, prefix, opts)
      // tar-stream attaches no content stream to empty members and directories.
      const skip = (): Promise<void> => (header.size > 0 && header.type !== 'directory' ? drain(pull) : Promise.resolve())
      if (entry === null) {
        await skip()
        continue
      }
      if (droppedDir !== null && isUnder(entry.path, droppedDir)) {
        await skip()
        continue
      }
      droppedDir = null
      if (opts.descend && !opts.descend(entry)) {
        if (entry.type === 'dir') droppedDir = entry.path
        await skip()
        continue
      }
      if (entry.type !== 'file' || entry.hardlinkTo !== undefined || entry.size === 0) {
        await skip()
        if (entry.type === 'file' && entry.hardlinkTo === undefined) entry.content = async function* () {}
        yield entry
        continue
      }

      // A file with content: hand out content(), and settle before the next member. Its pieces
      // are tar-stream's fresh buffers, dead once the chunker has copied them: a collection is
      // forced every STREAM_GC_EVERY_BYTES of them (sources/stdin.ts says why).
      let state: 'unread' | 'reading' | 'done' | 'skipped' = 'unread'
      let failure: SluiceError | null = null
      let settle!: () => void
      const settled = new Promise<void>((resolve) => (settle = resolve))
      const path = entry.path
      entry.content = async function* () {
        if (state !== 'unread') {
          throw new SluiceError('ERR_TAR', `content of ${displayPath(path)} was ${state === 'skipped' ? 'skipped: the tar source reads the archive once, in order' : 'already read'}`, { path })
        }
        state = 'reading'
        try {
          for (;;) {
            let r: IteratorResult<Buffer>
            try {
              r = await pull.next()
            } catch (err) {
              failure = tarError(err)
              fail(failure)
              throw failure
            }
            if (r.done) break
            yield r.value
            collect(r.value.length)
          }
        } finally {
          // Stopped early (return()) or done: either way the rest is skipped by the source.
          state = 'done'
          settle()
        }
      }
      yield entry
      if (state === 'unread' && skipUnread) {
        state = 'skipped'
        settle()
      }
      await settled
      if (failure) throw failure
      await skip()
    }
    finished = true
    await feeding
    // The archive must end with its end-of-archive zero block(s): without one, it was cut at
    // a member boundary (tar-stream itself accepts that silently).
    if (!inputDone || fed - lastEnd < BLOCK) throw new SluiceError('ERR_TAR', TRUNCATED)
  } finally {
    if (!finished) {
      ex.destroy()
      input.destroy()
    }
  }
}

/** Reads and drops what is left of a member's content. */
async function drain(pull: Pull): Promise<void> {
  try {
    for (;;) if ((await pull.next()).done) return
  } catch (err) {
    throw tarError(err)
  }
}

function pad(size: number): number {
  const r = size % BLOCK
  return r === 0 ? 0 : BLOCK - r
}

function tarError(err: unknown): SluiceError {
  if (err instanceof SluiceError) return err
  const msg = err instanceof Error ? err.message : String(err)
  if (/unexpected end of data/i.test(msg)) return new SluiceError('ERR_TAR', TRUNCATED, { cause: err })
  return new SluiceError('ERR_TAR', `tar stream on stdin is corrupt: ${msg}`, { cause: err })
}

/**
 * tar-stream decodes PAX records as UTF-8 strings, which turns non-UTF-8 bytes (GNU tar writes
 * names and xattr values raw) into U+FFFD. We replace its PAX decoding, on this instance only,
 * with a byte-exact one that yields latin1 strings: one char per byte, the same convention as
 * `filenameEncoding: 'latin1'` for header names, so `Buffer.from(s, 'latin1')` gives the bytes.
 * This relies on tar-stream 3's `_decodeLongHeader`; the check makes an upgrade that renames it
 * fail loudly (tests cover non-UTF-8 PAX names) rather than corrupt names quietly.
 */
function patchPaxDecoder(ex: object): void {
  const target = ex as {
    _decodeLongHeader?: (buf: Buffer) => void
    _header: { type: string }
    _pax: Record<string, string> | null
    _paxGlobal: Record<string, string> | null
  }
  const original = target._decodeLongHeader
  if (typeof original !== 'function') throw new Error('tar-stream has no _decodeLongHeader: update tar-source.ts')
  target._decodeLongHeader = function (this: typeof target, buf: Buffer) {
    if (this._header.type === 'pax-header') {
      this._pax = { ...(this._paxGlobal ?? {}), ...decodePax(buf) }
    } else if (this._header.type === 'pax-global-header') {
      this._paxGlobal = decodePax(buf)
    } else {
      original.call(this, buf)
    }
  }
}

/** Decodes PAX extended header records (`LEN KEY=VALUE\n`) byte-exactly into latin1 strings. */
export function decodePax(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {}
  let at = 0
  while (at < buf.length) {
    const sp = buf.indexOf(0x20, at)
    if (sp < 0) break
    const len = parseInt(buf.toString('latin1', at, sp), 10)
    if (!(len > 0) || at + len > buf.length || buf[at + len - 1] !== 0x0a) {
      if (buf.subarray(at).every((b) => b === 0)) break
      throw new Error('bad PAX record')
    }
    const rec = buf.subarray(sp + 1, at + len - 1)
    const eq = rec.indexOf(0x3d)
    if (eq < 0) throw new Error('bad PAX record')
    out[rec.toString('latin1', 0, eq)] = rec.toString('latin1', eq + 1)
    at += len
  }
  return out
}

const TYPES: Record<string, EntryType> = {
  file: 'file',
  'contiguous-file': 'file',
  link: 'file',
  symlink: 'symlink',
  directory: 'dir',
  fifo: 'fifo',
  'character-device': 'char',
  'block-device': 'block',
}

/** The SourceEntry of a member (without content), or null for a member that is skipped. */
function toEntry(h: TarHeader, prefix: Buffer, opts: TarSourceOptions): SourceEntry | null {
  const raw = Buffer.from(h.name, 'latin1')
  const type = h.type === null ? undefined : TYPES[h.type]
  const pax = h.pax ?? {}
  if (type === undefined || Object.keys(pax).some((k) => k.startsWith('GNU.sparse.'))) {
    opts.onWarning?.(new SluiceError('ERR_TAR', `tar member ${displayPath(raw)} has a type Sluice cannot store (${h.type ?? 'unknown'}); skipped`, { path: raw }))
    return null
  }
  const rel = normalizeTarPath(raw)
  if (rel.length === 0 && prefix.length === 0) return null // the archive's '.' itself
  const path = rel.length === 0 ? Buffer.from(prefix) : joinPath(prefix, rel)
  const [mtimeSec, mtimeNsec] = pax.mtime !== undefined ? parseTime(pax.mtime) : [Math.floor(h.mtime.getTime() / 1000), 0]
  const [ctimeSec, ctimeNsec] = pax.ctime !== undefined ? parseTime(pax.ctime) : [mtimeSec, mtimeNsec]
  const entry: SourceEntry = {
    kind: 'entry',
    path,
    type: rel.length === 0 ? 'dir' : type,
    mode: h.mode & 0o7777,
    uid: pax.uid !== undefined ? Number(pax.uid) : h.uid,
    gid: pax.gid !== undefined ? Number(pax.gid) : h.gid,
    size: type === 'file' && h.type !== 'link' ? h.size : 0,
    mtimeSec,
    mtimeNsec,
    ctimeSec,
    ctimeNsec,
    ino: 0,
    dev: 0,
    nlink: 0,
  }
  const user = pax.uname !== undefined ? Buffer.from(pax.uname, 'latin1').toString('utf8') : h.uname
  const group = pax.gname !== undefined ? Buffer.from(pax.gname, 'latin1').toString('utf8') : h.gname
  if (user) entry.user = user
  if (group) entry.group = group
  if (type === 'char' || type === 'block') entry.rdev = makedev(h.devmajor, h.devminor)
  if (type === 'symlink') entry.linkTarget = Buffer.from(h.linkname ?? '', 'latin1')
  if (h.type === 'link') {
    const to = normalizeTarPath(Buffer.from(h.linkname ?? '', 'latin1'))
    entry.hardlinkTo = to.length === 0 ? Buffer.from(prefix) : joinPath(prefix, to)
  }
  const xattrs: Xattr[] = []
  for (const [k, v] of Object.entries(pax)) {
    if (k.startsWith('SCHILY.xattr.')) xattrs.push({ name: Buffer.from(k.slice(13), 'latin1'), value: Buffer.from(v, 'latin1') })
  }
  if (xattrs.length > 0) entry.xattrs = xattrs.sort((a, b) => Buffer.compare(a.name, b.name))
  return entry
}

/** A member name as a snapshot path: no leading '/' or './', no trailing '/', no empty or '.'
 *  components. A '..' component could put the entry anywhere on restore: the archive is refused
 *  with ERR_TAR. */
export function normalizeTarPath(raw: Buffer): Buffer {
  const parts: Buffer[] = []
  let start = 0
  for (let i = 0; i <= raw.length; i++) {
    if (i < raw.length && raw[i] !== 0x2f) continue
    const part = raw.subarray(start, i)
    start = i + 1
    if (part.length === 0 || (part.length === 1 && part[0] === 0x2e)) continue
    if (part.length === 2 && part[0] === 0x2e && part[1] === 0x2e) {
      throw new SluiceError('ERR_TAR', `tar stream on stdin is corrupt: member ${displayPath(raw)} has a '..' component`, { path: raw })
    }
    parts.push(part)
  }
  const out: Buffer[] = []
  for (const p of parts) {
    if (out.length > 0) out.push(Buffer.of(0x2f))
    out.push(p)
  }
  return Buffer.concat(out)
}

/** Parses a PAX time ("1795685289.404501667", maybe negative) into seconds and nanoseconds,
 *  seconds floored so that the nanoseconds stay non-negative. */
export function parseTime(text: string): [number, number] {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(text.trim())
  if (!m) throw new SluiceError('ERR_TAR', `tar stream on stdin is corrupt: bad PAX time ${JSON.stringify(text)}`)
  const sec = Number(m[2])
  const nsec = Number(((m[3] ?? '') + '000000000').slice(0, 9))
  if (m[1] !== '-') return [sec, nsec]
  return nsec === 0 ? [-sec, 0] : [-sec - 1, 1_000_000_000 - nsec]
}

/** glibc's makedev: the device number encoding of Linux stat's st_rdev. */
export function makedev(major: number, minor: number): number {
  const M = BigInt(major)
  const m = BigInt(minor)
  return Number(((M & 0xfffn) << 8n) | ((M & ~0xfffn) << 32n) | (m & 0xffn) | ((m & ~0xffn) << 12n))
}
