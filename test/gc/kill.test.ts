/**
 * SIGKILL of prune at each of its phases (issue 14): a prune frozen at a named point
 * (lib/test-point.ts) is killed there; the next runs take over its lock (a dead process of this
 * host holds nothing), complete, and nothing referenced is lost: check --read-data is clean,
 * the kept snapshot restores byte-exact, and two more clean runs leave no fossil behind.
 * Through the spawned CLI; build first (`npm run build`).
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { cliFor, type CliResult, backupSummary } from '../helpers/cli.js'
import { compareTrees } from '../helpers/tree.js'
import { forgetRoot, keys, KiB, NO_MARGINS, SMALL_REPO, spawnFrozen, writeFiles } from '../helpers/gc.js'
import { createLocalStorage, initRepository } from '../../index.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('gc-kill')}/t`
const home = `${BASE}/home`
const PW = 'correct horse'
const V1 = `${BASE}/v1`
const V2 = `${BASE}/v2`

before(() => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(home, { recursive: true })
  // Enough chunks that moving them aside takes more than one batch (GC_LOCK_CHECK_EVERY).
  writeFiles(V1, 'v1', 96, 48 * KiB)
  writeFiles(V2, 'v1', 48, 48 * KiB)
  writeFiles(V2, 'v2', 96, 48 * KiB, 48)
})

function ok(r: CliResult | { code: number | null; stdout: string; stderr: string }, what: string) {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r
}

const phases: { point: string; sweep: boolean }[] = [
  { point: 'prune-marked', sweep: false },
  { point: 'prune-recorded', sweep: false },
  { point: 'prune-moving', sweep: false },
  { point: 'prune-collected', sweep: false },
  { point: 'prune-tombstoned', sweep: true },
  { point: 'prune-deleting', sweep: true },
  { point: 'prune-swept', sweep: true },
]

for (const { point, sweep } of phases) {
  test(`prune killed at ${point}: the rerun completes and nothing referenced is lost`, { timeout: 600_000 }, async () => {
    const repoDir = `${BASE}/repo-${point}`
    const storage = createLocalStorage(repoDir)
    await (await initRepository(storage, PW, SMALL_REPO)).close()
    const run = cliFor(home, repoDir, PW)
    const env = { SLUICE_REPOSITORY: repoDir, SLUICE_PASSWORD: PW, HOME: home }
    const first = backupSummary(ok(await run(['backup', '--json', V1]), 'backup v1').stdout).snapshot as string
    const kept = backupSummary(ok(await run(['backup', '--json', V2]), 'backup v2').stdout).snapshot as string
    await forgetRoot(storage, first)
    if (sweep) ok(await run(['prune', ...NO_MARGINS]), 'collect')

    const frozen = spawnFrozen(['prune', ...NO_MARGINS], env, point)
    await frozen.stopped
    frozen.child.kill('SIGKILL')
    const killed = await frozen.exited
    assert.equal(killed.signal, 'SIGKILL')

    // The killed prune's lock is taken over; the runs after it complete.
    ok(await run(['prune', ...NO_MARGINS]), 'rerun')
    ok(await run(['check', '--read-data']), 'check after the rerun')
    ok(await run(['prune', ...NO_MARGINS]), 'second clean run')
    ok(await run(['prune', ...NO_MARGINS]), 'third clean run')
    assert.deepEqual(await keys(storage, 'fossils/'), [], 'nothing left moved aside')
    assert.deepEqual(await keys(storage, 'forgotten/'), [])
    assert.deepEqual(await keys(storage, 'locks/'), [])
    ok(await run(['check', '--read-data']), 'check')
    const target = `${BASE}/restore-${point}`
    ok(await run(['restore', kept, '--target', target]), 'restore')
    assert.deepEqual(compareTrees(V2, `${target}/${V2.slice(1)}`, { root: true }), [])
  })
}
