/**
 * repeats: which content chunks a restore will need more than once, far enough apart that the
 * download's cache of decoded chunks has let them go (a file and its copy, the same blocks in
 * two images). Read from the selected records before the restore starts (a second pass over the
 * snapshot's metadata), so that a storage whose every read is a round trip (S3) fetches such a
 * chunk once and keeps its object on local disk for the next time (spill-cache.ts).
 *
 * A pair of Bloom filters, not a set: ids seen once, and ids seen again. A chunk read by
 * consecutive extents (the packed small files that share one chunk, a file's extents within
 * one chunk) counts once, as the download's cache serves those. An id never seen twice is never
 * called repeated; a false "repeated" (the filters fill with tens of thousands of chunks) only
 * spills an object that is not read again.
 *
 * Memory: the two filters, 2 × REPEATS_FILTER_BITS / 8 bytes, whatever the snapshot's size.
 */
import type { ExtentsItem, RecordItem } from '../../lib/entry.js'
import { isHole } from '../../lib/entry.js'
import { REPEATS_FILTER_BITS } from '../../lib/limits.js'

export class RepeatedChunks {
  private readonly once: Uint8Array
  private readonly twice: Uint8Array
  private readonly mask: number
  /** Ids added more than once (by the filter: an upper bound). */
  repeats = 0

  constructor(bits = REPEATS_FILTER_BITS) {
    if (!Number.isInteger(Math.log2(bits)) || bits < 64) throw new RangeError(`filter bits must be a power of two ≥ 64, not ${bits}`)
    this.once = new Uint8Array(bits / 8)
    this.twice = new Uint8Array(bits / 8)
    this.mask = bits - 1
  }

  /** Two bit positions from the id's first and second 32 bits: ids are keyed hashes, so
   *  uniformly spread already. */
  private positions(id: Uint8Array): [number, number] {
    const a = (id[0]! | (id[1]! << 8) | (id[2]! << 16) | (id[3]! << 24)) >>> 0
    const b = (id[4]! | (id[5]! << 8) | (id[6]! << 16) | (id[7]! << 24)) >>> 0
    return [a & this.mask, b & this.mask]
  }

  private static has(bits: Uint8Array, [a, b]: [number, number]): boolean {
    return (bits[a >>> 3]! & (1 << (a & 7))) !== 0 && (bits[b >>> 3]! & (1 << (b & 7))) !== 0
  }

  private static set(bits: Uint8Array, [a, b]: [number, number]): void {
    bits[a >>> 3]! |= 1 << (a & 7)
    bits[b >>> 3]! |= 1 << (b & 7)
  }

  /** Counts one more read of the chunk `id`. */
  add(id: Uint8Array): void {
    const p = this.positions(id)
    if (!RepeatedChunks.has(this.once, p)) {
      RepeatedChunks.set(this.once, p)
      return
    }
    if (!RepeatedChunks.has(this.twice, p)) {
      RepeatedChunks.set(this.twice, p)
      this.repeats++
    }
  }

  /** True when `id` was added more than once (or, rarely, looks so). */
  repeated(id: Uint8Array): boolean {
    return RepeatedChunks.has(this.twice, this.positions(id))
  }
}

/** The repeated content chunks of `items` (a snapshot's records after select, as the download
 *  will see them): files' extents, holes and hardlinks left out, runs of one chunk counted once. */
export async function findRepeats(items: AsyncIterable<RecordItem | ExtentsItem | { kind: string }>, filter = new RepeatedChunks()): Promise<RepeatedChunks> {
  let last: Buffer | undefined
  let content = false
  const count = (extents: readonly { id: Buffer }[]) => {
    for (const e of extents) {
      if (isHole(e) || (last && last.equals(e.id))) continue
      filter.add(e.id)
      last = e.id
    }
  }
  for await (const item of items) {
    if (item.kind === 'record') {
      const r = item as RecordItem
      content = r.entry.type === 'file' && !r.entry.hardlinkTo
      if (content) count(r.extents)
    } else if (item.kind === 'extents' && content) {
      count((item as ExtentsItem).extents)
    }
  }
  return filter
}
