/**
 * Issue 13 item 1: one unreadable snapshot object must not take the repository down. A real
 * repository of three snapshots (on a local directory and on s3rver) has its newest snapshot
 * damaged each way (truncated, bit-flipped, random bytes, empty, another snapshot's bytes, the
 * snapshot of another repository): listing names it once as a warning and shows the other two,
 * `latest` is the newest readable one (for restore and for backup's parent), and check counts
 * it as one problem and checks the others. Names under snapshots/ that are not ids are ignored.
 */
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import {
  backup, check, createLocalStorage, initRepository, openRepository, restore, SluiceError,
  type Repository, type SnapshotRoot, type Storage,
} from '../../index.js'
import { createS3Storage } from '../../lib/storage/s3.js'
import { S3RVER_CREDENTIALS, startS3rver, type S3rverHandle } from '../helpers/s3rver.js'
import { compareTrees } from '../helpers/tree.js'
import { DAMAGES, damage, replace, seeded } from '../helpers/damage.js'
import { CHUNK_MAX, SMALL_OBJECT_MAX } from '../../lib/limits.js'
import { CHUNK_OBJECT_OVERHEAD } from '../../lib/repo/objects.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('repo-safety')}/snapshots`
const PW = 'correct horse'
const FAST_KDF = { opslimit: 1, memlimit: 8192 }
const TREE = `${BASE}/src`

let server: S3rverHandle
let prefixes = 0

function storageFor(backend: 'local' | 's3', name: string): Storage {
  if (backend === 'local') return createLocalStorage(`${BASE}/${name}`)
  return createS3Storage({
    bucket: server.bucket, prefix: `${process.pid}/${name}-${prefixes++}`, endpoint: server.endpoint,
    forcePathStyle: true, credentials: S3RVER_CREDENTIALS,
  })
}

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(`${TREE}/sub`, { recursive: true })
  for (let i = 0; i < 5; i++) fs.writeFileSync(`${TREE}/sub/f${i}`, seeded(`f${i}`, 3000 + i * 1000))
  server = await startS3rver()
})
after(async () => {
  await server?.stop()
})

function collector() {
  const warnings: SluiceError[] = []
  return { warnings, onWarning: (e: SluiceError) => warnings.push(e) }
}

async function ids(repo: Repository): Promise<string[]> {
  const out: string[] = []
  for await (const s of repo.snapshots()) out.push(s.id)
  return out
}

