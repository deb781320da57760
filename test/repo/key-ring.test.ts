/**
 * Issue 18 item 1, through the library, on a local directory and on s3rver: the key lifecycle
 * (init with A, add B, open with B, passwd A→C, the key in use refused for removal, open with C
 * and B), key list's fields and its `current` mark, damaged key files named and skipped, and a
 * key passwd interrupted after any number of storage writes leaves a repository that opens with
 * the old password or the new one.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import {
  addKey, changePassword, createLocalStorage, findKey, initRepository, listKeys, openRepository, removeKey, SluiceError,
  type KeyInfo, type Repository, type Storage,
} from '../../index.js'
import { startS3rver, storageMaker, type S3rverHandle } from '../helpers/s3rver.js'
import { damage } from '../helpers/damage.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('repo-task')}/key-ring`
const [A, B, C] = ['password A', 'password B', 'password C']
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

async function keys(repo: Repository): Promise<KeyInfo[]> {
  const out: KeyInfo[] = []
  for await (const k of listKeys(repo, err => assert.fail(err.message))) out.push(k)
  return out
}

/** The repository opened with `pw`, or the error code. */
async function opens(storage: Storage, pw: string): Promise<string> {
  try {
    const repo = await openRepository(storage, pw, { onWarning: () => {} })
    await repo.close()
    return 'ok'
  } catch (err) {
    if (err instanceof SluiceError) return err.code
    throw err
  }
}

function refused(code: string, message: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof SluiceError, String(e))
    assert.equal(e.code, code, e.message)
    assert.match(e.message, message)
    return true
  }
}

for (const backend of ['local', 's3'] as const) {
  describe(`key lifecycle (${backend})`, () => {
    test('init A, add B, open with B, passwd A→C, the key in use cannot go, open with C and B', async () => {
      const storage = storageFor(backend, 'life')
      const repoA = await initRepository(storage, A, { kdf: FAST_KDF })
      const idA = repoA.keyId
      assert.match(idA, /^[0-9a-f]{64}$/)
      const idB = await addKey(repoA, B, { kdf: FAST_KDF, host: 'laptop', username: 'alice' })
      // Every key wraps the same master keys: B opens the same repository, chunk ids and all.
      const repoB = await openRepository(storage, B)
      assert.equal(repoB.keyId, idB)
      assert.equal(repoB.config.id, repoA.config.id)
      assert.ok(repoB.keys.encKey.equals(repoA.keys.encKey) && repoB.keys.idKey.equals(repoA.keys.idKey))
      const listed = await keys(repoB)
      assert.deepEqual(listed.map(k => [k.id, k.current]).sort(), [[idA, false], [idB, true]].sort())
      const b = listed.find(k => k.id === idB)!
      assert.equal(b.hostName, 'laptop')
      assert.equal(b.userName, 'alice')
      assert.ok(Math.abs(Date.parse(b.created) - Date.now()) < 600_000, b.created)

      // The key in use is refused, by full id or prefix.
      await assert.rejects(removeKey(repoA, idA), refused('ERR_KEY_IN_USE', /refusing to remove key currently used to access repository/))
      await assert.rejects(removeKey(repoA, idA.slice(0, 8)), refused('ERR_KEY_IN_USE', /currently used/))
      await assert.rejects(removeKey(repoA, 'ffff'.repeat(16)), refused('ERR_KEY_NOT_FOUND', /no key matches/))
      await assert.rejects(removeKey(repoA, 'not hex'), refused('ERR_ARGS', /not a key id/))

      // passwd A→C: a new key, then A's goes.
      const r = await changePassword(repoA, C, { kdf: FAST_KDF })
      assert.equal(r.removed, idA)
      await repoA.close()
      assert.equal(await opens(storage, A), 'ERR_WRONG_PASSWORD')
      assert.equal(await opens(storage, C), 'ok')
      assert.equal(await opens(storage, B), 'ok')
      assert.deepEqual((await keys(repoB)).map(k => k.id).sort(), [idB, r.id].sort())
      assert.equal(await findKey(repoB, r.id.slice(0, 10)), r.id)

      // Opened with C, B may go; then C is the last key and the one in use: refused.
      const repoC = await openRepository(storage, C)
      assert.equal(await removeKey(repoC, idB.slice(0, 8)), idB)
      assert.equal(await opens(storage, B), 'ERR_WRONG_PASSWORD')
      await assert.rejects(removeKey(repoC, r.id), refused('ERR_KEY_IN_USE', /currently used/))
      // repoB's key is gone: it must not remove C, which may be the last key.
      await assert.rejects(removeKey(repoB, r.id), refused('ERR_KEY_IN_USE', /gone, and it may be the last one/))
      assert.equal(await opens(storage, C), 'ok')
      await repoB.close()
      await repoC.close()
      await storage.close()
    })

    test('key list names a damaged key file and lists the others', async () => {
      const storage = storageFor(backend, 'damaged')
      const repo = await initRepository(storage, A, { kdf: FAST_KDF })
      const idB = await addKey(repo, B, { kdf: FAST_KDF })
      await damage(storage, `keys/${idB}`, 'flipped')
      const warnings: SluiceError[] = []
      const listed: KeyInfo[] = []
      for await (const k of listKeys(repo, w => warnings.push(w))) listed.push(k)
      assert.deepEqual(listed.map(k => k.id), [repo.keyId])
      assert.equal(warnings.length, 1)
      assert.equal(warnings[0]!.code, 'ERR_CORRUPT')
      assert.ok(warnings[0]!.message.includes(idB), warnings[0]!.message)
      await assert.rejects(addKey(repo, '', { kdf: FAST_KDF }), refused('ERR_ARGS', /empty password/))
      await repo.close()
      await storage.close()
    })
  })
}

/** A Storage that fails every write after the first `writes` (put and delete): a process that
 *  stops there, as a kill would stop it, with nothing after that point reaching the storage. */
function stopsAfter(inner: Storage, writes: number): Storage & { stopped: boolean } {
  let left = writes
  const s = {
    ...inner,
    stopped: false,
    async put(key: string, data: Uint8Array) {
      if (left-- <= 0) {
        s.stopped = true
        throw new SluiceError('ERR_STORAGE', 'stopped')
      }
      return inner.put(key, data)
    },
    async delete(key: string) {
      if (left-- <= 0) {
        s.stopped = true
        throw new SluiceError('ERR_STORAGE', 'stopped')
      }
      return inner.delete(key)
    },
  }
  return s
}

for (const backend of ['local', 's3'] as const) {
  test(`key passwd stopped after any number of writes leaves a repository that opens with A or C (${backend})`, async () => {
    for (let writes = 0; ; writes++) {
      const plain = storageFor(backend, `stopped-${writes}`)
      const init = await initRepository(plain, A, { kdf: FAST_KDF })
      const storage = stopsAfter(plain, writes)
      const repo = await openRepository(storage, A)
      assert.equal(repo.keyId, init.keyId)
      let done = true
      try {
        await changePassword(repo, C, { kdf: FAST_KDF })
      } catch (err) {
        assert.ok(storage.stopped, String(err))
        done = false
      }
      const [a, c] = [await opens(plain, A), await opens(plain, C)]
      assert.ok(a === 'ok' || c === 'ok', `after ${writes} writes: A ${a}, C ${c}`)
      await plain.close()
      if (done) {
        // Two writes: the new key, then the old one's deletion.
        assert.equal(writes, 2)
        assert.deepEqual([a, c], ['ERR_WRONG_PASSWORD', 'ok'])
        break
      }
    }
  })
}
