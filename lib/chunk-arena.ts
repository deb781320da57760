/**
 * A fixed arena of shared memory that content and metadata chunks are assembled, sealed and
 * stored in.
 *
 * Why: a chunk is a few megabytes that live for a few milliseconds. Allocated fresh, every one
 * costs page faults to touch (the kernel zeroes each page), and dead ones pile up between
 * garbage collections, since V8 schedules those by its own small heap, not by the megabytes of
 * buffers behind it; forcing collections often enough costs CPU time (docs/TUNING.md). Here the
 * chunker copies file bytes into a region of one long-lived SharedArrayBuffer, the seal step
 * (on the main thread or a worker, which sees the same memory without a transfer) compresses and
 * encrypts it into the same region, upload writes it from there and releases it. Nothing per
 * chunk is left for the collector, and the memory is touched once.
 *
 * Regions go into the lowest hole that holds them (first fit) and are released in whatever
 * order their chunks end (a chunk found already stored ends in dedup, before those ahead of it
 * are uploaded); a released region is free at once. When the arena has no room — more chunks in
 * flight than it holds — a region is a buffer of its own instead (a "spill"): `reserve` never
 * waits, so no stage can deadlock on it, and the arena's size is a matter of speed, not of
 * correctness. The chunker asks `room` first, between the pieces it reads, and waits there while
 * chunks downstream of it fill the arena: so the arena, sized by the memory budget
 * (lib/budget.ts), bounds the content chunks in flight, and a spill is the exception (a piece
 * that completes several chunks at once). When a piece may take the open chunk past its region,
 * `room` also waits until that region can grow (in place, or by moving), as a growth that found
 * no room spilled a region of the largest chunk size. Waiting there cannot deadlock: every other region is
 * a chunk already handed downstream, released once stored or found stored, and with none but
 * the caller's own open region and held ones (the metadata packer's open chunk, which waits for
 * records from the chunker) `room` does not wait.
 *
 * Memory: at most `size` bytes, and in practice only the most ever in flight at once (first fit
 * keeps to the low end; pages above are never touched), plus spilled
 * regions while they live; the bookkeeping holds one small object per region in flight.
 */

import { copyBytes } from './native.js'

/** One chunk's region. */
export interface ChunkSlot {
  /** The region's bytes (a view of `buffer` at `offset`). */
  region: Buffer
  /** The arena's shared memory, or a spilled region's own (unshared) buffer, which a worker
   *  gets by transfer and hands back. */
  buffer: SharedArrayBuffer | ArrayBuffer
  offset: number
  /** True when the arena had no room and the region is a buffer of its own. */
  spilled: boolean
  /** Gives the region back; idempotent. Its bytes must not be used after. */
  release(): void
}

interface Span {
  start: number
  end: number
  /** Held by a stage downstream of the chunker until more records come (the metadata packer's
   *  open chunk): its release waits on the chunker, so `room` never waits for it. */
  held?: boolean
}

export class ChunkArena {
  private readonly sab: SharedArrayBuffer
  /** Regions in flight, by position in the arena. */
  private readonly live: Span[] = []
  /** Calls waiting in `room` for a release. */
  private waiters: (() => void)[] = []
  /** Regions and bytes that did not fit (for the benchmark and tests). */
  spills = 0
  spilledBytes = 0
  /** The highest byte of the arena ever handed out: what of it has been touched (resident). */
  touched = 0

  constructor(readonly size: number) {
    this.sab = new SharedArrayBuffer(size)
  }

  /** A region of `n` bytes: from the arena when it has room, else spilled. `held`: see Span
   *  (cleared by `handOff` when the region's chunk goes downstream). */
  reserve(n: number, held = false): ChunkSlot {
    const start = this.place(n)
    if (start < 0) {
      this.spills++
      this.spilledBytes += n
      // Not shared: a worker that saw a SharedArrayBuffer would keep it alive until its own
      // next collection (measured: +150 MB at 400 spills).
      const region = Buffer.allocUnsafeSlow(n)
      return { region, buffer: region.buffer as ArrayBuffer, offset: 0, spilled: true, release() {} }
    }
    const span: Span = held ? { start, end: start + n, held } : { start, end: start + n }
    if (span.end > this.touched) this.touched = span.end
    this.live.splice(this.indexAfter(start), 0, span)
    const arena = this
    let released = false
    return {
      region: Buffer.from(this.sab, start, n),
      buffer: this.sab,
      offset: start,
      spilled: false,
      release() {
        if (released) return
        released = true
        arena.live.splice(arena.live.indexOf(span), 1)
        arena.wake()
      },
    }
  }

  /** A held region's chunk is handed downstream: from now on it is released like any other, so
   *  `room` may wait for it. Wakes waiters (a region they ignored no longer is, nothing more). */
  handOff(slot: ChunkSlot): void {
    if (slot.spilled) return
    const span = this.live.find(s => s.start === slot.offset)
    if (span) delete span.held
  }

  /** Shrinks a region to its first `n` bytes (a chunk is reserved at its largest possible size
   *  and cut shorter). Returns the shrunk slot. */
  shrink(slot: ChunkSlot, n: number): ChunkSlot {
    if (n > slot.region.length) throw new RangeError('a region can only shrink')
    if (!slot.spilled) {
      const span = this.live.find(s => s.start === slot.offset)
      if (!span) throw new Error('shrink of a released region')
      span.end = span.start + n
    }
    slot.region = slot.region.subarray(0, n)
    return slot
  }

