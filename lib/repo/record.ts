/**
 * Codec of the metadata record stream (docs/FORMAT.md "Records"). Pure functions.
 *
 * A record is varint(length) || kind byte || fields; a field is varint(tag << 3 | wire) || value,
 * wire 0 = unsigned varint, 1 = zigzag varint, 2 = varint length || bytes. Unknown fields and
 * unknown record kinds are skipped, so the format can grow without breaking old readers.
 */
import { HOLE_ID, isHole, type EntryMeta, type EntryType, type Extent, type Xattr } from '../entry.js'
import { SluiceError } from '../errors.js'
import { ID_BYTES } from './crypto.js'
import { CHUNK_MAX } from '../limits.js'

export const RECORD_ENTRY = 1
export const RECORD_EXTENTS = 2

/** No legitimate record comes near this (a path, a symlink target, xattrs of at most 64 KiB
 *  each); a larger length prefix means a corrupt stream. Bounds the decoder's buffer. */
export const MAX_RECORD_BYTES = 16 * 1024 * 1024

const TYPES: EntryType[] = ['file', 'dir', 'symlink', 'fifo', 'char', 'block', 'socket']

const F = {
  path: 1, type: 2, mode: 3, uid: 4, gid: 5, user: 6, group: 7, size: 8,
  mtimeSec: 9, mtimeNsec: 10, ctimeSec: 11, ctimeNsec: 12, ino: 13, dev: 14, nlink: 15, rdev: 16,
  linkTarget: 17, hardlinkTo: 18, xattr: 19, extents: 20, incomplete: 21,
} as const

const W_UINT = 0, W_SINT = 1, W_BYTES = 2

/** A growable byte writer, reused from record to record. */
class Writer {
  buf = Buffer.allocUnsafeSlow(256)
  pos = 0
  ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return
    let size = this.buf.length * 2
    while (size < this.pos + n) size *= 2
    const next = Buffer.allocUnsafeSlow(size)
    this.buf.copy(next, 0, 0, this.pos)
    this.buf = next
  }
  uint(v: number): void {
    this.ensure(10)
    const b = this.buf
    let p = this.pos
    while (v >= 0x80) {
      b[p++] = (v % 0x80) | 0x80
      v = Math.floor(v / 0x80)
    }
    b[p++] = v
    this.pos = p
  }
  sint(v: number): void {
    this.uint(v >= 0 ? v * 2 : -v * 2 - 1)
  }
  raw(b: Uint8Array): void {
    this.ensure(b.length)
    this.buf.set(b, this.pos)
    this.pos += b.length
  }
  fieldUint(tag: number, v: number): void {
    this.uint((tag << 3) | W_UINT)
    this.uint(v)
  }
  fieldSint(tag: number, v: number): void {
    this.uint((tag << 3) | W_SINT)
    this.sint(v)
  }
  fieldBytes(tag: number, b: Uint8Array): void {
    this.uint((tag << 3) | W_BYTES)
    this.uint(b.length)
    this.raw(b)
  }
}

/** A writer keeps a buffer up to this size between records (most records are far smaller); one
 *  grown past it for an exceptional record (many large xattrs) is dropped after that record. */
const WRITER_KEEP = 64 * 1024
/** Room left before a record's body for its length prefix (a varint of at most 2^53). */
const PREFIX_ROOM = 8

/** Bytes of `v` as a varint. */
function varintLength(v: number): number {
  let n = 1
  while (v >= 0x80) {
    v = Math.floor(v / 0x80)
    n++
  }
  return n
}

/**
 * Encodes records into one reused buffer: no allocation per field or per record. Each record is
 * returned as a view of that buffer, valid until this encoder encodes the next one (the metadata
 * stage, which owns one, copies it into its chunk at once). Memory: one record, and at most
 * WRITER_KEEP bytes between records.
 */
export class RecordEncoder {
  private w = new Writer()

