/**
 * Restore's fetch-ahead from S3 (issue 15: prefetch hides latency), against a real s3rver: the
 * storage's readAhead sets how many GETs are in flight and the memory budget's aheadBytes how
 * many bytes; GETs cut off or failing through a fault proxy are retried, or stop the restore
 * with an error naming the object.
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { backup, initRepository, openRepository, restore, snapshotRecords, treeOf, SluiceError, type Storage } from '../../index.js'
import { openS3Storage, openStorage } from '../../lib/storage/location.js'
import type { S3Options } from '../../lib/storage/s3.js'
import { memoryBudget } from '../../lib/budget.js'
import { CHUNK_MAX, DOWNLOAD_CONCURRENCY, MEMORY_DEFAULT, MEMORY_MIN, S3_CLIENT_RESERVE, S3_READ_AHEAD } from '../../lib/limits.js'
import { CHUNK_OBJECT_OVERHEAD, chunkKey } from '../../lib/repo/objects.js'
import { startS3rver, S3RVER_CREDENTIALS, type S3rverHandle } from '../helpers/s3rver.js'
import { startFaultProxy } from '../helpers/fault-proxy.js'
import { compareTrees, seededBytes } from '../helpers/tree.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('restore-test')}/fetch-ahead`
const PW = 'correct horse'
const SRC = `${BASE}/src/tree`
const REL = SRC.slice(1)
let server: S3rverHandle
let snapshot: string
let n = 0
/** The keys of the files' content chunks (not the tree's). */
const dataKeys = new Set<string>()
/** Reads of them the snapshot makes (a run of extents in one chunk counting once). */
let chunkReads = 0

function options(endpoint = server.endpoint): S3Options {
  return { bucket: server.bucket, prefix: 'repo', endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS }
}

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(SRC, { recursive: true })
  // Two large files of many chunks each, a copy of the first after both (its chunks far past the
  // download's cache of 3), and a few small ones.
  fs.writeFileSync(`${SRC}/big-a`, seededBytes('big-a', 12 * 1024 * 1024))
  fs.writeFileSync(`${SRC}/big-b`, seededBytes('big-b', 9 * 1024 * 1024 + 123))
  fs.writeFileSync(`${SRC}/copy-of-a`, seededBytes('big-a', 12 * 1024 * 1024))
  for (let i = 0; i < 5; i++) fs.writeFileSync(`${SRC}/small-${i}`, seededBytes(`small-${i}`, 1000 * i))
  server = await startS3rver()
  const storage = openS3Storage(options())
  const repo = await initRepository(storage, PW, { kdf: { opslimit: 1, memlimit: 8192 } })
  snapshot = (await backup({ repo, paths: [SRC] })).snapshotId
  const { snap } = await repo.findSnapshot(snapshot)
  let last = ''
  for await (const item of snapshotRecords(repo, treeOf(snap))) {
    for (const e of item.extents) {
      const key = chunkKey(e.id)
      dataKeys.add(key)
      if (key !== last) chunkReads++
      last = key
    }
  }
  await repo.close()
})

after(async () => {
  await server?.stop()
})

test('S3 storage asks for S3_READ_AHEAD gets in flight, a local one for none of its own', () => {
  assert.equal(openS3Storage(options()).readAhead, S3_READ_AHEAD)
  assert.equal(openStorage(`${BASE}/local-repo`).readAhead, undefined)
  assert.ok(S3_READ_AHEAD > memoryBudget().restore.downloadConcurrency)
})

/** An S3 storage asking for 16 GETs ahead that counts the content chunks' GETs in flight and
 *  the bytes of those already sized (into() is asked); the tree's chunks are read by another stage. */
function countingStorage(): { storage: Storage; peak: { gets: number; bytes: number } } {
  const inner = openS3Storage(options())
  let gets = 0
  let bytes = 0
  const peak = { gets: 0, bytes: 0 }
  const storage: Storage = {
    ...inner,
    readAhead: 16,
    get: async (key, max, into) => {
      if (!dataKeys.has(key)) return inner.get(key, max, into)
      gets++
      peak.gets = Math.max(peak.gets, gets)
      let size = 0
      try {
        return await inner.get(key, max, into && (length => {
          size = length
          bytes += length
          peak.bytes = Math.max(peak.bytes, bytes)
          return into(length)
        }))
      } finally {
        gets--
        bytes -= size
      }
    },
  }
  return { storage, peak }
}

test('the fetch-ahead keeps at most readAhead GETs and its bytes in flight, and restores exactly', async () => {
  const { storage, peak } = countingStorage()
  const repo = await openRepository(storage, PW)
  const target = `${BASE}/restore-${n++}`
  // The smallest budget: one CHUNK_MAX of extents ahead, and readAhead scaled down as
  // DOWNLOAD_CONCURRENCY is (4 to 1): 16 becomes 4.
  const memory = MEMORY_MIN
  await restore({ repo, snapshot, target, memory })
  await repo.close()
  assert.deepEqual(compareTrees(SRC, `${target}/${REL}`), [])
  assert.ok(peak.gets >= 1 && peak.gets <= 4, `${peak.gets} GETs in flight`)
  // At most aheadBytes of extents pending plus the one taken past them, each object at most
  // its chunk plus the overhead.
  const ahead = memoryBudget(memory).restore.aheadBytes
  assert.ok(peak.bytes <= ahead + 2 * (CHUNK_MAX + CHUNK_OBJECT_OVERHEAD), `${peak.bytes} bytes in flight`)
})

