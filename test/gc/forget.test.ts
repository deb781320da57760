/**
 * forget on real repositories: snapshot roots made at chosen times through the library
 * (repo.saveSnapshot, reusing one real backup's tree, since backup has no --time), then the
 * library and the built CLI (`npm run build` first) remove, report, refuse, and bring back.
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { cliFor } from '../helpers/cli.js'
import { compareTrees, seededBytes } from '../helpers/tree.js'
import { startS3rver, S3RVER_CREDENTIALS } from '../helpers/s3rver.js'
import {
  backup, createLocalStorage, openS3Storage, forget, forgottenKey, initRepository, moveObject, openRepository, parseGroupBy, snapshotIds, treeOf, undoForget,
  type ForgetGroup, type Repository, type SnapshotRoot,
} from '../../index.js'
import { scratch } from '../helpers/scratch.js'
import { killOnUnlinkHook } from '../helpers/kill-hook.js'
import { chunkKey } from '../../lib/repo/objects.js'
import { fossilKey } from '../../lib/repo/gc-objects.js'

const BASE = `${scratch('e2e-task')}/forget`
const PW = 'correct horse'
const SRC = `${BASE}/src`
const home = `${BASE}/home`
let n = 0

/** A fresh repository with one real backup of SRC; returns it and that backup's root. */
async function freshRepo(): Promise<{ dir: string; repo: Repository; base: SnapshotRoot; baseId: string }> {
  const dir = `${BASE}/repo-${n++}`
  const repo = await initRepository(createLocalStorage(dir), PW, { kdf: { opslimit: 1, memlimit: 8192 } })
  const r = await backup({ repo, paths: [SRC] })
  return { dir, repo, base: r.snapshot, baseId: r.snapshotId }
}

/** A root like `base` (same tree) at `time`, with other host, paths or tags. */
function save(repo: Repository, base: SnapshotRoot, time: string, o: { host?: string; paths?: string[]; tags?: string[] } = {}): Promise<string> {
  return repo.saveSnapshot({ ...base, time, host: o.host ?? 'mopped', paths: o.paths ?? ['/home/user/work'], tags: o.tags ?? [] })
}

function ls(dir: string, sub: string): string[] {
  return fs.existsSync(`${dir}/${sub}`) ? fs.readdirSync(`${dir}/${sub}`).sort() : []
}

before(() => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(`${SRC}/sub`, { recursive: true })
  fs.mkdirSync(home, { recursive: true })
  fs.writeFileSync(`${SRC}/a`, 'a\n')
  fs.writeFileSync(`${SRC}/sub/b`, seededBytes('forget-b', 300_000))
})

test('a policy moves removed roots to forgotten/ (same sealed bytes) and keeps the rest; undo brings them back', async () => {
  const { dir, repo, base, baseId } = await freshRepo()
  await repo.storage.delete(`snapshots/${baseId}`)
  const ids = []
  for (let d = 1; d <= 5; d++) ids.push(await save(repo, base, `2025-03-0${d}T12:00:00.000Z`))
  const before = Object.fromEntries(ids.map(id => [id, fs.readFileSync(`${dir}/snapshots/${id}`)]))
  const groups: ForgetGroup[] = []
  const r = await forget({ repo, policy: { last: 2 }, onGroup: g => groups.push(g), zone: 'utc' })
  assert.deepEqual(r, { groups: 1, kept: 2, removed: 3, failed: 0 })
  assert.deepEqual(groups[0]!.key, { host: 'mopped', paths: ['/home/user/work'], tags: null })
  assert.deepEqual(groups[0]!.keep.map(s => s.id), [ids[4], ids[3]])
  assert.deepEqual(ls(dir, 'snapshots'), [ids[3], ids[4]].sort())
  assert.deepEqual(ls(dir, 'forgotten'), [ids[0], ids[1], ids[2]].sort())
  for (const id of ids.slice(0, 3)) assert.deepEqual(fs.readFileSync(`${dir}/forgotten/${id}`), before[id])
  const listed = []
  for await (const s of repo.snapshots()) listed.push(s.id)
  assert.deepEqual(listed, [ids[3], ids[4]].sort(), 'readers ignore forgotten/')

  const back = await undoForget({ repo, snapshots: [ids[0]!.slice(0, 6)] })
  assert.equal(back.restored, 1)
  assert.deepEqual(ls(dir, 'snapshots'), [ids[0], ids[3], ids[4]].sort())
  assert.equal((await undoForget({ repo })).restored, 2)
  assert.deepEqual(ls(dir, 'forgotten'), [])
  for (const id of ids) assert.deepEqual(fs.readFileSync(`${dir}/snapshots/${id}`), before[id])
  await repo.close()
})

