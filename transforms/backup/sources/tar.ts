/**
 * The tar source: reads a tar stream (ustar, GNU or PAX, as GNU tar and bsdtar write them) and
 * yields one `SourceEntry` per archive member, in archive order, paths put under `prefix`.
 *
 * It streams: a file's `content()` yields the member's bytes straight from the input, and the
 * next member is not parsed until that content has been read to its end (or the iteration was
 * stopped, after which the source skips the rest itself). So the consumer must read a file's
 * content before it can get the next entry — see `unreadContent` for consumers that never do.
 *
 * tar-stream splits the stream into members; what a member's header means (entry, raw-byte names,
 * PAX records) is decoded by lib/tar.ts, the codec that also writes headers for restore --tar.
 *
 * GNU sparse 1.0 members (what `tar --sparse --format=pax` and restore --tar write) are read
 * with their holes: the content yields Holes, which the snapshot keeps as hole extents.
 *
 * Memory: one input piece in tar-stream's buffer, one PAX header (at most tar-stream's 4 MiB
 * cap), a sparse member's map (at most TAR_SPARSE_MAP_BYTES), and the path of the last dropped directory; dead content pieces up to
 * STREAM_GC_EVERY_BYTES. Nothing grows with the archive.
 */
import { Readable } from 'node:stream'
import { extract } from 'tar-stream'
import { displayPath, isUnder } from '../../../lib/bytes.js'
import { Hole, type SourceEntry } from '../../../lib/entry.js'
import { SluiceError, asSluiceError } from '../../../lib/errors.js'
import { collectEvery } from '../../../lib/memory.js'
import { TAR_BLOCK, decodePax, decodeSparseMap, decodeTarMember, tarPadding, tarSparseSize, type SparseRegion, type TarMemberHeader } from '../../../lib/tar.js'
import { TAR_SPARSE_MAP_BYTES } from '../../../lib/limits.js'

/** Options of {@link createTarSource}. */
export interface TarSourceOptions {
  /** Every path is put under this snapshot path (e.g. `srv` from --stdin-filename). The
   *  archive's own '.' entry becomes the entry of the prefix directory itself. */
  prefix?: Buffer
  /** Receives per-member trouble (a member type we cannot store, e.g. old GNU sparse formats or
   *  volume headers); the member is skipped and the source goes on. */
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

/** The part of tar-stream's extract (a streamx Writable) that we use. */
interface ExtractStream extends AsyncIterable<{ header: TarMemberHeader } & AsyncIterable<Buffer>> {
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
      let step: IteratorResult<{ header: TarMemberHeader } & AsyncIterable<Buffer>>
      try {
        step = await members.next()
      } catch (err) {
        throw tarError(err)
      }
      if (step.done) break
      const member = step.value
      const header = member.header
      const pull = member[Symbol.asyncIterator]() as Pull
      lastEnd = header.byteOffset + header.size + tarPadding(header.size)

      const entry = decodeTarMember(header, prefix, opts.onWarning)
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
      const realSize = tarSparseSize(header)
      if (realSize !== null) {
        const raw = entry.content
        entry.content = () => sparseContent(raw(), realSize, path)
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
    if (!inputDone || fed - lastEnd < TAR_BLOCK) throw new SluiceError('ERR_TAR', TRUNCATED)
  } finally {
    if (!finished) {
      ex.destroy()
      input.destroy()
    }
  }
}

/**
 * A GNU sparse 1.0 member's content (lib/tar.ts): its stored bytes start with the map of its
 * data regions, then hold those regions back to back. Yields the regions' data and, between
 * them and to `realSize`, Holes. A map beyond TAR_SPARSE_MAP_BYTES, one that does not match the
 * stored data, or data the map has no room for: ERR_TAR. Memory: the map.
 */
async function* sparseContent(raw: AsyncIterable<Uint8Array>, realSize: number, path: Buffer): AsyncGenerator<Uint8Array> {
  const bad = (why: string) => new SluiceError('ERR_TAR', `tar stream on stdin is corrupt: sparse member ${displayPath(path)}: ${why}`, { path })
  let map = Buffer.alloc(0)
  let regions: SparseRegion[] | null = null
  let skip = 0 // map bytes (padding) still to pass
  let next = 0 // the next region
  let owed = 0 // bytes of the current region still to come
  let pos = 0 // the file position reached
  for await (const piece of raw) {
    let p = Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength)
    if (regions === null) {
      map = Buffer.concat([map, p])
      const decoded = decodeSparseMap(map, realSize)
      if (decoded === null) {
        if (map.length > TAR_SPARSE_MAP_BYTES) throw bad(`its map is longer than ${TAR_SPARSE_MAP_BYTES} bytes`)
        continue
      }
      regions = decoded.regions
      skip = Math.max(0, decoded.bytes - map.length)
      p = map.subarray(Math.min(decoded.bytes, map.length))
      map = Buffer.alloc(0)
    }
    while (p.length > 0) {
      if (skip > 0) {
        const n = Math.min(skip, p.length)
        p = p.subarray(n)
        skip -= n
        continue
      }
      if (owed === 0) {
        while (next < regions.length && regions[next]![1] === 0) next++
        if (next >= regions.length) throw bad('it stores more data than its map says')
        const [offset, length] = regions[next++]!
        if (offset > pos) yield new Hole(offset - pos)
        pos = offset
        owed = length
      }
      const n = Math.min(owed, p.length)
      yield p.subarray(0, n)
      p = p.subarray(n)
      owed -= n
      pos += n
    }
  }
  if (regions === null) throw bad('its map is cut short')
  while (next < regions.length && regions[next]![1] === 0) next++
  if (owed > 0 || next < regions.length) throw bad('it stores less data than its map says')
  if (pos < realSize) yield new Hole(realSize - pos)
}

/** Reads and drops what is left of a member's content. */
async function drain(pull: Pull): Promise<void> {
  try {
    for (;;) if ((await pull.next()).done) return
  } catch (err) {
    throw tarError(err)
  }
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
  if (typeof original !== 'function') throw new Error('tar-stream has no _decodeLongHeader: update transforms/backup/sources/tar.ts')
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