test('an S3 restore sizes its fetch-ahead to --memory less what the SDK takes (S3_CLIENT_RESERVE)', async () => {
  assert.equal(openS3Storage(options()).reserveBytes, S3_CLIENT_RESERVE)
  assert.equal(openStorage(`${BASE}/local-repo`).reserveBytes, undefined)
  const { storage, peak } = countingStorage()
  const repo = await openRepository(storage, PW)
  const target = `${BASE}/restore-${n++}`
  await restore({ repo, snapshot, target, memory: MEMORY_DEFAULT })
  await repo.close()
  assert.deepEqual(compareTrees(SRC, `${target}/${REL}`), [])
  // The budget of MEMORY_DEFAULT less the reserve, not of MEMORY_DEFAULT: fewer GETs and bytes.
  const full = memoryBudget(MEMORY_DEFAULT).restore
  const left = memoryBudget(MEMORY_DEFAULT - S3_CLIENT_RESERVE).restore
  assert.ok(left.downloadConcurrency < full.downloadConcurrency && left.aheadBytes < full.aheadBytes)
  const most = Math.round((16 * left.downloadConcurrency) / DOWNLOAD_CONCURRENCY)
  assert.ok(peak.gets >= 1 && peak.gets <= most, `${peak.gets} GETs in flight, at most ${most}`)
  assert.ok(peak.bytes <= left.aheadBytes + 2 * (CHUNK_MAX + CHUNK_OBJECT_OVERHEAD), `${peak.bytes} bytes in flight`)
})

test('a chunk the snapshot needs twice, far apart, is fetched from S3 once', async () => {
  const inner = openS3Storage(options())
  const gets = new Map<string, number>()
  const counting: Storage = {
    ...inner,
    get: (key, max, into) => {
      if (dataKeys.has(key)) gets.set(key, (gets.get(key) ?? 0) + 1)
      return inner.get(key, max, into)
    },
  }
  const repo = await openRepository(counting, PW)
  const target = `${BASE}/restore-${n++}`
  await restore({ repo, snapshot, target })
  await repo.close()
  assert.deepEqual(compareTrees(SRC, `${target}/${REL}`), [])
  // The copy's chunks are big-a's (all but where the two files meet in the chunk stream).
  assert.deepEqual([...gets].filter(([, count]) => count !== 1), [])
  assert.equal(gets.size, dataKeys.size)
  // Without the spill, the copy's chunks would be read twice (how many depends on where the
  // chunker's cuts fall back into step with big-a's, which its random key decides).
  assert.ok(chunkReads > dataKeys.size, `${chunkReads} reads of ${dataKeys.size} chunks`)
})

test('a restore through a proxy that cuts bodies off halfway is byte-exact', async () => {
  const proxy = await startFaultProxy(server.endpoint, { seed: 11 })
  const repo = await openRepository(openS3Storage(options(proxy.endpoint), { backoff: { baseMs: 1, capMs: 5 } }), PW)
  try {
    proxy.setRates({ truncate: 0.2 })
    const target = `${BASE}/restore-${n++}`
    await restore({ repo, snapshot, target })
    assert.deepEqual(compareTrees(SRC, `${target}/${REL}`), [])
    assert.ok(proxy.stats.truncated > 0, JSON.stringify(proxy.stats))
  } finally {
    await repo.close()
    await proxy.stop()
  }
})

test('content chunk GETs that keep failing stop the restore with one error naming the object', async () => {
  const proxy = await startFaultProxy(server.endpoint, { seed: 5, slowDown: 1 })
  const direct = openS3Storage(options())
  const failing = openS3Storage(options(proxy.endpoint), { maxAttempts: 2, backoff: { baseMs: 1, capMs: 5 } })
  // The files' content comes through the proxy, which answers every request 503 SlowDown; the
  // rest (config, keys, snapshot, tree) straight from the server.
  const storage: Storage = { ...direct, get: (key, max, into) => (dataKeys.has(key) ? failing : direct).get(key, max, into) }
  const repo = await openRepository(storage, PW)
  try {
    const target = `${BASE}/restore-${n++}`
    await assert.rejects(restore({ repo, snapshot, target }), (err: unknown) => {
      assert.ok(err instanceof SluiceError, String(err))
      assert.equal(err.code, 'ERR_STORAGE')
      const m = /^S3 GET (chunks\/\S+) failed after 2 attempts .*SlowDown/.exec(err.message)
      assert.ok(m && dataKeys.has(m[1]!), err.message)
      return true
    })
    assert.ok(proxy.stats.slowDown >= 2, JSON.stringify(proxy.stats))
  } finally {
    await repo.close()
    await failing.close()
    await proxy.stop()
  }
})
