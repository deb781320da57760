/**
 * Issue 13 items 4 and 6, on a local directory and on s3rver: key files and the config.
 * - A stray file in keys/ is ignored; a damaged key file (truncated, flipped, random, empty,
 *   another key's bytes, null or missing fields, a newer version) is reported by name and the
 *   other key files are tried; KDF parameters outside the bounds are refused before they run;
 *   another repository's key file that opens with the same password is skipped, named.
 * - The config is authenticated with the master key: an edited or nulled chunker, a swapped or
 *   truncated config fail with ERR_CORRUPT naming the config; a format-1 config is refused
 *   with ERR_FORMAT.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createLocalStorage, initRepository, openRepository, SluiceError, type Storage } from '../../index.js'
import { keyFileKey } from '../../lib/repo/keys.js'
import { KDF_MEMLIMIT_MAX, KEY_FILES_MAX, SMALL_OBJECT_MAX } from '../../lib/limits.js'
import { startS3rver, storageMaker, type S3rverHandle } from '../helpers/s3rver.js'
import { damage, replace, type Damage } from '../helpers/damage.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('repo-safety')}/keys`
const PW = 'correct horse'
const PW2 = 'battery staple'
const FAST_KDF = { opslimit: 1, memlimit: 8192 }

let server: S3rverHandle

const storageFor = storageMaker(BASE, () => server)

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  server = await startS3rver()
})
after(async () => {
  await server?.stop()
})

async function keysOf(storage: Storage): Promise<string[]> {
  const out: string[] = []
  for await (const k of storage.list('keys/')) out.push(k)
  return out
}

async function open(storage: Storage, pw = PW) {
  const warnings: SluiceError[] = []
  const repo = await openRepository(storage, pw, { onWarning: e => warnings.push(e) })
  await repo.close()
  return warnings
}

async function openFails(storage: Storage, code: string, message: RegExp, pw = PW) {
  const warnings: SluiceError[] = []
  await assert.rejects(openRepository(storage, pw, { onWarning: e => warnings.push(e) }), (e: unknown) => {
    assert.ok(e instanceof SluiceError, String(e))
    assert.equal(e.code, code, e.message)
    assert.match(e.message, message)
    return true
  })
  return warnings
}

/** Plants a JSON key file under its own (correct) name. */
async function plant(storage: Storage, json: unknown): Promise<string> {
  const bytes = Buffer.from(JSON.stringify(json))
  const key = keyFileKey(bytes)
  await storage.put(key, bytes)
  return key
}

