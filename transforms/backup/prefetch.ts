/**
 * prefetch: reads the content of upcoming small files, in batches, off the main thread, while
 * the chunker works on earlier ones. A tree of small files is bound by per-file work: open, read
 * and close are three system calls per file, on the main thread if synchronous, or three
 * thread-pool round trips (three times the CPU) if not. Here a run of consecutive small files
 * becomes one `readFiles` call of the addon (native/fsbatch.c), which opens, reads and closes them
 * all on one thread-pool thread into one arena buffer; the main thread pays one round trip per
 * batch and goes on chunking meanwhile. Up to PREFETCH_BATCHES batches are in flight, so reads
 * of a cold disk overlap too. Entries keep their order (lib/ordered-batches.ts, shared with
 * xattr-read).
 *
 * A batch ends at PREFETCH_BATCH_FILES files, `batchBytes` bytes, or at the first entry
 * that is not a small file to read (a directory, a large or reused file), so such entries are
 * never held back behind a batch that is still filling.
 *
 * Arenas are reused: one goes back to the stage's free list once every file in it has been
 * consumed (the chunker copies each piece into its chunk before it asks for the next; see
 * SourceEntry.content), so a tree of any size reads into the same few megabytes, with no page
 * faults on fresh arenas and no dead ones for the collector.
 *
 * Changes are not silent (read-content.ts says how): each file is read with one byte more than
 * its lstat size, so growth shows, and lstat'ed again right after its read, by `readFiles` on the
 * same pool thread (not on the main thread: ~5 % of its time on real-tree); a file that grew or whose
 * size, mtime or ctime moved gets an ERR_CHANGED warning and keeps its lstat size of content. A
 * file whose lstat size is 0 but that has content (procfs, sysfs) gets size -1 and its own
 * reader: it is read to its end and the chunker records the size read, as restic does.
 *
 * Memory: at most `batches` + 2 arenas of `batchBytes` (the memory budget's share, lib/budget.ts;
 * by default PREFETCH_BATCHES and PREFETCH_BATCH_BYTES) (being read, being
 * consumed, free; a batch of one larger file, when `maxFileSize` allows one, gets an arena of
 * its own), and at most PREFETCH_BATCH_FILES × (`batches` + 1) entries waiting in order.
 */
import type { Duplex } from 'node:stream'
import type { ExtentsItem, SourceEntry } from '../../lib/entry.js'
import { stage } from '../../lib/flow.js'
import { orderedBatches } from '../../lib/ordered-batches.js'
import { SluiceError } from '../../lib/errors.js'
import { displayPath } from '../../lib/bytes.js'
import { PREFETCH_BATCH_BYTES, PREFETCH_BATCH_FILES, PREFETCH_BATCHES, READ_BLOCK } from '../../lib/limits.js'
import { errnoError, lstatNumbers, readFiles, readFilesStat, READ_FILES_STAT_FIELDS, type LStat } from '../../lib/native.js'
import { changedWhileRead, stampChange } from './sources/read-content.js'

export interface PrefetchOptions {
  /** Only files up to this size are read ahead; larger ones stream when their turn comes. */
  maxFileSize?: number
  /** Batches in flight (default PREFETCH_BATCHES) and bytes per batch (PREFETCH_BATCH_BYTES):
   *  the memory budget's share (lib/budget.ts). */
  batches?: number
  batchBytes?: number
  /** Receives ERR_CHANGED for files that changed while they were read. */
  onWarning?: (err: SluiceError) => void
  /** The batched read (default: the addon's readFiles); tests inject delays and changes here. */
  readFiles?: typeof readFiles
  /** lstat after a batch (default: the addon's lstatNumbers). */
  lstat?: (fsPath: Buffer) => LStat
}

/** What a batch's reads need besides the batch. */
interface Io {
  readFiles: typeof readFiles
  lstat: (fsPath: Buffer) => LStat
  /** readFiles lstats each file after its read on the pool thread (the addon's own reads, none
   *  injected): `lstat` is then not called. */
  statOnPool: boolean
  onWarning: (err: SluiceError) => void
  take(bytes: number): Buffer
  give(arena: Buffer): void
}

type Item = SourceEntry | ExtentsItem

interface Batch {
  items: SourceEntry[]
}

export function createPrefetch(opts: PrefetchOptions = {}): Duplex {
  const max = opts.maxFileSize ?? READ_BLOCK
  const inFlight = Math.max(1, opts.batches ?? PREFETCH_BATCHES)
  return stage<Item, Item>(source => prefetchStream(source, max, inFlight, opts))
}

