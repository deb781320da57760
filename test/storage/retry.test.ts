/**
 * The retry wrapper (lib/storage/retry.ts) over a local storage whose calls fail on a seeded
 * schedule: the conformance suite still passes through it, a listing broken part-way yields
 * every key once, and the attempts it makes are counted, not timed.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { SluiceError } from '../../lib/errors.js'
import { createLocalStorage } from '../../lib/storage/local.js'
import { TransientError, withRetry, type RetryOptions, type Transience } from '../../lib/storage/retry.js'
import type { Storage } from '../../lib/storage/storage.js'
import { chunkKey, seededBytes, storageConformance } from './conformance.js'
import { rng } from '../helpers/rng.js'


interface Faults {
  /** Fraction of calls that fail before reaching the storage. */
  before: number
  /** Fraction of puts that fail after the storage wrote (the answer was lost). */
  after: number
  /** Every other listing fails after this many keys, when set. */
  listBreakAfter?: number
  transience?: Transience
  /** Every call fails (a storage that stays down). */
  always?: boolean
}

/** `inner`, with TransientErrors injected; `calls` counts the calls that reached the wrapper's
 *  side of this layer. */
function flaky(inner: Storage, faults: Faults, seed = 1): Storage & { calls: number; lists: number } {
  const random = rng(seed)
  const kind = faults.transience ?? 'retry'
  const fail = (op: string) => new TransientError(kind, `test ${op}`, inner.describe(), 'injected failure')
  const self = {
    calls: 0,
    lists: 0,
    async put(key: string, data: Uint8Array) {
      self.calls++
      if (faults.always || random() < faults.before) throw fail(`PUT ${key}`)
      const wrote = await inner.put(key, data)
      if (random() < faults.after) throw fail(`PUT ${key}`)
      return wrote
    },
    async get(key: string, maxBytes?: number, into?: (length: number) => Buffer) {
      self.calls++
      if (faults.always || random() < faults.before) throw fail(`GET ${key}`)
      return inner.get(key, maxBytes, into)
    },
    async has(key: string) {
      self.calls++
      if (faults.always || random() < faults.before) throw fail(`HEAD ${key}`)
      return inner.has(key)
    },
    async delete(key: string) {
      self.calls++
      if (faults.always || random() < faults.before) throw fail(`DELETE ${key}`)
      return inner.delete(key)
    },
    async *list(prefix: string) {
      self.calls++
      if (faults.always) throw fail(`LIST ${prefix}`)
      const breaks = faults.listBreakAfter !== undefined && self.lists++ % 2 === 0
      let n = 0
      for await (const key of inner.list(prefix)) {
        if (breaks && n === faults.listBreakAfter) throw fail(`LIST ${prefix}`)
        n++
        yield key
      }
    },
    describe: () => inner.describe(),
    close: () => inner.close(),
  }
  return self
}

const FAST: RetryOptions = { maxAttempts: 8, unreachableAttempts: 3, backoff: { baseMs: 1, capMs: 4 }, unreachableCapMs: 2 }

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'sluice-retry-'))
}

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = []
  for await (const k of it) out.push(k)
  return out
}

// 10% of calls fail (a lost answer makes put say false, which the conformance suite forbids: it
// has its own test below); 20 attempts make a call that fails every time (1 in 10^20) impossible in
// practice, whatever order concurrent calls draw their faults in.
storageConformance('retry over a local directory that fails 10% of calls', async () => {
  const dir = await tempDir()
  const storage = withRetry(flaky(createLocalStorage(join(dir, 'repo')), { before: 0.1, after: 0, listBreakAfter: 3 }, 42), { ...FAST, maxAttempts: 20 })
  return { storage, cleanup: () => rm(dir, { recursive: true, force: true }) }
})

describe('retry wrapper', () => {
  test('a put whose answer was lost is retried and the object is stored once', async () => {
    const dir = await tempDir()
    try {
      const inner = flaky(createLocalStorage(dir), { before: 0, after: 1 })
      const retries: number[] = []
      const s = withRetry(inner, { ...FAST, maxAttempts: 2, onRetry: (_e, n) => retries.push(n) })
      // The first attempt writes and "loses" the answer; the second finds the key there.
      await assert.rejects(s.put('config', Buffer.from('c')), /after 2 attempts/)
      assert.deepEqual(retries, [1])
      assert.equal((await createLocalStorage(dir).get('config')).toString(), 'c')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('a listing broken part-way is listed again and yields every key once, in order', async () => {
    const dir = await tempDir()
    try {
      const local = createLocalStorage(dir)
      const keys = Array.from({ length: 40 }, (_, i) => chunkKey(`k${i}`)).sort()
      for (const k of keys) await local.put(k, seededBytes(k, 10))
      const inner = flaky(local, { before: 0, after: 0, listBreakAfter: 17 })
      const retries: number[] = []
      const s = withRetry(inner, { ...FAST, onRetry: (_e, n) => retries.push(n) })
      assert.deepEqual(await collect(s.list('chunks/')), keys)
      assert.deepEqual(retries, [1])
      assert.equal(inner.lists, 2)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('a storage that stays down: maxAttempts calls, then one ERR_STORAGE naming the operation', async () => {
    const dir = await tempDir()
    try {
      const inner = flaky(createLocalStorage(dir), { before: 0, after: 0, always: true })
      const waits: number[] = []
      const s = withRetry(inner, { ...FAST, maxAttempts: 5, onRetry: (_e, _n, w) => waits.push(w) })
      await assert.rejects(s.get('config'), (err: unknown) => {
        assert.ok(err instanceof SluiceError && !(err instanceof TransientError), String(err))
        assert.equal(err.code, 'ERR_STORAGE')
        assert.match(err.message, /^test GET config failed after 5 attempts \(.*\): injected failure$/)
        return true
      })
      assert.equal(inner.calls, 5)
      // Full jitter under an exponential cap: wait n is at most min(cap, base × 2^(n-1)).
      assert.equal(waits.length, 4)
      waits.forEach((w, i) => assert.ok(w >= 0 && w <= Math.min(FAST.backoff.capMs, FAST.backoff.baseMs * 2 ** i), `wait ${i + 1}: ${w}`))
      inner.calls = 0
      await assert.rejects(collect(s.list('')), /^SluiceError: test LIST  failed after 5 attempts/)
      assert.equal(inner.calls, 5)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('an unreachable storage gets unreachableAttempts tries; its own message is kept', async () => {
    const dir = await tempDir()
    try {
      const inner = flaky(createLocalStorage(dir), { before: 0, after: 0, always: true, transience: 'unreachable' })
      const s = withRetry(inner, FAST)
      await assert.rejects(s.has('config'), (err: unknown) => {
        assert.ok(err instanceof SluiceError && !(err instanceof TransientError), String(err))
        assert.match(err.message, /^test HEAD config failed \(.*\): injected failure$/)
        return true
      })
      assert.equal(inner.calls, FAST.unreachableAttempts)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('errors that are not transient pass through at once', async () => {
    const dir = await tempDir()
    try {
      const local = createLocalStorage(dir)
      let calls = 0
      const counting: Storage = { ...local, get: (k) => (calls++, local.get(k)) }
      const s = withRetry(counting, FAST)
      await assert.rejects(s.get('config'), (err: unknown) => err instanceof SluiceError && err.code === 'ERR_NOT_FOUND')
      assert.equal(calls, 1)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})