for (const backend of ['local', 's3'] as const) {
  describe(`key files (${backend})`, () => {
    let storage: Storage
    let keyA: string // opens with PW
    let keyB: string // opens with PW2
    let goodA: Buffer

    before(async () => {
      storage = storageFor(backend, 'repo')
      const repo = await initRepository(storage, PW, { kdf: FAST_KDF })
      keyA = (await keysOf(storage))[0]!
      keyB = `keys/${await repo.addKey(PW2, FAST_KDF)}`
      goodA = await storage.get(keyA)
      await repo.close()
    })
    after(async () => {
      await storage?.close()
    })

    test('a stray file in keys/ is ignored', async () => {
      await storage.put('keys/README', Buffer.from('hello\n'))
      try {
        assert.deepEqual(await open(storage), [])
        assert.deepEqual(await open(storage, PW2), [])
      } finally {
        await storage.delete('keys/README')
      }
    })

    for (const how of ['truncated', 'flipped', 'random', 'empty', 'swapped'] as Damage[]) {
      test(`a ${how} key file is reported by name and the others are tried`, async () => {
        await damage(storage, keyA, how, { other: keyB })
        try {
          // Its password's only key is damaged: named as damaged, not as a wrong password alone.
          const w1 = await openFails(storage, 'ERR_WRONG_PASSWORD', /1 damaged key file skipped/)
          assert.equal(w1.length, 1)
          assert.equal(w1[0]!.code, 'ERR_CORRUPT')
          assert.ok(w1[0]!.message.includes(keyA), w1[0]!.message)
          // The other key file still opens the repository, with the damage named.
          const w2 = await open(storage, PW2)
          assert.ok(w2.every(w => w.message.includes(keyA)) && w2.length <= 1, w2.map(w => w.message).join('\n'))
        } finally {
          await replace(storage, keyA, goodA)
        }
      })
    }

    test('key files with null, missing or mistyped fields are ERR_CORRUPT naming them, never ERR_INTERNAL', async () => {
      const good = JSON.parse(goodA.toString()) as Record<string, unknown> & { kdf: Record<string, unknown> }
      const crafted: unknown[] = [
        null, [], 'key', {},
        { ...good, kdf: null },
        { ...good, kdf: undefined },
        { ...good, data: null },
        { ...good, data: 'not base64!' },
        { ...good, data: Buffer.alloc(10).toString('base64') },
        { ...good, kdf: { ...good.kdf, salt: null } },
        { ...good, kdf: { ...good.kdf, opslimit: null } },
        { ...good, kdf: { ...good.kdf, memlimit: '8192' } },
        { ...good, kdf: { ...good.kdf, opslimit: 1.5 } },
      ]
      const planted: string[] = []
      try {
        for (const c of crafted) planted.push(await plant(storage, c))
        // A password no key opens: every key file is read (opening stops at the first that opens).
        const warnings = await openFails(storage, 'ERR_WRONG_PASSWORD', new RegExp(`${crafted.length} damaged key files skipped`), 'nope')
        assert.equal(warnings.length, crafted.length, warnings.map(w => w.message).join('\n'))
        for (const key of planted) {
          const w = warnings.find(x => x.message.includes(key))
          assert.ok(w, `no warning names ${key}`)
          assert.equal(w.code, 'ERR_CORRUPT', w.message)
        }
      } finally {
        for (const k of planted) await storage.delete(k)
      }
    })

    test('a key file of a newer version is skipped with ERR_FORMAT, named', async () => {
      const good = JSON.parse(goodA.toString()) as Record<string, unknown>
      const key = await plant(storage, { ...good, version: 2 })
      try {
        const w = await openFails(storage, 'ERR_WRONG_PASSWORD', /1 damaged key file skipped/, 'nope')
        assert.equal(w.length, 1)
        assert.equal(w[0]!.code, 'ERR_FORMAT')
        assert.ok(w[0]!.message.includes(key))
      } finally {
        await storage.delete(key)
      }
    })

    test('KDF parameters outside the bounds are refused before they run', async () => {
      const good = JSON.parse(goodA.toString()) as Record<string, unknown> & { kdf: Record<string, unknown> }
      // 4 TiB would fail or exhaust the machine if Argon2id ran; 2^31 passes would run for days.
      const crafted = [
        { ...good, kdf: { ...good.kdf, memlimit: 4 * 1024 ** 4 } },
        { ...good, kdf: { ...good.kdf, memlimit: KDF_MEMLIMIT_MAX + 1024 } },
        { ...good, kdf: { ...good.kdf, opslimit: 2 ** 31 } },
        { ...good, kdf: { ...good.kdf, memlimit: 1024 } },
        { ...good, kdf: { ...good.kdf, opslimit: 0 } },
      ]
      const planted: string[] = []
      try {
        for (const c of crafted) planted.push(await plant(storage, c))
        await storage.delete(keyA)
        const warnings = await openFails(storage, 'ERR_WRONG_PASSWORD', /5 damaged key files skipped/)
        assert.equal(warnings.length, 5)
        for (const w of warnings) assert.match(w.message, /asks for Argon2id (memlimit|opslimit) .* refused/)
      } finally {
        for (const k of planted) await storage.delete(k)
        await replace(storage, keyA, goodA)
      }
    })

    test('at most KEY_FILES_MAX key files are examined: planted ones cannot make opening unbounded', async () => {
      const planted: string[] = []
      try {
        for (let i = 0; i <= KEY_FILES_MAX; i++) planted.push(await plant(storage, { version: 1, planted: i }))
        const w = await openFails(storage, 'ERR_WRONG_PASSWORD', new RegExp(`none of the first ${KEY_FILES_MAX} key files opens`), 'nope')
        assert.ok(w.length >= KEY_FILES_MAX - 2 && w.length <= KEY_FILES_MAX, `${w.length} warnings`)
      } finally {
        for (const k of planted) await storage.delete(k)
      }
    })

    test('a key file larger than SMALL_OBJECT_MAX is refused before it is read, named', async () => {
      const huge = Buffer.alloc(SMALL_OBJECT_MAX + 1, 0x20)
      const key = keyFileKey(huge)
      await storage.put(key, huge)
      try {
        const w = await openFails(storage, 'ERR_WRONG_PASSWORD', /1 damaged key file skipped/, 'nope')
        assert.equal(w.length, 1)
        assert.match(w[0]!.message, new RegExp(`object ${key} in .* is ${SMALL_OBJECT_MAX + 1} bytes, more than the ${SMALL_OBJECT_MAX}`))
      } finally {
        await storage.delete(key)
      }
    })

    test('only damaged key files: ERR_CORRUPT saying so', async () => {
      const goodB = await storage.get(keyB)
      await damage(storage, keyA, 'truncated')
      await damage(storage, keyB, 'flipped')
      try {
        const w = await openFails(storage, 'ERR_CORRUPT', /no usable key file: 2 damaged/)
        assert.equal(w.length, 2)
      } finally {
        await replace(storage, keyA, goodA)
        await replace(storage, keyB, goodB)
      }
    })

    test("another repository's key file that opens with the same password is skipped, named", async () => {
      const other = storageFor(backend, 'other')
      await (await initRepository(other, PW, { kdf: FAST_KDF })).close()
      const [otherKey] = await keysOf(other)
      const bytes = await other.get(otherKey!)
      await other.close()
      await storage.put(otherKey!, bytes)
      await storage.delete(keyA)
      try {
        // Only the foreign key opens with PW: the config does not authenticate with its keys.
        await openFails(storage, 'ERR_CORRUPT', /config .* failed authentication/)
        await storage.put(keyA, goodA)
        const w = await open(storage)
        if (otherKey! < keyA) {
          assert.equal(w.length, 1)
          assert.ok(w[0]!.message.includes(otherKey!) && /another repository/.test(w[0]!.message), w[0]!.message)
        } else assert.deepEqual(w, []) // keyA came first in the listing and opened
      } finally {
        await storage.delete(otherKey!)
        await replace(storage, keyA, goodA)
      }
    })
  })

  describe(`config (${backend})`, () => {
    let storage: Storage
    let good: Buffer

    before(async () => {
      storage = storageFor(backend, 'config')
      await (await initRepository(storage, PW, { kdf: FAST_KDF })).close()
      good = await storage.get('config')
    })
    after(async () => {
      await storage?.close()
    })

    /** The config with its body edited by `edit` (the MAC left as it was). */
    function edited(edit: (body: Record<string, unknown>) => unknown): Buffer {
      const outer = JSON.parse(good.toString()) as { version: number; config: string; mac: string }
      const body = JSON.parse(outer.config) as Record<string, unknown>
      return Buffer.from(JSON.stringify({ ...outer, config: JSON.stringify(edit(body)) }))
    }

    const cases: [string, () => Buffer | Promise<Buffer>, string, RegExp][] = [
      ['tiny chunker', () => edited(b => ({ ...b, chunker: { min: 64, avg: 64, max: 64 } })), 'ERR_CORRUPT', /config .* failed authentication/],
      ['null chunker', () => edited(b => ({ ...b, chunker: null })), 'ERR_CORRUPT', /config .* failed authentication/],
      ['missing metaChunker', () => edited(b => ({ ...b, metaChunker: undefined })), 'ERR_CORRUPT', /config .* failed authentication/],
      ['null body', () => Buffer.from(JSON.stringify({ ...JSON.parse(good.toString()), config: null })), 'ERR_CORRUPT', /config .* lacks its body/],
      ['no MAC', () => Buffer.from(JSON.stringify({ ...JSON.parse(good.toString()), mac: undefined })), 'ERR_CORRUPT', /config .* lacks its body or its MAC/],
      ['truncated', () => good.subarray(0, good.length >> 1), 'ERR_CORRUPT', /config .* is not valid JSON/],
      ['empty', () => Buffer.alloc(0), 'ERR_CORRUPT', /config .* is not valid JSON/],
      ['huge', () => Buffer.alloc(SMALL_OBJECT_MAX + 1, 0x20), 'ERR_CORRUPT', /object config in .* bytes, more than/],
      ['null', () => Buffer.from('null'), 'ERR_CORRUPT', /config .* is not a JSON object/],
      ['flipped MAC', () => {
        const o = JSON.parse(good.toString()) as { mac: string }
        const mac = Buffer.from(o.mac, 'base64')
        mac[30]! ^= 1
        return Buffer.from(JSON.stringify({ ...o, mac: mac.toString('base64') }))
      }, 'ERR_CORRUPT', /config .* failed authentication/],
      // A config as format 1 wrote it: the body itself, in the clear, with no MAC.
      ['format 1 (unauthenticated)', () => Buffer.from(JSON.stringify({ ...JSON.parse(JSON.parse(good.toString()).config), version: 1 }, null, 2) + '\n'), 'ERR_FORMAT', /format 1, whose config is not authenticated/],
      ['format 3', () => Buffer.from(JSON.stringify({ ...JSON.parse(good.toString()), version: 3 })), 'ERR_FORMAT', /format 3 .* not supported/],
      ['outer version differs from the body', () => edited(b => ({ ...b, version: 3 })), 'ERR_CORRUPT', /failed authentication/],
      ['swapped: another repository\'s config', async () => {
        const other = storageFor(backend, 'other-config')
        await (await initRepository(other, PW, { kdf: FAST_KDF })).close()
        const c = await other.get('config')
        await other.close()
        return c
      }, 'ERR_CORRUPT', /config .* failed authentication/],
    ]
    for (const [name, make, code, message] of cases) {
      test(`config ${name}: ${code}`, async () => {
        await replace(storage, 'config', await make())
        try {
          await openFails(storage, code, message)
        } finally {
          await replace(storage, 'config', good)
        }
      })
    }

    test('the untouched config opens, with its chunker', async () => {
      const repo = await openRepository(storage, PW)
      assert.deepEqual(repo.config.chunker, { min: 256 * 1024, avg: 1024 * 1024, max: 4 * 1024 * 1024 })
      assert.equal(repo.config.version, 2)
      await repo.close()
    })
  })
}

