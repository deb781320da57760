/**
 * The record codec (lib/repo/record.ts, docs/FORMAT.md "Records"): the encoder writes the bytes
 * FORMAT.md describes (pinned by vectors), decodes back to what went in, a record encoded by a
 * RecordEncoder (a view of its buffer) is the same bytes, and copies stay intact when the next
 * record is encoded, including records larger than an encoder keeps between records.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { EntryMeta } from '../../lib/entry.js'
import { decodeRecord, encodeEntry, encodeExtentsRecord, RecordDecoder, RecordEncoder } from '../../lib/repo/record.js'

const id = (n: number): Buffer => Buffer.alloc(32, n)

const entry: EntryMeta = {
  path: Buffer.from('home/u/\xff-name', 'latin1'), type: 'file', mode: 0o4755, uid: 1000, gid: 100, size: 300_000,
  mtimeSec: -5, mtimeNsec: 999_999_999, ctimeSec: 2 ** 40, ctimeNsec: 1, ino: 2 ** 52 + 3, dev: 2049, nlink: 2,
  user: 'ü', group: 'g',
  xattrs: [{ name: Buffer.from('user.a'), value: Buffer.alloc(200, 0x61) }, { name: Buffer.from('user.b'), value: Buffer.alloc(0) }],
  incomplete: true,
}
const extents = [{ id: id(1), offset: 0, length: 131072 }, { id: id(2), offset: 4_000_000, length: 7 }]

/** The body of a framed record (after its varint length, which must match). */
function body(rec: Buffer): Buffer {
  let n = 0, mul = 1, p = 0
  for (;;) {
    const b = rec[p++]!
    n += (b & 0x7f) * mul
    if (b < 0x80) break
    mul *= 0x80
  }
  assert.equal(rec.length - p, n, 'length prefix')
  return rec.subarray(p)
}

test('records are the bytes of FORMAT.md (vectors written by the first encoder)', () => {
  // Written by the encoder before it shared one writer between records; the bytes must not move.
  assert.equal(
    encodeEntry(entry, extents).toString('hex'),
    'f002010a0d686f6d652f752fff2d6e616d65100118ed1320e80728643202c3bc3a016740e0a712490950ff93ebdc0359808080808040600168838080808080800870811078029a01cf0106757365722e61' +
      '61'.repeat(200) +
      '9a010706757365722e62a2014901010101010101010101010101010101010101010101010101010101010101010080800802020202020202020202020202020202020202020202020202020202020202028092f40107a80101',
  )
  const link: EntryMeta = { ...entry, type: 'symlink', linkTarget: Buffer.from('../t') }
  delete link.xattrs
  delete link.incomplete
  delete link.user
  delete link.group
  assert.equal(
    encodeEntry(link).toString('hex'),
    '44010a0d686f6d652f752fff2d6e616d65100318ed1320e807286440e0a712490950ff93ebdc0359808080808040600168838080808080800870811078028a01042e2e2f74',
  )
  assert.equal(
    encodeExtentsRecord([{ id: id(3), offset: 5, length: 6 }], true).toString('hex'),
    '2902a2012203030303030303030303030303030303030303030303030303030303030303030506a80101',
  )
})

test('records decode to what was encoded, and each copy survives the next encoding', () => {
  const big: EntryMeta = {
    ...entry,
    // Past what the shared writer keeps between records (64 KiB): it grows, then is dropped.
    xattrs: Array.from({ length: 3 }, (_, i) => ({ name: Buffer.from(`user.big${i}`), value: Buffer.alloc(60_000, 0x30 + i) })),
  }
  const inputs: [EntryMeta, typeof extents][] = [[entry, extents], [big, extents], [entry, []], [big, []], [entry, extents]]
  const copies = inputs.map(([e, x]) => encodeEntry(e, x))
  copies.forEach((rec, i) => {
    const [e, x] = inputs[i]!
    assert.deepEqual(decodeRecord(body(rec)), { kind: 'record', entry: e, extents: x })
  })
  // A view is the same bytes, valid until its encoder encodes the next record; two encoders do not
  // share a buffer.
  const a = new RecordEncoder()
  const b = new RecordEncoder()
  const bigView = a.entry(big, extents)
  const small = b.entry(entry, extents)
  assert.deepEqual(bigView, copies[1])
  assert.deepEqual(small, copies[0])
  assert.deepEqual(a.entry(entry, extents), copies[0])
  assert.deepEqual(a.extents(extents, true), encodeExtentsRecord(extents, true))
})

