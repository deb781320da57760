/**
 * external-sort: the set of chunk ids every snapshot references, without holding it in RAM.
 * Ids (32 bytes) gather in a fixed buffer of GC_RUN_IDS; a full buffer is sorted, its
 * duplicates dropped, and written to a run file in a temporary directory. Reading merges the
 * runs (GC_MERGE_FANIN at a time, in passes when there are more) into one stream of distinct
 * ids in byte order, which prune merge-joins with the sorted listing of chunks/.
 *
 * Memory: the run buffer and its sort keys (GC_RUN_IDS x 44 bytes: 2.75 MiB), plus one read
 * block of GC_MERGE_BLOCK per merged run (4 MiB at the fan-in). The disk holds 32 bytes per
 * reference at most (duplicates within a run are dropped).
 */
import fs from 'node:fs'
import path from 'node:path'
import { GC_MERGE_BLOCK, GC_MERGE_FANIN, GC_RUN_IDS } from '../../lib/limits.js'

const ID = 32
/** Sort keys pack a 4-byte prefix with the index: index < 2^21 keeps them exact in a double. */
const INDEX_SPAN = 2 ** 21

export interface SorterOptions {
  runIds?: number
  fanIn?: number
  block?: number
}

/** A file of ids read block by block (a run, or a list prune wrote). */
export class IdFileReader {
  /** The block read; the current id is at `pos` once current() said there is one. */
  readonly buf: Buffer
  private len = 0
  pos = 0
  private done = false

  constructor(private readonly fd: number, block: number = GC_MERGE_BLOCK) {
    this.buf = Buffer.allocUnsafe(Math.max(ID, block - (block % ID)))
  }

  /** The current id (a view, valid until advance), or null at the end. */
  current(): Buffer | null {
    if (this.pos >= this.len) {
      if (this.done) return null
      this.len = fs.readSync(this.fd, this.buf, 0, this.buf.length, null)
      this.pos = 0
      if (this.len === 0) {
        this.done = true
        return null
      }
      if (this.len % ID !== 0) throw new Error('run file has a partial id')
    }
    return this.buf.subarray(this.pos, this.pos + ID)
  }

  advance(): void {
    this.pos += ID
  }

  /** Whether there is a current id (loading the next block if needed), without a view of it. */
  has(): boolean {
    return this.pos < this.len || this.current() !== null
  }

  /** Compares the current ids of this reader and `other` (both has()). */
  compare(other: IdFileReader): number {
    return this.buf.compare(other.buf, other.pos, other.pos + ID, this.pos, this.pos + ID)
  }

  close(): void {
    fs.closeSync(this.fd)
  }
}

/** Writes ids to a file through a block buffer, dropping an id equal to the one before. */
export class IdFileWriter {
  private readonly buf: Buffer
  private len = 0
  private readonly last = Buffer.alloc(ID)
  private any = false
  count = 0

  constructor(private readonly fd: number, block: number = GC_MERGE_BLOCK) {
    this.buf = Buffer.allocUnsafe(Math.max(ID, block - (block % ID)))
  }

  write(src: Buffer, at: number): void {
    if (this.any && src.compare(this.last, 0, ID, at, at + ID) === 0) return
    src.copy(this.last, 0, at, at + ID)
    this.any = true
    if (this.len === this.buf.length) this.flush()
    src.copy(this.buf, this.len, at, at + ID)
    this.len += ID
    this.count++
  }

  private flush(): void {
    let off = 0
    while (off < this.len) off += fs.writeSync(this.fd, this.buf, off, this.len - off)
    this.len = 0
  }

  close(): void {
    this.flush()
    fs.closeSync(this.fd)
  }
}

export class IdSorter {
  private readonly runIds: number
  private readonly fanIn: number
  private readonly block: number
  private buf: Buffer
  private n = 0
  private runs: string[] = []
  private next = 0
  /** Ids added (with repeats). */
  added = 0

  /** `dir` must exist and be this sorter's alone; close() removes what it wrote there. */
  constructor(private readonly dir: string, opts: SorterOptions = {}) {
    this.runIds = Math.min(opts.runIds ?? GC_RUN_IDS, INDEX_SPAN)
    this.fanIn = Math.max(2, opts.fanIn ?? GC_MERGE_FANIN)
    this.block = opts.block ?? GC_MERGE_BLOCK
    this.buf = Buffer.allocUnsafe(this.runIds * ID)
  }