test('an init killed between its config and its key: open says so, a second init refuses', async () => {
  const storage = createLocalStorage(`${BASE}/half-init`)
  await (await initRepository(storage, PW, { kdf: FAST_KDF })).close()
  for await (const k of storage.list('keys/')) await storage.delete(k)
  await assert.rejects(openRepository(storage, PW), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_CORRUPT' && /has a config but no key file \(an init killed/.test(e.message))
  await assert.rejects(initRepository(storage, PW, { kdf: FAST_KDF }), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_REPO_EXISTS')
})

test('init refuses an empty password and KDF parameters outside the bounds', async () => {
  const storage = createLocalStorage(`${BASE}/init-refusals`)
  await assert.rejects(initRepository(storage, '', { kdf: FAST_KDF }), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_ARGS')
  await assert.rejects(initRepository(storage, PW, { kdf: { opslimit: 1, memlimit: 2 ** 40 } }), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_ARGS')
  assert.equal(fs.existsSync(`${BASE}/init-refusals`), false, 'a refused init writes nothing')
})

test('a key made with the earlier default (32 MiB x 4) still opens, and new keys record their own', async () => {
  const storage = createLocalStorage(`${BASE}/old-kdf`)
  await (await initRepository(storage, PW, { kdf: { opslimit: 4, memlimit: 32 * 1024 * 1024 } })).close()
  const repo = await openRepository(storage, PW)
  await repo.addKey(PW2)
  await repo.close()
  const kdfs = []
  for (const k of await keysOf(storage)) {
    const file = JSON.parse((await storage.get(k)).toString('utf8')) as { kdf: { opslimit: number; memlimit: number } }
    kdfs.push(`${file.kdf.memlimit / 1024 / 1024}x${file.kdf.opslimit}`)
  }
  assert.deepEqual(kdfs.sort(), ['16x8', '32x4'])
  await (await openRepository(storage, PW2)).close()
})
