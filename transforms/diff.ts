/**
 * diff: the merge-join of two snapshots' record streams (both in canonical order). Each side
 * is grouped into entries with a running digest of their extents, so a file's content is
 * compared without holding its extents. Emits one DiffItem per added, removed or modified
 * path. Memory: one entry (and one digest) per side.
 */
import { createHash } from 'node:crypto'
import { Readable } from 'node:stream'
import type { EntryMeta, ExtentsItem, RecordItem } from '../lib/entry.js'
import { comparePaths } from '../lib/bytes.js'

export interface DiffItem {
  change: 'added' | 'removed' | 'modified'
  path: Buffer
  type: EntryMeta['type']
  /** For modified entries: which aspects differ (content, type, mode, owner, mtime, target, xattrs, link). */
  what: string[]
}

interface Grouped {
  entry: EntryMeta
  digest: string
}

/** Groups a record stream into entries, each with a digest of all its extents. */
async function* grouped(records: AsyncIterable<RecordItem | ExtentsItem>): AsyncIterable<Grouped> {
  let current: EntryMeta | undefined
  let hash = createHash('sha256')
  const add = (item: RecordItem | ExtentsItem) => {
    for (const e of item.extents) {
      hash.update(e.id)
      hash.update(`${e.offset}:${e.length};`)
    }
  }
  for await (const item of records) {
    if (item.kind === 'extents') {
      add(item)
      continue
    }
    if (current) yield { entry: current, digest: hash.digest('hex') }
    current = item.entry
    hash = createHash('sha256')
    add(item)
  }
  if (current) yield { entry: current, digest: hash.digest('hex') }
}

const sameXattrs = (a: EntryMeta, b: EntryMeta): boolean => {
  const x = a.xattrs ?? [], y = b.xattrs ?? []
  return x.length === y.length && x.every((v, i) => v.name.equals(y[i]!.name) && v.value.equals(y[i]!.value))
}
const sameBuf = (a?: Buffer, b?: Buffer) => (a === undefined ? b === undefined : b !== undefined && a.equals(b))

/** What differs between two records of the same path; empty when nothing does. */
export function differences(a: Grouped, b: Grouped): string[] {
  const x = a.entry, y = b.entry
  const what: string[] = []
  if (x.type !== y.type) what.push('type')
  if (x.type === 'file' && y.type === 'file' && (x.size !== y.size || a.digest !== b.digest)) what.push('content')
  if (x.mode !== y.mode) what.push('mode')
  if (x.uid !== y.uid || x.gid !== y.gid) what.push('owner')
  if (x.mtimeSec !== y.mtimeSec || x.mtimeNsec !== y.mtimeNsec) what.push('mtime')
  if (!sameBuf(x.linkTarget, y.linkTarget)) what.push('target')
  if (!sameBuf(x.hardlinkTo, y.hardlinkTo)) what.push('link')
  if (!sameXattrs(x, y)) what.push('xattrs')
  return what
}

export async function* diffRecords(
  a: AsyncIterable<RecordItem | ExtentsItem>,
  b: AsyncIterable<RecordItem | ExtentsItem>,
): AsyncIterable<DiffItem> {
  const ia = grouped(a)[Symbol.asyncIterator]()
  const ib = grouped(b)[Symbol.asyncIterator]()
  let x = await ia.next()
  let y = await ib.next()
  while (!x.done || !y.done) {
    const c = x.done ? 1 : y.done ? -1 : comparePaths(x.value.entry.path, y.value.entry.path)
    if (c < 0) {
      const e = x.value!.entry
      yield { change: 'removed', path: e.path, type: e.type, what: [] }
      x = await ia.next()
    } else if (c > 0) {
      const e = y.value!.entry
      yield { change: 'added', path: e.path, type: e.type, what: [] }
      y = await ib.next()
    } else {
      const what = differences(x.value!, y.value!)
      if (what.length > 0) yield { change: 'modified', path: y.value!.entry.path, type: y.value!.entry.type, what }
      x = await ia.next()
      y = await ib.next()
    }
  }
}

export function createDiff(a: AsyncIterable<RecordItem | ExtentsItem>, b: AsyncIterable<RecordItem | ExtentsItem>): Readable {
  return Readable.from(diffRecords(a, b), { objectMode: true, highWaterMark: 16 })
}
