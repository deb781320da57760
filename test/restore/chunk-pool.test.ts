import { test } from 'node:test'
import assert from 'node:assert/strict'
import { ChunkPool } from '../../transforms/restore/chunk-pool.js'

const KiB = 1024

test('the chunk pool reuses what is given back, ignores foreign buffers and keeps at most its cap free', () => {
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
  // Past the cap, free buffers are dropped (smallest first) and counted as garbage.
  const big = [pool.take(200 * KiB), pool.take(200 * KiB)]
  pool.give(b)
  pool.give(c)
  for (const x of big) pool.give(x)
  assert.ok(pool.garbage() > 0)
  pool.addGarbage(5)
  assert.equal(pool.garbage(), 5)
})
