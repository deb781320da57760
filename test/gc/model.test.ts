/**
 * A model test of prune (issue 14): seeded random sequences of backups from several hosts,
 * forgets, undone forgets, prunes, and prunes killed (SIGKILL) at a random phase. After every
 * step every snapshot the model says exists restores to the bytes it was made from and
 * `check --read-data` finds nothing; after two clean prune runs with no backup running, no
 * unreferenced chunk is left and nothing is moved aside. Backups, prunes and checks run
 * in-process (fast); killed prunes are spawned CLIs. Build first (`npm run build`).
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { createHash } from 'node:crypto'
import { seededBytes } from '../helpers/tree.js'
import { forgetRoot, keys, KiB, NO_MARGINS, NO_MARGINS_API, SMALL_REPO, spawnFrozen, undoForget } from '../helpers/gc.js'
import {
  backup, check, createLocalStorage, initRepository, prune, proveSnapshot, restore, snapshotIds, treeOf, hex,
  type Repository,
} from '../../index.js'
import { rng } from '../helpers/rng.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('gc-model')}/t`
const home = `${BASE}/home`
const PW = 'correct horse'
const STEPS = 24
const PHASES = ['prune-marked', 'prune-recorded', 'prune-moving', 'prune-collected', 'prune-tombstoned', 'prune-deleting', 'prune-swept']

before(() => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(home, { recursive: true })
})


/** Names and content hashes of the files below `dir`. */
function digest(dir: string): string {
  const h = createHash('sha256')
  for (const name of fs.readdirSync(dir).sort()) h.update(name).update(createHash('sha256').update(fs.readFileSync(path.join(dir, name))).digest())
  return h.digest('hex')
}

async function verify(repo: Repository, expected: Map<string, { tree: string; digest: string }>, label: string, n: { r: number }) {
  for (const [id, e] of expected) {
    const target = `${BASE}/restore-${n.r++}`
    await restore({ repo, snapshot: id, target })
    assert.equal(digest(`${target}/${e.tree.slice(1)}`), e.digest, `${label}: snapshot ${id.slice(0, 8)} restores other bytes`)
    fs.rmSync(target, { recursive: true, force: true })
  }
  const problems: string[] = []
  const r = await check({ repo, readData: true, onProblem: m => problems.push(m) })
  assert.deepEqual(problems, [], `${label}: check --read-data`)
  assert.equal(r.snapshots, expected.size, `${label}: snapshots`)
}

for (const seed of [1, 2, 3]) {
  test(`model, seed ${seed}: backups on three hosts, forgets, undos, prunes and killed prunes keep every snapshot whole`, { timeout: 600_000 }, async () => {
    const rand = rng(seed)
    const pick = <T>(a: T[]): T => a[Math.floor(rand() * a.length)]!
    const repoDir = `${BASE}/repo-${seed}`
    const storage = createLocalStorage(repoDir)
    const repo = await initRepository(storage, PW, SMALL_REPO)
    const env = { SLUICE_REPOSITORY: repoDir, SLUICE_PASSWORD: PW, HOME: home }
    const hosts = ['alpha', 'beta', 'gamma']
    const trees = new Map(hosts.map(h => [h, `${BASE}/trees-${seed}/${h}`]))
    const expected = new Map<string, { tree: string; digest: string }>()
    const undoable = new Map<string, { tree: string; digest: string }>()
    const n = { r: 0 }
    let version = 0
    const log: string[] = []
    for (let step = 0; step < STEPS; step++) {
      const x = rand()
      if (x < 0.35 || expected.size === 0) {
        const host = pick(hosts)
        const tree = trees.get(host)!
        fs.mkdirSync(tree, { recursive: true })
        // Rewrite a few files: half with new bytes, half with bytes other hosts may have too.
        for (let k = 0; k < 4; k++) {
          const content = rand() < 0.5 ? `new-${version++}` : `shared-${Math.floor(rand() * 6)}`
          fs.writeFileSync(path.join(tree, `f${Math.floor(rand() * 10)}`), seededBytes(content, 12 * KiB + Math.floor(rand() * 8 * KiB)))
        }
        const r = await backup({ repo, paths: [tree], host })
        expected.set(r.snapshotId, { tree, digest: digest(tree) })
        log.push(`backup ${host} ${r.snapshotId.slice(0, 8)}`)
      } else if (x < 0.57) {
        const id = pick([...expected.keys()])
        await forgetRoot(storage, id)
        const e = expected.get(id)!
        expected.delete(id)
        undoable.set(id, e)
        log.push(`forget ${id.slice(0, 8)}`)
      } else if (x < 0.66 && undoable.size > 0) {
        const id = pick([...undoable.keys()])
        if (await storage.has(`forgotten/${id}`)) {
          // What forget --undo must do: the root back, then its chunks proven (moved back).
          await undoForget(storage, id)
          const snap = await repo.loadSnapshot(id)
          const missing = await proveSnapshot(repo, treeOf(snap))
          assert.equal(missing, undefined, `undo of ${id.slice(0, 8)}: chunk ${missing} is gone`)
          expected.set(id, undoable.get(id)!)
          log.push(`undo ${id.slice(0, 8)}`)
        }
        undoable.delete(id)
      } else if (x < 0.85) {
        const r = await prune({ repo, ...NO_MARGINS_API })
        log.push(`prune swept=${r.sweep?.swept} deleted=${r.sweep?.deleted} moved=${r.collect?.candidates}`)
      } else {
        const point = pick(PHASES)
        const p = spawnFrozen(['prune', ...NO_MARGINS], env, point)
        const outcome = await Promise.race([p.stopped.then(() => 'stopped' as const, () => 'exited' as const), p.exited.then(() => 'exited' as const)])
        if (outcome === 'stopped') p.child.kill('SIGKILL')
        const r = await p.exited
        if (outcome === 'exited') assert.equal(r.code, 0, r.stderr)
        log.push(`prune killed at ${point}: ${outcome}`)
      }
      await verify(repo, expected, `step ${step} (${log.join(', ')})`, n)
    }
    if (process.env.MODEL_LOG) console.log(log.join("\n"))
    // No backup running: two clean runs free everything unreferenced.
    await prune({ repo, ...NO_MARGINS_API })
    await prune({ repo, ...NO_MARGINS_API })
    await verify(repo, expected, 'after two clean prunes', n)
    assert.deepEqual(await keys(storage, 'fossils/'), [])
    const referenced = new Set<string>()
    for (const id of expected.keys()) for await (const c of snapshotIds(repo, treeOf(await repo.loadSnapshot(id)))) referenced.add(hex(c))
    const stored = (await keys(storage, 'chunks/')).map(k => k.slice(-64))
    assert.deepEqual(stored.filter(k => !referenced.has(k)), [], 'unreferenced chunks remain')
    assert.equal(stored.length, referenced.size)
    await repo.close()
  })
}
