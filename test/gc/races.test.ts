/**
 * prune beside running backups, race by race, each scripted step by step (issue 14): a backup
 * frozen at a named point (lib/test-point.ts: it stops itself with SIGSTOP, the test reads the
 * kernel's process state) while prune runs, then resumed. No step waits on a clock:
 * - a backup checks chunks (dedup hits), prune moves them aside, the backup commits: the sweep
 *   moves them back and the snapshot restores;
 * - a backup that starts after the collection stores those chunks again;
 * - a backup stopped past its lease, exactly between its last lease check and its commit, and
 *   resumed after the sweep: it fails loudly and leaves no snapshot;
 * - two prunes at once: the second is refused with ERR_LOCKED naming the first;
 * - a forget undone between collect and sweep: the snapshot keeps every chunk;
 * - a lapsed prune lock is taken over, and its old holder stops.
 * Through the spawned CLI; build first (`npm run build`).
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { cliFor, type CliResult, backupSummary } from '../helpers/cli.js'
import { compareTrees } from '../helpers/tree.js'
import { forgetRoot, keys, KiB, NO_MARGINS, SMALL_REPO, spawnFrozen, undoForget, writeFiles } from '../helpers/gc.js'
import { BackupLease, PruneLock, createLocalStorage, initRepository, openRepository, treeOf, type Storage } from '../../index.js'
import { commitGuard } from '../../transforms/gc/mark.js'
import { LEASE_LIFETIME_MS } from '../../lib/limits.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('gc-races')}/t`
const home = `${BASE}/home`
const PW = 'correct horse'

before(() => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(home, { recursive: true })
})

function ok(r: CliResult | { code: number | null; stdout: string; stderr: string }, what: string) {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r
}

/** A repository with one snapshot of a fresh tree, that snapshot forgotten: its chunks are
 *  unreferenced, and a backup of the same tree finds every one of them (dedup hits). */
async function setup(name: string) {
  const repoDir = `${BASE}/${name}/repo`
  const tree = `${BASE}/${name}/tree`
  writeFiles(tree, name, 16, 32 * KiB)
  const storage: Storage = createLocalStorage(repoDir)
  await (await initRepository(storage, PW, SMALL_REPO)).close()
  const run = cliFor(home, repoDir, PW)
  const env = { SLUICE_REPOSITORY: repoDir, SLUICE_PASSWORD: PW, HOME: home }
  const first = backupSummary(ok(await run(['backup', '--json', tree]), 'first backup').stdout).snapshot as string
  await forgetRoot(storage, first)
  return { storage, run, env, tree, repoDir, first }
}

async function restoresExactly(run: ReturnType<typeof cliFor>, snapshot: string, tree: string, target: string) {
  ok(await run(['restore', snapshot, '--target', target]), `restore ${snapshot.slice(0, 8)}`)
  assert.deepEqual(compareTrees(tree, `${target}/${tree.slice(1)}`, { root: true }), [])
}

test('a backup that found its chunks stored, then saw prune move them aside, commits; the sweep moves them back', { timeout: 600_000 }, async () => {
  const { storage, run, env, tree } = await setup('dedup-hit')
  const backup = spawnFrozen(['backup', '--json', tree], env, 'backup-before-commit')
  await backup.stopped
  // The backup's lease is live (default lifetime): the collection still moves the chunks it
  // reused, which are older than its start, aside...
  ok(await run(['prune', '--min-age', '0', '--sweep-gap', '0']), 'collect')
  assert.ok((await keys(storage, 'fossils/')).length > 0)
  backup.child.kill('SIGCONT')
  const done = ok(await backup.exited, 'backup resumed')
  const snapshot = backupSummary(done.stdout).snapshot as string
  // ...and its snapshot, naming fossils, checks and restores before the sweep,
  ok(await run(['check', '--read-data']), 'check before the sweep')
  // ...and after it: the sweep marks the snapshot that appeared since and moves its chunks back.
  const sweep = backupSummary(ok(await run(['prune', '--json', '--min-age', '0', '--sweep-gap', '0']), 'sweep').stdout)
  assert.equal(sweep.sweep.swept, true)
  assert.ok(sweep.sweep.movedBack > 0 && sweep.sweep.newSnapshots === 1, JSON.stringify(sweep.sweep))
  // (The forgotten snapshot's own metadata may differ from the new one's, /tmp's mtime being
  // recorded, and is rightly deleted: what matters is that the new snapshot is whole.)
  assert.deepEqual(await keys(storage, 'fossils/'), [])
  ok(await run(['check', '--read-data']), 'check after the sweep')
  await restoresExactly(run, snapshot, tree, `${BASE}/dedup-hit/restored`)
})

