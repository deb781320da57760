/**
 * The incomplete mark of a file whose record was written before its content turned out short
 * (a read error or a shrink after the first chunk cut): the chunker puts it on a trailing
 * extents record, the record codec keeps it, the snapshot cursor's fork reads ahead to it, and
 * the parent-join then reads the file again instead of reusing its zero padding. In-process,
 * with small chunker parameters so a few hundred KiB span many chunks.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createHash } from 'node:crypto'
import type { ChunkItem, ExtentsItem, RecordItem, SourceEntry, TreeItem } from '../../lib/entry.js'
import { decodeRecord, encodeExtentsRecord, RecordDecoder, RECORD_EXTENTS } from '../../lib/repo/record.js'
import { chunkId } from '../../lib/repo/crypto.js'
import { gearTable } from '../../lib/fastcdc.js'
import { SluiceError } from '../../lib/errors.js'
import { createChunker } from '../../transforms/backup/chunk.js'
import { createMetadataPacker } from '../../transforms/backup/metadata.js'
import { createParentJoin } from '../../transforms/backup/parent-join.js'
import { snapshotRecords, type ChunkLoader } from '../../transforms/restore/read-snapshot.js'

const KiB = 1024
const key = Buffer.alloc(32, 7)
const keys = { gear: gearTable(key), chunkId: (d: Uint8Array) => chunkId(key, d) }
const params = { min: 4 * KiB, avg: 16 * KiB, max: 64 * KiB }
const metaParams = { min: 32, avg: 64, max: 128 }

function seeded(seed: string, n: number): Buffer {
  const out = Buffer.alloc(n)
  for (let i = 0, c = 0; i < n; c++) {
    const h = createHash('sha256').update(`${seed}/${c}`).digest()
    i += h.copy(out, i)
  }
  return out
}

function file(name: string, size: number, content?: () => AsyncIterable<Uint8Array>): SourceEntry {
  return {
    kind: 'entry', path: Buffer.from(name), type: 'file', mode: 0o644, uid: 1, gid: 1, size,
    mtimeSec: 1_700_000_000, mtimeNsec: 5, ctimeSec: 1_700_000_000, ctimeNsec: 5, ino: size + 1, dev: 1, nlink: 1,
    ...(content ? { content } : {}),
  }
}

/** Content of `data` in 32 KiB pieces that fails with EIO after `failAfter` bytes. */
function failing(data: Buffer, failAfter: number): () => AsyncIterable<Uint8Array> {
  return async function* () {
    for (let pos = 0; pos < data.length; pos += 32 * KiB) {
      if (pos >= failAfter) throw Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' })
      yield data.subarray(pos, Math.min(pos + 32 * KiB, data.length))
    }
  }
}

function whole(data: Buffer): () => AsyncIterable<Uint8Array> {
  return async function* () {
    yield data
  }
}

async function collect<T>(items: Iterable<unknown> | AsyncIterable<unknown>, ...stages: NodeJS.ReadWriteStream[]): Promise<T[]> {
  const out: T[] = []
  const sink = new Writable({ objectMode: true, write(item, _enc, cb) { out.push(item as T); cb() } })
  await pipeline(Readable.from(items as Iterable<unknown>), ...(stages as [NodeJS.ReadWriteStream]), sink)
  return out
}

/** Chunks the entries, packs the records, and keeps every chunk: a snapshot in memory. */
async function backUp(entries: (SourceEntry | ExtentsItem)[]): Promise<{ loader: ChunkLoader; tree: TreeItem; warnings: SluiceError[]; records: (RecordItem | ExtentsItem)[] }> {
  const warnings: SluiceError[] = []
  const store = new Map<string, Buffer>()
  const records: (RecordItem | ExtentsItem)[] = []
  const chunked = await collect<ChunkItem | RecordItem | ExtentsItem>(entries, createChunker(keys, { params, onWarning: (e) => warnings.push(e) }))
  for (const item of chunked) if (item.kind !== 'chunk') records.push(item)
  const packed = await collect<ChunkItem | TreeItem>(chunked, createMetadataPacker(keys, metaParams))
  let tree: TreeItem | undefined
  for (const item of packed) {
    if (item.kind === 'chunk') store.set(item.id.toString('hex'), Buffer.from(item.data))
    else tree = item
  }
  const loader: ChunkLoader = {
    async loadChunk(id) {
      const data = store.get(Buffer.from(id).toString('hex'))
      if (!data) throw new SluiceError('ERR_MISSING', 'no such chunk')
      return data
    },
  }
  return { loader, tree: tree!, warnings, records }
}