  /** An entry record (with the file's first extents, if any). */
  entry(e: EntryMeta, extents: Extent[] = []): Buffer {
    const w = this.begin(RECORD_ENTRY)
    w.fieldBytes(F.path, e.path)
    w.fieldUint(F.type, TYPES.indexOf(e.type) + 1)
    w.fieldUint(F.mode, e.mode)
    w.fieldUint(F.uid, e.uid)
    w.fieldUint(F.gid, e.gid)
    if (e.user !== undefined) w.fieldBytes(F.user, Buffer.from(e.user))
    if (e.group !== undefined) w.fieldBytes(F.group, Buffer.from(e.group))
    w.fieldUint(F.size, e.size)
    w.fieldSint(F.mtimeSec, e.mtimeSec)
    w.fieldUint(F.mtimeNsec, e.mtimeNsec)
    w.fieldSint(F.ctimeSec, e.ctimeSec)
    w.fieldUint(F.ctimeNsec, e.ctimeNsec)
    w.fieldUint(F.ino, e.ino)
    w.fieldUint(F.dev, e.dev)
    w.fieldUint(F.nlink, e.nlink)
    if (e.rdev !== undefined) w.fieldUint(F.rdev, e.rdev)
    if (e.linkTarget !== undefined) w.fieldBytes(F.linkTarget, e.linkTarget)
    if (e.hardlinkTo !== undefined) w.fieldBytes(F.hardlinkTo, e.hardlinkTo)
    for (const x of e.xattrs ?? []) {
      // bytes: varint(name length) || name || value
      w.uint((F.xattr << 3) | W_BYTES)
      w.uint(varintLength(x.name.length) + x.name.length + x.value.length)
      w.uint(x.name.length)
      w.raw(x.name)
      w.raw(x.value)
    }
    if (extents.length > 0) writeExtents(w, extents)
    if (e.incomplete) w.fieldUint(F.incomplete, 1)
    return this.finish(w)
  }

  /** A record of further extents of the file in the entry record before it; `incomplete` marks
   *  that whole file as not completely read (it may come with no extents). */
  extents(extents: Extent[], incomplete = false): Buffer {
    const w = this.begin(RECORD_EXTENTS)
    if (extents.length > 0) writeExtents(w, extents)
    if (incomplete) w.fieldUint(F.incomplete, 1)
    return this.finish(w)
  }

  /** A record whose body is given (decodeRecord's `raw`): its length prefix and a copy of it. */
  framed(body: Uint8Array): Buffer {
    const w = this.w
    w.pos = PREFIX_ROOM
    w.raw(body)
    return this.finish(w)
  }

  /** Starts a record body after room for its length prefix. */
  private begin(kind: number): Writer {
    const w = this.w
    w.pos = PREFIX_ROOM
    w.uint(kind)
    return w
  }

  /** Puts the length prefix before the body and returns the whole record as a view. */
  private finish(w: Writer): Buffer {
    const n = w.pos - PREFIX_ROOM
    const start = PREFIX_ROOM - varintLength(n)
    const end = w.pos
    w.pos = start
    w.uint(n)
    const out = w.buf.subarray(start, end)
    // The view keeps a large buffer alive for as long as it is needed; the next record starts small.
    if (w.buf.length > WRITER_KEEP) this.w = new Writer()
    return out
  }
}

function writeExtents(w: Writer, extents: Extent[]): void {
  let len = 0
  for (const e of extents) len += ID_BYTES + varintLength(e.offset) + varintLength(e.length)
  w.uint((F.extents << 3) | W_BYTES)
  w.uint(len)
  for (const e of extents) {
    w.raw(e.id)
    w.uint(e.offset)
    w.uint(e.length)
  }
}

/** For the one-off encoders below, which copy the view before anything else can run. */
const oneOff = new RecordEncoder()

/** Encodes an entry record (with the file's first extents, if any). */
export function encodeEntry(e: EntryMeta, extents: Extent[] = []): Buffer {
  return Buffer.from(oneOff.entry(e, extents))
}

/** Encodes a record of further extents of the file in the entry record before it;
 *  `incomplete` marks that whole file as not completely read (it may come with no extents). */
export function encodeExtentsRecord(extents: Extent[], incomplete = false): Buffer {
  return Buffer.from(oneOff.extents(extents, incomplete))
}

export type DecodedRecord =
  | { kind: 'record'; entry: EntryMeta; extents: Extent[]; raw?: Buffer }
  | { kind: 'extents'; extents: Extent[]; incomplete?: boolean }