test('a backup that starts after the collection stores the moved-aside chunks again', { timeout: 600_000 }, async () => {
  const { storage, run, tree } = await setup('after')
  ok(await run(['prune', ...NO_MARGINS]), 'collect')
  const fossils = (await keys(storage, 'fossils/')).length
  assert.ok(fossils > 0)
  const backup = backupSummary(ok(await run(['backup', '--json', tree]), 'backup after the collection').stdout)
  assert.equal(backup.chunksNew, fossils, 'every chunk moved aside is stored again')
  ok(await run(['prune', ...NO_MARGINS]), 'sweep')
  assert.deepEqual(await keys(storage, 'fossils/'), [])
  ok(await run(['check', '--read-data']), 'check')
  await restoresExactly(run, backup.snapshot, tree, `${BASE}/after/restored`)
})

test('a backup stopped past its lease between its last lease check and its commit, resumed after the sweep, fails loudly and leaves no snapshot', { timeout: 600_000 }, async () => {
  const { storage, run, env, tree } = await setup('lapsed')
  const backup = spawnFrozen(['backup', tree], env, 'backup-before-commit')
  await backup.stopped
  // A lease lifetime of 0: to this prune the frozen backup's lease has lapsed.
  ok(await run(['prune', ...NO_MARGINS]), 'collect')
  const sweep = backupSummary(ok(await run(['prune', '--json', ...NO_MARGINS]), 'sweep').stdout)
  assert.equal(sweep.sweep.tombstoned, 1)
  assert.ok(sweep.sweep.deleted > 0)
  backup.child.kill('SIGCONT')
  const r = await backup.exited
  assert.equal(r.code, 1, r.stderr)
  const lines = r.stderr.split('\n').filter(l => l !== '')
  assert.equal(lines.length, 1, r.stderr)
  assert.match(lines[0]!, /^sluice: ERR_LEASE_LAPSED: this backup was stopped past its lease .* no snapshot was written/)
  assert.deepEqual(await keys(storage, 'snapshots/'), [])
  assert.deepEqual(await keys(storage, 'leases/'), [], 'the backup removed its lease and tombstone')
  ok(await run(['check', '--read-data']), 'check')
  // Run again, it stores what is missing.
  const again = backupSummary(ok(await run(['backup', '--json', tree]), 'backup again').stdout)
  await restoresExactly(run, again.snapshot, tree, `${BASE}/lapsed/restored`)
})

