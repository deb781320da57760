/**
 * The one storage conformance suite: every backend runs these cases (see storage-local.test.ts,
 * storage-s3.test.ts). Each case gets a fresh, empty storage from `make`.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, test } from 'node:test'
import { SluiceError } from '../../lib/errors.js'
import type { Storage } from '../../lib/storage/storage.js'

export interface StorageFixture {
  storage: Storage
  cleanup: () => Promise<void>
}

/** Deterministic bytes: SHA-256 in counter mode over a seed. */
export function seededBytes(seed: string, length: number): Buffer {
  const out = Buffer.alloc(length)
  let off = 0
  for (let i = 0; off < length; i++) {
    const block = createHash('sha256').update(`${seed}:${i}`).digest()
    off += block.copy(out, off)
  }
  return out
}

/** A chunk-like key: 'chunks/<2 hex>/<64 hex>' from a seed. */
export function chunkKey(seed: string): string {
  const id = createHash('sha256').update(seed).digest('hex')
  return `chunks/${id.slice(0, 2)}/${id}`
}

/** Byte order of ASCII keys. */
export function byteOrder(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = []
  for await (const k of it) out.push(k)
  return out
}

/** Runs `fn` over `items` with at most `n` in flight. */
export async function inParallel<T>(items: T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!)
  }
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker))
}

