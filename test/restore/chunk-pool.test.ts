import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ChunkPool } from '../../transforms/restore/chunk-pool.js'

const KiB = 1024

test('the chunk pool reuses what is given back, ignores foreign buffers and holds at most its cap', () => {
  const pool = new ChunkPool(256 * KiB)
  const a = pool.take(100 * KiB)
  assert.equal(a.length, 100 * KiB)
  assert.ok(pool.owns(a))
  pool.give(a)
  const b = pool.take(90 * KiB)
  assert.equal(b.buffer, a.buffer, 'a free buffer large enough is reused')
  const c = pool.take(90 * KiB)
  assert.notEqual(c.buffer, a.buffer, 'one in use is not handed out twice')
  assert.equal(pool.garbage(), 0, 'nothing died yet')
  const foreign = Buffer.alloc(64 * KiB)
  assert.ok(!pool.owns(foreign))
  pool.give(foreign)
  assert.notEqual(pool.take(10 * KiB).buffer, foreign.buffer, 'a buffer the pool did not make is never handed out')
  // Past the cap, buffers are still made for what is in use, and dropped (counted as garbage)
  // once given back until the pool holds its cap again.
  const big = [pool.take(200 * KiB), pool.take(200 * KiB)]
  assert.ok(pool.heldBytes() > 256 * KiB)
  pool.give(b)
  pool.give(c)
  for (const x of big) pool.give(x)
  assert.ok(pool.garbage() > 0)
  assert.ok(pool.heldBytes() <= 256 * KiB, `holds ${pool.heldBytes()} bytes, cap 256 KiB`)
  pool.addGarbage(5)
  assert.equal(pool.garbage(), 5)
})

test('the chunk pool keeps what fits its cap free through swings of the memory in use', () => {
  const cap = 1024 * KiB
  const pool = new ChunkPool(cap)
  // A fetch-ahead filling up and draining, chunks of mixed sizes: once the pool holds buffers
  // for the deepest swing, nothing more is made or dropped.
  const sizes = [200, 120, 64, 180, 90, 150].map(k => k * KiB)
  for (let round = 0; round < 20; round++) {
    const inUse = sizes.map(n => pool.take(n))
    assert.ok(pool.heldBytes() <= cap)
    for (const b of inUse) pool.give(b)
  }
  assert.equal(pool.garbage(), 0, 'no buffer dropped while what is in use fits the cap')
  // A request larger than any free buffer when the pool is full: free ones make room first.
  const before = pool.heldBytes()
  const huge = pool.take(cap - 64 * KiB)
  assert.ok(pool.heldBytes() <= cap, `holds ${pool.heldBytes()} of ${cap}`)
  assert.ok(pool.garbage() > 0 && before > 0)
  pool.give(huge)
  assert.equal(pool.take(100 * KiB).buffer, huge.buffer, 'the large free buffer serves a smaller chunk')
})