/** The content that the extents after the record of `name` name, concatenated. */
async function contentOf(records: (RecordItem | ExtentsItem)[], loader: ChunkLoader, name: string): Promise<Buffer> {
  const parts: Buffer[] = []
  let inside = false
  for (const r of records) {
    if (r.kind === 'record') inside = r.entry.path.toString() === name
    if (!inside) continue
    for (const e of r.extents) parts.push((await loader.loadChunk(e.id)).subarray(e.offset, e.offset + e.length))
  }
  return Buffer.concat(parts)
}

test('an extents record carries the incomplete mark, with or without extents, and plain ones stay as before', () => {
  const ext = [{ id: Buffer.alloc(32, 1), offset: 3, length: 70_000 }]
  const body = (b: Buffer) => {
    const d = new RecordDecoder()
    const recs = d.push(b)
    d.end()
    assert.equal(recs.length, 1)
    return recs[0]!
  }
  assert.deepEqual(body(encodeExtentsRecord([], true)), { kind: 'extents', extents: [], incomplete: true })
  assert.deepEqual(body(encodeExtentsRecord(ext, true)), { kind: 'extents', extents: ext, incomplete: true })
  assert.deepEqual(body(encodeExtentsRecord(ext)), { kind: 'extents', extents: ext })
  // Unmarked: kind 2 and tag 20 only, the bytes sluice 0.1 wrote.
  const plain = encodeExtentsRecord(ext)
  assert.equal(plain[1], RECORD_EXTENTS)
  assert.equal(plain[2], (20 << 3) | 2)
  assert.equal(plain.length, 1 + plain[0]!)
  // A mark-only record is four bytes of body: kind, tag 21 (wire 0) as a two-byte varint, 1.
  assert.deepEqual([...encodeExtentsRecord([], true)], [4, RECORD_EXTENTS, 0x80 | ((21 << 3) & 0x7f), (21 << 3) >> 7, 1])
  assert.deepEqual(decodeRecord(Buffer.from([RECORD_EXTENTS])), { kind: 'extents', extents: [] })
})

test('a file that fails after its record was emitted gets a trailing marked extents record; a short one has its record marked', async () => {
  const big = seeded('big', 400 * KiB)
  const small = seeded('small', 3 * KiB)
  const { records, warnings } = await backUp([
    file('a-big', big.length, failing(big, 160 * KiB)),
    file('b-small', small.length, failing(small, 0)),
    file('c-small', 3 * KiB, async function* () { yield small.subarray(0, KiB); throw Object.assign(new Error('EIO'), { code: 'EIO' }) }),
  ])
  assert.ok(warnings.every((w) => w.code === 'ERR_READ'), String(warnings))
  const kinds = records.map((r) => (r.kind === 'record' ? r.entry.path.toString() : `extents${r.incomplete ? '!' : ''}:${r.extents.length}`))
  const big0 = records.findIndex((r) => r.kind === 'record' && r.entry.path.toString() === 'a-big')
  const bigRec = records[big0] as RecordItem
  assert.equal(bigRec.entry.incomplete, undefined, 'the record was emitted before the error')
  const bigItems = records.slice(big0 + 1, records.findIndex((r, i) => i > big0 && r.kind === 'record'))
  assert.ok(bigItems.length >= 2, kinds.join(' '))
  const last = bigItems[bigItems.length - 1] as ExtentsItem
  assert.deepEqual(last, { kind: 'extents', extents: [], incomplete: true }, kinds.join(' '))
  assert.equal(bigItems.filter((r) => (r as ExtentsItem).incomplete).length, 1)
  // Extents still add up to the size: the unread tail is zeros.
  const total = [...bigRec.extents, ...bigItems.flatMap((r) => r.extents)].reduce((n, e) => n + e.length, 0)
  assert.equal(total, big.length)
  // b-small failed before its first byte: left out. c-small (1 KiB read of 3) is marked on its record.
  assert.ok(!kinds.includes('b-small'))
  const c = records.find((r) => r.kind === 'record' && r.entry.path.toString() === 'c-small') as RecordItem
  assert.equal(c.entry.incomplete, true)
  assert.equal(records[records.length - 1], c, 'no trailing mark for a record that was still held')
})