/** `rec`'s body split into its kind byte and its fields (key and value bytes each). */
function fields(rec: Buffer): Buffer[] {
  const b = body(rec)
  const out: Buffer[] = [b.subarray(0, 1)] // the kind
  let p = 1
  const varint = (): number => {
    let v = 0, mul = 1
    for (;;) {
      const x = b[p++]!
      v += (x & 0x7f) * mul
      if (x < 0x80) return v
      mul *= 0x80
    }
  }
  while (p < b.length) {
    const start = p
    const key = varint()
    if (key % 8 === 2) {
      const n = varint()
      p += n
    } else varint()
    out.push(b.subarray(start, p))
  }
  return out
}

test('decodeRecord keeps the raw body only of records stored exactly as the encoder writes them', () => {
  const plain: EntryMeta = { ...entry, incomplete: undefined } as EntryMeta
  delete plain.incomplete
  const rec = encodeEntry(plain, extents)
  const exact = decodeRecord(body(rec), true)
  assert.ok(exact?.kind === 'record' && exact.raw?.equals(body(rec)), 'an encoded record keeps its body')
  assert.equal((decodeRecord(body(rec)) as { raw?: Buffer }).raw, undefined, 'only when asked')
  const small = encodeEntry({ path: Buffer.from('a'), type: 'dir', mode: 0, uid: 0, gid: 0, size: 0, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0, ino: 0, dev: 0, nlink: 0 })
  assert.ok((decodeRecord(body(small), true) as { raw?: Buffer }).raw, 'zero values are written, and kept')

  const f = fields(rec)
  const variants: [string, Buffer][] = [
    ['two fields swapped', Buffer.concat([f[0]!, f[2]!, f[1]!, ...f.slice(3)])],
    ['an unknown field', Buffer.concat([...f, Buffer.from([0xf0, 0x01, 1]) /* key: tag 30, wire 0 */])],
    ['a field missing (mode 0)', Buffer.concat([f[0]!, f[1]!, f[2]!, ...f.slice(4)])],
    ['a longer varint than needed', Buffer.concat([f[0]!, f[1]!, Buffer.from([(2 << 3) | 0, 0x81, 0x00]), ...f.slice(3)])],
    ['an empty extents field', Buffer.concat([...f.slice(0, -1), Buffer.from([0xa2, 0x01, 0x00])])],
    ['incomplete written as 2', Buffer.concat([...f, Buffer.from([0xa8, 0x01, 2]) /* key: tag 21, wire 0 */])],
    ['a user name that is not UTF-8', Buffer.concat([...f.slice(0, 6), Buffer.from([(6 << 3) | 2, 1, 0xff]), ...f.slice(7)])],
  ]
  for (const [what, b] of variants) {
    const d = decodeRecord(b, true)
    assert.ok(d?.kind === 'record', `${what}: still decodes`)
    assert.equal(d.raw, undefined, `${what}: no raw body`)
  }
})

test('RecordDecoder decodes one record at a time; a clone goes on from the same record', () => {
  const recs = Array.from({ length: 5 }, (_, i) => encodeEntry({ ...entry, path: Buffer.from(`p${i}`), incomplete: false } as EntryMeta))
  const stream = Buffer.concat(recs)
  const paths = (d: RecordDecoder, pieces: Buffer[]): string[] => {
    const out: string[] = []
    for (const piece of pieces) {
      d.feed(piece)
      for (let r = d.next(); r; r = d.next()) if (r.kind === 'record') out.push(r.entry.path.toString())
    }
    d.end()
    return out
  }
  const all = ['p0', 'p1', 'p2', 'p3', 'p4']
  // Cut inside the second record and inside the fourth one's length prefix.
  const cut1 = recs[0]!.length + 10, cut2 = recs[0]!.length + recs[1]!.length + recs[2]!.length + 1
  assert.deepEqual(paths(new RecordDecoder(), [stream.subarray(0, cut1), stream.subarray(cut1, cut2), stream.subarray(cut2)]), all)
  const d = new RecordDecoder()
  d.feed(stream)
  assert.equal((d.next() as { entry: EntryMeta }).entry.path.toString(), 'p0')
  const fork = d.clone()
  assert.equal((d.next() as { entry: EntryMeta }).entry.path.toString(), 'p1')
  assert.equal((fork.next() as { entry: EntryMeta }).entry.path.toString(), 'p1', 'the clone starts where the original stood')
  const truncated = new RecordDecoder()
  truncated.feed(stream.subarray(0, cut1))
  while (truncated.next());
  assert.throws(() => truncated.end(), /ends inside a record/)
})