class Reader {
  pos = 0
  end = 0
  buf: Buffer = EMPTY
  /** Set when a varint was longer than it needs to be (the encoder never writes one). */
  loose = false
  /** Points the reader at buf[start, end) (the decoders reuse their readers: see READERS). */
  at(buf: Buffer, start: number, end: number): this {
    this.buf = buf
    this.pos = start
    this.end = end
    this.loose = false
    return this
  }
  uint(): number {
    let v = 0, mul = 1
    for (;;) {
      if (this.pos >= this.end) throw corrupt('varint runs past the record')
      const b = this.buf[this.pos++]!
      v += (b & 0x7f) * mul
      if (b < 0x80) {
        if (b === 0 && mul > 1) this.loose = true
        return v
      }
      mul *= 0x80
      if (mul > 2 ** 56) throw corrupt('varint too long')
    }
  }
  sint(): number {
    const u = this.uint()
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2
  }
  bytes(): Buffer {
    const n = this.uint()
    if (this.pos + n > this.end) throw corrupt('field runs past the record')
    const b = this.buf.subarray(this.pos, this.pos + n)
    this.pos += n
    return b
  }
}

const EMPTY = Buffer.alloc(0)

/** The decoders' readers, one per nesting level (record, its extents, an xattr), reused for every
 *  record: decoding is synchronous. A fresh Reader and a fresh field bag per record died between
 *  collections and took their hidden classes with them (V8 keeps map transitions weakly), and
 *  every forced collection then threw away the optimized code of decodeRecord and its helpers
 *  ("weak objects": ~300 deoptimizations and recompilations in a real-tree restore). */
const READERS = { record: new Reader(), extents: new Reader(), xattr: new Reader() }

function corrupt(msg: string): SluiceError {
  return new SluiceError('ERR_CORRUPT', `metadata record: ${msg}`)
}

/** The extents of an extents field; with `views`, their ids are views of `b`, not copies. */
function decodeExtents(b: Buffer, views: boolean): Extent[] {
  const r = READERS.extents.at(b, 0, b.length)
  const out: Extent[] = []
  while (r.pos < r.end) {
    if (r.pos + ID_BYTES > r.end) throw corrupt('truncated extent')
    const id = views ? b.subarray(r.pos, r.pos + ID_BYTES) : Buffer.from(b.subarray(r.pos, r.pos + ID_BYTES))
    r.pos += ID_BYTES
    const offset = r.uint(), length = r.uint()
    if (isHole({ id })) {
      // A hole: no chunk. Its length is checked against the file's size by read-snapshot, before
      // any restore skips or truncates by it.
      if (offset !== 0 || length === 0 || !Number.isSafeInteger(length)) throw corrupt(`hole extent ${offset}+${length} is malformed`)
      out.push({ id: HOLE_ID, offset: 0, length })
      continue
    }
    // A range no chunk can hold: a restore would fail late, or trust the length for a buffer.
    if (length === 0 || offset + length > CHUNK_MAX) throw corrupt(`extent ${offset}+${length} of chunk ${id.toString('hex')} lies outside any chunk (at most ${CHUNK_MAX} bytes)`)
    out.push({ id, offset, length })
  }
  return out
}

/** decodeRecord's field bag (see there). */
const FIELDS: { [K in keyof EntryMeta]: EntryMeta[K] | undefined } = {
  path: undefined, type: undefined, mode: undefined, uid: undefined, gid: undefined, user: undefined, group: undefined,
  size: undefined, mtimeSec: undefined, mtimeNsec: undefined, ctimeSec: undefined, ctimeNsec: undefined,
  ino: undefined, dev: undefined, nlink: undefined, rdev: undefined, linkTarget: undefined, hardlinkTo: undefined,
  xattrs: undefined, incomplete: undefined,
}

/** The wire type RecordEncoder writes each field tag with (index: tag). */
const WIRE_OF: readonly number[] = (() => {
  const w: number[] = []
  for (const tag of Object.values(F)) w[tag] = W_UINT
  for (const tag of [F.path, F.user, F.group, F.linkTarget, F.hardlinkTo, F.xattr, F.extents]) w[tag] = W_BYTES
  for (const tag of [F.mtimeSec, F.ctimeSec]) w[tag] = W_SINT
  return w
})()
/** The fields RecordEncoder.entry always writes, as a bit mask of tags. */
const ALWAYS = [F.path, F.type, F.mode, F.uid, F.gid, F.size, F.mtimeSec, F.mtimeNsec, F.ctimeSec, F.ctimeNsec, F.ino, F.dev, F.nlink].reduce((m, t) => m | (1 << t), 0)

/** True when `s` (decoded from `b`) gives back exactly `b` as UTF-8. */
function sameUtf8(s: string, b: Buffer): boolean {
  return Buffer.byteLength(s) === b.length && !s.includes('\ufffd')
}

