/**
 * external-sort: byte strings (directory entry names, paths) sorted in bounded memory. Strings
 * gather in a run buffer of a fixed size; a full buffer is sorted (bytewise, Buffer.compare)
 * and written to a run file in a temporary directory; `finish()` merges the runs (fan-in at a
 * time, in passes) down to one sorted file, which a `SortedReader` then reads block by block.
 * Equal strings are all kept (a directory listing has none; callers that care check).
 *
 * On disk a run is a sequence of records: a u32 little-endian length, then the bytes. Run files
 * are this process's own, written and read back within one call; a record longer than the run
 * buffer cannot have been written, so a length beyond it means a damaged temporary file.
 *
 * Memory: the run buffer (`runBytes`, EXTSORT_RUN_BYTES by default) whose budget includes an
 * index of 16 bytes per string; while a run is sorted, 20 bytes more per string of it (its
 * order and two prefix keys: at most runBytes / 16 × 20, ~2.3 MB for 4 MiB of 20-byte names);
 * while merging, one read block per merged run plus one
 * write block (`fanIn + 1` × `block`); a reader, one block. Nothing grows with the count: the
 * disk holds the strings plus 4 bytes each (twice, briefly, during a merge pass).
 *
 * tmp/ files: the caller owns `dir` (a directory of its own) and removes it; `close()` removes
 * the files this sorter wrote there.
 */
import fs from 'node:fs'
import path from 'node:path'
import { EXTSORT_MERGE_BLOCK, EXTSORT_MERGE_FANIN, EXTSORT_RUN_BYTES } from './limits.js'

const LEN = 4
/** Bytes of run buffer counted per string for its index entry (two small integers). */
const INDEX = 16
/** Leading bytes compared as a number, twice, before the strings are (6: exact in a double). */
const PREFIX = 6

export interface ExternalSortOptions {
  /** Bytes of strings (plus 4 each) in one sorted run; also the longest string accepted. */
  runBytes?: number
  /** Runs merged at once. */
  fanIn?: number
  /** Read and write block of the run files. */
  block?: number
  /** The order (default bytewise, Buffer.compare). Strings that compare equal keep the order
   *  they were added in. */
  compare?: (a: Buffer, b: Buffer) => number
}

/** Reads a file of length-prefixed strings block by block. */
export class SortedReader {
  private buf: Buffer
  private len = 0
  private pos = 0
  private eof = false
  private fd: number | null

  constructor(readonly file: string, block: number, private readonly maxLen: number) {
    this.fd = fs.openSync(file, 'r')
    this.buf = Buffer.allocUnsafe(Math.max(block, 64))
  }

  /** The next string (a view, valid until the next call), or null at the end. */
  next(): Buffer | null {
    if (!this.fill(LEN)) return null
    const n = this.buf.readUInt32LE(this.pos)
    if (n > this.maxLen) throw new Error(`sort run ${this.file} is damaged (a record of ${n} bytes)`)
    if (!this.fill(LEN + n)) throw new Error(`sort run ${this.file} is truncated`)
    const s = this.buf.subarray(this.pos + LEN, this.pos + LEN + n)
    this.pos += LEN + n
    return s
  }

  /** Makes `need` bytes available at pos; false at a clean end of file. */
  private fill(need: number): boolean {
    if (this.len - this.pos >= need) return true
    if (this.pos > 0) {
      this.buf.copy(this.buf, 0, this.pos, this.len)
      this.len -= this.pos
      this.pos = 0
    }
    if (need > this.buf.length) {
      const bigger = Buffer.allocUnsafe(need)
      this.buf.copy(bigger, 0, 0, this.len)
      this.buf = bigger
    }
    while (this.len < need && !this.eof) {
      const got = fs.readSync(this.fd!, this.buf, this.len, this.buf.length - this.len, null)
      if (got === 0) this.eof = true
      this.len += got
    }
    if (this.len >= need) return true
    if (this.len === 0) return false
    throw new Error(`sort run ${this.file} is truncated`)
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd)
    this.fd = null
  }
}

