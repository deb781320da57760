/**
 * Byte layouts of the sealed objects of a repository (docs/FORMAT.md). Pure functions.
 *
 * chunk object:    0x01 || compression(1) || nonce(24) || XChaCha20-Poly1305(encKey, payload,
 *                  ad = 0x01 || chunk id || compression)
 * snapshot object: 0x01 || nonce(24) || XChaCha20-Poly1305(encKey, JSON, ad = 0x02 || snapshot id)
 * tree node:       the plaintext of a metadata chunk: 0x01 || id(32) * n
 *
 * The chunk id in the associated data binds an object to its key: a valid object stored under
 * another id fails authentication instead of restoring the wrong bytes.
 */
import { Decompressor } from 'zstd-napi'
// The low-level binding (compress2 into a caller's buffer). A CommonJS module whose exports
// Node cannot list for ESM, hence the default import.
import zstdBinding from 'zstd-napi/binding.js'
const zstd = zstdBinding as typeof import('zstd-napi/binding.js')
import { chunkId, open, seal, sealInto, ID_BYTES, NONCE_BYTES, TAG_BYTES } from './crypto.js'
import { SluiceError } from '../errors.js'
import { DECODE_AUTH, DECODE_COMPRESSION, DECODE_FORMAT, DECODE_FRAME_SIZE, DECODE_ID, DECODE_TRUNCATED, type PoolDecoder, type PoolZstd } from '../native.js'
import { hex } from '../bytes.js'
import { CHUNK_MAX, PROBE_MIN_CHUNK, PROBE_SAMPLE, TREE_FANOUT, ZSTD_HIGH_WINDOW_LOG, ZSTD_LEVEL, ZSTD_MAX_LEVEL } from '../limits.js'

export const OBJECT_VERSION = 1
export const COMPRESSION_NONE = 0
export const COMPRESSION_ZSTD = 1
const AD_CHUNK = 1
const AD_SNAPSHOT = 2
const TREE_NODE_VERSION = 1

function ad(kind: number, id: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(1 + id.length)
  b[0] = kind
  b.set(id, 1)
  return b
}

/** Storage key of a chunk: chunks/<first two hex digits>/<64 hex digits>. */
export function chunkKey(id: Uint8Array): string {
  const h = hex(id)
  return `chunks/${h.slice(0, 2)}/${h}`
}

/** Parses a chunk key back into its id; null for keys that are not chunk keys. */
export function idFromChunkKey(key: string): Buffer | null {
  const m = /^chunks\/[0-9a-f]{2}\/([0-9a-f]{64})$/.exec(key)
  return m ? Buffer.from(m[1]!, 'hex') : null
}

// One zstd context each, reused: a context per call costs a few MB of malloc churn per chunk,
// which glibc keeps as RSS. The compressor writes into one buffer, grown to the largest bound
// needed and reused, so compressAndSeal costs one allocation per chunk (the sealed object)
// instead of three (zstd's output, its trimmed copy, the sealed object): fresh chunk-sized
// allocations are page faults and GC work.
let cctx: InstanceType<typeof zstd.CCtx> | undefined
let cctxLevel = -1
let cctxWindowLog = -1
let scratch: Buffer | undefined
let decompressor: Decompressor | undefined
let dctx: InstanceType<typeof zstd.DCtx> | undefined

let probeCtx: InstanceType<typeof zstd.CCtx> | undefined

/** The reused scratch buffer, at least `length` bytes; a view of exactly `length`. */
function scratchOf(length: number): Buffer {
  if (!scratch || scratch.length < length) scratch = Buffer.allocUnsafeSlow(length)
  return scratch.subarray(0, length)
}

/** The level that turns compression off: every chunk is stored as is (still encrypted). */
export const COMPRESSION_OFF = 0

/** A backup's compression level, checked: an integer from COMPRESSION_OFF to ZSTD_MAX_LEVEL
 *  (default ZSTD_LEVEL); anything else is ERR_ARGS. */