  /**
   * Grows a region to `n` bytes, keeping its first `keep`: in place when the bytes after it are
   * free, else by moving it to a new region and giving the old one back, else, when only the
   * space its own region frees makes a hole large enough (a held region in the middle of the
   * arena leaves no other), by moving it there (memmove: the two may overlap), else by a
   * spill. The
   * chunker reserves its open chunk at about twice the average chunk size and grows the few that
   * get larger, instead of reserving the largest chunk size for every one: a 4 MiB hole is
   * rare among chunks of about 1 MiB, so that reservation went to the arena's end, touched more
   * of it and spilled when there was no room (measured, 2 x 512 MiB: 45 spills and 24 MiB
   * touched, against none and 15-17 MiB).
   */
  grow(slot: ChunkSlot, n: number, keep: number): ChunkSlot {
    if (n <= slot.region.length) return slot
    if (!slot.spilled) {
      const i = this.live.findIndex(s => s.start === slot.offset)
      if (i < 0) throw new Error('grow of a released region')
      const span = this.live[i]!
      const limit = i + 1 < this.live.length ? this.live[i + 1]!.start : this.size
      if (span.start + n <= limit) {
        span.end = span.start + n
        if (span.end > this.touched) this.touched = span.end
        slot.region = Buffer.from(this.sab, span.start, n)
        return slot
      }
      const at = this.place(n) < 0 ? this.place(n, undefined, span.start) : -1
      if (at >= 0) {
        if (keep > 0) copyBytes(Buffer.from(this.sab, at, keep), 0, Buffer.from(this.sab, span.start, keep))
        this.live.splice(i, 1)
        span.start = at
        span.end = at + n
        this.live.splice(this.indexAfter(at), 0, span)
        if (span.end > this.touched) this.touched = span.end
        slot.offset = at
        slot.region = Buffer.from(this.sab, at, n)
        return slot
      }
    }
    const moved = this.reserve(n)
    if (keep > 0) copyBytes(moved.region, 0, slot.region.subarray(0, keep))
    slot.release()
    return moved
  }

  /**
   * Resolves once a region of `n` bytes would fit, or at once when it does already, or when no
   * regions are in flight but the caller's own `own` (its open region, if any) and held ones:
   * those cannot be released while it waits. Wakes on each release and checks again.
   *
   * With `growTo`, the caller's open region `own` may have to grow to that size first (`grow`):
   * ready once it can grow in place and `n` bytes fit beside it, or a region of `growTo` fits
   * elsewhere (growing moves there and frees its old place for the next `n`). Without this wait
   * a growth that found no room spilled (real-tree: 14 spills of 4 MiB, garbage until the next
   * collection).
   */
  room(n: number, own: ChunkSlot | null = null, growTo = 0): Promise<void> | undefined {
    // Ready when it fits, or when nothing in flight will be released without the caller going
    // on: no region but its own open one and held ones (the metadata packer's open chunk).
    const fits = () => growTo > 0 && own !== null && !own.spilled
      ? this.place(growTo) >= 0 || (this.growsInPlace(own, growTo) && this.place(n, { start: own.offset, length: growTo }) >= 0) || this.movesOver(own, growTo, n)
      : this.place(n) >= 0
    const ready = () => fits() || this.live.every(s => s.held === true || (own !== null && !own.spilled && s.start === own.offset))
    if (ready()) return undefined
    return new Promise(resolve => {
      const check = () => {
        if (ready()) resolve()
        else this.waiters.push(check)
      }
      this.waiters.push(check)
    })
  }

  private wake(): void {
    if (this.waiters.length === 0) return
    const waiting = this.waiters
    this.waiters = []
    for (const w of waiting) w()
  }

  /** Bytes of the arena in regions in flight. */
  get used(): number {
    let n = 0
    for (const s of this.live) n += s.end - s.start
    return n
  }

  /** Index of the first region that starts after `pos`. */
  private indexAfter(pos: number): number {
    let i = 0
    while (i < this.live.length && this.live[i]!.start < pos) i++
    return i
  }

  /** Where a region of `n` bytes goes: the lowest hole that holds it (first fit, so the arena's
   *  high addresses are touched only when that many bytes are in flight at once: its resident
   *  size is the pipeline's high-water mark, not `size`), or -1 when none does. `grown`: the
   *  caller's own region counted as grown to that many bytes where it is. */
  private place(n: number, grown?: { start: number; length: number }, without = -1, extra?: Span): number {
    if (n > this.size) return -1
    let live = this.live
    if (without >= 0 || extra) {
      // The regions as they would be with the one at `without` gone and `extra` placed.
      live = live.filter(s => s.start !== without)
      if (extra) {
        const k = live.findIndex(s => s.start > extra.start)
        live.splice(k < 0 ? live.length : k, 0, extra)
      }
    }
    const end = (s: Span) => (grown && s.start === grown.start ? s.start + grown.length : s.end)
    for (let i = 0; i <= live.length; i++) {
      const from = i === 0 ? 0 : end(live[i - 1]!)
      const to = i === live.length ? this.size : live[i]!.start
      if (to - from >= n) return from
    }
    return -1
  }

  /** Whether the caller's region `own` grown to `growTo` fits only in a hole its own place
   *  makes (see `grow`), and a region of `n` bytes then fits beside it. */
  private movesOver(own: ChunkSlot, growTo: number, n: number): boolean {
    const at = this.place(growTo, undefined, own.offset)
    return at >= 0 && this.place(n, undefined, own.offset, { start: at, end: at + growTo }) >= 0
  }

  /** Whether the caller's region `own` can grow to `n` bytes where it is. */
  private growsInPlace(own: ChunkSlot, n: number): boolean {
    const i = this.live.findIndex(s => s.start === own.offset)
    if (i < 0) return false
    const limit = i + 1 < this.live.length ? this.live[i + 1]!.start : this.size
    return own.offset + n <= limit
  }
}
