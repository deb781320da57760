/**
 * chunk: reads file contents as one continuous byte stream (files packed back to back, so a
 * thousand 2 KB files make one chunk) and cuts it with keyed FastCDC. Emits each chunk as a
 * ChunkItem and each entry as a RecordItem carrying its extents, in source order.
 *
 * A record waits until the chunk holding its last byte is cut (its extents need that chunk's
 * id); records behind it wait too, to keep the order. Memory: the open chunk (at most
 * params.max bytes, in its region) plus at most MAX_PENDING_RECORDS waiting records — past that
 * the chunk is cut early — plus one read block in flight.
 *
 * The open chunk is assembled in a region: of the arena when one is given (lib/chunk-arena.ts;
 * seal and upload then work in the same memory), reserved at twice the average chunk size and
 * grown when a chunk gets larger; else a buffer of its own of the largest chunk size. With an
 * arena, the chunker waits before each piece while the arena has no room for another chunk, or
 * for the open chunk to grow when the piece may take it past its region (ChunkArena.room), so the arena's size (the memory budget's, lib/budget.ts) bounds the
 * content chunks in flight behind it. Each piece
 * a source yields is copied there at once and hashed as it goes, so a source may reuse its read
 * buffer for the next piece.
 *
 * Holes: a source may yield a Hole between pieces (a sparse file's SEEK_HOLE regions, a sparse
 * tar member): it becomes a hole extent of the file (lib/entry.ts), chunks nothing and is not
 * counted as bytes read.
 *
 * Sizes: a file's record carries its size, and its extents always add up to it: a walked file
 * that shrank while being read is padded with zeros (as GNU tar does) and reported. A source
 * that cannot know a size up front (stdin) sets size -1; that one record is held back until its
 * content ends, with its extents (about 100 bytes per MiB of content), then sized exactly.
 */
import type { Duplex } from 'node:stream'
import { HOLE_ID, Hole, isHole, type ChunkItem, type EntryMeta, type Extent, type ExtentsItem, type RecordItem, type SourceEntry } from '../../lib/entry.js'
import { Cdc, type ChunkerParams } from '../../lib/fastcdc.js'
import { SluiceError } from '../../lib/errors.js'
import { stage } from '../../lib/flow.js'
import { displayPath, IdArena } from '../../lib/bytes.js'
import { EXTENTS_PER_RECORD, MAX_PENDING_RECORDS, READ_BLOCK } from '../../lib/limits.js'
import type { BackupStats } from '../../lib/stats.js'
import type { IdHasher } from '../../lib/repo/crypto.js'
import type { ChunkArena, ChunkSlot } from '../../lib/chunk-arena.js'
import { CHUNK_OBJECT_OVERHEAD, CHUNK_PLAIN_OFFSET } from '../../lib/repo/objects.js'
import { copyBytes } from '../../lib/native.js'

/** What the chunker needs of a repository: the keyed gear table and the keyed id hash. */
export interface ChunkerKeys {
  gear: Int32Array
  chunkId(data: Uint8Array): Buffer
  /** chunkId fed piece by piece (the same ids). With an arena it is needed: the arena is shared
   *  memory, which the hash function does not take, so pieces are hashed as they are copied. */
  idHasher?(): IdHasher
}

export interface ChunkerOptions {
  params: ChunkerParams
  /** Per-file trouble (a file that vanished or cannot be read): reported, the backup goes on. */
  onWarning: (err: SluiceError) => void
  stats?: BackupStats
  /** Assemble chunks in this arena (and hand them on with their slot), so that no chunk-sized
   *  buffer is allocated per chunk. Without one, each chunk gets a buffer of its own. */
  arena?: ChunkArena
  /** Each file as its turn comes: read (new or changed) or taken from the parent (unchanged). */
  onFile?: (path: Buffer, status: FileStatus) => void
}

/** What a backup does with a file, in restic's words for `backup -v`. */
export type FileStatus = 'new' | 'changed' | 'unchanged'

type Out = ChunkItem | RecordItem | ExtentsItem

