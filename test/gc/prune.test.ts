/**
 * prune frees space (issue 14, first "Must show"): back up a tree, change half of it, back up
 * again, forget the first snapshot, prune twice (collect, then sweep) with every margin at zero.
 * The repository is then within 5% of a fresh repository holding only the kept snapshot,
 * `check --read-data` passes, and the kept snapshot restores byte-exact. The same on s3rver.
 * Also: the summary says what waits and until when, --dry-run changes nothing, --max-unused is
 * refused with the reason. Through the spawned CLI; build first (`npm run build`).
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { cliFor, type CliResult, backupSummary } from '../helpers/cli.js'
import { compareTrees } from '../helpers/tree.js'
import { startS3rver, S3RVER_CREDENTIALS, type S3rverHandle } from '../helpers/s3rver.js'
import { forgetRoot, keys, NO_MARGINS, SMALL_REPO, storedBytes, writeFiles, KiB } from '../helpers/gc.js'
import { createLocalStorage, openS3Storage, initRepository, type Storage } from '../../index.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('gc-prune')}/t`
const home = `${BASE}/home`
const PW = 'correct horse'
const TREE = `${BASE}/tree`
const AWS_ENV = {
  AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
  AWS_REGION: 'us-east-1',
  AWS_EC2_METADATA_DISABLED: 'true',
}

let server: S3rverHandle

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(home, { recursive: true })
  server = await startS3rver({ bucket: 'gc' })
})
after(async () => {
  await server?.stop()
})

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r
}

interface Target {
  name: string
  location: (name: string) => string
  storage: (name: string) => Promise<Storage>
  env: Record<string, string>
}

const targets: Target[] = [
  {
    name: 'local',
    location: n => `${BASE}/${n}`,
    storage: async n => createLocalStorage(`${BASE}/${n}`),
    env: {},
  },
  {
    name: 's3rver',
    location: n => `s3:${server.endpoint}/gc/${n}`,
    storage: async n => openS3Storage({ bucket: 'gc', prefix: `${n}/`, endpoint: server.endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS }),
    env: AWS_ENV,
  },
]

for (const t of targets) {
  test(`${t.name}: forget the first of two snapshots, prune twice: the size of a fresh repository, check --read-data clean, the kept snapshot byte-exact`, { timeout: 600_000 }, async () => {
    const tree = `${TREE}-${t.name}`
    writeFiles(tree, 'one', 48, 64 * KiB)
    const storage = await t.storage('repo')
    await (await initRepository(storage, PW, SMALL_REPO)).close()
    const sluice = cliFor(home, t.location('repo'), PW)
    const run = (args: string[]) => sluice(args, { env: t.env, timeoutMs: 300_000 })
    const first = backupSummary(ok(await run(['backup', '--json', tree]), 'first backup').stdout).snapshot as string
    writeFiles(tree, 'two', 24, 64 * KiB) // half the files rewritten
    const kept = backupSummary(ok(await run(['backup', '--json', tree]), 'second backup').stdout).snapshot as string
    const before = await storedBytes(storage)
    await forgetRoot(storage, first)

    const one = ok(await run(['prune', ...NO_MARGINS]), 'prune (collect)')
    assert.match(one.stdout, /unreferenced chunks \([\d.]+ [KM]iB\) were moved aside/)
    assert.match(one.stdout, /the next prune run can free this space from \d{4}-/)
    assert.ok((await keys(storage, 'fossils/')).length > 0, 'the collection moved chunks aside')
    // Between the two runs the kept snapshot still checks and restores (readers see fossils).
    ok(await run(['check', '--read-data']), 'check between collect and sweep')

    const two = ok(await run(['prune', '--json', ...NO_MARGINS]), 'prune (sweep)')
    const result = backupSummary(two.stdout)
    assert.equal(result.sweep.swept, true)
    assert.ok(result.sweep.deleted > 0 && result.sweep.deletedBytes > 0, two.stdout)
    assert.equal(result.sweep.forgottenDeleted, 1)
    assert.deepEqual(await keys(storage, 'fossils/'), [])
    assert.deepEqual(await keys(storage, 'forgotten/'), [])

    const pruned = await storedBytes(storage)
    const freshStorage = await t.storage('fresh')
    await (await initRepository(freshStorage, PW, SMALL_REPO)).close()
    ok(await cliFor(home, t.location('fresh'), PW)(['backup', tree], { env: t.env, timeoutMs: 300_000 }), 'fresh backup')
    const fresh = await storedBytes(freshStorage)
    assert.ok(pruned < before * 0.8, `pruned ${pruned} of ${before}`)
    assert.ok(Math.abs(pruned - fresh) <= fresh * 0.05, `pruned repository ${pruned} B, a fresh one ${fresh} B`)

    ok(await run(['check', '--read-data']), 'check --read-data')
    const target = `${BASE}/restore-${t.name}`
    ok(await run(['restore', kept, '--target', target]), 'restore')
    assert.deepEqual(compareTrees(tree, `${target}/${tree.slice(1)}`, { root: true }), [])
    await storage.close()
    await freshStorage.close()
  })
}

test('--dry-run moves and deletes nothing; --max-unused and a bad duration are refused with the reason', { timeout: 300_000 }, async () => {
  const tree = `${TREE}-dry`
  writeFiles(tree, 'dry', 8, 32 * KiB)
  const storage = createLocalStorage(`${BASE}/dry`)
  await (await initRepository(storage, PW, SMALL_REPO)).close()
  const run = cliFor(home, `${BASE}/dry`, PW)
  const first = backupSummary(ok(await run(['backup', '--json', tree]), 'backup').stdout).snapshot as string
  writeFiles(tree, 'dry2', 8, 32 * KiB)
  ok(await run(['backup', tree]), 'backup')
  await forgetRoot(storage, first)
  const listing = async () => [...(await keys(storage, 'chunks/')), ...(await keys(storage, 'fossils/')), ...(await keys(storage, 'gc/'))]
  const beforeKeys = await listing()
  const dry = ok(await run(['prune', '--dry-run', ...NO_MARGINS]), 'dry run')
  assert.match(dry.stdout, /unreferenced chunks \([\d.]+ [KM]iB\) would be moved aside/)
  assert.deepEqual(await listing(), beforeKeys)
  const r = await run(['prune', '--max-unused', '5%'])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /^sluice: ERR_ARGS: --max-unused has no meaning in sluice: every chunk is its own object/)
  const bad = await run(['prune', '--min-age', '5 weeks'])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /^sluice: ERR_ARGS: --min-age takes a duration such as 30m, 1h30m or 0, not '5 weeks'\n$/)
})

test('a sweep that must wait says for which backup and until when, and deletes nothing', { timeout: 300_000 }, async () => {
  const tree = `${TREE}-wait`
  writeFiles(tree, 'wait', 8, 32 * KiB)
  const storage = createLocalStorage(`${BASE}/wait`)
  await (await initRepository(storage, PW, SMALL_REPO)).close()
  const run = cliFor(home, `${BASE}/wait`, PW)
  const first = backupSummary(ok(await run(['backup', '--json', tree]), 'backup').stdout).snapshot as string
  writeFiles(tree, 'wait2', 8, 32 * KiB)
  ok(await run(['backup', tree]), 'backup')
  await forgetRoot(storage, first)
  ok(await run(['prune', ...NO_MARGINS]), 'collect')
  const fossils = await keys(storage, 'fossils/')
  // Default gap (1 h): the sweep waits and names its end.
  const waiting = ok(await run(['prune', '--json']), 'prune that waits')
  const result = backupSummary(waiting.stdout)
  assert.equal(result.sweep.swept, false)
  assert.equal(result.sweep.waiting[0].reason, 'gap')
  assert.ok(Date.parse(result.nextFreeAt) > Date.now() + 50 * 60_000)
  assert.deepEqual(await keys(storage, 'fossils/'), fossils)
  const text = ok(await run(['prune']), 'prune that waits, as text')
  assert.match(text.stdout, /cannot be swept yet, nothing was deleted/)
  assert.match(text.stdout, /collect-to-sweep gap ends at/)
})