export function checkCompressionLevel(level: number = ZSTD_LEVEL): number {
  if (!Number.isInteger(level) || level < COMPRESSION_OFF || level > ZSTD_MAX_LEVEL) {
    throw new SluiceError('ERR_ARGS', `compression level must be an integer from ${COMPRESSION_OFF} (off) to ${ZSTD_MAX_LEVEL}, not ${level}`)
  }
  return level
}

/** `--compression`, as restic spells it: `auto` (ZSTD_LEVEL), `off`, `max` (ZSTD_MAX_LEVEL), or
 *  a zstd level 1..ZSTD_MAX_LEVEL. */
export function parseCompression(text: string): number {
  const t = text.trim().toLowerCase()
  if (t === 'auto') return ZSTD_LEVEL
  if (t === 'off') return COMPRESSION_OFF
  if (t === 'max') return ZSTD_MAX_LEVEL
  if (!/^\d+$/.test(t) || Number(t) < 1) throw new SluiceError('ERR_ARGS', `--compression takes auto, off, max or a level 1..${ZSTD_MAX_LEVEL}, not '${text}'`)
  return checkCompressionLevel(Number(t))
}

/**
 * True when three samples of the chunk (start, middle, end; PROBE_SAMPLE bytes each) do not
 * compress at all at zstd level 1: random, encrypted or already compressed data (media,
 * archives), which zstd level 3 would spend ~1.1 ms per MiB on only to store as is. The probe
 * costs ~0.06 ms per chunk; any sample that compresses (text: the first) sends the chunk to zstd.
 * A chunk that is incompressible where sampled but compressible elsewhere is stored as is: it
 * costs space, never correctness. borg's `auto` compression makes the same bet with lz4.
 */
function incompressible(plain: Uint8Array): boolean {
  if (plain.length < PROBE_MIN_CHUNK) return false
  if (!probeCtx) {
    probeCtx = new zstd.CCtx()
    probeCtx.setParameter(zstd.CParameter.compressionLevel, 1)
  }
  const bound = zstd.compressBound(PROBE_SAMPLE)
  if (!scratch || scratch.length < bound) scratch = Buffer.allocUnsafeSlow(bound)
  for (const at of [0, (plain.length - PROBE_SAMPLE) >> 1, plain.length - PROBE_SAMPLE]) {
    const n = probeCtx.compress2(scratch, plain.subarray(at, at + PROBE_SAMPLE))
    if (n < PROBE_SAMPLE * 0.99) return false
  }
  return true
}

/** zstd into the reused buffer: a view valid until the next call, or null when zstd does not
 *  make the payload smaller (or the probe says it would not, or `level` is COMPRESSION_OFF). */
function compressInto(plain: Uint8Array, level: number, windowLog: number): Buffer | null {
  if (level === COMPRESSION_OFF || incompressible(plain)) return null
  if (!cctx || cctxLevel !== level || cctxWindowLog !== windowLog) {
    cctx = new zstd.CCtx()
    cctx.setParameter(zstd.CParameter.compressionLevel, level)
    // Above the default level zstd's match tables grow with its window; a capped window shrinks
    // them with it (zstd clamps hashLog and chainLog to the window). See ZSTD_HIGH_WINDOW_LOG;
    // the memory budget (lib/budget.ts) may give a smaller window.
    if (level > ZSTD_LEVEL) cctx.setParameter(zstd.CParameter.windowLog, windowLog)
    cctxLevel = level
    cctxWindowLog = windowLog
  }
  const bound = zstd.compressBound(plain.length)
  if (!scratch || scratch.length < bound) scratch = Buffer.allocUnsafeSlow(bound)
  const n = cctx.compress2(scratch, plain)
  return n < plain.length ? scratch.subarray(0, n) : null
}

/** zstd if it makes the payload smaller, else stored as is. */
export function compressPayload(plain: Uint8Array, level: number, windowLog = ZSTD_HIGH_WINDOW_LOG): { data: Uint8Array; compression: number } {
  const c = compressInto(plain, level, windowLog)
  return c ? { data: Buffer.from(c), compression: COMPRESSION_ZSTD } : { data: plain, compression: COMPRESSION_NONE }
}