test('a file that shrinks after its first chunk is marked on a trailing record too', async () => {
  const data = seeded('shrink', 300 * KiB)
  const { records } = await backUp([file('s', 500 * KiB, whole(data)), file('t', 10, whole(Buffer.from('0123456789')))])
  const rec = records[0] as RecordItem
  assert.equal(rec.entry.incomplete, undefined)
  const t = records.findIndex((r) => r.kind === 'record' && r.entry.path.toString() === 't')
  assert.deepEqual(records[t - 1], { kind: 'extents', extents: [], incomplete: true })
})

test('the next backup reads a file marked on a trailing record again, and still reuses a sound file of many extents records', async () => {
  const bad = seeded('bad', 400 * KiB)
  const good = seeded('good', 600 * KiB)
  const one = await backUp([
    file('a-bad', bad.length, failing(bad, 96 * KiB)),
    file('b-good', good.length, whole(good)),
    file('c-tail', 5, whole(Buffer.from('tail\n'))),
  ])
  assert.ok((await contentOf(one.records, one.loader, 'a-bad')).subarray(96 * KiB).equals(Buffer.alloc(bad.length - 96 * KiB)))

  // The same files, unchanged on disk and readable now, joined with that snapshot.
  const walked = [file('a-bad', bad.length, whole(bad)), file('b-good', good.length, whole(good)), file('c-tail', 5, whole(Buffer.from('tail\n')))]
  const joined = await collect<SourceEntry | ExtentsItem>(walked, createParentJoin(snapshotRecords(one.loader, one.tree)))
  const entries = joined.filter((x): x is SourceEntry => x.kind === 'entry')
  assert.deepEqual(entries.map((e) => [e.path.toString(), !!e.reuse, !!e.changed]), [['a-bad', false, true], ['b-good', true, false], ['c-tail', true, false]])
  const goodExtents = joined.filter((x): x is ExtentsItem => x.kind === 'extents')
  assert.ok(goodExtents.length > 0 && goodExtents.every((x) => !x.incomplete))
  assert.equal(joined.indexOf(goodExtents[0]!), 2, 'the reused file\'s extents records follow it')

  const two = await backUp(joined)
  assert.equal(two.warnings.length, 0)
  assert.ok((await contentOf(two.records, two.loader, 'a-bad')).equals(bad))
  assert.ok((await contentOf(two.records, one.loader, 'b-good')).equals(good), 'reused extents name the first backup\'s chunks')
  assert.ok(two.records.every((r) => !(r.kind === 'extents' ? r.incomplete : r.entry.incomplete)))
})

test('a fork of the snapshot cursor reads on from where it was taken, across metadata chunks and id-tree nodes', async () => {
  const entries: SourceEntry[] = []
  for (let i = 0; i < 3000; i++) entries.push({ ...file(`f${String(i).padStart(5, '0')}`, 0), type: 'dir' })
  const { loader, tree, records } = await backUp(entries)
  assert.ok(tree.depth >= 2, `depth ${tree.depth}: the test wants more than one id-tree node`)
  const names = (xs: (RecordItem | ExtentsItem)[]) => xs.map((r) => (r.kind === 'record' ? r.entry.path.toString() : 'x'))
  const want = names(records)
  const cursor = snapshotRecords(loader, tree)
  const got: (RecordItem | ExtentsItem)[] = []
  for (let i = 0; ; i++) {
    if (i % 397 === 0) {
      const fork = cursor.fork()
      const ahead: (RecordItem | ExtentsItem)[] = []
      for (let k = 0; k < 700; k++) {
        const r = await fork.next()
        if (r.done) break
        ahead.push(r.value)
      }
      await fork.return()
      assert.deepEqual(names(ahead), want.slice(i, i + 700), `fork at ${i}`)
    }
    const r = await cursor.next()
    if (r.done) break
    got.push(r.value)
  }
  assert.deepEqual(names(got), want)
  const again: (RecordItem | ExtentsItem)[] = []
  for await (const r of snapshotRecords(loader, tree)) again.push(r)
  assert.deepEqual(names(again), want)
})

test('a cursor over a tree of impossible depth fails with ERR_CORRUPT', () => {
  const loader: ChunkLoader = { loadChunk: async () => Buffer.alloc(0) }
  assert.throws(() => snapshotRecords(loader, { root: Buffer.alloc(32), depth: 40 }), { code: 'ERR_CORRUPT' })
})
