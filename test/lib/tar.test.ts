/**
 * lib/tar.ts, the tar codec, both directions: what the writer encodes, the reader decodes to
 * the same bytes and numbers.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { decodePax, makedev, parseTime, paxRecord, paxTime, splitDev } from '../../lib/tar.js'

test('PAX records round-trip raw bytes, whatever their length', () => {
  const value = Buffer.from([0x61, 0xff, 0x00, 0x0a, 0x3d, 0xfe])
  for (const n of [1, 5, 90, 95, 996, 1000]) {
    const key = Buffer.concat([Buffer.from('SCHILY.xattr.user.'), Buffer.alloc(n, 0x78)])
    const body = Buffer.concat([paxRecord(key, value), paxRecord('path', 'a/b')])
    const out = decodePax(body)
    assert.deepEqual(Buffer.from(out[key.toString('latin1')]!, 'latin1'), value)
    assert.equal(out.path, 'a/b')
  }
})

test('PAX times and device numbers round-trip', () => {
  for (const [sec, nsec] of [[0, 0], [1, 500_000_000], [-2, 750_000_000], [-1, 1], [1795685289, 404501667]] as const) {
    assert.deepEqual(parseTime(paxTime(sec, nsec)), [sec, nsec])
  }
  for (const [maj, min] of [[0, 0], [8, 1], [259, 65536], [4095, 1048575]] as const) assert.deepEqual(splitDev(makedev(maj, min)), [maj, min])
})