/** Writes length-prefixed strings through a block buffer. */
class RunWriter {
  private readonly buf: Buffer
  private len = 0
  private readonly fd: number

  constructor(readonly file: string, block: number) {
    this.fd = fs.openSync(file, 'wx', 0o600)
    this.buf = Buffer.allocUnsafe(Math.max(block, 64))
  }

  write(src: Buffer, start: number, end: number): void {
    const n = end - start
    if (this.len + LEN + n > this.buf.length) this.flush()
    if (LEN + n > this.buf.length) {
      const head = Buffer.allocUnsafe(LEN)
      head.writeUInt32LE(n, 0)
      this.put(head, 0, LEN)
      this.put(src, start, end)
      return
    }
    this.buf.writeUInt32LE(n, this.len)
    src.copy(this.buf, this.len + LEN, start, end)
    this.len += LEN + n
  }

  private put(b: Buffer, start: number, end: number): void {
    while (start < end) start += fs.writeSync(this.fd, b, start, end - start)
  }

  private flush(): void {
    this.put(this.buf, 0, this.len)
    this.len = 0
  }

  close(): void {
    this.flush()
    fs.closeSync(this.fd)
  }
}

export class ExternalSorter {
  private readonly runBytes: number
  private readonly fanIn: number
  private readonly block: number
  private readonly cmp: ((a: Buffer, b: Buffer) => number) | undefined
  private buf: Buffer
  private used = 0
  private offsets: number[] = []
  private runs: string[] = []
  private next = 0
  /** Strings added. */
  count = 0

  /** `dir` must exist and be this sorter's alone (or shared with others of distinct `tag`). */
  constructor(private readonly dir: string, private readonly tag = 'run', opts: ExternalSortOptions = {}) {
    this.runBytes = Math.max(64, opts.runBytes ?? EXTSORT_RUN_BYTES)
    this.fanIn = Math.max(2, opts.fanIn ?? EXTSORT_MERGE_FANIN)
    this.block = opts.block ?? EXTSORT_MERGE_BLOCK
    this.cmp = opts.compare
    this.buf = Buffer.allocUnsafe(this.runBytes)
  }

  /** Adds a copy of `s`, followed by `tail` when given (one string: `s` then `tail`, without
   *  building it first). A string longer than the run buffer is refused (RangeError). */
  add(s: Uint8Array, tail?: Uint8Array): void {
    const n = s.length + (tail?.length ?? 0)
    if (n + INDEX > this.runBytes) throw new RangeError(`a string of ${n} bytes does not fit a sort run`)
    // The index costs 16 bytes a string (two numbers in a packed array): counted against the run.
    if (this.used + n + INDEX > this.runBytes) this.spill()
    this.offsets.push(this.used, this.used + n)
    this.buf.set(s, this.used)
    if (tail !== undefined) this.buf.set(tail, this.used + s.length)
    this.used += n + INDEX
    this.count++
  }

  private newRun(): RunWriter {
    return new RunWriter(path.join(this.dir, `${this.tag}-${this.next++}`), this.block)
  }

  /** Sorts the buffer and writes it as a run. */
  private spill(): void {
    const n = this.offsets.length >> 1
    if (n === 0) return
    const { buf, offsets } = this
    const order = new Uint32Array(n)
    for (let i = 0; i < n; i++) order[i] = i
    const cmp = this.cmp
    if (cmp !== undefined) {
      const at = (i: number): Buffer => buf.subarray(offsets[2 * i]!, offsets[2 * i + 1]!)
      order.sort((a, b) => cmp(at(a), at(b)) || a - b)
    } else {
      // Each string's first 6 bytes and next 6 as two numbers (zeros past its end) decide most
      // comparisons without a call into buf.compare; equal prefixes fall back to it. (A shorter string padded
      // with zeros never sorts after a longer one it is a prefix of: bytewise order is kept.)
      const keys = new Float64Array(2 * n)
      for (let i = 0; i < n; i++) {
        const s = offsets[2 * i]!
        const e = offsets[2 * i + 1]!
        let k = 0
        for (let j = s; j < s + PREFIX; j++) k = k * 256 + (j < e ? buf[j]! : 0)
        keys[2 * i] = k
        k = 0
        for (let j = s + PREFIX; j < s + 2 * PREFIX; j++) k = k * 256 + (j < e ? buf[j]! : 0)
        keys[2 * i + 1] = k
      }
      // buf.compare(target, tStart, tEnd, sStart, sEnd) compares the source range with the target's.
      order.sort((a, b) => keys[2 * a]! - keys[2 * b]! || keys[2 * a + 1]! - keys[2 * b + 1]! ||
        buf.compare(buf, offsets[2 * b]!, offsets[2 * b + 1]!, offsets[2 * a]!, offsets[2 * a + 1]!) || a - b)
    }
    const w = this.newRun()
    try {
      for (let i = 0; i < n; i++) w.write(buf, offsets[2 * order[i]!]!, offsets[2 * order[i]! + 1]!)
    } finally {
      w.close()
    }
    this.runs.push(w.file)
    this.offsets = []
    this.used = 0
  }