test('--group-by: host,paths (default), host, paths, tags, and one group for everything', async () => {
  const { repo, base, baseId } = await freshRepo()
  await repo.storage.delete(`snapshots/${baseId}`)
  // Two hosts x two path sets x (tagged / not), two days each.
  for (const host of ['a', 'b']) for (const paths of [['/x'], ['/y', '/x']]) for (const d of ['01', '02']) {
    await save(repo, base, `2025-05-${d}T10:00:00.000Z`, { host, paths, tags: paths.length === 1 ? ['t'] : [] })
  }
  const run = async (groupBy: string) => {
    const groups: ForgetGroup[] = []
    const r = await forget({ repo, policy: { last: 1 }, groupBy: parseGroupBy(groupBy), dryRun: true, onGroup: g => groups.push(g) })
    return { r, keys: groups.map(g => JSON.stringify(g.key)).sort() }
  }
  let x = await run('host,paths')
  assert.equal(x.r.groups, 4)
  assert.deepEqual(x.r, { groups: 4, kept: 4, removed: 4, failed: 0 })
  assert.ok(x.keys.includes(JSON.stringify({ host: 'b', paths: ['/x', '/y'], tags: null })), x.keys.join())
  x = await run('host')
  assert.deepEqual(x.keys, [{ host: 'a', paths: null, tags: null }, { host: 'b', paths: null, tags: null }].map(k => JSON.stringify(k)))
  assert.equal(x.r.kept, 2)
  x = await run('paths')
  assert.equal(x.r.groups, 2)
  x = await run('tags')
  assert.deepEqual(x.keys, [{ host: '', paths: null, tags: [] }, { host: '', paths: null, tags: ['t'] }].map(k => JSON.stringify(k)).sort())
  x = await run('host,paths,tags')
  assert.equal(x.r.groups, 4)
  x = await run('')
  assert.deepEqual(x.r, { groups: 1, kept: 1, removed: 7, failed: 0 })
  // dryRun changed nothing.
  let count = 0
  for await (const _ of repo.snapshots()) count++
  assert.equal(count, 8)
  await repo.close()
})