/** compressPayload + sealChunk in one step, without a copy of the compressed bytes. `windowLog`
 *  is the zstd window of levels above ZSTD_LEVEL. */
export function compressAndSeal(encKey: Uint8Array, id: Uint8Array, plain: Uint8Array, level: number, windowLog = ZSTD_HIGH_WINDOW_LOG): { obj: Buffer; compression: number } {
  const c = compressInto(plain, level, windowLog)
  const compression = c ? COMPRESSION_ZSTD : COMPRESSION_NONE
  return { obj: sealChunk(encKey, id, compression, c ?? plain), compression }
}

/** Where a chunk's plaintext sits in the region it is sealed in place in (compressAndSealInPlace):
 *  after the object's header (format and compression bytes, nonce). */
export const CHUNK_PLAIN_OFFSET = 2 + NONCE_BYTES
/** Bytes a region needs beyond the plaintext: the header before, the tag after. */
export const CHUNK_OBJECT_OVERHEAD = CHUNK_PLAIN_OFFSET + TAG_BYTES

/**
 * compressAndSeal within one region: the plaintext at region[CHUNK_PLAIN_OFFSET, + plainLen)
 * becomes the chunk object at region[0, length). The region must hold plainLen +
 * CHUNK_OBJECT_OVERHEAD bytes. zstd writes into the reused scratch buffer and the cipher from
 * there into the region (in place when zstd does not help), so a chunk costs no allocation
 * of its size. Same bytes as compressAndSeal, but for the random nonce.
 */
export function compressAndSealInPlace(encKey: Uint8Array, id: Uint8Array, region: Uint8Array, plainLen: number, level: number, windowLog = ZSTD_HIGH_WINDOW_LOG): { length: number; compression: number } {
  if (region.length < plainLen + CHUNK_OBJECT_OVERHEAD) throw new RangeError('chunk region too small')
  const plain = region.subarray(CHUNK_PLAIN_OFFSET, CHUNK_PLAIN_OFFSET + plainLen)
  return sealInPlace(encKey, id, region, plain, compressInto(plain, level, windowLog))
}

/**
 * compressAndSealInPlace with zstd on the thread pool (lib/native.ts PoolZstd), the calling
 * thread free meanwhile; the probe for incompressible data and the cipher run on the calling
 * thread. zstd writes into `out` (at least PoolZstd.bound(plainLen) bytes), which, like the
 * region, must not be touched until this settles. Same bytes as compressAndSealInPlace, but for
 * the random nonce.
 */
export async function compressAndSealInPlacePooled(encKey: Uint8Array, id: Uint8Array, region: Uint8Array, plainLen: number, level: number, zstdPool: PoolZstd, out: Buffer): Promise<{ length: number; compression: number }> {
  if (region.length < plainLen + CHUNK_OBJECT_OVERHEAD) throw new RangeError('chunk region too small')
  const plain = region.subarray(CHUNK_PLAIN_OFFSET, CHUNK_PLAIN_OFFSET + plainLen)
  return sealInPlace(encKey, id, region, plain, await compressPooled(plain, level, zstdPool, out))
}

/** compressAndSeal with zstd on the thread pool, as compressAndSealInPlacePooled does it. */
export async function compressAndSealPooled(encKey: Uint8Array, id: Uint8Array, plain: Uint8Array, level: number, zstdPool: PoolZstd, out: Buffer): Promise<{ obj: Buffer; compression: number }> {
  const c = await compressPooled(plain, level, zstdPool, out)
  const compression = c ? COMPRESSION_ZSTD : COMPRESSION_NONE
  return { obj: sealChunk(encKey, id, compression, c ?? plain), compression }
}

/** compressInto on the thread pool: the zstd frame in `out` when it is smaller than `plain`,
 *  else null (compression off, the probe says incompressible, or zstd did not help). */