/** Copies what the snapshot records, leaving the source-only fields behind. Explicit fields,
 *  not a rest spread: V8 makes a rest copy an order of magnitude slower (30 µs per entry). */
function metaOf(e: SourceEntry): EntryMeta {
  const m: EntryMeta = {
    path: e.path, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size,
    mtimeSec: e.mtimeSec, mtimeNsec: e.mtimeNsec, ctimeSec: e.ctimeSec, ctimeNsec: e.ctimeNsec,
    ino: e.ino, dev: e.dev, nlink: e.nlink,
  }
  if (e.user !== undefined) m.user = e.user
  if (e.group !== undefined) m.group = e.group
  if (e.rdev !== undefined) m.rdev = e.rdev
  if (e.linkTarget !== undefined) m.linkTarget = e.linkTarget
  if (e.hardlinkTo !== undefined) m.hardlinkTo = e.hardlinkTo
  if (e.xattrs !== undefined) m.xattrs = e.xattrs
  return m
}

export function createChunker(keys: ChunkerKeys, opts: ChunkerOptions): Duplex {
  return stage<SourceEntry | ExtentsItem, Out>(source => chunkStream(source, keys, opts))
}

async function* chunkStream(source: AsyncIterable<SourceEntry | ExtentsItem>, keys: ChunkerKeys, opts: ChunkerOptions): AsyncIterable<Out> {
  const cdc = new Cdc(keys.gear, opts.params)
  const stats = opts.stats
  // The open chunk: its region (null until its first byte), hash, length, and the extents
  // waiting for its id.
  const arena = opts.arena
  const regionBytes = opts.params.max + CHUNK_OBJECT_OVERHEAD
  // In the arena the open chunk starts with room for twice the average chunk and grows, rarely,
  // to the largest (ChunkArena.grow says why).
  const firstRegionBytes = 2 * opts.params.avg + CHUNK_OBJECT_OVERHEAD
  const nextRegionBytes = Math.min(regionBytes, firstRegionBytes)
  let region: Buffer | null = null
  let slot: ChunkSlot | null = null
  let hasher: IdHasher | null = null
  let openLen = 0
  let openExtents: Extent[] = []
  // Records waiting for the open chunk, in output order.
  let queue: (RecordItem | ExtentsItem)[] = []
  // Where new extents of the file being read go, and whether that item has been emitted.
  let target: RecordItem | ExtentsItem | null = null
  let targetEmitted = false

  // A record of unknown size held back (with what follows it) until its content ends.
  let held: RecordItem | null = null
  const heldIds = new IdArena()

  const openRegion = (): Buffer => {
    if (arena) {
      slot = arena.reserve(Math.min(regionBytes, firstRegionBytes))
      region = slot.region
    } else {
      region = Buffer.allocUnsafeSlow(regionBytes)
    }
    hasher = keys.idHasher?.() ?? null
    return region
  }

  const cut = (): Out[] => {
    const data = region!.subarray(CHUNK_PLAIN_OFFSET, CHUNK_PLAIN_OFFSET + openLen)
    // Without a hasher, hash the region (a copy of it when it is shared memory).
    const id = hasher ? hasher.digest() : keys.chunkId(slot ? Buffer.from(data) : data)
    const item: ChunkItem = { kind: 'chunk', id, data, size: openLen, meta: false }
    if (slot) item.slot = arena!.shrink(slot, openLen + CHUNK_OBJECT_OVERHEAD)
    // Extents of a held record stay for as long as its stream runs: their ids go into a packed
    // arena, since the id itself is a view into Node's shared 8 KiB allocation pool and would pin
    // one pool slab per few chunks (measured: +9 MB over a 10 GiB stdin stream).
    const extentId = held ? heldIds.copy(id) : id
    for (const e of openExtents) e.id = extentId
    const keep = held ? queue.indexOf(held) : -1
    const emitted = keep < 0 ? queue : queue.slice(0, keep)
    const out: Out[] = [item, ...emitted]
    if (target && emitted.includes(target)) targetEmitted = true
    region = null
    slot = null
    hasher = null
    openLen = 0
    openExtents = []
    queue = keep < 0 ? [] : queue.slice(keep)
    cdc.reset()
    return out
  }

  /** Adds `piece` (part of the current file) to the open chunk as an extent. */
  const addSegment = (piece: Uint8Array): void => {
    if (piece.length === 0) return
    const last = openExtents[openExtents.length - 1]
    const t = target!
    if (!targetEmitted && last && t.extents[t.extents.length - 1] === last) {
      last.length += piece.length // contiguous with the previous piece of this file
    } else {
      if (targetEmitted || t.extents.length >= EXTENTS_PER_RECORD) {
        target = { kind: 'extents', extents: [] }
        targetEmitted = false
        queue.push(target)
      }
      const ext: Extent = { id: EMPTY_ID, offset: openLen, length: piece.length }
      target!.extents.push(ext)
      openExtents.push(ext)
    }
    let r = region ?? openRegion()
    const need = openLen + piece.length + CHUNK_OBJECT_OVERHEAD
    if (need > r.length) {
      slot = arena!.grow(slot!, regionBytes, CHUNK_PLAIN_OFFSET + openLen)
      region = r = slot.region
    }
    // The addon's memcpy into the arena: V8's own copy into shared memory goes byte by byte
    // when the piece and its place differ in alignment, as they mostly do (10x slower).
    copyBytes(r, CHUNK_PLAIN_OFFSET + openLen, piece)
    hasher?.update(piece)
    openLen += piece.length
  }

  /** Adds a hole of the current file: an extent of its own (merged with a hole just before),
   *  no bytes in any chunk. */
  const addHole = (length: number): void => {
    if (length <= 0) return
    const t = target!
    const last = t.extents[t.extents.length - 1]
    if (!targetEmitted && last && isHole(last)) {
      last.length += length
      return
    }
    if (targetEmitted || t.extents.length >= EXTENTS_PER_RECORD) {
      target = { kind: 'extents', extents: [] }
      targetEmitted = false
      queue.push(target)
    }
    target!.extents.push({ id: HOLE_ID, offset: 0, length })
  }

  /** Cuts `piece` of the current file into the open chunk, yielding every chunk it completes. */
  function* feed(piece: Uint8Array): Generator<Out> {
    let pos = 0
    while (pos < piece.length) {
      const at = cdc.next(piece, pos)
      if (at < 0) {
        addSegment(piece.subarray(pos))
        return
      }
      addSegment(piece.subarray(pos, at))
      pos = at
      yield* cut()
    }
  }

  /** True when an item that needs no chunk could leave at once (what flushIfResolved would
   *  give after queueing it): no queue or array per item and no yield* for an incremental's
   *  reused files and directories. */
  const nothingWaits = (): boolean => queue.length === 0 && openExtents.length === 0 && !held

  const flushIfResolved = (): Out[] => {
    if (held) return []
    if (openExtents.length > 0 && queue.length < MAX_PENDING_RECORDS) return []
    if (openExtents.length > 0) return cut() // too many records waiting: cut early
    const out = queue
    queue = []
    return out
  }

  for await (const item of source) {
    if (item.kind === 'extents') {
      // More reused extents of the entry before: they name stored chunks already.
      if (stats) for (const e of item.extents) stats.bytesTotal += e.length
      if (nothingWaits()) yield item
      else {
        queue.push(item)
        for (const out of flushIfResolved()) yield out
      }
      continue
    }
    if (stats) {
      if (item.type === 'file') stats.files++
      else if (item.type === 'dir') stats.dirs++
      else stats.others++
    }
    if (item.reuse) {
      if (item.type === 'file') opts.onFile?.(item.path, 'unchanged')
      if (stats) {
        stats.filesUnchanged++
        for (const e of item.reuse) stats.bytesTotal += e.length
      }
      const rec: RecordItem = { kind: 'record', entry: metaOf(item), extents: item.reuse, raw: item.reuseRecord }
      if (nothingWaits()) yield rec
      else {
        queue.push(rec)
        for (const out of flushIfResolved()) yield out
      }
      continue
    }
    const rec: RecordItem = { kind: 'record', entry: metaOf(item), extents: [], raw: item.reuseRecord }
    if (item.type !== 'file' || !item.content || item.hardlinkTo) {
      if (nothingWaits()) yield rec
      else {
        queue.push(rec)
        for (const out of flushIfResolved()) yield out
      }
      continue
    }
    queue.push(rec)
    if (stats) item.changed ? stats.filesChanged++ : stats.filesNew++
    opts.onFile?.(item.path, item.changed ? 'changed' : 'new')
    target = rec
    targetEmitted = false
    if (item.size < 0) held = rec
    let read = 0
    let dropped = false
    let incomplete = false
    try {
      for await (const piece of item.content()) {
        if (piece instanceof Hole) {
          // A hole (SEEK_HOLE, a sparse tar member): recorded, not read, not chunked.
          read += piece.hole
          if (stats) stats.bytesTotal += piece.hole
          addHole(piece.hole)
          continue
        }
        read += piece.length
        if (stats) {
          stats.bytesRead += piece.length
          stats.bytesTotal += piece.length
        }
        // Wait for the arena to have room for the next chunk while chunks downstream fill it
        // (lib/chunk-arena.ts `room`): the arena bounds the content in flight. When this piece
        // may take the open chunk past its region, room for it to grow too, or it would spill.
        const grows = slot !== null && openLen + piece.length + CHUNK_OBJECT_OVERHEAD > slot.region.length
        const wait = arena?.room(nextRegionBytes, slot, grows ? regionBytes : 0)
        if (wait) await wait
        yield* feed(piece)
      }
    } catch (cause) {
      // Per-file trouble (ERR_READ) is a warning; a broken source (ERR_TAR, ERR_COMMAND, ...)
      // would make the snapshot wrong, so it ends the backup.
      if (cause instanceof SluiceError && cause.code !== 'ERR_READ') throw cause
      const err = cause instanceof SluiceError ? cause : new SluiceError('ERR_READ', `cannot read ${describe(item)}: ${(cause as Error).message}`, { cause, path: item.path })
      if (read === 0 && !targetEmitted) {
        // Nothing of it was stored: leave the file out of the snapshot.
        queue.splice(queue.indexOf(rec), 1)
        held = null
        dropped = true
        if (stats) {
          stats.files--
          item.changed ? stats.filesChanged-- : stats.filesNew--
        }
        opts.onWarning(err)
      } else {
        incomplete = true
        opts.onWarning(new SluiceError('ERR_READ', `${err.message} (after ${read} bytes; the snapshot keeps what was read)`, { cause, path: item.path }))
      }
    }
    if (held) {
      rec.entry.size = read
      held = null
    } else if (!dropped && read < item.size) {
      incomplete = true
      opts.onWarning(new SluiceError('ERR_READ', `${describe(item)} shrank by ${item.size - read} bytes while it was read; padded with zeros`, { path: item.path }))
      for (let left = item.size - read; left > 0; ) {
        const n = Math.min(left, ZEROS.length)
        yield* feed(ZEROS.subarray(0, n))
        left -= n
      }
    }
    if (incomplete) {
      // A record a cut has already emitted cannot be changed: the mark then goes on a trailing
      // extents record, which the next backup's parent-join reads before it reuses the file.
      if (queue.includes(rec)) rec.entry.incomplete = true
      else queue.push({ kind: 'extents', extents: [], incomplete: true })
    }
    target = null
    yield* flushIfResolved()
  }
  if (openLen > 0) yield* cut()
  yield* queue
}

/** The id of an extent until its chunk is cut: not zeros, which would mark it as a hole. */
const EMPTY_ID = Buffer.alloc(32, 0xff)

const ZEROS = Buffer.alloc(READ_BLOCK)

function describe(e: SourceEntry): string {
  return displayPath(e.fsPath ?? e.path)
}
