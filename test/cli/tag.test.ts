/**
 * Issue 18 item 4 through the built CLI (`npm run build` first): `sluice tag --add/--remove/--set`
 * rewrites snapshot roots as restic does (new id, `original` naming the first id, old root
 * removed after the new one is written), with --host/--tag/--path filters and --json; forgotten
 * roots are left alone; a kill between writing the new root and removing the old leaves both,
 * and a rerun completes it.
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { cliFor, type CliResult } from '../helpers/cli.js'
import { seededBytes } from '../helpers/tree.js'
import { backup, createLocalStorage, initRepository, openRepository, type Repository, type SnapshotRoot } from '../../index.js'
import { scratch } from '../helpers/scratch.js'
import { killOnUnlinkHook } from '../helpers/kill-hook.js'

const BASE = `${scratch('e2e-task')}/tag`
const PW = 'correct horse'
const SRC = `${BASE}/src`
const home = `${BASE}/home`
let n = 0

function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit ${r.code} ${r.signal ?? ''}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r
}

function fails(r: CliResult, code: string, message: RegExp): void {
  assert.equal(r.code, 1, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  assert.match(r.stderr, new RegExp(`^sluice: ${code}: ${message.source}[^\\n]*\\n$`))
}

function ls(dir: string, sub: string): string[] {
  return fs.existsSync(`${dir}/${sub}`) ? fs.readdirSync(`${dir}/${sub}`).sort() : []
}

/** A repository with one real backup; more roots share its tree, with chosen host and tags. */
async function freshRepo(): Promise<{ dir: string; repo: Repository; base: SnapshotRoot; baseId: string }> {
  const dir = `${BASE}/repo-${n++}`
  const repo = await initRepository(createLocalStorage(dir), PW, { kdf: { opslimit: 1, memlimit: 8192 } })
  const r = await backup({ repo, paths: [SRC] })
  return { dir, repo, base: r.snapshot, baseId: r.snapshotId }
}

async function tagsById(dir: string): Promise<Map<string, SnapshotRoot>> {
  const repo = await openRepository(createLocalStorage(dir), PW)
  const m = new Map<string, SnapshotRoot>()
  for await (const { id, snap } of repo.snapshots()) m.set(id, snap)
  await repo.close()
  return m
}

before(() => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(SRC, { recursive: true })
  fs.mkdirSync(home, { recursive: true })
  fs.writeFileSync(`${SRC}/a`, 'a\n')
  fs.writeFileSync(`${SRC}/b`, seededBytes('tag-b', 100_000))
})

