/**
 * The record codec (lib/repo/record.ts, docs/FORMAT.md "Records"): the encoder writes the bytes
 * FORMAT.md describes (pinned by vectors), decodes back to what went in, a record encoded by a
 * RecordEncoder (a view of its buffer) is the same bytes, and copies stay intact when the next
 * record is encoded, including records larger than an encoder keeps between records.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { EntryMeta } from '../../lib/entry.js'
import { decodeRecord, encodeEntry, encodeExtentsRecord, RecordEncoder } from '../../lib/repo/record.js'

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
