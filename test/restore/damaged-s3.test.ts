/**
 * Restore from a damaged repository on S3 (issue 13 item 3, against a real s3rver): a chunk
 * object flipped, truncated, replaced by another's, or deleted through the S3 API; the restore
 * brings back every other file byte-exact and names each file it leaves out, with the chunk.
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { backup, hex, initRepository, openRepository, restore, snapshotRecords, treeOf, SluiceError, type Storage } from '../../index.js'
import { createS3Storage } from '../../lib/storage/s3.js'
import { chunkKey } from '../../lib/repo/objects.js'
import { startS3rver, S3RVER_CREDENTIALS, type S3rverHandle } from '../helpers/s3rver.js'
import { compareTrees, seededBytes } from '../helpers/tree.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('readers-test')}/damaged-s3`
const PW = 'correct horse'
const SRC = `${BASE}/src/tree`
const REL = SRC.slice(1)
let server: S3rverHandle
let storage: Storage
let snapshot: string
const users = new Map<string, Set<string>>()
let bigChunks: string[] = []

function s3(): Storage {
  return createS3Storage({ bucket: server.bucket, prefix: 'repo', endpoint: server.endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS })
}

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(`${SRC}/many`, { recursive: true })
  for (let i = 0; i < 100; i++) fs.writeFileSync(`${SRC}/many/f${i}`, seededBytes(`f${i}`, 100 + i))
  fs.writeFileSync(`${SRC}/big`, seededBytes('big', 9 * 1024 * 1024)) // at least three chunks
  server = await startS3rver()
  storage = s3()
  const repo = await initRepository(storage, PW, { kdf: { opslimit: 1, memlimit: 8192 } })
  snapshot = (await backup({ repo, paths: [SRC] })).snapshotId
  const { snap } = await repo.findSnapshot(snapshot)
  let path = ''
  for await (const item of snapshotRecords(repo, treeOf(snap))) {
    if (item.kind === 'record') path = item.entry.path.toString().slice(REL.length + 1)
    for (const e of item.extents) {
      const k = hex(e.id)
      if (!users.has(k)) users.set(k, new Set())
      users.get(k)!.add(path)
      if (path === 'big') bigChunks.push(k)
    }
  }
  assert.ok(bigChunks.length >= 3)
})

after(async () => {
  await storage?.close()
  await server?.stop()
})

const KINDS: [string, string, (obj: Buffer) => Buffer | null][] = [
  ['flipped', 'ERR_CORRUPT', obj => { const b = Buffer.from(obj); b[b.length >> 1]! ^= 0x08; return b }],
  ['truncated', 'ERR_CORRUPT', obj => obj.subarray(0, 30)],
  ['swapped', 'ERR_CORRUPT', () => null],
  ['deleted', 'ERR_MISSING', () => null],
]

for (const [kind, code, how] of KINDS) {
  test(`s3: a ${kind} chunk leaves out only the files that need it, each named`, async () => {
    const chunk = bigChunks[0]!
    const key = chunkKey(Buffer.from(chunk, 'hex'))
    const original = await storage.get(key)
    let replacement = how(original)
    if (kind === 'swapped') replacement = await storage.get(chunkKey(Buffer.from(bigChunks[1]!, 'hex')))
    await storage.delete(key)
    if (replacement) await storage.put(key, replacement)
    try {
      const repo = await openRepository(s3(), PW)
      const target = `${BASE}/restore-${kind}`
      const warnings: SluiceError[] = []
      await restore({ repo, snapshot, target, onWarning: w => warnings.push(w) })
      await repo.close()
      const lost = [...users.get(chunk)!].sort()
      assert.deepEqual(warnings.map(w => w.path!.toString().slice(REL.length + 1)).sort(), lost)
      for (const w of warnings) {
        assert.equal(w.code, code, w.message)
        assert.ok(w.message.includes(chunk), w.message)
      }
      assert.deepEqual(compareTrees(SRC, `${target}/${REL}`), lost.map(p => `${p}: missing in second tree`))
    } finally {
      await storage.delete(key)
      await storage.put(key, original)
    }
  })
}