/**
 * Decodes one record body (without its length prefix); null for a kind this version skips.
 * With `keepRaw`, an entry record whose body is exactly what RecordEncoder.entry writes for the
 * decoded entry and extents (its fields in the encoder's order, none unknown, none missing,
 * every varint as short as it can be) also carries `raw`, that body as a view of `body`: a
 * writer whose entry encodes the same values may copy it instead of encoding (parent-join's
 * reused files). With `keepRaw` the record's byte fields (path, targets, xattrs, extent ids) are
 * views of `body` too, not copies: they keep the piece it lies in alive as long as they live.
 */
export function decodeRecord(body: Buffer, keepRaw = false): DecodedRecord | null {
  const r = READERS.record.at(body, 0, body.length)
  const kind = r.uint()
  if (kind !== RECORD_ENTRY && kind !== RECORD_EXTENTS) return null
  // One field bag for every record (decoding is synchronous), cleared here: one hidden class,
  // and no bag of garbage per record.
  const e = FIELDS
  e.path = e.type = e.mode = e.uid = e.gid = e.user = e.group = e.size = e.mtimeSec = e.mtimeNsec = undefined
  e.ctimeSec = e.ctimeNsec = e.ino = e.dev = e.nlink = e.rdev = e.linkTarget = e.hardlinkTo = e.incomplete = undefined
  let xattrs: Xattr[] | undefined
  let extents: Extent[] = []
  // Whether the body is what the encoder writes: tags rising (xattrs may repeat), each with its
  // wire type, the fields it always writes all present (`seen`), values it gives back as read.
  let exact = keepRaw && kind === RECORD_ENTRY && !r.loose
  let lastTag = 0
  let seen = 0
  while (r.pos < r.end) {
    const key = r.uint()
    const tag = Math.floor(key / 8), wire = key % 8
    if (exact && (tag < lastTag || (tag === lastTag && tag !== F.xattr) || WIRE_OF[tag] !== wire)) exact = false
    lastTag = tag
    if (tag < 31) seen |= 1 << tag
    if (wire === W_BYTES) {
      const b = r.bytes()
      switch (tag) {
        case F.path: e.path = keepRaw ? b : Buffer.from(b); break
        case F.user:
          e.user = b.toString('utf8')
          if (exact && !sameUtf8(e.user, b)) exact = false
          break
        case F.group:
          e.group = b.toString('utf8')
          if (exact && !sameUtf8(e.group, b)) exact = false
          break
        case F.linkTarget: e.linkTarget = keepRaw ? b : Buffer.from(b); break
        case F.hardlinkTo: e.hardlinkTo = keepRaw ? b : Buffer.from(b); break
        case F.xattr: {
          const x = READERS.xattr.at(b, 0, b.length)
          const name = keepRaw ? x.bytes() : Buffer.from(x.bytes())
          if (x.loose) exact = false
          ;(xattrs ??= []).push({ name, value: keepRaw ? b.subarray(x.pos) : Buffer.from(b.subarray(x.pos)) })
          break
        }
        case F.extents:
          extents = decodeExtents(b, keepRaw)
          if (extents.length === 0 || READERS.extents.loose) exact = false
          break
      }
    } else if (wire === W_UINT || wire === W_SINT) {
      const v = wire === W_UINT ? r.uint() : r.sint()
      if (!Number.isSafeInteger(v) || (tag === F.incomplete && v !== 1)) exact = false
      switch (tag) {
        case F.type: {
          const t = TYPES[v - 1]
          if (!t) throw corrupt(`unknown entry type ${v}`)
          e.type = t
          break
        }
        case F.mode: e.mode = v; break
        case F.uid: e.uid = v; break
        case F.gid: e.gid = v; break
        case F.size: e.size = v; break
        case F.mtimeSec: e.mtimeSec = v; break
        case F.mtimeNsec: e.mtimeNsec = v; break
        case F.ctimeSec: e.ctimeSec = v; break
        case F.ctimeNsec: e.ctimeNsec = v; break
        case F.ino: e.ino = v; break
        case F.dev: e.dev = v; break
        case F.nlink: e.nlink = v; break
        case F.rdev: e.rdev = v; break
        case F.incomplete: e.incomplete = v === 1; break
      }
    } else {
      throw corrupt(`unknown wire type ${wire}`)
    }
  }
  if (kind === RECORD_EXTENTS) return e.incomplete ? { kind: 'extents', extents, incomplete: true } : { kind: 'extents', extents }
  if (!e.path || !e.type) throw corrupt('entry record without path or type')
  const entry: EntryMeta = {
    path: e.path, type: e.type, mode: e.mode ?? 0, uid: e.uid ?? 0, gid: e.gid ?? 0, size: e.size ?? 0,
    mtimeSec: e.mtimeSec ?? 0, mtimeNsec: e.mtimeNsec ?? 0, ctimeSec: e.ctimeSec ?? 0, ctimeNsec: e.ctimeNsec ?? 0,
    ino: e.ino ?? 0, dev: e.dev ?? 0, nlink: e.nlink ?? 0,
  }
  if (e.user !== undefined) entry.user = e.user
  if (e.group !== undefined) entry.group = e.group
  if (e.rdev !== undefined) entry.rdev = e.rdev
  if (e.linkTarget) entry.linkTarget = e.linkTarget
  if (e.hardlinkTo) entry.hardlinkTo = e.hardlinkTo
  if (xattrs !== undefined) entry.xattrs = xattrs
  if (e.incomplete) entry.incomplete = true
  if (exact && !r.loose && (seen & ALWAYS) === ALWAYS && lastTag <= F.incomplete) return { kind: 'record', entry, extents, raw: body }
  return { kind: 'record', entry, extents }
}

