import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { after, before, describe, test } from 'node:test'
import { SluiceError } from '../../lib/errors.js'
import { createS3Storage, type S3Options } from '../../lib/storage/s3.js'
import { openS3Storage } from '../../lib/storage/location.js'
import { TransientError, type RetryOptions } from '../../lib/storage/retry.js'
import { S3_UNREACHABLE_ATTEMPTS, S3_UNREACHABLE_BACKOFF_CAP_MS } from '../../lib/limits.js'
import { inParallel, seededBytes, storageConformance } from './conformance.js'
import { startFaultProxy } from '../helpers/fault-proxy.js'
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.js'

let server: S3rverHandle
let n = 0

before(async () => {
  server = await startS3rver()
})
after(async () => {
  await server?.stop()
})

/** Options for a fresh, empty prefix in the test bucket. */
function fresh(extra: Partial<S3Options> = {}): S3Options {
  return {
    bucket: server.bucket,
    prefix: `run/${process.pid}-${n++}`,
    endpoint: server.endpoint,
    forcePathStyle: true,
    credentials: S3RVER_CREDENTIALS,
    ...extra,
  }
}

function isCode(code: string, match?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof SluiceError, `expected a SluiceError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    if (match) assert.match(err.message, match)
    return true
  }
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
  const { port } = srv.address() as { port: number }
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

/** An S3 storage with retries (as openStorage gives), and the retries it made. "At once" below
 *  means no retry, counted: no clock, so a loaded machine cannot fail the test. */
function retrying(opts: S3Options, retry: Partial<RetryOptions> = {}) {
  const retries: { err: TransientError; waitMs: number }[] = []
  const storage = openS3Storage(opts, { ...retry, onRetry: (err, _n, waitMs) => retries.push({ err, waitMs }) })
  return { storage, retries }
}

async function settled<T>(p: Promise<T>): Promise<PromiseSettledResult<T>> {
  const [result] = await Promise.allSettled([p])
  return result!
}

storageConformance('s3 (s3rver)', async () => ({ storage: openS3Storage(fresh()), cleanup: async () => {} }), {
  listOrderMayFail: 's3rver lists by walking its directories, so "a/x" comes before "a-b"; real S3 does not',
})

describe('s3 storage', () => {
  test('an object above the multipart threshold goes up in parts and comes back whole', async () => {
    const s = createS3Storage(fresh({ multipartThreshold: 6 * 1024 * 1024 }))
    try {
      const data = seededBytes('multipart', 11 * 1024 * 1024 + 17)
      assert.equal(await s.put('big/object', data), true)
      assert.ok((await s.get('big/object')).equals(data))
      assert.equal(await s.put('big/object', data), false)
    } finally {
      await s.close()
    }
  })

  test('keys live under the prefix, and list strips it', async () => {
    const opts = fresh()
    const s = createS3Storage({ ...opts, prefix: `/${opts.prefix}/` })
    const whole = createS3Storage({ ...opts, prefix: '' })
    try {
      await s.put('config', Buffer.from('c'))
      assert.equal((await whole.get(`${opts.prefix}/config`)).toString(), 'c')
      const listed: string[] = []
      for await (const k of s.list('')) listed.push(k)
      assert.deepEqual(listed, ['config'])
      assert.equal(s.describe(), `s3:${server.endpoint}/${server.bucket}/${opts.prefix}`)
    } finally {
      await s.close()
      await whole.close()
    }
  })

  test('a bucket that does not exist is ERR_REPO_NOT_FOUND at once, naming the bucket', async () => {
    const { storage: s, retries } = retrying(fresh({ bucket: 'no-such-bucket' }))
    try {
      const ops: (() => Promise<unknown>)[] = [
        () => s.get('config'),
        () => s.put('config', Buffer.from('x')),
        async () => {
          for await (const _ of s.list('')) void _
        },
      ]
      for (const op of ops) {
        const result = await settled(op())
        assert.equal(result.status, 'rejected')
        isCode('ERR_REPO_NOT_FOUND', /no-such-bucket/)((result as PromiseRejectedResult).reason)
        assert.deepEqual(retries, [])
      }
    } finally {
      await s.close()
    }
  })

  test('an unknown access key is ERR_ACCESS_DENIED at once', async () => {
    const { storage: s, retries } = retrying(fresh({ credentials: { accessKeyId: 'NOT-A-KEY', secretAccessKey: 'nope' } }))
    try {
      const ops: (() => Promise<unknown>)[] = [
        () => s.get('config'),
        () => s.put('config', Buffer.from('x')),
        () => s.has('config'),
        async () => {
          for await (const _ of s.list('')) void _
        },
      ]
      for (const op of ops) {
        const result = await settled(op())
        assert.equal(result.status, 'rejected')
        isCode('ERR_ACCESS_DENIED')((result as PromiseRejectedResult).reason)
        assert.deepEqual(retries, [])
      }
    } finally {
      await s.close()
    }
  })

  test('no credentials anywhere is ERR_ACCESS_DENIED saying where credentials come from', async () => {
    const names = [
      'AWS_ACCESS_KEY_ID',
      'AWS_SECRET_ACCESS_KEY',
      'AWS_SESSION_TOKEN',
      'AWS_PROFILE',
      'AWS_SHARED_CREDENTIALS_FILE',
      'AWS_CONFIG_FILE',
      'AWS_EC2_METADATA_DISABLED',
      'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI',
      'AWS_CONTAINER_CREDENTIALS_FULL_URI',
      'AWS_WEB_IDENTITY_TOKEN_FILE',
    ]
    const saved = Object.fromEntries(names.map((k) => [k, process.env[k]]))
    for (const k of names) delete process.env[k]
    process.env.AWS_SHARED_CREDENTIALS_FILE = '/nonexistent/sluice-test/credentials'
    process.env.AWS_CONFIG_FILE = '/nonexistent/sluice-test/config'
    // Never ask the EC2 metadata service: tests talk to loopback only.
    process.env.AWS_EC2_METADATA_DISABLED = 'true'
    const opts = fresh()
    delete opts.credentials
    const { storage: s, retries } = retrying(opts)
    try {
      const result = await settled(s.get('config'))
      assert.equal(result.status, 'rejected')
      isCode('ERR_ACCESS_DENIED', /no AWS credentials found.*AWS_ACCESS_KEY_ID/)((result as PromiseRejectedResult).reason)
      assert.deepEqual(retries, [])
    } finally {
      await s.close()
      for (const k of names) {
        if (saved[k] === undefined) delete process.env[k]
        else process.env[k] = saved[k]
      }
    }
  })

  test('an unreachable endpoint is one ERR_STORAGE after a few short waits', async () => {
    const port = await closedPort()
    const { storage: s, retries } = retrying(fresh({ endpoint: `http://127.0.0.1:${port}` }))
    try {
      const result = await settled(s.get('config'))
      assert.equal(result.status, 'rejected')
      isCode('ERR_STORAGE', new RegExp(`cannot reach S3 at http://127.0.0.1:${port}.*ECONNREFUSED`))(
        (result as PromiseRejectedResult).reason,
      )
      assert.equal(retries.length, S3_UNREACHABLE_ATTEMPTS - 1)
      for (const r of retries) {
        assert.equal(r.err.transience, 'unreachable')
        assert.ok(r.waitMs <= S3_UNREACHABLE_BACKOFF_CAP_MS, `waited ${r.waitMs} ms`)
      }
    } finally {
      await s.close()
    }
  })

  test('200 puts and gets through a proxy that drops 5% and answers 10% with 503 SlowDown', { timeout: 60_000 }, async () => {
    const proxy = await startFaultProxy(server.endpoint, { seed: 42, drop: 0.05, slowDown: 0.1 })
    const { storage: s, retries } = retrying(fresh({ endpoint: proxy.endpoint }))
    try {
      const items = Array.from({ length: 200 }, (_, i) => ({ key: `chunks/${String(i % 16).padStart(2, '0')}/obj-${i}`, data: seededBytes(`fault-${i}`, 1000 + i * 37) }))
      await inParallel(items, 8, async ({ key, data }) => {
        await s.put(key, data)
      })
      await inParallel(items, 8, async ({ key, data }) => {
        assert.ok((await s.get(key)).equals(data), key)
      })
      let listed = 0
      for await (const _ of s.list('chunks/')) listed++
      assert.equal(listed, items.length)
      const { stats } = proxy
      assert.ok(stats.droppedBefore + stats.droppedAfter > 0 && stats.slowDown > 0, JSON.stringify(stats))
      assert.ok(retries.length > 0 && retries.every((r) => r.err.transience === 'retry'), `${retries.length} retries`)
    } finally {
      await s.close()
      await proxy.stop()
    }
  })

  test('a response slower than the request timeout is retried', async () => {
    // Held responses wait 5 s, far past the 1.5 s timeout; an answer that is not held comes back
    // well inside it even on a loaded machine (and a slow one is only one more retry).
    const proxy = await startFaultProxy(server.endpoint, { seed: 7, delay: 0.3, delayMs: 5000 })
    const s = openS3Storage(fresh({ endpoint: proxy.endpoint, timeouts: { requestMs: 1500 } }))
    try {
      for (let i = 0; i < 4; i++) {
        const data = seededBytes(`slow-${i}`, 100)
        await s.put(`slow/${i}`, data)
        assert.ok((await s.get(`slow/${i}`)).equals(data))
      }
      assert.ok(proxy.stats.delayed > 0, JSON.stringify(proxy.stats))
    } finally {
      await s.close()
      await proxy.stop()
    }
  })

  test('a GET whose body is cut off halfway is retried, never returned short', async () => {
    const opts = fresh()
    const s = openS3Storage(opts)
    const data = seededBytes('truncate', 256 * 1024)
    await s.put('cut/object', data)
    await s.close()
    const proxy = await startFaultProxy(server.endpoint, { seed: 3, truncate: 0.5 })
    const t = openS3Storage({ ...opts, endpoint: proxy.endpoint })
    try {
      for (let i = 0; i < 12; i++) assert.ok((await t.get('cut/object')).equals(data))
      // Read into memory handed out (restore's chunk pool): a cut attempt's memory is never returned.
      for (let i = 0; i < 12; i++) {
        const given: Buffer[] = []
        const got = await t.get('cut/object', data.length, (size) => {
          given.push(Buffer.alloc(size))
          return given.at(-1)!
        })
        assert.ok(got.equals(data))
        assert.equal(got.buffer, given.at(-1)!.buffer)
      }
      assert.ok(proxy.stats.truncated > 0, JSON.stringify(proxy.stats))
    } finally {
      await t.close()
      await proxy.stop()
    }
  })

  test('a service that keeps failing gives up after maxAttempts with ERR_STORAGE', async () => {
    const proxy = await startFaultProxy(server.endpoint, { seed: 1, slowDown: 1 })
    const s = openS3Storage(fresh({ endpoint: proxy.endpoint }), { maxAttempts: 3, backoff: { baseMs: 10, capMs: 50 } })
    try {
      await assert.rejects(s.get('config'), isCode('ERR_STORAGE', /after 3 attempts.*SlowDown/))
      assert.equal(proxy.stats.requests, 3)
    } finally {
      await s.close()
      await proxy.stop()
    }
  })

  test('the plain S3 storage makes one attempt and says the failure is transient', async () => {
    const proxy = await startFaultProxy(server.endpoint, { seed: 1, slowDown: 1 })
    const s = createS3Storage(fresh({ endpoint: proxy.endpoint }))
    try {
      await assert.rejects(s.get('config'), (err: unknown) => {
        assert.ok(err instanceof TransientError, String(err))
        assert.equal(err.code, 'ERR_STORAGE')
        assert.equal(err.transience, 'retry')
        assert.match(err.message, /^S3 GET config failed \(s3:.*\): SlowDown/)
        return true
      })
      assert.equal(proxy.stats.requests, 1)
    } finally {
      await s.close()
      await proxy.stop()
    }
  })
})