async function compressPooled(plain: Uint8Array, level: number, zstdPool: PoolZstd, out: Buffer): Promise<Buffer | null> {
  if (level === COMPRESSION_OFF || incompressible(plain)) return null
  const n = await zstdPool.compress(plain, out)
  return n < plain.length ? out.subarray(0, n) : null
}

/** The object header and the cipher of compressAndSealInPlace: `compressed` (or, when null, the
 *  plaintext in place) sealed into the region. */
function sealInPlace(encKey: Uint8Array, id: Uint8Array, region: Uint8Array, plain: Uint8Array, compressed: Uint8Array | null): { length: number; compression: number } {
  const compression = compressed ? COMPRESSION_ZSTD : COMPRESSION_NONE
  const payload = compressed ?? plain
  region[0] = OBJECT_VERSION
  region[1] = compression
  const length = CHUNK_OBJECT_OVERHEAD + payload.length
  sealInto(encKey, region.subarray(2, length), payload, chunkAd(id, compression))
  return { length, compression }
}

/** The compression byte sits in the clear header (authenticated through the associated data),
 *  so sealing needs no copy of the payload to prepend it. */
export function sealChunk(encKey: Uint8Array, id: Uint8Array, compression: number, payload: Uint8Array): Buffer {
  return seal(encKey, payload, chunkAd(id, compression), Buffer.of(OBJECT_VERSION, compression))
}

function chunkAd(id: Uint8Array, compression: number): Buffer {
  const b = Buffer.allocUnsafe(2 + id.length)
  b[0] = AD_CHUNK
  b.set(id, 1)
  b[1 + id.length] = compression
  return b
}

/** A chunk object sealed again under another encryption key, in place: `obj` is decrypted and
 *  encrypted again with a new nonce where it lies, its payload left compressed as it was (copy
 *  between repositories that share chunk ids), so a chunk being copied is one buffer, not three.
 *  Returns `obj`. ERR_CORRUPT if it does not open (libsodium then zeroes the payload). */
export function resealChunk(fromKey: Uint8Array, toKey: Uint8Array, id: Uint8Array, obj: Buffer): Buffer {
  const what = `chunk ${hex(id)}`
  if (obj.length < 2) throw new SluiceError('ERR_CORRUPT', `${what} is truncated`)
  if (obj[0] !== OBJECT_VERSION) throw new SluiceError('ERR_CORRUPT', `${what} has unknown format ${obj[0]}`)
  const compression = obj[1]!
  const ad = chunkAd(id, compression)
  const body = obj.subarray(2)
  // The plaintext lands where its ciphertext was, and the new ciphertext where the plaintext is
  // (libsodium's AEAD works in place when input and output start at the same byte).
  const payload = open(fromKey, body, ad, what, n => body.subarray(NONCE_BYTES, NONCE_BYTES + n))
  sealInto(toKey, body, payload, ad)
  return obj
}

/** Opens and decompresses a chunk object; ERR_CORRUPT if it was altered or does not decode.
 *  The plaintext goes into `alloc(length)` when given (restore's chunk pool), else into a fresh
 *  buffer. No honest chunk decodes to more than CHUNK_MAX bytes: a frame that says it would is
 *  refused before anything that size is allocated. */
export function openChunk(encKey: Uint8Array, id: Uint8Array, obj: Uint8Array, alloc?: (length: number) => Buffer): Buffer {
  const what = `chunk ${hex(id)}`
  if (obj.length < 2) throw new SluiceError('ERR_CORRUPT', `${what} is truncated`)
  if (obj[0] !== OBJECT_VERSION) throw new SluiceError('ERR_CORRUPT', `${what} has unknown format ${obj[0]}`)
  const compression = obj[1]!
  // A compressed payload is only read by zstd: it is decrypted into the reused scratch buffer,
  // so a chunk leaves one buffer behind (its plaintext), not two.
  const payload = open(encKey, obj.subarray(2), chunkAd(id, compression), what, compression === COMPRESSION_ZSTD ? scratchOf : alloc)
  switch (compression) {
    case COMPRESSION_NONE:
      return payload
    case COMPRESSION_ZSTD:
      try {
        return decompressChunk(payload, what, alloc)
      } catch (cause) {
        if (cause instanceof SluiceError) throw cause
        throw new SluiceError('ERR_CORRUPT', `${what} does not decompress`, { cause })
      }
    default:
      throw new SluiceError('ERR_CORRUPT', `${what} has unknown compression ${compression}`)
  }
}

