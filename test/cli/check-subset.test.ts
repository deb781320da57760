/**
 * Issue 18 item 5 through the built CLI (`npm run build` first): `check --read-data-subset` in
 * restic's three forms. With every chunk object damaged, each run names the chunks it read:
 * 1/5 … 5/5 together name every chunk exactly once; x% reads restic's count; a size reads at
 * least one chunk, and a size past the repository reads all. Bad values fail with restic's words.
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { backupSummary as summaryOf, cliFor, type CliResult } from '../helpers/cli.js'
import { seededBytes } from '../helpers/tree.js'
import { damage } from '../helpers/damage.js'
import { backup, createLocalStorage, initRepository, parseDataSubset } from '../../index.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('e2e-task')}/check-subset`
const PW = 'correct horse'
const home = `${BASE}/home`
const REPO = `${BASE}/repo`
const sluice = cliFor(home, REPO, PW)
let allChunks: string[] = []

interface CheckJson { problems: number; chunks: number; bytesRead: number }

/** The chunk ids a check run named as damaged (each read chunk is, below). */
/** The chunks check --json names in its error lines (docs/JSON.md). */
function namedChunks(r: CliResult): string[] {
  const lines = r.stdout.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as { message_type: string; object?: string })
  return lines.flatMap(m => (m.message_type === 'error' && m.object ? [m.object] : []))
}

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(`${BASE}/src`, { recursive: true })
  fs.mkdirSync(home, { recursive: true })
  for (let i = 0; i < 40; i++) fs.writeFileSync(`${BASE}/src/f${i}`, seededBytes(`subset-${i}`, 20_000 + i * 3_000))
  fs.writeFileSync(`${BASE}/src/big`, seededBytes('subset-big', 6_000_000))
  const repo = await initRepository(createLocalStorage(REPO), PW, { kdf: { opslimit: 1, memlimit: 8192 } })
  await backup({ repo, paths: [`${BASE}/src`] })
  for await (const key of repo.storage.list('chunks/')) allChunks.push(key.slice(key.lastIndexOf('/') + 1))
  await repo.close()
})

test('an intact repository: 1/5 … 5/5 read as many chunks as --read-data, x% and SIZE as restic counts', async () => {
  const all = summaryOf<CheckJson>((await sluice(['check', '--read-data', '--json'])).stdout)
  assert.equal(all.problems, 0)
  assert.equal(all.chunks, allChunks.length)
  let sum = 0
  for (let i = 1; i <= 5; i++) {
    const r = await sluice(['check', '--read-data-subset', `${i}/5`, '--json'])
    assert.equal(r.code, 0, r.stderr)
    sum += summaryOf<CheckJson>(r.stdout).chunks
  }
  assert.equal(sum, all.chunks)
  const text = await sluice(['check', '--read-data-subset', '2/5'])
  assert.match(text.stdout, /^checked 1 snapshots and \d+ chunks \(subset 2\/5, [\d.]+ \w+\): no problems$/m)
  for (const [pct, want] of [['100%', all.chunks], ['50%', Math.floor(all.chunks / 2)], ['0.1%', 1], ['12.5%', Math.max(1, Math.floor(all.chunks * 0.125))]] as const) {
    const r = summaryOf<CheckJson>((await sluice(['check', '--read-data-subset', pct, '--json'])).stdout)
    assert.equal(r.chunks, want, pct)
  }
  const one = summaryOf<CheckJson>((await sluice(['check', '--read-data-subset', '1', '--json'])).stdout)
  assert.equal(one.chunks, 1)
  const whole = summaryOf<CheckJson>((await sluice(['check', '--read-data-subset', '1T', '--json'])).stdout)
  assert.equal(whole.chunks, all.chunks)
  assert.equal(whole.bytesRead, all.bytesRead)
  const some = summaryOf<CheckJson>((await sluice(['check', '--read-data-subset', '3M', '--json'])).stdout)
  assert.ok(some.bytesRead >= 3 * 1024 * 1024 && some.chunks <= all.chunks, JSON.stringify(some))
})

test('every chunk damaged: 1/5 … 5/5 together name every chunk exactly once', async () => {
  const dir = `${BASE}/damaged`
  fs.cpSync(REPO, dir, { recursive: true })
  const storage = createLocalStorage(dir)
  for (const id of allChunks) await damage(storage, `chunks/${id.slice(0, 2)}/${id}`, 'flipped')
  const seen: string[] = []
  for (let i = 1; i <= 5; i++) {
    const r = await cliFor(home, dir, PW)(['check', '--read-data-subset', `${i}/5`, '--json'])
    assert.equal(r.code, 1)
    assert.match(r.stderr, /sluice: ERR_CHECK: check found \d+ problems/)
    const named = namedChunks(r)
    assert.equal(named.length, (JSON.parse(r.stdout.trimEnd().split('\n').at(-1)!) as CheckJson).chunks, `group ${i}`)
    // Group i is the chunks whose id's first byte is i-1 mod 5 (restic's rule), no others.
    for (const id of named) assert.equal(parseInt(id.slice(0, 2), 16) % 5, i - 1, id)
    seen.push(...named)
  }
  assert.deepEqual(seen.sort(), [...allChunks].sort())
})

test("bad values fail with one line in restic's words", async () => {
  const bad = async (args: string[], message: RegExp) => {
    const r = await sluice(['check', ...args])
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stderr, /^sluice: ERR_ARGS: [^\n]*\n$/)
    assert.match(r.stderr, message)
  }
  await bad(['--read-data-subset', '0/5'], /check flag --read-data-subset=n\/t values must be positive integers, and n <= t/)
  await bad(['--read-data-subset', '6/5'], /values must be positive integers, and n <= t/)
  await bad(['--read-data-subset', '1/257'], /t must be at most 256/)
  await bad(['--read-data-subset', '0%'], /x must be above 0.0% and at most 100.0%/)
  await bad(['--read-data-subset', '101%'], /at most 100.0%/)
  await bad(['--read-data-subset', 'abc%'], /check flag --read-data-subset has invalid value, please see documentation/)
  await bad(['--read-data-subset', '1/2/3'], /has invalid value/)
  await bad(['--read-data-subset', '0'], /check flag --read-data-subset=n n must be above 0/)
  await bad(['--read-data', '--read-data-subset', '1/2'], /check flags --read-data and --read-data-subset cannot be used together/)
  assert.deepEqual(parseDataSubset('3/7'), { part: 3, of: 7 })
  assert.deepEqual(parseDataSubset('2.5%'), { percent: 2.5 })
  assert.deepEqual(parseDataSubset('10M'), { bytes: 10 * 1024 * 1024 })
})
