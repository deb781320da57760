/**
 * diff: the merge-join of two snapshots' record streams (both in canonical order). Emits one
 * DiffItem per added, removed or modified path.
 *
 * Content is compared by walking both files' extents in step: equal ranges of the same chunk
 * are equal without reading them. Ranges that differ are compared byte by byte when a chunk
 * loader is given, because small files are packed back to back: a file read again (after a
 * touch) lands in other chunks with the same bytes, and only its mtime changed. Without a
 * loader, differing ranges count as different content. Holes (hole extents) equal holes, and
 * equal data of zeros when bytes are compared.
 *
 * Order: the join needs both sides in canonical order, which every walked snapshot is in. A
 * snapshot from a tar stream keeps the archive's order; given as a function that reads the
 * snapshot afresh each call, a side is first read once to check its order and, when it is not
 * canonical, sorted externally (lib/external-sort.ts: each record and extents record keyed by
 * its path and position, in runs under `tmpDir`), then joined from the sorted file. Given as a
 * plain iterable, a side must be in canonical order: a record out of order stops the diff with
 * ERR_CORRUPT rather than reporting wrong changes.
 *
 * Memory: one record and one extent per side, plus a size-capped cache of chunk plaintexts
 * (DIFF_CHUNK_CACHE_BYTES) when bytes are compared — never a file's whole extent list; for a side
 * sorted externally, one EXTSORT_RUN_BYTES run while sorting, then one read block.
 */
import fs from 'node:fs'
import os from 'node:os'
import nodePath from 'node:path'
import { Readable } from 'node:stream'
import { ExternalSorter } from '../../lib/external-sort.js'
import { decodeRecord, encodeEntry, encodeExtentsRecord } from '../../lib/repo/record.js'
import { isHole, type EntryMeta, type Extent, type ExtentsItem, type RecordItem } from '../../lib/entry.js'
import { comparePaths, displayPath, isAllZero } from '../../lib/bytes.js'
import { SluiceError } from '../../lib/errors.js'
import { Lru } from '../../lib/flow.js'
import { DIFF_CHUNK_CACHE_BYTES } from '../../lib/limits.js'

export interface DiffItem {
  change: 'added' | 'removed' | 'modified'
  path: Buffer
  type: EntryMeta['type']
  /** For modified entries: which aspects differ (content, type, mode, owner, mtime, target, xattrs, link). */
  what: string[]
}

/** What diff needs of a repository to compare bytes: chunk plaintexts by id. */
export interface DiffChunkLoader {
  loadChunk(id: Uint8Array): Promise<Buffer>
}

export interface DiffOptions {
  /** Compares differing extents byte by byte; without it they count as different content. */
  loader?: DiffChunkLoader
  /** Where a side out of canonical order is sorted (default os.tmpdir()). */
  tmpDir?: string
  /** Bytes per sorted run of that sort (default EXTSORT_RUN_BYTES); tests lower it. */
  sortRunBytes?: number
}

type Item = RecordItem | ExtentsItem
/** A side of the diff: its records, or a function that reads them afresh on each call (then a
 *  side out of canonical order is sorted first). */
export type DiffSide = AsyncIterable<Item> | (() => AsyncIterable<Item>)

/** One side of the join: the current record, and its extents streamed on demand. */
class Side {
  private readonly it: AsyncIterator<Item>
  /** The next record, once the current entry's extents have been read past. */
  private pending: RecordItem | undefined
  private ended = false
  /** The current entry and whether its following ExtentsItems are still unread. */
  current: RecordItem | undefined
  private open = false

  constructor(records: AsyncIterable<Item>) {
    this.it = records[Symbol.asyncIterator]()
  }

  /** Moves to the next entry, skipping the rest of the current one's extents. */
  async next(): Promise<RecordItem | undefined> {
    while (this.open) await this.pull()
    if (this.pending === undefined && !this.ended) {
      const r = await this.it.next()
      if (r.done) this.ended = true
      else if (r.value.kind !== 'record') throw new SluiceError('ERR_CORRUPT', 'an extents record with no entry before it')
      else this.pending = r.value
    }
    const prev = this.current?.entry.path
    if (prev !== undefined && this.pending !== undefined && comparePaths(prev, this.pending.entry.path) > 0) {
      throw new SluiceError('ERR_CORRUPT', `snapshot records out of canonical order at ${displayPath(this.pending.entry.path)} (after ${displayPath(prev)})`, { path: this.pending.entry.path })
    }
    this.current = this.pending
    this.pending = undefined
    this.open = this.current !== undefined
    return this.current
  }

