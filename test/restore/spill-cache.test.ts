/**
 * Restore from S3 reads a chunk needed again later once (issue 15): repeats.ts finds such chunks
 * in the records, spill-cache.ts keeps their objects in a temporary file, within its caps,
 * against a real s3rver.
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { randomBytes } from 'node:crypto'
import type { EntryMeta, Extent, RecordItem } from '../../lib/entry.js'
import { HOLE_ID } from '../../lib/entry.js'
import { chunkKey } from '../../lib/repo/objects.js'
import type { Storage } from '../../lib/storage/storage.js'
import { openS3Storage } from '../../lib/storage/location.js'
import { RepeatedChunks, findRepeats } from '../../transforms/restore/repeats.js'
import { createSpillCache } from '../../transforms/restore/spill-cache.js'
import { startS3rver, S3RVER_CREDENTIALS, type S3rverHandle } from '../helpers/s3rver.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('restore-test')}/spill-cache`
let server: S3rverHandle
let n = 0
const ids = [0, 1, 2].map(i => Buffer.alloc(32, i + 1))
const objects = ids.map((_, i) => randomBytes(1000 + 500 * i))

/** A fresh S3 storage holding `objects` under `ids`' chunk keys, counting each key's GETs. */
async function storage(): Promise<{ s3: Storage; gets: Map<string, number> }> {
  const inner = openS3Storage({ bucket: server.bucket, prefix: `spill-${n++}`, endpoint: server.endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS })
  for (let i = 0; i < ids.length; i++) await inner.put(chunkKey(ids[i]!), objects[i]!)
  const gets = new Map<string, number>()
  const s3: Storage = {
    ...inner,
    get: (key, max, into) => {
      gets.set(key, (gets.get(key) ?? 0) + 1)
      return inner.get(key, max, into)
    },
  }
  return { s3, gets }
}

function record(path: string, extents: Extent[], extra: Partial<EntryMeta> = {}): RecordItem {
  return { kind: 'record', entry: { path: Buffer.from(path), type: 'file', size: 0, ...extra } as EntryMeta, extents }
}
const ext = (id: Buffer, offset = 0): Extent => ({ id, offset, length: 10 })

async function* items<T>(list: T[]): AsyncIterable<T> {
  yield* list
}

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(BASE, { recursive: true })
  server = await startS3rver()
})

after(async () => {
  await server?.stop()
})

test('repeats: a chunk read again later is repeated; runs of one chunk, holes and hardlinks are not', async () => {
  const [a, b, c] = ids as [Buffer, Buffer, Buffer]
  const d = Buffer.alloc(32, 9)
  const found = await findRepeats(items<RecordItem | { kind: 'extents'; extents: Extent[] }>([
    record('one', [ext(a), ext(a, 10), ext(b)]),
    // c twice in a row (packed small files sharing a chunk): the download's cache serves those.
    record('two', [ext(c)]),
    record('three', [ext(c, 10)]),
    { kind: 'extents', extents: [ext(b), { id: HOLE_ID, offset: 0, length: 4096 }] },
    record('four', [{ id: HOLE_ID, offset: 0, length: 4096 }]),
    // A hardlink carries no content of its own; a directory none at all.
    record('link', [ext(d)], { hardlinkTo: Buffer.from('one') }),
    record('five', [ext(d)]),
    record('dir', [ext(a)], { type: 'dir' }),
  ]))
  assert.equal(found.repeated(a), false)
  assert.equal(found.repeated(b), true)
  assert.equal(found.repeated(c), false)
  assert.equal(found.repeated(d), false)
  assert.equal(found.repeated(HOLE_ID), false)
  assert.equal(found.repeats, 1)
  // The filters are fixed in size: many distinct ids make few false repeats.
  const many = new RepeatedChunks(2 ** 16)
  for (let i = 0; i < 2000; i++) many.add(randomBytes(32))
  assert.ok(many.repeats < 20, `${many.repeats} false repeats of 2000`)
})