function prefetchStream(source: AsyncIterable<Item>, max: number, inFlight: number, opts: PrefetchOptions): AsyncIterable<Item> {
  const batchBytes = opts.batchBytes ?? PREFETCH_BATCH_BYTES
  const free: Buffer[] = []
  const io: Io = {
    readFiles: opts.readFiles ?? readFiles,
    lstat: opts.lstat ?? lstatNumbers,
    statOnPool: opts.readFiles === undefined && opts.lstat === undefined,
    onWarning: opts.onWarning ?? (() => {}),
    take: (bytes: number): Buffer => (bytes <= batchBytes ? free.pop() ?? Buffer.allocUnsafeSlow(batchBytes) : Buffer.allocUnsafeSlow(bytes)),
    give: (arena: Buffer): void => {
      if (arena.length === batchBytes && free.length <= inFlight) free.push(arena)
    },
  }
  return orderedBatches<Item, { items: Item[] }>(source, {
    // One byte more than the lstat size of each file: a file that grew shows.
    weigh: item =>
      item.kind === 'entry' && item.type === 'file' && item.content !== undefined && item.reuse === undefined &&
      item.fsPath !== undefined && item.hardlinkTo === undefined && item.size >= 0 && item.size <= max
        ? item.size + 1
        : undefined,
    open: () => ({ items: [] }),
    full: (b, bytes, next) => b.items.length >= PREFETCH_BATCH_FILES || bytes + next > batchBytes,
    read: b => readBatch(b as Batch, io),
    inFlight,
    maxQueued: PREFETCH_BATCH_FILES * (inFlight + 1),
  })
}

/** Reads every file of the batch and gives each entry a `content` that yields its bytes (or
 *  throws ERR_READ as a direct read would). The arena goes back to `io` once every file's
 *  content has been consumed. Never rejects. */
async function readBatch(b: Batch, io: Io): Promise<void> {
  const n = b.items.length
  let bytes = 0
  for (const e of b.items) bytes += e.size + 1
  const arena = io.take(bytes)
  const results = new Int32Array(2 * n)
  const paths = b.items.map(e => e.fsPath!)
  const sizes = b.items.map(e => e.size + 1)
  const stats = io.statOnPool ? new Float64Array(READ_FILES_STAT_FIELDS * n) : undefined
  let failure: unknown
  try {
    await io.readFiles(paths, sizes, arena, results, stats)
  } catch (err) {
    failure = err
  }
  // Files of the batch whose content has not been consumed yet.
  let unread = n
  const consumed = (): void => {
    if (--unread === 0) io.give(arena)
  }
  let off = 0
  for (let i = 0; i < n; i++) {
    const e = b.items[i]!
    const got = results[2 * i]!
    if (failure !== undefined) {
      const err = new SluiceError('ERR_READ', `cannot read ${displayPath(e.fsPath!)}: ${(failure as Error).message}`, { cause: failure, path: e.fsPath })
      e.content = () => fail(err)
      consumed()
    } else if (got < 0) {
      const step = results[2 * i + 1] === 0 ? 'open' : 'read'
      const cause = errnoError(-got, step, e.fsPath!)
      const err = new SluiceError('ERR_READ', `cannot ${step} ${displayPath(e.fsPath!)}: ${cause.message}`, { cause, path: e.fsPath })
      e.content = () => fail(err)
      consumed()
    } else if (e.size === 0 && got > 0) {
      // lstat says empty, yet there is content (procfs, sysfs): read it to its end on its own.
      e.size = -1
      consumed()
    } else {
      // A file that shrank is left to the chunker, which pads it and warns.
      const size = e.size
      const change = got > size ? `grew past its ${size} bytes; the snapshot keeps those` : got === size ? restat(e, io, stats, i) : null
      if (change !== null) io.onWarning(changedWhileRead(e.fsPath!, change))
      const piece = arena.subarray(off, off + Math.min(got, size))
      let asked = false
      if (piece.length === 0) {
        e.content = nothing
        consumed()
      } else e.content = () => {
        // A second call (a contract breach) must not give the arena back twice.
        if (asked) return fail(new SluiceError('ERR_READ', `content of ${displayPath(e.fsPath!)} was already read`, { path: e.fsPath }))
        asked = true
        return once(piece, consumed)
      }
    }
    off += sizes[i]!
  }
}

/** What changed between the walk's lstat of `e` and one after its read (file `i` of the batch's
 *  `stats` when readFiles made it on the pool), or null. */
function restat(e: SourceEntry, io: Io, stats: Float64Array | undefined, i: number): string | null {
  try {
    return stampChange(e, stats ? readFilesStat(stats, i, e.fsPath!) : io.lstat(e.fsPath!))
  } catch (err) {
    return `gone after the read: ${(err as Error).message}`
  }
}

/** Yields `piece`; `done` runs when the consumer asks for more or stops (the piece is then no
 *  longer its). An entry whose content is never asked for keeps its arena from
 *  the free list: it is then collected, and the free list makes a new one. */
async function* once(piece: Uint8Array, done: () => void): AsyncGenerator<Uint8Array> {
  try {
    yield piece
  } finally {
    done()
  }
}

async function* nothing(): AsyncGenerator<Uint8Array> {}

// eslint-disable-next-line require-yield
async function* fail(err: Error): AsyncGenerator<Uint8Array> {
  throw err
}
