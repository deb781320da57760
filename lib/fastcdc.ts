/**
 * Content-defined chunking, FastCDC style (Xia et al. 2016/2020): a gear rolling hash with
 * normalized chunking (a stricter mask before the average size, a looser one after). The gear
 * table is derived from a repository secret, so boundaries (and so chunk sizes) leak nothing
 * about the content to someone without the key. Pure state machine: the same bytes fed in any
 * split give the same boundaries.
 *
 * The hot loop also exists in C (native/sluice_native.c cdcNext, 5-6x the speed); it is used
 * when the addon is built and must cut exactly where the TypeScript below does, since
 * repositories dedup new chunks against those cut by older versions. test/lib/fastcdc.test.ts
 * holds the two to that.
 */
import { chunkId } from './repo/crypto.js'
import { nativeCdcNext, type CdcNext } from './native.js'

export interface ChunkerParams {
  min: number
  avg: number
  max: number
}

/** 256 keyed 32-bit gear values: BLAKE2b(key, "sluice gear" || i). */
export function gearTable(key: Uint8Array): Int32Array {
  const t = new Int32Array(256)
  for (let i = 0; i < 256; i++) {
    const h = chunkId(key, Buffer.concat([Buffer.from('sluice gear'), Buffer.of(i)]))
    t[i] = h.readInt32LE(0)
  }
  return t
}

/** A mask with `bits` one-bits spread over the high half-word first: the high bits of a 32-bit
 *  gear hash depend on the most bytes of its 32-byte window. */
function mask(bits: number): number {
  let m = 0
  // Take every other bit from the top, then fill remaining from the top down.
  const order: number[] = []
  for (let b = 31; b >= 0; b -= 2) order.push(b)
  for (let b = 30; b >= 0; b -= 2) order.push(b)
  for (let i = 0; i < bits; i++) m |= 1 << order[i]!
  return m >>> 0
}

const scanResult = { at: 0, h: 0, cut: false }

/** The hot loop, kept small and monomorphic so V8 optimizes it (about 3x faster than inline). */
function scan(gear: Int32Array, buf: Uint8Array, i: number, stop: number, h: number, m: number): typeof scanResult {
  while (i < stop) {
    h = ((h << 1) + gear[buf[i]!]!) | 0
    i++
    if ((h & m) === 0) {
      scanResult.at = i
      scanResult.h = 0
      scanResult.cut = true
      return scanResult
    }
  }
  scanResult.at = i
  scanResult.h = h
  scanResult.cut = false
  return scanResult
}

/** Options of a Cdc. */
export interface CdcOptions {
  /** Use the addon's C loop when it is built (default true). false keeps to the TypeScript loop;
   *  both cut at the same places, so this only changes speed. */
  native?: boolean
  /** Fewest bytes to hash (those past `min`) for which a call goes to the addon. Below about
   *  128 the TypeScript loop is done before an N-API call would be (a call costs ~250 ns here),
   *  which keeps metadata records and small files on it. -Infinity sends every call (tests). */
  nativeMinBytes?: number
}

/** Slots of Cdc's state array, shared with the addon's cdcNext (native/sluice_native.c). */
const H = 0, N = 1, MIN = 2, AVG = 3, MAX = 4, MASK_S = 5, MASK_L = 6

export class Cdc {
  /** [h, n, min, avg, max, maskS, maskL]: h the gear hash, n the bytes of the open chunk so far.
   *  A Float64Array so the addon reads and updates it in place, and holds exactly the numbers
   *  that plain fields would: either loop may take the next buffer. */
  private readonly st = new Float64Array(7)
  private readonly native: CdcNext | undefined
  private readonly nativeMinBytes: number

  constructor(private readonly gear: Int32Array, readonly params: ChunkerParams, opts: CdcOptions = {}) {
    if (!(params.min > 0 && params.min <= params.avg && params.avg <= params.max)) {
      throw new RangeError('chunker needs 0 < min <= avg <= max')
    }
    const bits = Math.round(Math.log2(params.avg))
    const st = this.st
    st[MIN] = params.min
    st[AVG] = params.avg
    st[MAX] = params.max
    st[MASK_S] = mask(bits + 2)
    st[MASK_L] = mask(bits - 2)
    // The C side takes integer sizes only; other (useless) params keep the loop that defines them.
    const integral = Number.isSafeInteger(params.min) && Number.isSafeInteger(params.avg) && Number.isSafeInteger(params.max)
    this.native = opts.native !== false && integral && gear.length === 256 ? nativeCdcNext() : undefined
    this.nativeMinBytes = opts.nativeMinBytes ?? 128
  }

  /** Whether this chunker runs the addon's loop. */
  get isNative(): boolean {
    return this.native !== undefined
  }

  /** Length of the open chunk so far. */
  get pending(): number {
    return this.st[N]!
  }

  /**
   * Scans `buf` from `start`. Returns the index just past a boundary (the chunk ends there and
   * the state resets), or -1 when the buffer ended without one (the state carries over).
   */
  next(buf: Uint8Array, start = 0): number {
    const st = this.st
    const left = buf.length - start
    if (this.native !== undefined && Math.min(left, st[N]! + left - st[MIN]!) >= this.nativeMinBytes) {
      return this.native(this.gear, buf, start, st)
    }
    return this.nextTs(buf, start)
  }

  /** The definition of the boundaries; the addon's cdcNext must cut exactly where this does. */
  private nextTs(buf: Uint8Array, start: number): number {
    const gear = this.gear
    const st = this.st
    const min = st[MIN]!, avg = st[AVG]!, max = st[MAX]!
    const end = buf.length
    let h = st[H]!, n = st[N]!, i = start
    // Bytes before `min` cannot end a chunk: skip them without hashing.
    if (n < min) {
      const skip = Math.min(min - n, end - i)
      i += skip
      n += skip
      if (n < min) {
        st[N] = n
        return -1
      }
    }
    // Below the average size the stricter mask applies, above it the looser one.
    if (n < avg) {
      const stop = Math.min(end, i + (avg - n))
      const r = scan(gear, buf, i, stop, h, st[MASK_S]!)
      n += r.at - i
      i = r.at
      h = r.h
      if (r.cut) return this.cut(i)
    }
    if (n >= avg && n < max) {
      const stop = Math.min(end, i + (max - n))
      const r = scan(gear, buf, i, stop, h, st[MASK_L]!)
      n += r.at - i
      i = r.at
      h = r.h
      if (r.cut) return this.cut(i)
    }
    if (n >= max) return this.cut(i)
    st[H] = h
    st[N] = n
    return -1
  }

  private cut(at: number): number {
    this.reset()
    return at
  }

  /** Forgets the open chunk (after a forced cut by the caller). */
  reset(): void {
    this.st[H] = 0
    this.st[N] = 0
  }
}