/**
 * Splits a byte stream fed in arbitrary pieces into records. Holds at most one partial record
 * (bounded by MAX_RECORD_BYTES) plus the piece being parsed. `feed` and `next` decode one record
 * at a time, as it is wanted: a piece's records decoded all at once (a metadata chunk: ~1000)
 * outlive V8's young generation together and are copied and promoted by each scavenge.
 */
export class RecordDecoder {
  private pending: Buffer = Buffer.alloc(0)
  /** The piece being parsed (with the partial record before it) and where its next record starts. */
  private buf: Buffer = EMPTY
  private pos = 0

  /** With `keepRaw`, records the encoder would write byte for byte carry their body as `raw`
   *  (decodeRecord), a view that keeps the piece it was read from alive as long as it lives. */
  constructor(private readonly keepRaw = false) {}

  /** Feeds bytes; returns the records completed by them, in order. */
  push(piece: Uint8Array): DecodedRecord[] {
    this.feed(piece)
    const out: DecodedRecord[] = []
    for (let r = this.next(); r !== undefined; r = this.next()) out.push(r)
    return out
  }

  /** Feeds bytes, to be decoded by next(); the previous piece must be used up (next() gave
   *  undefined). */
  feed(piece: Uint8Array): void {
    if (this.pos < this.buf.length) throw new Error('RecordDecoder.feed before the previous piece was decoded')
    this.buf = this.pending.length === 0 ? Buffer.from(piece.buffer, piece.byteOffset, piece.byteLength) : Buffer.concat([this.pending, piece])
    this.pos = 0
    this.pending = EMPTY
  }

  /** The next complete record of what was fed, or undefined when more bytes are needed (what is
   *  left is then kept as the partial record). */
  next(): DecodedRecord | undefined {
    const buf = this.buf
    let pos = this.pos
    let out: DecodedRecord | undefined
    while (out === undefined) {
      // length prefix
      let len = 0, mul = 1, p = pos, complete = false
      while (p < buf.length) {
        const b = buf[p++]!
        len += (b & 0x7f) * mul
        if (b < 0x80) { complete = true; break }
        mul *= 0x80
        if (mul > 2 ** 35) throw corrupt('length prefix too long')
      }
      if (!complete) break
      if (len > MAX_RECORD_BYTES) throw corrupt(`record of ${len} bytes`)
      if (p + len > buf.length) break
      const rec = decodeRecord(buf.subarray(p, p + len), this.keepRaw)
      if (rec) out = rec
      pos = p + len
    }
    this.pos = pos
    if (out === undefined) {
      this.pending = pos === buf.length ? EMPTY : Buffer.from(buf.subarray(pos))
      this.buf = EMPTY
      this.pos = 0
    }
    return out
  }

  /** A decoder in the same state that goes on independently (for a reader's look-ahead). */
  clone(): RecordDecoder {
    const copy = new RecordDecoder(this.keepRaw)
    // Never written to in place: feed replaces them.
    copy.pending = this.pending
    copy.buf = this.buf
    copy.pos = this.pos
    return copy
  }

  /** Throws if the stream ended inside a record. */
  end(): void {
    if (this.pending.length > 0 || this.pos < this.buf.length) throw corrupt('stream ends inside a record')
  }
}
