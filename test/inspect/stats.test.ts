/**
 * stats on a real repository: restore-size counts what a restore writes (a hardlink's content
 * once), raw-data the distinct chunks referenced, which here are exactly the chunk objects
 * stored (every chunk belongs to some snapshot), read back for their sizes. Then the CLI.
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { cliFor } from '../helpers/cli.js'
import { seededBytes } from '../helpers/tree.js'
import { backup, createLocalStorage, initRepository, listSnapshot, stats, type Repository } from '../../index.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('e2e-task')}/stats`
const SRC = `${BASE}/src`
const REPO = `${BASE}/repo`
const PW = 'pw'
let repo: Repository
let first = ''
let second = ''
let entries = 0
const FILE_BYTES = 2 + 300_000 + 300_000 + 1_000_000

/** Every chunk object's size, walking chunks/ on disk. */
function chunkFiles(): number[] {
  const sizes: number[] = []
  for (const d of fs.readdirSync(`${REPO}/chunks`)) for (const f of fs.readdirSync(`${REPO}/chunks/${d}`)) sizes.push(fs.statSync(`${REPO}/chunks/${d}/${f}`).size)
  return sizes
}

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(`${SRC}/sub`, { recursive: true })
  fs.writeFileSync(`${SRC}/a`, 'a\n')
  fs.writeFileSync(`${SRC}/sub/b`, seededBytes('stats-b', 300_000))
  fs.linkSync(`${SRC}/sub/b`, `${SRC}/b-link`)
  fs.writeFileSync(`${SRC}/c`, seededBytes('stats-b', 300_000))
  fs.writeFileSync(`${SRC}/text`, Buffer.from('compressible text, '.repeat(60_000)).subarray(0, 1_000_000))
  repo = await initRepository(createLocalStorage(REPO), PW, { kdf: { opslimit: 1, memlimit: 8192 } })
  first = (await backup({ repo, paths: [SRC] })).snapshotId
  second = (await backup({ repo, paths: [SRC] })).snapshotId
  for await (const _ of listSnapshot(repo, await repo.loadSnapshot(first))) entries++
})

test('restore-size: every entry counted, file bytes as restored, the hardlink once; per snapshot or all', async () => {
  const one = await stats({ repo, snapshots: [first.slice(0, 8)] })
  assert.deepEqual(one, { mode: 'restore-size', snapshots_count: 1, total_file_count: entries, total_size: FILE_BYTES })
  const all = await stats({ repo })
  assert.equal(all.snapshots_count, 2)
  assert.equal(all.total_size, 2 * FILE_BYTES)
  assert.equal((await stats({ repo, snapshots: ['latest', second.slice(0, 8)] })).snapshots_count, 1, 'the same snapshot twice counts once')
  assert.equal((await stats({ repo, filter: { hosts: ['no-such-host'] } })).snapshots_count, 0)
})

test('raw-data: the distinct chunks referenced are the stored chunk objects, with their stored sizes', async () => {
  const r = await stats({ repo, mode: 'raw-data' })
  const sizes = chunkFiles()
  assert.equal(r.total_blob_count, sizes.length)
  assert.equal(r.total_size, sizes.reduce((a, b) => a + b, 0))
  assert.equal(r.upper_bound, false)
  assert.equal(r.restore_size, 2 * FILE_BYTES)
  // Plaintext: at least the distinct content (b and c are the same bytes but may be cut
  // differently in the one stream), plus metadata; the text compresses.
  assert.ok(r.total_uncompressed_size! >= 2 + 300_000 + 1_000_000, String(r.total_uncompressed_size))
  assert.ok(r.total_size < r.total_uncompressed_size!)
  assert.ok(r.compression_ratio! > 1 && r.compression_space_saving! > 0 && r.compression_progress! > 0)
  assert.equal(r.dedup_ratio, r.restore_size! / r.total_uncompressed_size!)
  assert.ok(r.dedup_ratio! > 1.5, `two identical snapshots dedup: ${r.dedup_ratio}`)
  // With room for one id only, chunks met again are counted again: an upper bound, said so.
  const capped = await stats({ repo, mode: 'raw-data', distinctCache: 1 })
  assert.equal(capped.upper_bound, true)
  assert.ok(capped.total_blob_count! > r.total_blob_count! && capped.total_size > r.total_size)
  // One snapshot references the same chunks (the second backup stored only its metadata, if that).
  const one = await stats({ repo, mode: 'raw-data', snapshots: [first] })
  assert.ok(one.total_blob_count! <= r.total_blob_count! && one.total_blob_count! >= r.total_blob_count! - 2)
})

test('CLI: restic-style text and JSON; an unknown mode is one ERR_ARGS line', async () => {
  fs.mkdirSync(`${BASE}/home`, { recursive: true })
  const sluice = cliFor(`${BASE}/home`, REPO, PW)
  const t = await sluice(['stats'])
  assert.equal(t.code, 0, t.stderr)
  assert.match(t.stdout, /^Stats in restore-size mode:\n {5}Snapshots processed: {2}2\n {8}Total File Count: {2}\d+\n {14}Total Size: {2}3\.1 MiB\n$/)
  const j = await sluice(['stats', '--mode', 'raw-data', '--json', first.slice(0, 8)])
  assert.equal(j.code, 0, j.stderr)
  const r = JSON.parse(j.stdout) as Record<string, unknown>
  assert.equal(r.snapshots_count, 1)
  assert.equal(r.mode, 'raw-data')
  for (const k of ['total_size', 'total_uncompressed_size', 'total_blob_count', 'compression_ratio', 'restore_size', 'dedup_ratio']) assert.equal(typeof r[k], 'number', k)
  const raw = await sluice(['stats', '--mode', 'raw-data'])
  assert.match(raw.stdout, /Total Blob Count: {2}\d+\n/)
  assert.match(raw.stdout, /Deduplication Ratio: {2}\d+\.\d\dx/)
  const none = await sluice(['stats', '--json', '--host', 'no-such-host', '--path', SRC])
  assert.equal((JSON.parse(none.stdout) as { snapshots_count: number }).snapshots_count, 0)
  const some = await sluice(['stats', '--json', '--path', path.relative(`${BASE}/home`, SRC)])
  assert.equal((JSON.parse(some.stdout) as { snapshots_count: number }).snapshots_count, 2, 'a relative --path is made absolute')
  const bad = await sluice(['stats', '--mode', 'files-by-contents'])
  assert.equal(bad.code, 1)
  assert.equal(bad.stderr, 'sluice: ERR_ARGS: unknown counting mode: files-by-contents (use restore-size or raw-data)\n')
  assert.ok(path.isAbsolute(REPO))
})