  /** The current entry's extents after its record's own: undefined once the next record shows. */
  async pull(): Promise<Extent[] | undefined> {
    if (!this.open) return undefined
    const r = await this.it.next()
    if (r.done) {
      this.ended = true
      this.open = false
      return undefined
    }
    if (r.value.kind === 'record') {
      this.pending = r.value
      this.open = false
      return undefined
    }
    return r.value.extents
  }

  /** Every extent of the current entry, one at a time. */
  async *extents(): AsyncIterable<Extent> {
    yield* this.current?.extents ?? []
    for (let more = await this.pull(); more !== undefined; more = await this.pull()) yield* more
  }

  async close(): Promise<void> {
    await this.it.return?.()
  }
}

const sameXattrs = (a: EntryMeta, b: EntryMeta): boolean => {
  const x = a.xattrs ?? [], y = b.xattrs ?? []
  return x.length === y.length && x.every((v, i) => v.name.equals(y[i]!.name) && v.value.equals(y[i]!.value))
}
const sameBuf = (a?: Buffer, b?: Buffer) => (a === undefined ? b === undefined : b !== undefined && a.equals(b))

/** What differs between two records of the same path; `sameContent` says whether two files
 *  hold the same bytes. Empty when nothing does. */
export function differences(x: EntryMeta, y: EntryMeta, sameContent: boolean): string[] {
  const what: string[] = []
  if (x.type !== y.type) what.push('type')
  if (x.type === 'file' && y.type === 'file' && (x.size !== y.size || !sameContent)) what.push('content')
  if (x.mode !== y.mode) what.push('mode')
  if (x.uid !== y.uid || x.gid !== y.gid) what.push('owner')
  if (x.mtimeSec !== y.mtimeSec || x.mtimeNsec !== y.mtimeNsec) what.push('mtime')
  if (!sameBuf(x.linkTarget, y.linkTarget)) what.push('target')
  if (!sameBuf(x.hardlinkTo, y.hardlinkTo)) what.push('link')
  if (!sameXattrs(x, y)) what.push('xattrs')
  return what
}

/** True when two extent streams describe the same bytes. */
async function sameBytes(
  a: AsyncIterable<Extent>,
  b: AsyncIterable<Extent>,
  path: Buffer,
  load: ((id: Buffer) => Promise<Buffer>) | undefined,
): Promise<boolean> {
  const ia = a[Symbol.asyncIterator](), ib = b[Symbol.asyncIterator]()
  // The unread rest of the current extent of each side.
  let x: Extent | undefined, y: Extent | undefined
  const take = async (it: AsyncIterator<Extent>): Promise<Extent | undefined> => {
    for (;;) {
      const r = await it.next()
      if (r.done) return undefined
      if (r.value.length > 0) return { ...r.value }
    }
  }
  const slice = async (e: Extent, n: number): Promise<Buffer> => {
    const data = await load!(e.id)
    if (e.offset + n > data.length) {
      throw new SluiceError('ERR_CORRUPT', `an extent of ${displayPath(path)} runs past the end of its chunk`, { path })
    }
    return data.subarray(e.offset, e.offset + n)
  }
  for (;;) {
    x ??= await take(ia)
    y ??= await take(ib)
    if (x === undefined || y === undefined) return x === y
    const n = Math.min(x.length, y.length)
    const hx = isHole(x), hy = isHole(y)
    if (hx && hy) {
      // holes on both sides: equal
    } else if (!(x.id.equals(y.id) && x.offset === y.offset)) {
      if (!load) return false
      // A hole against data (at most a chunk's worth, so n is small): equal if the data is zeros.
      const da = hx ? null : await slice(x, n), db = hy ? null : await slice(y, n)
      if (da && db ? !da.equals(db) : !isAllZero((da ?? db)!)) return false
    }
    x.offset += n
    x.length -= n
    y.offset += n
    y.length -= n
    if (x.length === 0) x = undefined
    if (y.length === 0) y = undefined
  }
}

/** True when the records of `items` are in canonical order (a full read). */
async function inOrder(items: AsyncIterable<Item>): Promise<boolean> {
  let prev: Buffer | undefined
  for await (const it of items) {
    if (it.kind !== 'record') continue
    if (prev !== undefined && comparePaths(prev, it.entry.path) > 0) return false
    prev = it.entry.path
  }
  return true
}