test('filters, keep-tag, keep-within, future snapshots; an empty policy and a group with nothing to keep are refused', async () => {
  const { dir, repo, base, baseId } = await freshRepo()
  await repo.storage.delete(`snapshots/${baseId}`)
  const old = await save(repo, base, '2025-01-01T00:00:00.000Z', { tags: ['keep'] })
  const mid = await save(repo, base, '2025-01-05T00:00:00.000Z')
  const newer = await save(repo, base, '2025-01-10T00:00:00.000Z')
  const future = await save(repo, base, '2999-01-01T00:00:00.000Z')
  const other = await save(repo, base, '2025-01-02T00:00:00.000Z', { host: 'other' })
  const all = ls(dir, 'snapshots')

  await assert.rejects(forget({ repo }), { code: 'ERR_ARGS', message: 'no policy was specified, no snapshots will be removed' })
  await assert.rejects(forget({ repo, policy: { last: 0 } }), { code: 'ERR_ARGS' })
  await assert.rejects(forget({ repo, unsafeAllowRemoveAll: true }), { code: 'ERR_ARGS', message: /snapshot filter/ })
  // A tag no snapshot has would remove whole groups: refused before anything changes (restic 0.17).
  await assert.rejects(forget({ repo, policy: { tags: [['typo']] } }), { code: 'ERR_ARGS', message: /refusing to delete last snapshot of snapshot group "host (mopped|other), path/ })
  assert.deepEqual(ls(dir, 'snapshots'), all)

  const kept = async (o: Parameters<typeof forget>[0]) => {
    const ids: string[] = []
    await forget({ ...o, dryRun: true, onGroup: g => ids.push(...g.keep.map(s => s.id)) })
    return ids.sort()
  }
  // --keep-within 5d from the newest past snapshot (01-10), not from now; the future one stays.
  assert.deepEqual(await kept({ repo, policy: { within: { years: 0, months: 0, days: 5, hours: 0 } }, filter: { hosts: ['mopped'] } }), [newer, future].sort())
  assert.deepEqual(await kept({ repo, policy: { within: { years: 0, months: 0, days: 6, hours: 0 } }, filter: { hosts: ['mopped'] } }), [mid, newer, future].sort())
  assert.deepEqual(await kept({ repo, policy: { tags: [['keep']] }, filter: { tags: [['keep']] } }), [old])
  // --keep-tag keeps the tagged one (and the future one, never removed); --keep-last 1 the future one.
  assert.deepEqual(await kept({ repo, policy: { tags: [['keep']], last: 1 }, filter: { hosts: ['mopped'] } }), [old, future].sort())
  // The filter limits what is touched: host "other" is not considered at all.
  const touched: string[] = []
  await forget({ repo, policy: { last: 1 }, filter: { hosts: ['mopped'] }, onGroup: g => touched.push(...g.keep.map(s => s.id), ...g.remove.map(s => s.id)) })
  assert.ok(!touched.includes(other))
  assert.deepEqual(ls(dir, 'snapshots'), [future, other].sort())
  assert.deepEqual(ls(dir, 'forgotten'), [old, mid, newer].sort())
  // --unsafe-allow-remove-all with a filter removes the whole filtered set.
  const r = await forget({ repo, unsafeAllowRemoveAll: true, filter: { hosts: ['other'] } })
  assert.equal(r.removed, 1)
  assert.deepEqual(ls(dir, 'snapshots'), [future])
  // Path filter: every given path must be among the snapshot's.
  await undoForget({ repo })
  assert.deepEqual(await kept({ repo, policy: { last: -1 }, filter: { paths: ['/home/user/work', '/nope'] } }), [])
  await repo.close()
})

test('CLI: forget by policy prints tables per group, --dry-run changes nothing, --undo round trip restores', async () => {
  const { dir, repo, base, baseId } = await freshRepo()
  const a = await save(repo, base, '2025-06-01T10:00:00.000Z')
  const b = await save(repo, base, '2025-06-02T10:00:00.000Z')
  const c = await save(repo, base, '2025-06-03T10:00:00.000Z', { host: 'other' })
  await repo.close()
  const sluice = cliFor(home, dir, PW)
  const all = ls(dir, 'snapshots')

  const dry = await sluice(['forget', '--keep-daily', '1', '--dry-run'])
  assert.equal(dry.code, 0, dry.stderr)
  assert.match(dry.stdout, /^Applying Policy: keep 1 daily snapshots$/m)
  assert.match(dry.stdout, /snapshots for \(host other, path \[\/home\/user\/work\]\):\nkeep 1 snapshots:\nID +Time +Host +Tags +Reasons +Paths/)
  assert.match(dry.stdout, /remove 1 snapshots:/)
  assert.match(dry.stdout, new RegExp(`${b.slice(0, 8)} .* daily snapshot +/home/user/work`))
  assert.match(dry.stdout, /would remove 1 snapshots/)
  assert.deepEqual(ls(dir, 'snapshots'), all)

  const json = await sluice(['forget', '--keep-daily', '1', '--dry-run', '--json'])
  assert.equal(json.code, 0, json.stderr)
  const groups = JSON.parse(json.stdout) as { host: string; paths: string[]; tags: null; keep: { id: string }[] | null; remove: { id: string; short_id: string }[] | null; reasons: { snapshot: { id: string }; matches: string[] }[] }[]
  const mopped = groups.find(g => g.host === 'mopped')!
  assert.deepEqual(Object.keys(mopped), ['tags', 'host', 'paths', 'keep', 'remove', 'reasons'])
  assert.equal(mopped.tags, null)
  assert.deepEqual(mopped.keep!.map(s => s.id), [b])
  assert.deepEqual(mopped.remove!.map(s => s.short_id), [a.slice(0, 8)])
  assert.deepEqual(mopped.reasons.map(r => [r.snapshot.id, r.matches]), [[b, ['daily snapshot']]])
  assert.equal(groups.find(g => g.host === 'other')!.remove, null)

  const real = await sluice(['forget', '--keep-daily', '1'])
  assert.equal(real.code, 0, real.stderr)
  assert.match(real.stdout, /removed 1 snapshots; `sluice forget --undo` brings them back/)
  assert.deepEqual(ls(dir, 'forgotten'), [a])
  const snaps = await sluice(['snapshots'])
  assert.ok(!snaps.stdout.includes(a.slice(0, 8)) && snaps.stdout.includes(b.slice(0, 8)) && snaps.stdout.includes(c.slice(0, 8)), snaps.stdout)
  // Restore of a forgotten snapshot fails; after --undo it is listed and restores.
  const gone = await sluice(['restore', a.slice(0, 8), '--target', `${BASE}/restore-gone`])
  assert.equal(gone.code, 1)
  assert.match(gone.stderr, /^sluice: ERR_SNAPSHOT_NOT_FOUND: /)
  const undo = await sluice(['forget', '--undo', a.slice(0, 8)])
  assert.equal(undo.code, 0, undo.stderr)
  assert.match(undo.stdout, new RegExp(`restored snapshot ${a.slice(0, 8)}`))
  assert.deepEqual(ls(dir, 'forgotten'), [])
  assert.ok((await sluice(['snapshots'])).stdout.includes(a.slice(0, 8)))
  const target = `${BASE}/restore-undone`
  const rs = await sluice(['restore', a.slice(0, 8), '--target', target])
  assert.equal(rs.code, 0, rs.stderr)
  assert.deepEqual(compareTrees(SRC, path.join(target, SRC)), [])
  assert.ok(all.includes(baseId))
})

test('CLI: explicit ids, one-line errors for an empty policy, a bad duration, an unknown id', async () => {
  const { dir, repo, base } = await freshRepo()
  const a = await save(repo, base, '2025-06-01T10:00:00.000Z')
  await repo.close()
  const sluice = cliFor(home, dir, PW)
  const oneLine = (r: { code: number | null; stderr: string }, code: string, msg?: RegExp) => {
    assert.equal(r.code, 1, r.stderr)
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
    assert.match(r.stderr, new RegExp(`^sluice: ${code}: `))
    if (msg) assert.match(r.stderr, msg)
  }
  oneLine(await sluice(['forget']), 'ERR_ARGS', /no policy was specified, no snapshots will be removed/)
  oneLine(await sluice(['forget', '--keep-within', '1w']), 'ERR_ARGS', /invalid unit "w"/)
  oneLine(await sluice(['forget', '--keep-last', '-1']), 'ERR_ARGS', /unlimited/)
  oneLine(await sluice(['forget', '--group-by', 'hostname', '--keep-last', '1']), 'ERR_ARGS')
  oneLine(await sluice(['forget', 'ffffffff']), 'ERR_SNAPSHOT_NOT_FOUND')
  oneLine(await sluice(['forget', '--undo', 'ffffffff']), 'ERR_SNAPSHOT_NOT_FOUND')
  const r = await sluice(['forget', a.slice(0, 8)])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, new RegExp(`removed snapshot ${a.slice(0, 8)}`))
  assert.deepEqual(ls(dir, 'forgotten'), [a])
})

test('a kill between writing forgotten/<id> and deleting snapshots/<id> leaves both; a rerun completes it', async () => {
  const { dir, repo, base, baseId } = await freshRepo()
  const a = await save(repo, base, '2025-06-01T10:00:00.000Z')
  await repo.close()
  const sluice = cliFor(home, dir, PW)
  // The hook SIGKILLs the process as it is about to delete a snapshot root: after the copy.
  const hook = killOnUnlinkHook(BASE, '/snapshots/')
  const killed = await sluice(['forget', a.slice(0, 8)], { nodeArgs: ['--import', hook] })
  assert.equal(killed.signal, 'SIGKILL', `${killed.code} ${killed.stderr}`)
  assert.deepEqual(ls(dir, 'forgotten'), [a])
  assert.ok(ls(dir, 'snapshots').includes(a), 'the root is still there')
  // Readers see the snapshot as it was (they ignore forgotten/).
  const snaps = await sluice(['snapshots', '--json'])
  assert.deepEqual((JSON.parse(snaps.stdout) as { id: string }[]).map(s => s.id).sort(), [a, baseId].sort())
  // The rerun completes the move.
  const again = await sluice(['forget', a.slice(0, 8)])
  assert.equal(again.code, 0, again.stderr)
  assert.deepEqual(ls(dir, 'snapshots'), [baseId])
  assert.deepEqual(ls(dir, 'forgotten'), [a])
  // Same for undo: killed after the root is back, before the forgotten copy goes.
  const hook2 = killOnUnlinkHook(`${BASE}/undo`, '/forgotten/')
  const killed2 = await sluice(['forget', '--undo'], { nodeArgs: ['--import', hook2] })
  assert.equal(killed2.signal, 'SIGKILL', `${killed2.code} ${killed2.stderr}`)
  assert.ok(ls(dir, 'snapshots').includes(a) && ls(dir, 'forgotten').includes(a))
  const undo = await sluice(['forget', '--undo'])
  assert.equal(undo.code, 0, undo.stderr)
  assert.deepEqual(ls(dir, 'snapshots'), [a, baseId].sort())
  assert.deepEqual(ls(dir, 'forgotten'), [])
  const repo2 = await openRepository(createLocalStorage(dir), PW)
  assert.equal((await repo2.loadSnapshot(a)).time, '2025-06-01T10:00:00.000Z')
  await repo2.close()
  assert.equal(forgottenKey(a), `forgotten/${a}`)
})

test('on S3 (s3rver): forget moves roots to forgotten/, snapshots and stats see the rest, --undo restores', async () => {
  const server = await startS3rver({ bucket: 'forget' })
  try {
    const storage = openS3Storage({ bucket: 'forget', prefix: 'r', endpoint: server.endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS })
    const repo = await initRepository(storage, PW, { kdf: { opslimit: 1, memlimit: 8192 } })
    const { snapshot: base, snapshotId: baseId } = await backup({ repo, paths: [SRC] })
    const a = await save(repo, base, '2025-06-01T10:00:00.000Z', { host: 'h', paths: [SRC] })
    const b = await save(repo, base, '2025-06-02T10:00:00.000Z', { host: 'h', paths: [SRC] })
    await repo.close()
    const sluice = cliFor(home, `s3:${server.endpoint}/forget/r`, PW)
    const env = { AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1', AWS_EC2_METADATA_DISABLED: 'true' }
    const f = await sluice(['forget', '--keep-last', '1', '--host', 'h'], { env })
    assert.equal(f.code, 0, f.stderr)
    const keys = async (prefix: string) => {
      const st = openS3Storage({ bucket: 'forget', prefix: 'r', endpoint: server.endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS })
      const l: string[] = []
      for await (const k of st.list(prefix)) l.push(k.slice(prefix.length))
      await st.close()
      return l
    }
    assert.deepEqual(await keys('forgotten/'), [a])
    assert.deepEqual(await keys('snapshots/'), [baseId, b].sort())
    const st = await sluice(['stats', '--json'], { env })
    assert.equal((JSON.parse(st.stdout) as { snapshots_count: number }).snapshots_count, 2)
    const u = await sluice(['forget', '--undo'], { env })
    assert.equal(u.code, 0, u.stderr)
    assert.deepEqual(await keys('forgotten/'), [])
    const target = `${BASE}/restore-s3`
    const rs = await sluice(['restore', a.slice(0, 8), '--target', target], { env })
    assert.equal(rs.code, 0, rs.stderr)
    assert.deepEqual(compareTrees(SRC, path.join(target, SRC)), [])
  } finally {
    await server.stop()
  }
})

test('damaged and crafted roots: forget and undo validate before they write, and change nothing', async () => {
  const { dir, repo, base, baseId } = await freshRepo()
  const a = await save(repo, base, '2025-06-01T10:00:00.000Z')
  const b = await save(repo, base, '2025-06-02T10:00:00.000Z')
  const all = ls(dir, 'snapshots')
  // A root whose time is not a date (sealed with the right key: only the content is wrong).
  const badTime = await repo.saveSnapshot({ ...base, time: 'yesterday', host: 'crafted' })
  await assert.rejects(forget({ repo, policy: { last: 1 } }), { code: 'ERR_CORRUPT', message: new RegExp(`snapshot ${badTime.slice(0, 8)} has no valid time`) })
  await repo.storage.delete(`snapshots/${badTime}`)
  // A truncated root: the whole run stops before anything moves.
  const saved = fs.readFileSync(`${dir}/snapshots/${a}`)
  fs.writeFileSync(`${dir}/snapshots/${a}`, saved.subarray(0, 20))
  await assert.rejects(forget({ repo, policy: { last: 1 } }), { code: 'ERR_CORRUPT' })
  assert.deepEqual(ls(dir, 'snapshots'), all)
  assert.deepEqual(ls(dir, 'forgotten'), [])
  fs.writeFileSync(`${dir}/snapshots/${a}`, saved)
  // A damaged copy already in forgotten/ (cannot be replaced: put-if-absent): the root stays,
  // the others go on, and the failure is counted (the CLI exits 3).
  fs.mkdirSync(`${dir}/forgotten`, { recursive: true })
  fs.writeFileSync(`${dir}/forgotten/${a}`, Buffer.from('not a root'))
  const warnings: string[] = []
  const r = await forget({ repo, snapshots: [a, b], onWarning: e => warnings.push(`${e.code}: ${e.message}`) })
  assert.deepEqual(r, { groups: 0, kept: 0, removed: 1, failed: 1 })
  assert.match(warnings[0]!, new RegExp(`^ERR_CORRUPT: snapshot ${a.slice(0, 8)} was not removed`))
  assert.ok(ls(dir, 'snapshots').includes(a) && !ls(dir, 'snapshots').includes(b))
  const cli = await cliFor(home, dir, PW)(['forget', a.slice(0, 8)])
  assert.equal(cli.code, 3, cli.stderr)
  assert.match(cli.stderr, new RegExp(`^sluice: warning: ERR_CORRUPT: snapshot ${a.slice(0, 8)} was not removed: `))
  assert.equal(cli.stderr.trim().split('\n').length, 1, cli.stderr)
  // Undo refuses the damaged copy and a root copied under another id (authenticated against its
  // id), writing nothing to snapshots/.
  await assert.rejects(undoForget({ repo, snapshots: [a] }), { code: 'ERR_CORRUPT' })
  fs.rmSync(`${dir}/forgotten/${a}`)
  const other = 'ab'.repeat(32)
  fs.copyFileSync(`${dir}/forgotten/${b}`, `${dir}/forgotten/${other}`)
  await assert.rejects(undoForget({ repo, snapshots: [other] }), { code: 'ERR_CORRUPT' })
  assert.ok(!ls(dir, 'snapshots').includes(other))
  assert.equal((await undoForget({ repo, snapshots: [b] })).restored, 1)
  assert.deepEqual(ls(dir, 'snapshots'), [a, b, baseId].sort())
  await repo.close()
})

test('undo proves the snapshot whole: a fossil is moved back, a chunk a sweep deleted takes the root away again', async () => {
  const { repo, base, baseId } = await freshRepo()
  const ids: Buffer[] = []
  for await (const id of snapshotIds(repo, treeOf(base))) ids.push(id)
  const content = ids.at(-1)!
  // Moved aside by a collection: the undo moves it back into chunks/ and succeeds.
  await forget({ repo, snapshots: [baseId] })
  assert.equal(await moveObject(repo.storage, chunkKey(content), fossilKey(content)), true)
  assert.deepEqual(await undoForget({ repo, snapshots: [baseId] }), { restored: 1 })
  assert.equal(await repo.storage.has(chunkKey(content)), true)
  assert.equal(await repo.storage.has(fossilKey(content)), false)
  // Deleted by a sweep that listed snapshots/ before the undo: the root goes back to forgotten only.
  await forget({ repo, snapshots: [baseId] })
  await repo.storage.delete(chunkKey(content))
  await assert.rejects(undoForget({ repo, snapshots: [baseId] }), { code: 'ERR_MISSING', message: new RegExp(`snapshot ${baseId.slice(0, 8)} cannot be brought back`) })
  assert.equal(await repo.storage.has(`snapshots/${baseId}`), false)
  assert.equal(await repo.storage.has(forgottenKey(baseId)), true)
})

test('CLI: forget --prune runs prune after removing snapshots and prints its summary', async () => {
  const { dir, repo, base } = await freshRepo()
  const a = await save(repo, base, '2025-06-01T10:00:00.000Z')
  await save(repo, base, '2025-06-02T10:00:00.000Z')
  const r = await cliFor(home, dir, PW)(['forget', a.slice(0, 8), '--prune'])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /removed snapshot/)
  assert.match(r.stdout, /collection \d+: \d+ snapshots reference \d+ of \d+ stored chunks/)
  assert.ok(fs.existsSync(`${dir}/gc`), 'prune recorded its collection')
  // prune's progress, as `sluice prune` shows it: on a log (stderr not a terminal) its last state.
  assert.match(r.stderr, /\] (mark|collect|sweep)/, r.stderr)
})