/** The error of a chunk whose plaintext does not hash to its id (a chunk checked with
 *  `verify`): the object authenticates, so the backup that wrote it computed a wrong id. */
export function idMismatch(id: Uint8Array): SluiceError {
  return new SluiceError('ERR_CORRUPT', `chunk ${hex(id)} does not hash to its id`)
}

export interface PooledOpenOptions {
  /** Where a compressed chunk's plaintext goes (restore's chunk pool); else a fresh buffer. */
  alloc?: (length: number) => Buffer
  /** Holds back a compressed chunk's decode until that many bytes of plaintext may be decoded
   *  at once (DECODE_INFLIGHT_BYTES). */
  gate?: { take(n: number): Promise<void>; give(n: number): void }
  /** The id key: the plaintext must also hash to the id (idMismatch otherwise). */
  verifyWith?: Uint8Array
}

/**
 * openChunk on the thread pool (lib/native.ts PoolDecoder), the calling thread free meanwhile:
 * the same plaintext, the same ERR_CORRUPT errors, and with `verify` also idMismatch when the
 * plaintext does not hash to `id`. The object is decrypted IN PLACE: `obj` is the caller's to
 * lose (a storage read), not to be touched until this settles, and no longer the object after.
 * A stored chunk's plaintext comes back as a view of `obj` (no copy); a compressed one's in
 * `alloc(size)` (else a fresh buffer) once `gate` lets that many bytes decode, the frame's size
 * checked against CHUNK_MAX before anything is allocated. Frames without a size, and frames that
 * do not decode, go through openChunk's own zstd step, so their errors read as openChunk's.
 */
export async function openChunkPooled(decoder: PoolDecoder, id: Uint8Array, obj: Uint8Array, opts: PooledOpenOptions = {}): Promise<Buffer> {
  const { alloc, gate, verifyWith } = opts
  const verify = !!verifyWith
  const what = `chunk ${hex(id)}`
  const format = obj[0]
  const compression = obj[1]
  const r = await decoder.open(id, obj, CHUNK_MAX, verify)
  const view = Buffer.from(obj.buffer, obj.byteOffset, obj.byteLength)
  const payload = view.subarray(CHUNK_PLAIN_OFFSET, Math.max(CHUNK_PLAIN_OFFSET, obj.length - TAG_BYTES))
  if (r < 0) {
    switch (r) {
      case DECODE_TRUNCATED:
        throw new SluiceError('ERR_CORRUPT', `${what} is truncated`)
      case DECODE_FORMAT:
        throw new SluiceError('ERR_CORRUPT', `${what} has unknown format ${format}`)
      case DECODE_AUTH:
        throw new SluiceError('ERR_CORRUPT', `${what} failed authentication`)
      case DECODE_COMPRESSION:
        throw new SluiceError('ERR_CORRUPT', `${what} has unknown compression ${compression}`)
      case DECODE_ID:
        throw idMismatch(id)
      case DECODE_FRAME_SIZE:
        // Authenticated and decrypted, but a frame without its size (none Sluice writes), one
        // whose header does not read, or one too large: openChunk's zstd step says which.
        return checked(id, decompressFramed(payload, what, alloc), verifyWith)
      default:
        throw new SluiceError('ERR_NATIVE', `${what}: the native decoder failed (status ${r})`)
    }
  }
  if (compression === COMPRESSION_NONE) return payload
  // The gate before the memory: a chunk waiting for its turn holds only its object.
  await gate?.take(r)
  let out: Buffer
  let n: number
  try {
    out = alloc ? alloc(r) : Buffer.allocUnsafe(r)
    n = await decoder.frame(id, payload, out, verify)
  } finally {
    gate?.give(r)
  }
  if (n === DECODE_ID) throw idMismatch(id)
  // zstd failed, or wrote another length than its frame says: openChunk's step, for its words.
  if (n < 0) return checked(id, decompressFramed(payload, what, alloc), verifyWith)
  return out
}