/** Sort strings: u32 path length, the path, a 6-byte position, then the record as stored. */
const POS = 6
function byPathThenPosition(a: Buffer, b: Buffer): number {
  const la = a.readUInt32LE(0), lb = b.readUInt32LE(0)
  return comparePaths(a.subarray(4, 4 + la), b.subarray(4, 4 + lb)) || a.compare(b, 4 + lb, 4 + lb + POS, 4 + la, 4 + la + POS)
}

/** The items of `items` in canonical order, sorted on disk in `dir` (removed at the end). */
async function* sortedItems(items: AsyncIterable<Item>, opts: DiffOptions): AsyncGenerator<Item> {
  const dir = fs.mkdtempSync(nodePath.join(opts.tmpDir ?? os.tmpdir(), 'sluice-diff-'))
  try {
    const sorter = new ExternalSorter(dir, 'items', { compare: byPathThenPosition, ...(opts.sortRunBytes ? { runBytes: opts.sortRunBytes } : {}) })
    let path: Buffer | undefined
    let pos = 0
    for await (const it of items) {
      if (it.kind === 'record') path = it.entry.path
      else if (path === undefined) throw new SluiceError('ERR_CORRUPT', 'an extents record with no entry before it')
      const body = it.kind === 'record' ? encodeEntry(it.entry, it.extents) : encodeExtentsRecord(it.extents, it.incomplete)
      const head = Buffer.allocUnsafe(4 + path!.length + POS)
      head.writeUInt32LE(path!.length, 0)
      path!.copy(head, 4)
      head.writeUIntBE(pos++, 4 + path!.length, POS)
      sorter.add(Buffer.concat([head, body]))
    }
    const reader = sorter.finish()
    try {
      for (let s = reader.next(); s !== null; s = reader.next()) {
        const framed = s.subarray(4 + s.readUInt32LE(0) + POS)
        // encodeEntry's frame: a varint length, then the body.
        let at = 0
        while (framed[at]! >= 0x80) at++
        const rec = decodeRecord(Buffer.from(framed.subarray(at + 1)))
        if (rec === null) continue
        yield rec.kind === 'record' ? { kind: 'record', entry: rec.entry, extents: rec.extents } : { kind: 'extents', extents: rec.extents, ...(rec.incomplete ? { incomplete: true } : {}) }
      }
    } finally {
      reader.close()
      sorter.close()
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** A side as records in canonical order: a function's records are checked, and sorted if need be. */
async function canonical(side: DiffSide, opts: DiffOptions): Promise<AsyncIterable<Item>> {
  if (typeof side !== 'function') return side
  return (await inOrder(side())) ? side() : sortedItems(side(), opts)
}

export async function* diffRecords(sideA: DiffSide, sideB: DiffSide, opts: DiffOptions = {}): AsyncIterable<DiffItem> {
  const a = await canonical(sideA, opts)
  const b = await canonical(sideB, opts)
  const loader = opts.loader
  const cache = new Lru<string, Buffer>(DIFF_CHUNK_CACHE_BYTES, (v) => v.length)
  const load = loader
    ? async (id: Buffer): Promise<Buffer> => {
        const key = id.toString('hex')
        let data = cache.get(key)
        if (data === undefined) cache.set(key, (data = await loader.loadChunk(id)))
        return data
      }
    : undefined
  const sa = new Side(a)
  const sb = new Side(b)
  try {
    let x = await sa.next()
    let y = await sb.next()
    while (x || y) {
      const c = !x ? 1 : !y ? -1 : comparePaths(x.entry.path, y.entry.path)
      if (c < 0) {
        yield { change: 'removed', path: x!.entry.path, type: x!.entry.type, what: [] }
        x = await sa.next()
      } else if (c > 0) {
        yield { change: 'added', path: y!.entry.path, type: y!.entry.type, what: [] }
        y = await sb.next()
      } else {
        const p = x!.entry, q = y!.entry
        const bothFiles = p.type === 'file' && q.type === 'file'
        const same = bothFiles && p.size === q.size && (await sameBytes(sa.extents(), sb.extents(), q.path, load))
        const what = differences(p, q, same)
        if (what.length > 0) yield { change: 'modified', path: q.path, type: q.type, what }
        x = await sa.next()
        y = await sb.next()
      }
    }
  } finally {
    await sa.close()
    await sb.close()
  }
}

export function createDiff(a: DiffSide, b: DiffSide, opts: DiffOptions = {}): Readable {
  return Readable.from(diffRecords(a, b, opts), { objectMode: true, highWaterMark: 16 })
}
