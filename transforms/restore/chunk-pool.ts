/**
 * chunk-pool: the memory restore's download reads chunk objects and decodes chunks into, reused
 * instead of a fresh buffer per chunk (a fresh chunk-sized buffer is page faults when it is made
 * and, as V8 does not see it die, a forced full collection's work: a restore spent more time
 * collecting than decoding). `take(n)` hands out a view of exactly `n` bytes of a pooled buffer
 * (the smallest free one that holds it, else a new one of `n` rounded up to POOL_ROUND);
 * `give(b)` puts it back once every holder is done with it. Only buffers the pool made are taken
 * back; anything else given is ignored. A buffer taken and never given back is ordinary garbage.
 *
 * Memory: at most `capBytes` of buffers held, in use and free together, as long as what is in
 * use fits: the free list absorbs the swings of the download's fetch-ahead (a fixed cap on the
 * free list alone dropped and remade half of what a restore decoded). Making a buffer that does
 * not fit first drops free ones (the smallest first); past the cap (more in use than it holds) a
 * buffer is still made, and dropped when given back. What is dropped is counted as garbage
 * (`garbage()`), so the download forces a collection by the garbage the pool could not avoid.
 */
import { KiB } from '../../lib/limits.js'

/** Sizes are rounded up to this, so a buffer serves chunks of nearby sizes. */
const POOL_ROUND = 64 * KiB
const roundUp = (n: number): number => Math.max(1, Math.ceil(n / POOL_ROUND)) * POOL_ROUND

export class ChunkPool {
  /** Free buffers, whole, by capacity ascending. */
  private readonly free: Buffer[] = []
  /** Bytes of every buffer made and not dropped, in use or free. */
  private held = 0
  private readonly mine = new WeakSet<ArrayBuffer>()
  private dead = 0

  constructor(private readonly capBytes: number) {}

  /** A view of exactly `n` bytes of a pooled buffer (contents undefined). */
  readonly take = (n: number): Buffer => {
    const i = this.free.findIndex(b => b.length >= n)
    if (i >= 0) return this.free.splice(i, 1)[0]!.subarray(0, n)
    const size = roundUp(n)
    while (this.held + size > this.capBytes && this.free.length > 0) this.drop()
    const b = Buffer.allocUnsafeSlow(size)
    this.mine.add(b.buffer as ArrayBuffer)
    this.held += size
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
    while (this.held > this.capBytes && this.free.length > 0) this.drop()
  }

  /** Drops the smallest free buffer: garbage from now on. */
  private drop(): void {
    const d = this.free.shift()!
    this.held -= d.length
    this.dead += d.length
  }

  /** Bytes of the buffers the pool holds, in use and free. */
  heldBytes(): number {
    return this.held
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
