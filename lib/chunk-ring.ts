/**
 * A fixed ring of shared memory that content chunks are assembled, sealed and stored in.
 *
 * Why: a chunk is a few megabytes that live for a few milliseconds. Allocated fresh, every one
 * costs page faults to touch (the kernel zeroes each page), and dead ones pile up between
 * garbage collections, since V8 schedules those by its own small heap, not by the megabytes of
 * buffers behind it (measured: a 10 GiB stream grew 111 → 126 MB with collections forced every
 * 4 MiB, and the forced collections cost a sixth of the CPU time). Here the chunker copies file
 * bytes into a region of one long-lived SharedArrayBuffer, the seal step (on the main thread or
 * a worker, which sees the same memory without a transfer) compresses and encrypts it into the
 * same region, upload writes it from there and releases it. Nothing per chunk is left for the
 * collector, and the memory is touched once.
 *
 * Regions are placed one after the other round the ring (next fit) and released in whatever
 * order their chunks end (a chunk found already stored ends in dedup, before those ahead of it
 * are uploaded); a released region is free at once. When the ring has no room — more
 * chunks in flight than it holds — a region is a buffer of its own instead (a "spill"): the backup never waits on the ring, so no stage can deadlock on it, and the ring's
 * size is a matter of speed, not of correctness.
 *
 * Memory: `size` bytes, plus spilled regions while they live; the bookkeeping holds one small
 * object per region in flight.
 */

/** One chunk's region. */
export interface ChunkSlot {
  /** The region's bytes (a view of `buffer` at `offset`). */
  region: Buffer
  /** The ring's shared memory, or a spilled region's own (unshared) buffer, which a worker
   *  gets by transfer and hands back. */
  buffer: SharedArrayBuffer | ArrayBuffer
  offset: number
  /** True when the ring had no room and the region is a buffer of its own. */
  spilled: boolean
  /** Gives the region back; idempotent. Its bytes must not be used after. */
  release(): void
}

interface Span {
  start: number
  end: number
}

export class ChunkRing {
  private readonly sab: SharedArrayBuffer
  /** Regions in flight, by position in the ring. */
  private readonly live: Span[] = []
  /** Where the last region was placed: the next goes after it (next fit), so regions follow
   *  each other round the ring and a slow one in the middle only leaves a hole behind it. */
  private cursor = 0
  /** Regions and bytes that did not fit (for the benchmark and tests). */
  spills = 0
  spilledBytes = 0

  constructor(readonly size: number) {
    this.sab = new SharedArrayBuffer(size)
  }

  /** A region of `n` bytes: from the ring when it has room, else spilled. */
  reserve(n: number): ChunkSlot {
    const start = this.place(n)
    if (start < 0) {
      this.spills++
      this.spilledBytes += n
      // Not shared: a worker that saw a SharedArrayBuffer would keep it alive until its own
      // next collection (measured: +150 MB at 400 spills).
      const region = Buffer.allocUnsafeSlow(n)
      return { region, buffer: region.buffer as ArrayBuffer, offset: 0, spilled: true, release() {} }
    }
    const span: Span = { start, end: start + n }
    this.live.splice(this.indexAfter(start), 0, span)
    this.cursor = span.end
    const ring = this
    let released = false
    return {
      region: Buffer.from(this.sab, start, n),
      buffer: this.sab,
      offset: start,
      spilled: false,
      release() {
        if (released) return
        released = true
        ring.live.splice(ring.live.indexOf(span), 1)
      },
    }
  }

  /** Shrinks a region to its first `n` bytes (a chunk is reserved at its largest possible size
   *  and cut shorter). Returns the shrunk slot. */
  shrink(slot: ChunkSlot, n: number): ChunkSlot {
    if (n > slot.region.length) throw new RangeError('a region can only shrink')
    if (!slot.spilled) {
      const span = this.live.find(s => s.start === slot.offset)
      if (!span) throw new Error('shrink of a released region')
      span.end = span.start + n
      if (this.cursor === span.start + slot.region.length) this.cursor = span.end
    }
    slot.region = slot.region.subarray(0, n)
    return slot
  }

  /** Bytes of the ring in regions in flight. */
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

  /** Where a region of `n` bytes goes (the first hole at or after the cursor that holds it,
   *  else the first from the ring's start), or -1 when none does. */
  private place(n: number): number {
    if (n > this.size) return -1
    const live = this.live
    // Holes in ring order: before the first region, between regions, after the last.
    let found = -1
    for (let i = 0; i <= live.length; i++) {
      const from = i === 0 ? 0 : live[i - 1]!.end
      const to = i === live.length ? this.size : live[i]!.start
      if (to - Math.max(from, this.cursor) >= n) return Math.max(from, this.cursor)
      if (found < 0 && to - from >= n) found = from
    }
    return found
  }
}