test('a repeated chunk is fetched once and read back from the file, into the caller\'s memory; the file goes at close', async () => {
  const { s3, gets } = await storage()
  const repeats = new RepeatedChunks()
  for (const id of [ids[0]!, ids[0]!, ids[1]!, ids[1]!, ids[2]!]) repeats.add(id)
  const tmpDir = `${BASE}/tmp-${n++}`
  fs.mkdirSync(tmpDir)
  const cache = createSpillCache(s3, repeats, { tmpDir })
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < ids.length; i++) {
      let given: Buffer | undefined
      const got = await cache.get(chunkKey(ids[i]!), 1 << 20, length => (given = Buffer.alloc(length)))
      assert.ok(got.equals(objects[i]!), `object ${i}, round ${round}`)
      assert.equal(got, given, 'read into the buffer into() gave')
    }
  }
  assert.equal(gets.get(chunkKey(ids[0]!)), 1)
  assert.equal(gets.get(chunkKey(ids[1]!)), 1)
  // Not repeated: not kept, read from S3 every time.
  assert.equal(gets.get(chunkKey(ids[2]!)), 3)
  assert.deepEqual(cache.stats, { hits: 4, kept: 2, keptBytes: objects[0]!.length + objects[1]!.length })
  assert.equal(fs.readdirSync(tmpDir).length, 1)
  await cache.close()
  assert.deepEqual(fs.readdirSync(tmpDir), [])
})

test('past its caps in entries or bytes the cache keeps nothing more, and every read is still exact', async () => {
  const repeats = new RepeatedChunks()
  for (const id of [...ids, ...ids]) repeats.add(id)
  for (const caps of [{ maxEntries: 1 }, { maxBytes: objects[0]!.length + objects[1]!.length - 1 }]) {
    const { s3, gets } = await storage()
    const tmpDir = `${BASE}/tmp-${n++}`
    fs.mkdirSync(tmpDir)
    const cache = createSpillCache(s3, repeats, { tmpDir, ...caps })
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < ids.length; i++) assert.ok((await cache.get(chunkKey(ids[i]!))).equals(objects[i]!))
    }
    assert.deepEqual([1, 2, 2].map((_, i) => gets.get(chunkKey(ids[i]!))), [1, 2, 2], JSON.stringify(caps))
    assert.equal(cache.stats.kept, 1)
    await cache.close()
    assert.deepEqual(fs.readdirSync(tmpDir), [])
  }
})

test('a spill file cut short behind the cache\'s back: the object is read from S3 again, exactly', async () => {
  const { s3, gets } = await storage()
  const repeats = new RepeatedChunks()
  for (const id of [ids[0]!, ids[0]!]) repeats.add(id)
  const tmpDir = `${BASE}/tmp-${n++}`
  fs.mkdirSync(tmpDir)
  const cache = createSpillCache(s3, repeats, { tmpDir })
  const key = chunkKey(ids[0]!)
  assert.ok((await cache.get(key)).equals(objects[0]!))
  const [dir] = fs.readdirSync(tmpDir)
  fs.truncateSync(`${tmpDir}/${dir}/objects`, 10)
  assert.ok((await cache.get(key)).equals(objects[0]!))
  assert.equal(gets.get(key), 2)
  await cache.close()
})

test('a temporary directory that cannot be made keeps nothing, and reads go on from S3', async () => {
  const { s3, gets } = await storage()
  const repeats = new RepeatedChunks()
  for (const id of [ids[0]!, ids[0]!]) repeats.add(id)
  const cache = createSpillCache(s3, repeats, { tmpDir: `${BASE}/no-such-dir/below` })
  const key = chunkKey(ids[0]!)
  for (let round = 0; round < 2; round++) assert.ok((await cache.get(key)).equals(objects[0]!))
  assert.equal(gets.get(key), 2)
  assert.equal(cache.stats.kept, 0)
  await cache.close()
})