  /** Merges sorted run files into one new run; removes them. */
  private mergeInto(files: string[]): string {
    const w = this.newRun()
    try {
      mergeRuns(files, this.block, this.runBytes, this.cmp ?? Buffer.compare, (s) => w.write(s, 0, s.length))
    } finally {
      w.close()
    }
    for (const f of files) fs.rmSync(f, { force: true })
    return w.file
  }

  /** Sorts what was added into one file and returns its reader (the caller closes it; `close()`
   *  of the sorter removes the file). Call once, after the last add. */
  finish(): SortedReader {
    this.spill()
    this.buf = Buffer.alloc(0)
    if (this.runs.length === 0) {
      const empty = this.newRun()
      empty.close()
      this.runs.push(empty.file)
    }
    // Each pass merges consecutive groups of runs, so the runs stay in the order they were
    // written (ties resolve to the older run).
    while (this.runs.length > 1) {
      const next: string[] = []
      for (let i = 0; i < this.runs.length; i += this.fanIn) {
        const batch = this.runs.slice(i, i + this.fanIn)
        next.push(batch.length === 1 ? batch[0]! : this.mergeInto(batch))
      }
      this.runs = next
    }
    return new SortedReader(this.runs[0]!, this.block, this.runBytes)
  }

  /** Removes the run files. */
  close(): void {
    for (const f of this.runs) fs.rmSync(f, { force: true })
    this.runs = []
    this.offsets = []
    this.buf = Buffer.alloc(0)
  }
}

/** Merges sorted run files, calling `emit` with each string in order (a view, valid during the
 *  call). A binary min-heap of the readers by their current string. */
function mergeRuns(files: string[], block: number, maxLen: number, cmp: (a: Buffer, b: Buffer) => number, emit: (s: Buffer) => void): void {
  const readers: SortedReader[] = []
  try {
    for (const f of files) readers.push(new SortedReader(f, block, maxLen))
    // Runs are merged oldest first, and ties go to the older run: equal strings keep their order.
    const heap: { r: SortedReader; cur: Buffer; n: number }[] = []
    readers.forEach((r, n) => {
      const cur = r.next()
      if (cur !== null) heap.push({ r, cur, n })
    })
    const less = (i: number, j: number): boolean => (cmp(heap[i]!.cur, heap[j]!.cur) || heap[i]!.n - heap[j]!.n) < 0
    const down = (i: number): void => {
      for (;;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < heap.length && less(l, m)) m = l
        if (r < heap.length && less(r, m)) m = r
        if (m === i) return
        const t = heap[i]!
        heap[i] = heap[m]!
        heap[m] = t
        i = m
      }
    }
    for (let i = (heap.length >> 1) - 1; i >= 0; i--) down(i)
    while (heap.length > 0) {
      const top = heap[0]!
      emit(top.cur)
      const nx = top.r.next()
      if (nx === null) {
        heap[0] = heap[heap.length - 1]!
        heap.pop()
      } else {
        top.cur = nx
      }
      if (heap.length > 0) down(0)
    }
  } finally {
    for (const r of readers) r.close()
  }
}