for (const backend of ['local', 's3'] as const) {
  describe(`unreadable snapshots (${backend})`, () => {
    let storage: Storage
    let snaps: string[] = [] // oldest first
    let foreign: Buffer

    before(async () => {
      storage = storageFor(backend, 'repo')
      const repo = await initRepository(storage, PW, { kdf: FAST_KDF })
      for (const tag of ['one', 'two', 'three']) snaps.push((await backup({ repo, paths: [TREE], tags: [tag], onWarning: e => assert.fail(e.message) })).snapshotId)
      const other = await initRepository(storageFor(backend, 'foreign'), PW, { kdf: FAST_KDF })
      const f = await backup({ repo: other, paths: [TREE], onWarning: e => assert.fail(e.message) })
      foreign = await other.storage.get(`snapshots/${f.snapshotId}`)
      await other.close()
      await repo.close()
    })
    after(async () => {
      await storage?.close()
    })

    for (const how of DAMAGES) {
      test(`newest snapshot ${how}: named once, skipped by snapshots, latest, backup's parent and check`, async () => {
        const [oldest, middle, newest] = snaps as [string, string, string]
        const key = `snapshots/${newest}`
        const good = await storage.get(key)
        await damage(storage, key, how, { other: `snapshots/${oldest}`, foreign })
        try {
          const { warnings, onWarning } = collector()
          const repo = await openRepository(storage, PW, { onWarning })
          assert.deepEqual(await ids(repo), [oldest, middle].sort())
          assert.equal((await repo.findSnapshot('latest')).id, middle)
          // Reported once, with a code, naming the snapshot.
          assert.equal(warnings.length, 1, warnings.map(w => w.message).join('\n'))
          assert.equal(warnings[0]!.code, 'ERR_CORRUPT')
          assert.ok(warnings[0]!.message.includes(newest), warnings[0]!.message)

          // restore latest restores the newest readable snapshot.
          const target = `${BASE}/restore-${backend}-${how}`
          const r = await restore({ repo, snapshot: 'latest', target, onWarning: e => assert.fail(e.message) })
          assert.equal(r.snapshotId, middle)
          assert.deepEqual(compareTrees(TREE, `${target}${TREE}`), [])

          // backup picks its parent among the readable ones.
          const b = await backup({ repo, paths: [TREE], onWarning: e => assert.fail(e.message) })
          assert.equal(b.parent, middle)
          assert.equal(b.stats.filesUnchanged, 5)
          await storage.delete(`snapshots/${b.snapshotId}`)

          // check: one problem naming it, the other two checked.
          const problems: string[] = []
          const c = await check({ repo, onProblem: m => problems.push(m) })
          assert.equal(c.snapshots, 2)
          assert.equal(c.problems, 1, problems.join('\n'))
          assert.ok(problems[0]!.includes(newest), problems[0])
          // The snapshot asked for by id fails with its code and name.
          await assert.rejects(repo.findSnapshot(newest), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_CORRUPT' && e.message.includes(newest.slice(0, 8)))
          await repo.close()
        } finally {
          await replace(storage, key, good)
        }
      })
    }

    test('every snapshot unreadable: nothing listed, latest says so, backup makes a full snapshot, check counts all', async () => {
      const good = await Promise.all(snaps.map(id => storage.get(`snapshots/${id}`)))
      for (const id of snaps) await damage(storage, `snapshots/${id}`, 'flipped')
      try {
        const { warnings, onWarning } = collector()
        const repo = await openRepository(storage, PW, { onWarning })
        assert.deepEqual(await ids(repo), [])
        await assert.rejects(repo.findSnapshot('latest'), (e: unknown) =>
          e instanceof SluiceError && e.code === 'ERR_SNAPSHOT_NOT_FOUND' && /no readable snapshot: 3 unreadable skipped/.test(e.message))
        assert.equal(warnings.length, 3)
        const b = await backup({ repo, paths: [TREE], onWarning: e => assert.fail(e.message) })
        assert.equal(b.parent, undefined)
        assert.equal(b.stats.filesNew, 5)
        await storage.delete(`snapshots/${b.snapshotId}`)
        const problems: string[] = []
        const c = await check({ repo, onProblem: m => problems.push(m) })
        assert.deepEqual([c.snapshots, c.problems], [0, 3])
        await repo.close()
      } finally {
        for (const [i, id] of snaps.entries()) await replace(storage, `snapshots/${id}`, good[i]!)
      }
    })

    test('a snapshot sealed with the key but with null or missing fields is ERR_CORRUPT, skipped', async () => {
      const { warnings, onWarning } = collector()
      const repo = await openRepository(storage, PW, { onWarning })
      const snap = (await repo.findSnapshot(snaps[0]!)).snap
      const planted: string[] = []
      const crafted: unknown[] = [
        { ...snap, tree: null },
        { ...snap, paths: null },
        { ...snap, tree: { root: snap.tree.root } },
        { ...snap, time: 'yesterday' },
        { ...snap, stats: { files: 'many' } },
        null,
        [1, 2],
      ]
      try {
        for (const c of crafted) planted.push(await repo.saveSnapshot(c as SnapshotRoot))
        assert.deepEqual(await ids(repo), [...snaps].sort())
        assert.equal(warnings.length, crafted.length)
        for (const w of warnings) assert.equal(w.code, 'ERR_CORRUPT', w.message)
        for (const id of planted) assert.ok(warnings.some(w => w.message.includes(id)), id)
      } finally {
        for (const id of planted) await storage.delete(`snapshots/${id}`)
        await repo.close()
      }
    })

    test('a snapshot or chunk object larger than any honest one is refused before it is read', async () => {
      const repo = await openRepository(storage, PW, { onWarning: () => {} })
      const snap = (await repo.findSnapshot(snaps[0]!)).snap
      const big = `snapshots/${'c'.repeat(64)}`
      await storage.put(big, Buffer.alloc(SMALL_OBJECT_MAX + 1))
      const chunk = `chunks/${snap.tree.root.slice(0, 2)}/${snap.tree.root}`
      const good = await storage.get(chunk)
      await replace(storage, chunk, Buffer.alloc(CHUNK_MAX + CHUNK_OBJECT_OVERHEAD + 1))
      try {
        const { warnings, onWarning } = collector()
        repo.onWarning = onWarning
        assert.deepEqual(await ids(repo), [...snaps].sort())
        assert.equal(warnings.length, 1)
        assert.match(warnings[0]!.message, /object snapshots\/c{64} in .* more than/)
        await assert.rejects(repo.loadChunk(Buffer.from(snap.tree.root, 'hex')), (e: unknown) =>
          e instanceof SluiceError && e.code === 'ERR_CORRUPT' && /object chunks\/.* more than/.test(e.message))
      } finally {
        await storage.delete(big)
        await replace(storage, chunk, good)
        await repo.close()
      }
    })

    test('names under snapshots/ that are not snapshot ids are ignored', async () => {
      const stray = ['snapshots/README', `snapshots/${snaps[0]!.slice(0, 8)}-copy`, `snapshots/${'B'.repeat(64)}`]
      for (const k of stray) await storage.put(k, Buffer.from('hello\n'))
      try {
        const { warnings, onWarning } = collector()
        const repo = await openRepository(storage, PW, { onWarning })
        assert.deepEqual(await ids(repo), [...snaps].sort())
        assert.equal((await repo.findSnapshot(snaps[0]!.slice(0, 8))).id, snaps[0])
        assert.equal((await repo.findSnapshot('latest')).id, snaps[2])
        assert.deepEqual(warnings, [])
        await repo.close()
      } finally {
        for (const k of stray) await storage.delete(k)
      }
    })
  })
}
