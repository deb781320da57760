/**
 * What prune needs of a storage beyond the base contract: `stat` (size and the storage's mtime)
 * and moving an object between keys without ever replacing the target (lib/storage/move.ts:
 * the backend's own move on local disk, copy-then-delete elsewhere). Local disk and s3rver.
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { startS3rver, S3RVER_CREDENTIALS, type S3rverHandle } from '../helpers/s3rver.js'
import { createLocalStorage, openS3Storage, moveObject, type Storage } from '../../index.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('gc-move')}/t`
let server: S3rverHandle

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  server = await startS3rver({ bucket: 'mv' })
})
after(async () => {
  await server?.stop()
})

const backends: { name: string; make: () => Promise<Storage> }[] = [
  { name: 'local', make: async () => createLocalStorage(BASE) },
  { name: 's3rver', make: async () => openS3Storage({ bucket: 'mv', prefix: 'p/', endpoint: server.endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS }) },
  {
    name: 'a storage without move (the fallback)',
    make: async () => {
      const { move: _move, ...rest } = createLocalStorage(`${BASE}-plain`)
      return rest
    },
  },
]

for (const b of backends) {
  test(`${b.name}: stat and move`, async () => {
    const s = await b.make()
    const t0 = Date.now()
    await s.put('chunks/ab/one', Buffer.from('first'))
    const st = await s.stat!('chunks/ab/one')
    assert.equal(st?.size, 5)
    assert.ok(Math.abs(st!.mtimeMs - t0) < 60_000, 'mtime is about now')
    assert.equal(await s.stat!('chunks/ab/none'), null)

    assert.equal(await moveObject(s, 'chunks/ab/one', 'fossils/ab/one'), true)
    assert.equal(await s.has('chunks/ab/one'), false)
    assert.equal((await s.get('fossils/ab/one')).toString(), 'first')
    assert.equal(await moveObject(s, 'chunks/ab/one', 'fossils/ab/one'), false, 'a moved object is not moved twice')

    // The target exists: it is kept, the source removed.
    await s.put('chunks/ab/one', Buffer.from('again'))
    assert.equal(await moveObject(s, 'chunks/ab/one', 'fossils/ab/one'), true)
    assert.equal((await s.get('fossils/ab/one')).toString(), 'first')
    assert.equal(await s.has('chunks/ab/one'), false)
    await s.close()
  })
}