/** decompressChunk with openChunk's wrapping of zstd's own errors. */
function decompressFramed(payload: Uint8Array, what: string, alloc?: (length: number) => Buffer): Buffer {
  try {
    return decompressChunk(payload, what, alloc)
  } catch (cause) {
    if (cause instanceof SluiceError) throw cause
    throw new SluiceError('ERR_CORRUPT', `${what} does not decompress`, { cause })
  }
}

/** `plain`, once it hashes to `id` when `verify` asks (the JS side of PoolDecoder's check). */
function checked(id: Uint8Array, plain: Buffer, idKey: Uint8Array | undefined): Buffer {
  if (idKey && !chunkId(idKey, plain).equals(id)) throw idMismatch(id)
  return plain
}

/** One zstd frame into a buffer of exactly its content size (written in every frame Sluice
 *  makes) with one reused context: no streaming pieces to join. A frame without its size (none
 *  Sluice writes) goes through the streaming decompressor. */
function decompressChunk(payload: Uint8Array, what: string, alloc?: (length: number) => Buffer): Buffer {
  const size = zstd.getFrameContentSize(payload)
  if (size === null) return (decompressor ??= new Decompressor()).decompress(payload)
  if (size > CHUNK_MAX) throw new SluiceError('ERR_CORRUPT', `${what} says it decodes to ${size} bytes (at most ${CHUNK_MAX})`)
  const out = alloc ? alloc(size) : Buffer.allocUnsafe(size)
  const n = (dctx ??= new zstd.DCtx()).decompress(out, payload)
  if (n !== size) throw new SluiceError('ERR_CORRUPT', `${what} decodes to ${n} bytes, not the ${size} its frame says`)
  return out
}

export function sealSnapshot(encKey: Uint8Array, id: Uint8Array, json: Uint8Array): Buffer {
  return seal(encKey, json, ad(AD_SNAPSHOT, id), Buffer.of(OBJECT_VERSION))
}

export function openSnapshot(encKey: Uint8Array, id: Uint8Array, obj: Uint8Array): Buffer {
  const what = `snapshot ${hex(id).slice(0, 8)}`
  if (obj.length < 1 || obj[0] !== OBJECT_VERSION) throw new SluiceError('ERR_CORRUPT', `${what} has an unknown format`)
  return open(encKey, obj.subarray(1), ad(AD_SNAPSHOT, id), what)
}

export function encodeTreeNode(ids: Uint8Array[]): Buffer {
  const b = Buffer.allocUnsafe(1 + ids.length * ID_BYTES)
  b[0] = TREE_NODE_VERSION
  ids.forEach((id, i) => b.set(id, 1 + i * ID_BYTES))
  return b
}

export function decodeTreeNode(b: Uint8Array): Buffer[] {
  if (b.length < 1 || b[0] !== TREE_NODE_VERSION || (b.length - 1) % ID_BYTES !== 0) {
    throw new SluiceError('ERR_CORRUPT', 'metadata tree node does not decode')
  }
  if ((b.length - 1) / ID_BYTES > TREE_FANOUT) throw new SluiceError('ERR_CORRUPT', `metadata tree node names ${(b.length - 1) / ID_BYTES} ids (at most ${TREE_FANOUT})`)
  const out: Buffer[] = []
  for (let p = 1; p < b.length; p += ID_BYTES) out.push(Buffer.from(b.subarray(p, p + ID_BYTES)))
  return out
}