test('tag --add/--remove/--set rewrite roots: new id, original kept from the first change, old root gone', async () => {
  const { dir, repo, base, baseId } = await freshRepo()
  const other = await repo.saveSnapshot({ ...base, host: 'other', tags: ['keep'] })
  await repo.close()
  const sluice = cliFor(home, dir, PW)

  // By id, with --json: restic's lines.
  const r1 = ok(await sluice(['tag', '--add', 'a,b', '--add', 'c', baseId.slice(0, 8), '--json']))
  const lines = r1.stdout.trim().split('\n').map(l => JSON.parse(l) as Record<string, unknown>)
  assert.equal(lines.length, 2)
  assert.equal(lines[0]!.message_type, 'changed')
  assert.equal(lines[0]!.old_snapshot_id, baseId)
  const id1 = lines[0]!.new_snapshot_id as string
  assert.deepEqual(lines[1], { message_type: 'summary', changed_snapshots: 1 })
  let snaps = await tagsById(dir)
  assert.deepEqual([...snaps.keys()].sort(), [id1, other].sort())
  assert.deepEqual(snaps.get(id1)!.tags, ['a', 'b', 'c'])
  assert.equal(snaps.get(id1)!.original, baseId)
  // Everything but tags and original is the same: the snapshot still restores the same tree.
  assert.deepEqual(snaps.get(id1), JSON.parse(JSON.stringify({ ...base, tags: ['a', 'b', 'c'], original: baseId })))

  // --remove on a rewritten root: original still names the first id.
  const r2 = ok(await sluice(['tag', '--remove', 'b', id1.slice(0, 8)]))
  assert.match(r2.stdout, /modified 1 snapshots/)
  snaps = await tagsById(dir)
  const id2 = [...snaps.keys()].find(id => id !== other)!
  assert.deepEqual(snaps.get(id2)!.tags, ['a', 'c'])
  assert.equal(snaps.get(id2)!.original, baseId)

  // Nothing changes: no root is rewritten.
  const r3 = ok(await sluice(['tag', '--add', 'a', id2.slice(0, 8)]))
  assert.match(r3.stdout, /no snapshots were modified/)
  assert.deepEqual(ls(dir, 'snapshots'), [id2, other].sort())

  // Filters: --host picks one; --set '' clears.
  ok(await sluice(['tag', '--host', 'other', '--set', 'x,y']))
  snaps = await tagsById(dir)
  assert.deepEqual([...snaps.values()].map(s => [s.host, s.tags.join(',')]).sort(), [[base.host, 'a,c'], ['other', 'x,y']].sort())
  ok(await sluice(['tag', '--tag', 'x', '--set', '']))
  snaps = await tagsById(dir)
  assert.deepEqual([...snaps.values()].find(s => s.host === 'other')!.tags, [])
  assert.equal([...snaps.values()].find(s => s.host === 'other')!.original, other)
  // Without ids or filters: every snapshot.
  const all = ok(await sluice(['tag', '--add', 'all', '--json']))
  assert.match(all.stdout, /"changed_snapshots":2/)
  snaps = await tagsById(dir)
  assert.ok([...snaps.values()].every(s => s.tags.includes('all')))
  // `snapshots --tag` finds them by their new tags.
  const listed = JSON.parse(ok(await sluice(['snapshots', '--tag', 'all', '--json'])).stdout) as { id: string }[]
  assert.equal(listed.length, 2)

  fails(await sluice(['tag', baseId.slice(0, 8)]), 'ERR_ARGS', /nothing to do!/)
  fails(await sluice(['tag', '--set', 'a', '--add', 'b']), 'ERR_ARGS', /--set and --add\/--remove cannot be given at the same time/)
  // The first id no longer exists (its root was replaced).
  fails(await sluice(['tag', '--add', 'z', baseId.slice(0, 12)]), 'ERR_SNAPSHOT_NOT_FOUND', /no snapshot matches/)
})

test('forgotten roots are not touched by tag', async () => {
  const { dir, repo, base, baseId } = await freshRepo()
  const gone = await repo.saveSnapshot({ ...base, time: '2020-01-01T00:00:00.000Z' })
  await repo.close()
  const sluice = cliFor(home, dir, PW)
  ok(await sluice(['forget', gone.slice(0, 8)]))
  const forgotten = fs.readFileSync(`${dir}/forgotten/${gone}`)
  const r = ok(await sluice(['tag', '--add', 'new', '--json']))
  assert.match(r.stdout, /"changed_snapshots":1/)
  assert.deepEqual(ls(dir, 'forgotten'), [gone])
  assert.ok(fs.readFileSync(`${dir}/forgotten/${gone}`).equals(forgotten))
  // Brought back, it has its old tags: it was never rewritten.
  ok(await sluice(['forget', '--undo']))
  const snaps = await tagsById(dir)
  assert.deepEqual(snaps.get(gone)!.tags, [])
  assert.ok(![...snaps.keys()].includes(baseId))
})

test('a kill after the new root is written and before the old one goes leaves both; a rerun completes it', async () => {
  const { dir, repo, baseId } = await freshRepo()
  await repo.close()
  const sluice = cliFor(home, dir, PW)
  const hook = killOnUnlinkHook(BASE, '/snapshots/')
  const killed = await sluice(['tag', '--add', 'x'], { nodeArgs: ['--import', hook] })
  assert.equal(killed.signal, 'SIGKILL', `${killed.code} ${killed.stderr}`)
  let snaps = await tagsById(dir)
  assert.equal(snaps.size, 2)
  assert.deepEqual([...snaps.values()].map(s => s.tags.join(',')).sort(), ['', 'x'])
  ok(await sluice(['tag', '--add', 'x']))
  snaps = await tagsById(dir)
  assert.equal(snaps.size, 1)
  const [only] = [...snaps.values()]
  assert.deepEqual(only!.tags, ['x'])
  assert.equal(only!.original, baseId)
})
