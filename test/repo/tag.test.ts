/**
 * Issue 18 item 4 through the library on s3rver (the CLI tests run on a local directory):
 * tag() rewrites roots with `original`, removes the old ones, leaves forgotten roots alone, and
 * refuses what restic refuses; newTags() follows restic's add/remove/set.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { forgetSnapshot, forgottenKey, initRepository, newTags, SluiceError, tag, type SnapshotRoot } from '../../index.js'
import { createS3Storage } from '../../lib/storage/s3.js'
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.js'

let server: S3rverHandle

before(async () => {
  server = await startS3rver()
})
after(async () => {
  await server?.stop()
})

const ROOT: SnapshotRoot = {
  version: 1, time: '2025-01-01T00:00:00.000Z', host: 'h', username: 'u', paths: ['/data'], tags: ['a'],
  tree: { root: '0'.repeat(64), depth: 1 },
  stats: { files: 0, dirs: 0, others: 0, filesNew: 0, filesChanged: 0, filesUnchanged: 0, bytesRead: 0, bytesTotal: 0, chunksNew: 0, bytesStored: 0, warnings: 0 },
  program: 'sluice test',
}

test('newTags: restic add (no duplicates, order kept), remove, set (deduplicated; [""] is none); null when unchanged', () => {
  assert.deepEqual(newTags(['a', 'b'], { add: ['c', 'a', 'c'] }), ['a', 'b', 'c'])
  assert.deepEqual(newTags(['a', 'b'], { add: ['c'], remove: ['a'] }), ['b', 'c'])
  assert.equal(newTags(['a'], { add: ['a'] }), null)
  assert.equal(newTags(['a'], { remove: ['z'] }), null)
  assert.deepEqual(newTags(['a'], { set: ['x', 'x', 'y'] }), ['x', 'y'])
  assert.deepEqual(newTags(['a'], { set: [''] }), [])
  assert.equal(newTags([], { set: [''] }), null)
  assert.equal(newTags(['x', 'y'], { set: ['x', 'y'] }), null)
})

test('tag on S3: new roots with original, old ones gone, forgotten ones untouched, filters, refusals', async () => {
  const storage = createS3Storage({
    bucket: server.bucket, prefix: `${process.pid}/tag`, endpoint: server.endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS,
  })
  const repo = await initRepository(storage, 'pw', { kdf: { opslimit: 1, memlimit: 8192 } })
  const one = await repo.saveSnapshot(ROOT)
  const two = await repo.saveSnapshot({ ...ROOT, host: 'other' })
  const gone = await repo.saveSnapshot({ ...ROOT, time: '2020-01-01T00:00:00.000Z' })
  await forgetSnapshot(repo, gone)
  const forgotten = await storage.get(forgottenKey(gone))

  const changed: [string, string][] = []
  const r = await tag({ repo, add: ['b'], filter: { hosts: ['h'] }, onChanged: (a, b) => changed.push([a, b]) })
  assert.deepEqual(r, { changed: 1, failed: 0 })
  assert.equal(changed[0]![0], one)
  const ids: string[] = []
  for await (const k of storage.list('snapshots/')) ids.push(k.slice('snapshots/'.length))
  assert.deepEqual(ids.sort(), [changed[0]![1], two].sort())
  const snap = await repo.loadSnapshot(changed[0]![1])
  assert.deepEqual(snap.tags, ['a', 'b'])
  assert.equal(snap.original, one)
  assert.ok((await storage.get(forgottenKey(gone))).equals(forgotten))

  // By id prefix, then again: original stays the first id.
  const again = await tag({ repo, set: ['z'], snapshots: [changed[0]![1].slice(0, 8)] })
  assert.equal(again.changed, 1)
  const latest = await repo.findSnapshot('latest', s => s.host === 'h')
  assert.deepEqual(latest.snap.tags, ['z'])
  assert.equal(latest.snap.original, one)

  const refused = (code: string, message: RegExp) => (e: unknown) => e instanceof SluiceError && e.code === code && message.test(e.message)
  await assert.rejects(tag({ repo }), refused('ERR_ARGS', /nothing to do!/))
  await assert.rejects(tag({ repo, set: ['a'], remove: ['b'] }), refused('ERR_ARGS', /--set and --add\/--remove cannot be given at the same time/))
  await assert.rejects(tag({ repo, add: [''] }), refused('ERR_ARGS', /empty tag/))
  await repo.close()
})
