/**
 * Issue 13 item 10 at the API: Repository.leftovers counts (and, when asked, removes) the temp
 * files a killed writer left in a local repository's tmp/, by mtime against a safe age, and
 * never touches a younger one; backup() removes the old ones before it writes; check() reports.
 */
import { before, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { backup, check, createLocalStorage, initRepository, type Repository } from '../../index.js'
import { TEMP_LEFTOVER_AGE_MS } from '../../lib/limits.js'
import { seeded } from '../helpers/damage.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('repo-safety')}/leftovers`
const PW = 'correct horse'
const REPO = `${BASE}/repo`
const TMP = `${REPO}/tmp`
let repo: Repository

/** A temp file `ageMs` old by mtime. */
function plantTemp(name: string, bytes: number, ageMs: number): string {
  const f = `${TMP}/${name}`
  fs.writeFileSync(f, seeded(name, bytes))
  const t = (Date.now() - ageMs) / 1000
  fs.utimesSync(f, t, t)
  return f
}

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(`${BASE}/src`, { recursive: true })
  fs.writeFileSync(`${BASE}/src/a`, seeded('a', 5000))
  repo = await initRepository(createLocalStorage(REPO), PW, { kdf: { opslimit: 1, memlimit: 8192 } })
  await backup({ repo, paths: [`${BASE}/src`], onWarning: e => assert.fail(e.message) })
})

test('no tmp directory, or an empty one: nothing found', async () => {
  fs.rmSync(TMP, { recursive: true, force: true })
  assert.deepEqual(await repo.leftovers(true), { files: 0, bytes: 0 })
  fs.mkdirSync(TMP)
  assert.deepEqual(await repo.leftovers(true), { files: 0, bytes: 0 })
})

test('only files older than the age are counted and removed; younger ones are never touched', async () => {
  const old = [plantTemp('old-1', 1000, TEMP_LEFTOVER_AGE_MS + 60_000), plantTemp('old-2', 2000, 30 * 24 * 3600_000)]
  const young = [plantTemp('young-1', 3000, TEMP_LEFTOVER_AGE_MS - 60_000), plantTemp('young-2', 4000, 0)]
  assert.deepEqual(await repo.leftovers(false), { files: 2, bytes: 3000 })
  for (const f of [...old, ...young]) assert.ok(fs.existsSync(f))
  const problems: string[] = []
  const c = await check({ repo, onProblem: m => problems.push(m) })
  assert.deepEqual(problems, [])
  assert.deepEqual(c.leftovers, { files: 2, bytes: 3000 })
  // A shorter age for the caller that asks for it (tests, a prune that knows no writer runs).
  assert.deepEqual(await repo.leftovers(false, 30 * 60_000), { files: 3, bytes: 6000 })
  assert.deepEqual(await repo.leftovers(true), { files: 2, bytes: 3000 })
  for (const f of old) assert.ok(!fs.existsSync(f))
  for (const f of young) assert.ok(fs.existsSync(f))
  for (const f of young) fs.rmSync(f)
})

test('backup removes old leftovers before it writes, and leaves nothing of its own', async () => {
  const old = plantTemp('old-3', 5000, 2 * TEMP_LEFTOVER_AGE_MS)
  const young = plantTemp('young-3', 5000, 1000)
  fs.writeFileSync(`${BASE}/src/b`, seeded('b', 70_000))
  await backup({ repo, paths: [`${BASE}/src`], onWarning: e => assert.fail(e.message) })
  assert.ok(!fs.existsSync(old))
  assert.deepEqual(fs.readdirSync(TMP), ['young-3'])
  fs.rmSync(young)
})