  add(id: Uint8Array): void {
    if (id.length !== ID) throw new RangeError('ids are 32 bytes')
    if (this.n === this.runIds) this.spill()
    this.buf.set(id, this.n * ID)
    this.n++
    this.added++
  }

  private newRun(): { file: string; fd: number } {
    const file = path.join(this.dir, `run-${this.next++}`)
    return { file, fd: fs.openSync(file, 'wx', 0o600) }
  }

  /** Sorts the buffer and writes it as a run of distinct ids. */
  private spill(): void {
    const { buf, n } = this
    if (n === 0) return
    // Sorted by a 4-byte prefix with a native numeric sort; ids sharing a prefix (rare: ids are
    // keyed hashes) are then put in order by a full comparison.
    const keys = new Float64Array(n)
    for (let i = 0; i < n; i++) keys[i] = buf.readUInt32BE(i * ID) * INDEX_SPAN + i
    keys.sort()
    const order = new Uint32Array(n)
    for (let i = 0; i < n; i++) order[i] = keys[i]! % INDEX_SPAN
    for (let i = 1; i < n; i++) {
      if (Math.floor(keys[i]! / INDEX_SPAN) !== Math.floor(keys[i - 1]! / INDEX_SPAN)) continue
      // insertion step within the group of equal prefixes
      let j = i
      while (j > 0 && Math.floor(keys[j - 1]! / INDEX_SPAN) === Math.floor(keys[i]! / INDEX_SPAN)) {
        const a = order[j - 1]! * ID
        const b = order[j]! * ID
        if (buf.compare(buf, b, b + ID, a, a + ID) <= 0) break
        const t = order[j - 1]!
        order[j - 1] = order[j]!
        order[j] = t
        j--
      }
    }
    const run = this.newRun()
    const w = new IdFileWriter(run.fd, this.block)
    for (let i = 0; i < n; i++) w.write(buf, order[i]! * ID)
    w.close()
    this.runs.push(run.file)
    this.n = 0
  }

  /** Merges `files` into one new run of distinct ids; removes them. */
  private mergeInto(files: string[]): string {
    const run = this.newRun()
    const w = new IdFileWriter(run.fd, this.block)
    for (const id of this.merged(files)) w.write(id, 0)
    w.close()
    for (const f of files) fs.rmSync(f, { force: true })
    return run.file
  }

  /** The distinct ids of sorted run files, in order (views valid until the next one). */
  private *merged(files: string[]): Generator<Buffer> {
    const readers = files.map(f => new IdFileReader(fs.openSync(f, 'r'), this.block))
    try {
      // A binary min-heap of the readers by their current id.
      const heap = readers.filter(r => r.has())
      const less = (a: IdFileReader, b: IdFileReader) => a.compare(b) < 0
      const down = (i: number) => {
        for (;;) {
          const l = 2 * i + 1
          const r = l + 1
          let m = i
          if (l < heap.length && less(heap[l]!, heap[m]!)) m = l
          if (r < heap.length && less(heap[r]!, heap[m]!)) m = r
          if (m === i) return
          ;[heap[i], heap[m]] = [heap[m]!, heap[i]!]
          i = m
        }
      }
      for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(i)
      const last = Buffer.alloc(ID)
      let any = false
      while (heap.length > 0) {
        const top = heap[0]!
        if (!any || top.buf.compare(last, 0, ID, top.pos, top.pos + ID) !== 0) {
          top.buf.copy(last, 0, top.pos, top.pos + ID)
          any = true
          yield last
        }
        top.advance()
        if (!top.has()) {
          heap[0] = heap[heap.length - 1]!
          heap.pop()
        }
        if (heap.length > 0) down(0)
      }
    } finally {
      for (const r of readers) r.close()
    }
  }

  /** Every distinct id added, in byte order. Call once, after the last add. Each id is a view
   *  valid until the next one: copy what you keep. */
  *sorted(): Generator<Buffer> {
    this.spill()
    this.buf = Buffer.alloc(0)
    while (this.runs.length > this.fanIn) {
      const batch = this.runs.splice(0, this.fanIn)
      this.runs.push(this.mergeInto(batch))
    }
    yield* this.merged(this.runs)
  }

  /** Removes the run files. */
  close(): void {
    for (const f of this.runs) fs.rmSync(f, { force: true })
    this.runs = []
  }
}