test('a backup that notices its own lapse before committing proves its chunks: moved-aside ones come back, deleted ones fail it', { timeout: 600_000 }, async () => {
  // The lease and the guard of backup.ts driven in-process with a clock the test moves: the
  // collection moves the reused chunks aside while the lease is live; the lease then lapses.
  const { storage, run, tree, repoDir } = await setup('prove')
  const repo = await openRepository(createLocalStorage(repoDir), PW)
  await undoForget(storage, (await keys(storage, 'forgotten/'))[0]!.slice('forgotten/'.length))
  const { id, snap } = await repo.findSnapshot('latest')
  await forgetRoot(storage, id)
  let clock = Date.now()
  const lease = await BackupLease.start(repo, 'prove-host', { now: () => clock })
  ok(await run(['prune', '--min-age', '0', '--sweep-gap', '0']), 'collect beside the live lease')
  const fossils = (await keys(storage, 'fossils/')).length
  assert.ok(fossils > 0)
  clock += LEASE_LIFETIME_MS + 1
  assert.equal(lease.isLapsed(), true)
  await commitGuard.before(repo, lease, treeOf(snap))
  assert.deepEqual(await keys(storage, 'fossils/'), [], 'the proof moved every chunk back')
  await lease.release()

  // Again, but a sweep deleted them: the guard refuses the commit.
  clock = Date.now()
  const lease2 = await BackupLease.start(repo, 'prove-host', { now: () => clock })
  ok(await run(['prune', ...NO_MARGINS]), 'sweep (nothing) and collect')
  ok(await run(['prune', ...NO_MARGINS]), 'sweep: lease tombstoned, chunks deleted')
  assert.equal(await lease2.tombstoned(), true)
  await assert.rejects(commitGuard.before(repo, lease2, treeOf(snap)), { code: 'ERR_LEASE_LAPSED' })
  await lease2.release()
  await repo.close()
  void tree
})

test('two prunes at once: the second is refused with ERR_LOCKED naming the first; the first completes', { timeout: 600_000 }, async () => {
  const { storage, run, env } = await setup('two')
  const first = spawnFrozen(['prune', ...NO_MARGINS], env, 'prune-marked')
  await first.stopped
  const second = await run(['prune', ...NO_MARGINS])
  assert.equal(second.code, 1)
  assert.match(second.stderr, /^sluice: ERR_LOCKED: another prune is running \(host .*, pid \d+, since .*\); its lock lapses at /)
  assert.equal(second.stderr.trim().split('\n').length, 1)
  assert.deepEqual(await keys(storage, 'fossils/'), [], 'the refused prune moved nothing')
  first.child.kill('SIGCONT')
  ok(await first.exited, 'first prune')
  assert.ok((await keys(storage, 'fossils/')).length > 0)
  assert.deepEqual(await keys(storage, 'locks/'), [], 'the lock is released')
})

test('a forget undone between collect and sweep: the snapshot keeps every chunk', { timeout: 600_000 }, async () => {
  const { storage, run, tree, first } = await setup('undo')
  await undoForget(storage, first)
  const expected = `${BASE}/undo/expected`
  ok(await run(['restore', first, '--target', expected]), 'restore before')
  await forgetRoot(storage, first)
  ok(await run(['prune', ...NO_MARGINS]), 'collect')
  assert.ok((await keys(storage, 'fossils/')).length > 0)
  await undoForget(storage, first)
  const sweep = backupSummary(ok(await run(['prune', '--json', ...NO_MARGINS]), 'sweep').stdout)
  assert.equal(sweep.sweep.deleted, 0)
  assert.equal(sweep.sweep.forgottenDeleted, 0)
  assert.ok(sweep.sweep.movedBack > 0)
  assert.deepEqual(await keys(storage, 'fossils/'), [])
  assert.deepEqual(await keys(storage, 'forgotten/'), [])
  ok(await run(['check', '--read-data']), 'check')
  const after = `${BASE}/undo/after`
  ok(await run(['restore', first, '--target', after]), 'restore after')
  assert.deepEqual(compareTrees(expected, after), [])
  void tree
})

test('a lapsed prune lock is taken over by claiming the next generation; the old holder stops at its next check', async () => {
  const dir = `${BASE}/takeover`
  const repo = await initRepository(createLocalStorage(dir), PW, SMALL_REPO)
  let clock = Date.now()
  const first = await PruneLock.acquire(repo, { now: () => clock })
  await assert.rejects(PruneLock.acquire(repo, { now: () => clock }), { code: 'ERR_LOCKED' })
  clock += LEASE_LIFETIME_MS + 1
  const second = await PruneLock.acquire(repo, { now: () => clock })
  assert.equal(second.generation, first.generation + 1)
  await assert.rejects(first.assertHeld(), { code: 'ERR_LOCKED' })
  await second.assertHeld()
  await second.release()
  assert.deepEqual(await keys(repo.storage, 'locks/'), [])
  await repo.close()
})
