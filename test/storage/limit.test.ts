/**
 * The rate limiter (lib/storage/limit.ts): token-bucket arithmetic on an injected clock, and the
 * wrapper's waits counted through an injected sleep. No wall-clock time is measured here; the
 * timed run (5 MiB/s, 100 MiB) is bench/limit.ts.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { SluiceError } from '../../lib/errors.js'
import { createLocalStorage } from '../../lib/storage/local.js'
import { TokenBucket, parseRateLimit, withLimit } from '../../lib/storage/limit.js'
import { RATE_LIMIT_BURST_SECONDS } from '../../lib/limits.js'

describe('TokenBucket', () => {
  test('within the burst nothing waits; beyond it the debt is repaid at the rate', () => {
    let t = 0
    const b = new TokenBucket(1000, 500, () => t)
    assert.equal(b.take(200), 0)
    assert.equal(b.take(300), 0)
    // Empty: 250 bytes more is 250 ms of debt.
    assert.equal(b.take(250), 250)
    // Overlapping calls queue behind the debt: the next 1000 bytes wait 1.25 s in all.
    assert.equal(b.take(1000), 1250)
    // After those 1.25 s the bucket is back at zero, not at a burst.
    t = 1250
    assert.equal(b.take(1), 1)
  })

  test('idle time refills up to the burst, no further', () => {
    let t = 0
    const b = new TokenBucket(1000, 500, () => t)
    b.take(500)
    t = 10_000
    assert.equal(b.take(500), 0)
    assert.equal(b.take(100), 100)
  })

  test('a long transfer averages to the rate: 100 MiB at 5 MiB/s takes 20 s less the burst', () => {
    let t = 0
    const rate = 5 * 1024 * 1024
    const b = new TokenBucket(rate, rate * RATE_LIMIT_BURST_SECONDS, () => t)
    for (let sent = 0; sent < 100 * 1024 * 1024; sent += 1024 * 1024) t += b.take(1024 * 1024)
    assert.equal(t, (20 - RATE_LIMIT_BURST_SECONDS) * 1000)
  })

  test('refuses a rate that is not positive', () => {
    assert.throws(() => new TokenBucket(0, 1), RangeError)
  })
})

describe('withLimit', () => {
  test('put waits for its bytes before it writes, get after it reads; has/list/delete are free', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sluice-limit-'))
    try {
      let t = 0
      const waits: string[] = []
      const s = withLimit(createLocalStorage(dir), {
        uploadBytesPerSecond: 1000,
        downloadBytesPerSecond: 2000,
        now: () => t,
        sleep: async ms => {
          waits.push(`${ms}`)
          t += ms
        },
      })
      // Bursts: 250 bytes up, 500 down.
      assert.equal(await s.put('a', Buffer.alloc(250)), true)
      assert.deepEqual(waits, [])
      assert.equal(await s.put('b', Buffer.alloc(1000)), true)
      assert.deepEqual(waits, ['1000'])
      assert.equal((await s.get('b')).length, 1000)
      assert.deepEqual(waits, ['1000', '250'])
      assert.equal(await s.has('a'), true)
      const keys: string[] = []
      for await (const k of s.list('')) keys.push(k)
      assert.deepEqual(keys, ['a', 'b'])
      await s.delete('a')
      assert.deepEqual(waits, ['1000', '250'])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('no limit given: the storage itself', async () => {
    const inner = createLocalStorage(tmpdir())
    assert.equal(withLimit(inner, {}), inner)
  })

  test('parseRateLimit takes KiB/s and refuses anything else with one coded line', () => {
    assert.equal(parseRateLimit(5120, 'limit-upload'), 5 * 1024 * 1024)
    for (const bad of [0, -1, Number.NaN, 'fast']) {
      assert.throws(() => parseRateLimit(bad, 'limit-upload'), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_ARGS' && /--limit-upload/.test(e.message))
    }
  })
})
