/**
 * chunk-pool: the memory restore's download decodes chunks into, reused instead of a fresh
 * buffer per chunk (a fresh chunk-sized buffer is page faults when it is made and a forced full
 * collection's work when it dies: a large file's restore spent more time collecting than
 * decoding). `take(n)` hands out a view of exactly `n` bytes of a pooled buffer (the smallest
 * free one that holds it, else a new one of `n` rounded up to POOL_ROUND); `give(b)` puts it back
 * once every holder is done with it. Only buffers the pool made are taken back; anything else
 * given is ignored. A buffer taken and never given back is ordinary garbage.
 *
 * Memory: the buffers in use (bounded by the download's chunks in flight, its cache and the
 * sink's writes in flight, as before) plus at most `capBytes` of free ones; a free buffer past the
 * cap is dropped (the smallest first) and counted as garbage, as are buffers made on a miss, so
 * the download forces a collection by the garbage the pool could not avoid (`garbage()`).
 */
import { KiB } from '../../lib/limits.js'

/** Sizes are rounded up to this, so a buffer serves chunks of nearby sizes. */
const POOL_ROUND = 64 * KiB
const roundUp = (n: number): number => Math.max(1, Math.ceil(n / POOL_ROUND)) * POOL_ROUND

export class ChunkPool {
  /** Free buffers, whole, by capacity ascending. */
  private readonly free: Buffer[] = []
  private freeBytes = 0
  private readonly mine = new WeakSet<ArrayBuffer>()
  private dead = 0

  constructor(private readonly capBytes: number) {}

  /** A view of exactly `n` bytes of a pooled buffer (contents undefined). */
  readonly take = (n: number): Buffer => {
    const i = this.free.findIndex(b => b.length >= n)
    if (i >= 0) {
      const b = this.free.splice(i, 1)[0]!
      this.freeBytes -= b.length
      return b.subarray(0, n)
    }
    const b = Buffer.allocUnsafeSlow(roundUp(n))
    this.mine.add(b.buffer as ArrayBuffer)
    return b.subarray(0, n)
  }

  /** True when `b` lies in a buffer this pool made. */
  owns(b: Uint8Array): boolean {
    return this.mine.has(b.buffer as ArrayBuffer)
  }

  /** Puts back the buffer `b` is a view of; nothing may use `b` (or another view of it) after. */
  readonly give = (b: Uint8Array): void => {
    const ab = b.buffer as ArrayBuffer
    if (!this.mine.has(ab)) return
    const whole = Buffer.from(ab)
    let i = this.free.findIndex(f => f.length >= whole.length)
    if (i < 0) i = this.free.length
    this.free.splice(i, 0, whole)
    this.freeBytes += whole.length
    while (this.freeBytes > this.capBytes && this.free.length > 0) {
      const d = this.free.shift()!
      this.freeBytes -= d.length
      this.dead += d.length
    }
  }

  /** Counts bytes the caller let die outside the pool (an object the storage read on its own). */
  addGarbage(bytes: number): void {
    this.dead += bytes
  }

  /** Bytes that became (or will become) garbage since the last call. */
  garbage(): number {
    const d = this.dead
    this.dead = 0
    return d
  }
}