function isCode(code: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof SluiceError, `expected a SluiceError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    return true
  }
}

/** What a backend may do differently, each with its reason. */
export interface ConformanceOptions {
  /** The server cannot list keys in byte order when a name sorts below '/' ("a-b" vs "a/x");
   *  the backend must then fail with ERR_STORAGE rather than yield a wrong order. */
  listOrderMayFail?: string
}

/** Registers the conformance cases for one backend. */
export function storageConformance(
  name: string,
  make: () => Promise<StorageFixture>,
  options: ConformanceOptions = {},
): void {
  async function withStorage(fn: (s: Storage) => Promise<void>): Promise<void> {
    const { storage, cleanup } = await make()
    try {
      await fn(storage)
    } finally {
      await storage.close()
      await cleanup()
    }
  }

  describe(`storage conformance: ${name}`, () => {
    test('put then get returns the same bytes: empty, binary, 5 MiB', () =>
      withStorage(async (s) => {
        const everyByte = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256))
        const big = seededBytes('big', 5 * 1024 * 1024)
        const objects: [string, Buffer][] = [
          ['empty', Buffer.alloc(0)],
          ['binary', everyByte],
          ['big', big],
        ]
        for (const [key, data] of objects) assert.equal(await s.put(key, data), true, key)
        for (const [key, data] of objects) {
          const got = await s.get(key)
          assert.ok(Buffer.isBuffer(got), 'get returns a Buffer')
          assert.equal(got.length, data.length, key)
          assert.ok(got.equals(data), `${key} round-trips`)
        }
      }))

    test('put accepts a Uint8Array view into a larger buffer', () =>
      withStorage(async (s) => {
        const backing = seededBytes('view', 1000)
        const view = new Uint8Array(backing.buffer, backing.byteOffset + 100, 50)
        assert.equal(await s.put('view', view), true)
        assert.ok((await s.get('view')).equals(backing.subarray(100, 150)))
      }))

    test('get with `into` returns exactly the object, in the memory it handed out', () =>
      withStorage(async (s) => {
        const data = seededBytes('into', 300_000)
        await s.put('chunks/in/to', data)
        const asked: number[] = []
        let given: Buffer | undefined
        const got = await s.get('chunks/in/to', data.length, (n) => {
          asked.push(n)
          given = Buffer.alloc(n + 100).subarray(0, n)
          return given
        })
        assert.ok(got.equals(data))
        // A backend may read into memory of its own instead; one that asks must use the answer.
        if (given) {
          assert.deepEqual(asked, [data.length])
          assert.equal(got.buffer, given.buffer)
        }
      }))

    test('get refuses an object larger than maxBytes before reading it, naming the key', () =>
      withStorage(async (s) => {
        await s.put('chunks/to/obig', seededBytes('big-object', 5000))
        let asked = false
        await assert.rejects(
          s.get('chunks/to/obig', 4999, (n) => {
            asked = true
            return Buffer.alloc(n)
          }),
          isCode('ERR_CORRUPT'),
        )
        assert.equal(asked, false)
        assert.equal((await s.get('chunks/to/obig', 5000)).length, 5000)
      }))

    test('a second put of a key returns false and keeps the first content', () =>
      withStorage(async (s) => {
        assert.equal(await s.put('config', Buffer.from('first')), true)
        assert.equal(await s.put('config', Buffer.from('second, longer')), false)
        assert.equal((await s.get('config')).toString(), 'first')
      }))

    test('has tells stored keys from missing ones', () =>
      withStorage(async (s) => {
        await s.put('keys/0123', Buffer.from('k'))
        assert.equal(await s.has('keys/0123'), true)
        assert.equal(await s.has('keys/0124'), false)
        assert.equal(await s.has('nothing/here/at/all'), false)
        // A prefix of a key is not a key.
        assert.equal(await s.has('keys'), false)
      }))

    test('get of a missing key throws ERR_NOT_FOUND', () =>
      withStorage(async (s) => {
        await assert.rejects(s.get('snapshots/missing'), isCode('ERR_NOT_FOUND'))
        await s.put('chunks/ab/abcd', Buffer.from('x'))
        await assert.rejects(s.get('chunks/ab/abce'), isCode('ERR_NOT_FOUND'))
        await assert.rejects(s.get('chunks/ab'), isCode('ERR_NOT_FOUND'))
      }))

    test('delete removes a key; deleting a missing key is fine; the key can be put again', () =>
      withStorage(async (s) => {
        await s.put('snapshots/s1', Buffer.from('one'))
        await s.delete('snapshots/s1')
        assert.equal(await s.has('snapshots/s1'), false)
        await assert.rejects(s.get('snapshots/s1'), isCode('ERR_NOT_FOUND'))
        await s.delete('snapshots/s1')
        await s.delete('never/was')
        assert.equal(await s.put('snapshots/s1', Buffer.from('two')), true)
        assert.equal((await s.get('snapshots/s1')).toString(), 'two')
      }))

    test('list of a prefix with no keys, and of an empty storage, yields nothing', () =>
      withStorage(async (s) => {
        assert.deepEqual(await collect(s.list('')), [])
        assert.deepEqual(await collect(s.list('chunks/')), [])
        await s.put('config', Buffer.from('c'))
        assert.deepEqual(await collect(s.list('chunks/')), [])
        assert.deepEqual(await collect(s.list('snapshots/')), [])
        assert.deepEqual(await collect(s.list('configx')), [])
      }))

    test('the repository layout: list by prefix yields exactly those keys in byte order', () =>
      withStorage(async (s) => {
        const chunks = Array.from({ length: 40 }, (_, i) => chunkKey(`layout-${i}`))
        const keys = [
          'config',
          'keys/' + 'a1'.repeat(16),
          'keys/' + '0f'.repeat(16),
          'snapshots/' + 'de'.repeat(16),
          'snapshots/' + '07'.repeat(16),
          'chunks/ab/abcd' + '00'.repeat(30),
          ...chunks,
        ]
        await inParallel(keys, 8, async (k) => {
          assert.equal(await s.put(k, Buffer.from(k)), true, k)
        })
        const sorted = [...keys].sort(byteOrder)
        assert.deepEqual(await collect(s.list('')), sorted)
        assert.deepEqual(await collect(s.list('chunks/')), sorted.filter((k) => k.startsWith('chunks/')))
        assert.deepEqual(await collect(s.list('keys/')), sorted.filter((k) => k.startsWith('keys/')))
        assert.deepEqual(await collect(s.list('snapshots/')), sorted.filter((k) => k.startsWith('snapshots/')))
        assert.deepEqual(await collect(s.list('chunks/ab/')), sorted.filter((k) => k.startsWith('chunks/ab/')))
        // A prefix may end inside a name.
        assert.deepEqual(await collect(s.list('chunks/a')), sorted.filter((k) => k.startsWith('chunks/a')))
        assert.deepEqual(await collect(s.list('conf')), ['config'])
        for (const k of keys) assert.equal((await s.get(k)).toString(), k)
      }))

    test('list order is byte order where a directory walk would differ ("a-b" < "a/x" < "a0")', () =>
      withStorage(async (s) => {
        const keys = ['a0', 'a/x', 'a-b', 'a/y/z', 'a.c', 'a/y-', 'b', 'A', 'a/y/a']
        for (const k of keys) await s.put(k, Buffer.from(k))
        const check = async (prefix: string, expected: string[]): Promise<void> => {
          if (options.listOrderMayFail) {
            try {
              assert.deepEqual(await collect(s.list(prefix)), expected)
            } catch (err) {
              if (!(err instanceof SluiceError)) throw err
              assert.equal(err.code, 'ERR_STORAGE', err.message)
            }
          } else {
            assert.deepEqual(await collect(s.list(prefix)), expected)
          }
        }
        await check('', [...keys].sort(byteOrder))
        await check('a', keys.filter((k) => k.startsWith('a')).sort(byteOrder))
        await check('a/y', ['a/y-', 'a/y/a', 'a/y/z'])
      }))

    test('list pages through more than 1000 keys in byte order', { timeout: 60_000 }, () =>
      withStorage(async (s) => {
        const keys = Array.from({ length: 1100 }, (_, i) => chunkKey(`many-${i}`))
        await inParallel(keys, 16, async (k) => {
          await s.put(k, Buffer.from('x'))
        })
        await s.put('config', Buffer.from('c'))
        await s.put('snapshots/zz', Buffer.from('s'))
        const listed = await collect(s.list('chunks/'))
        assert.equal(listed.length, keys.length)
        assert.deepEqual(listed, [...keys].sort(byteOrder))
        const all = await collect(s.list(''))
        assert.equal(all.length, keys.length + 2)
        assert.deepEqual(all, [...all].sort(byteOrder))
      }))

    test('a list can be abandoned early', () =>
      withStorage(async (s) => {
        for (const k of ['x/1', 'x/2', 'x/3']) await s.put(k, Buffer.from(k))
        const seen: string[] = []
        for await (const k of s.list('x/')) {
          seen.push(k)
          if (seen.length === 2) break
        }
        assert.deepEqual(seen, ['x/1', 'x/2'])
      }))

    test('keys that are not relative paths of plain ASCII names are refused with ERR_ARGS', () =>
      withStorage(async (s) => {
        for (const bad of ['', '/abs', '../up', 'a/../../b', 'a//b', 'a/./b', 'trailing/', 'sp ace', 'nul\0', 'é']) {
          await assert.rejects(s.put(bad, Buffer.from('x')), isCode('ERR_ARGS'), JSON.stringify(bad))
          await assert.rejects(s.get(bad), isCode('ERR_ARGS'), JSON.stringify(bad))
        }
        await assert.rejects(
          (async () => {
            for await (const _ of s.list('../')) void _
          })(),
          isCode('ERR_ARGS'),
        )
      }))

    test('describe names the location', () =>
      withStorage(async (s) => {
        assert.equal(typeof s.describe(), 'string')
        assert.ok(s.describe().length > 0)
      }))
  })
}
