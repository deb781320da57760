/**
 * writeSparse (transforms/restore/sinks/write-sparse.ts), the hole-aware write of restore: what
 * it writes where, given holes and data with zero blocks, with and without --sparse. Through a
 * recording write function: the bytes a file would hold are rebuilt from the writes.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { writeSparse } from '../../transforms/restore/sinks/write-sparse.js'
import { RESTORE_SPARSE_MIN } from '../../lib/limits.js'
import { seededBytes } from '../helpers/tree.js'

const B = RESTORE_SPARSE_MIN

/** Runs pieces through writeSparse from position 0; returns the writes (position, length), the
 *  file they make (unwritten bytes zero, as in a new file ftruncated to its size), and whether
 *  anything was skipped. Writes come back short now and then, as pwrite may. */
async function run(pieces: (Buffer | number)[], sparse: boolean) {
  const writes: [number, number][] = []
  const size = pieces.reduce<number>((n, p) => n + (typeof p === 'number' ? p : p.length), 0)
  const file = Buffer.alloc(size, 0)
  const written = Buffer.alloc(size, 0)
  let short = 0
  const write = async (buf: Uint8Array, off: number, pos: number): Promise<number> => {
    const n = Math.max(1, (buf.length - off) >> (short++ % 3 === 2 ? 1 : 0))
    file.set(buf.subarray(off, off + n), pos)
    written.fill(1, pos, pos + n)
    writes.push([pos, n])
    return n
  }
  let pos = 0
  let skipped = false
  for (const p of pieces) {
    const w = await writeSparse(write, p, pos, sparse)
    assert.equal(w.length, typeof p === 'number' ? p : p.length)
    pos += w.length
    skipped ||= w.skipped
  }
  return { writes, file, written, skipped }
}

test('holes and zero blocks are skipped with sparse; the rest is written, and the bytes are right', async () => {
  const data = seededBytes('ws-a', 3 * B + 100)
  // Data, a hole, data with two whole zero blocks inside (aligned in the file), a tail of zeros.
  const withZeros = Buffer.concat([seededBytes('ws-b', B), Buffer.alloc(2 * B), seededBytes('ws-c', 10), Buffer.alloc(B)])
  const pieces = [data, 5 * B + 7, withZeros]
  const want = Buffer.concat([data, Buffer.alloc(5 * B + 7), withZeros])
  const r = await run(pieces, true)
  assert.ok(r.file.equals(want))
  assert.ok(r.skipped)
  // Nothing was written in the hole, nor in whole zero blocks.
  const holeStart = data.length
  assert.equal(r.written.subarray(holeStart, holeStart + 5 * B + 7).indexOf(1), -1, 'nothing written in the hole')
  for (let b = 0; b * B < want.length; b++) {
    const block = want.subarray(b * B, (b + 1) * B)
    if (block.every(x => x === 0) && block.length === B) {
      assert.equal(r.written.subarray(b * B, (b + 1) * B).indexOf(1), -1, `zero block ${b} left unwritten`)
    }
  }
  // Every non-zero byte was written.
  for (let i = 0; i < want.length; i++) if (want[i] !== 0) assert.equal(r.written[i], 1, `byte ${i}`)
})

test('random data is written in one run per piece, not block by block', async () => {
  const data = seededBytes('ws-d', 64 * B)
  const r = await run([data], true)
  assert.equal(r.skipped, false)
  assert.ok(r.file.equals(data))
  // Short writes aside, the writes follow each other without gaps.
  let at = 0
  for (const [pos, n] of r.writes) {
    assert.equal(pos, at)
    at += n
  }
  assert.equal(at, data.length)
})

test('without sparse every byte is written, holes as zeros', async () => {
  const data = seededBytes('ws-e', 1000)
  const pieces = [Buffer.alloc(3 * B), 200_000, data]
  const r = await run(pieces, false)
  assert.equal(r.skipped, false)
  assert.equal(r.written.indexOf(0), -1, 'no byte left unwritten')
  assert.ok(r.file.equals(Buffer.concat([Buffer.alloc(3 * B + 200_000), data])))
})
