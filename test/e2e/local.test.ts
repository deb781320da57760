/**
 * End to end on a local repository: a hostile tree backed up and restored must come back the
 * same to the nanosecond; subtrees, include and exclude restore what they name; a hostile
 * snapshot cannot write outside the target; tampered and missing chunks are found by `check`
 * and a restore leaves out the files that need them, with a warning naming each; a failed backup leaves no snapshot.
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { Readable } from 'node:stream'
import {
  backup, restore, check, listSnapshot, createWalk, createLocalStorage, initRepository, openRepository, hex,
  SluiceError, type Repository, type SourceEntry, type EntryMeta, type BackupResult,
} from '../../index.js'
import { buildHostileTree, compareTrees, listTree, seededBytes, NAMES, isRoot } from '../helpers/tree.js'
import { cliFor } from '../helpers/cli.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('e2e-task')}/local`
const PW = 'correct horse'
const FAST_KDF = { opslimit: 1, memlimit: 8192 }
const TREE = `${BASE}/src/tree`
const TREE_REL = TREE.slice(1) // its path inside the snapshot
const B = (s: string | Buffer): Buffer => (typeof s === 'string' ? Buffer.from(s) : s)

let repo: Repository
let first: BackupResult
const home = `${BASE}/home`
const cli = () => cliFor(home, `${BASE}/repo`, PW)

async function newRepo(dir: string): Promise<Repository> {
  return initRepository(createLocalStorage(dir), PW, { kdf: FAST_KDF })
}

async function snapshotCount(r: Repository): Promise<number> {
  let n = 0
  for await (const _ of r.storage.list('snapshots/')) n++
  return n
}

async function rejectsWith(p: Promise<unknown>, code: string, what: RegExp | string = /./): Promise<SluiceError> {
  let caught: unknown
  try {
    await p
  } catch (err) {
    caught = err
  }
  assert.ok(caught instanceof SluiceError, `expected a SluiceError ${code}, got ${caught === undefined ? 'success' : String(caught)}`)
  assert.equal(caught.code, code, caught.message)
  assert.match(caught.message, typeof what === 'string' ? new RegExp(what.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : what)
  return caught
}

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(`${BASE}/src`, { recursive: true })
  fs.mkdirSync(home, { recursive: true })
  buildHostileTree(TREE)
  repo = await newRepo(`${BASE}/repo`)
  const warnings: SluiceError[] = []
  first = await backup({ repo, paths: [TREE], onWarning: (e) => warnings.push(e) })
  assert.deepEqual(warnings.map((w) => w.message), [])
})

test('backup then restore of the hostile tree gives the same tree, to the nanosecond', async () => {
  const target = `${BASE}/restore-all`
  const warnings: SluiceError[] = []
  await restore({ repo, snapshot: first.snapshotId, target, onWarning: (e) => warnings.push(e) })
  assert.deepEqual(warnings.map((w) => w.message), [])
  assert.deepEqual(compareTrees(TREE, `${target}/${TREE_REL}`, { root: true }), [])
  // The comparer is not blind: a changed mtime and a broken hardlink are reported.
  const copy = `${target}/${TREE_REL}`
  fs.utimesSync(`${copy}/files/empty`, 1, 1)
  fs.rmSync(`${copy}/hard/sub/two`)
  fs.writeFileSync(`${copy}/hard/sub/two`, seededBytes('hard', 70_000))
  const diffs = compareTrees(TREE, copy)
  assert.ok(diffs.some((d) => d.startsWith('files/empty: mtimeNs')), diffs.join('\n'))
  assert.ok(diffs.some((d) => d.startsWith('hard/sub/two: hardlink group')), diffs.join('\n'))
  if (isRoot) assert.ok(fs.lstatSync(`${copy}/owned/link`).uid === 1234)
})

test('restore SNAP:PATH of a subdirectory puts its content in the target', async () => {
  const target = `${BASE}/restore-sub`
  await restore({ repo, snapshot: `${first.snapshotId.slice(0, 8)}:/${TREE_REL}/nested/`, target, onWarning: (e) => assert.fail(e.message) })
  // nested/three is a later link of a group whose first link (hard/one) lies outside the subtree:
  // it must still get its content.
  assert.deepEqual(compareTrees(`${TREE}/nested`, target), [])
  assert.equal(fs.readFileSync(`${target}/three`).equals(seededBytes('hard', 70_000)), true)

  const one = `${BASE}/restore-one-file`
  await restore({ repo, snapshot: `latest:${TREE_REL}/names/${NAMES.shell.toString()}`, target: one, onWarning: (e) => assert.fail(e.message) })
  assert.deepEqual(fs.readdirSync(one, { encoding: 'buffer' }), [NAMES.shell])
  await rejectsWith(restore({ repo, snapshot: `latest:${TREE_REL}/no-such`, target: `${BASE}/restore-none`, onWarning: () => {} }), 'ERR_PATH_NOT_FOUND')
})

test('restore --include and --exclude pick what they name', async () => {
  const inc = `${BASE}/restore-include`
  await restore({ repo, snapshot: 'latest', target: inc, include: [`/${TREE_REL}/files`, `/${TREE_REL}/nested/three`], onWarning: (e) => assert.fail(e.message) })
  const got = listTree(`${inc}/${TREE_REL}`).map((p) => p.toString()).sort()
  assert.deepEqual(got, ['files', 'files/big', 'files/empty', 'files/small', 'files/small-copy', 'files/sparse', 'nested', 'nested/three'])
  // The included later link gets its content although its first link was left out.
  assert.equal(fs.readFileSync(`${inc}/${TREE_REL}/nested/three`).equals(seededBytes('hard', 70_000)), true)
  assert.deepEqual(compareTrees(`${TREE}/files`, `${inc}/${TREE_REL}/files`), [])

  const exc = `${BASE}/restore-exclude`
  await restore({ repo, snapshot: 'latest', target: exc, exclude: ['files/big', '/' + TREE_REL + '/deep', 'names'], onWarning: (e) => assert.fail(e.message) })
  const diffs = compareTrees(TREE, `${exc}/${TREE_REL}`)
  const missing = diffs.filter((d) => d.endsWith('missing in second tree')).map((d) => d.split(':')[0]!.split('/')[0])
  assert.deepEqual([...new Set(missing)].sort(), ['deep', 'files', 'names'])
  assert.deepEqual(diffs.filter((d) => !d.endsWith('missing in second tree')), [])
  assert.ok(diffs.includes('files/big: missing in second tree'))
  assert.ok(fs.existsSync(`${exc}/${TREE_REL}/files/small`))
})

test('ls prints one line per entry, with non-UTF-8 and newline names escaped', async () => {
  const r = await cli()(['ls', `latest:${TREE_REL}/names`])
  assert.equal(r.code, 0, r.stderr)
  const lines = r.stdout.split('\n').slice(0, -1)
  let records = 0
  for await (const _ of listSnapshot(repo, first.snapshot, B(`${TREE_REL}/names`))) records++
  assert.equal(lines.length, records)
  assert.ok(!r.stdoutBytes.includes(0xff), 'a raw 0xff byte reached stdout')
  const prefix = `/${TREE_REL}/names/`
  assert.ok(lines.includes(`${prefix}n-\\xff\\xfe`), r.stdout)
  assert.ok(lines.includes(`${prefix}dir-n-\\xff\\xfe/inner`), r.stdout)
  assert.ok(lines.includes(`${prefix}new\\x0aline`), r.stdout)
  assert.ok(lines.includes(`${prefix}${NAMES.long255.toString()}`))
})

/** An entry of a hand-made source, with defaults for what does not matter. */
function entry(p: string | Buffer, type: EntryMeta['type'], extra: Partial<SourceEntry> = {}): SourceEntry {
  const e: SourceEntry = {
    kind: 'entry', path: B(p), type, mode: type === 'dir' ? 0o755 : 0o644, uid: 0, gid: 0, size: 0,
    mtimeSec: 1_700_000_000, mtimeNsec: 0, ctimeSec: 1_700_000_000, ctimeNsec: 0, ino: 0, dev: 0, nlink: 1, ...extra,
  }
  return e
}

function file(p: string | Buffer, content: string, extra: Partial<SourceEntry> = {}): SourceEntry {
  const data = B(content)
  return entry(p, 'file', { size: data.length, content: async function* () { yield data }, ...extra })
}

test('a hostile snapshot cannot write outside the restore target', async () => {
  const dir = `${BASE}/hostile`
  const sentinel = `${dir}/sentinel`
  fs.mkdirSync(sentinel, { recursive: true })
  fs.writeFileSync(`${sentinel}/victim`, 'untouched')
  const r = await newRepo(`${dir}/repo`)
  const cases: { name: string; entries: SourceEntry[]; code?: string }[] = [
    { name: '../ escape', entries: [entry('ok', 'dir'), file('ok/a', 'a'), file('../sentinel/escaped', 'pwned')], code: 'ERR_UNSAFE_PATH' },
    { name: '.. inside a path', entries: [entry('a', 'dir'), file('a/../../sentinel/escaped', 'pwned')], code: 'ERR_UNSAFE_PATH' },
    { name: 'absolute path', entries: [file(`${sentinel}/escaped`, 'pwned')], code: 'ERR_UNSAFE_PATH' },
    { name: 'file beneath an absolute symlink', entries: [entry('link', 'symlink', { linkTarget: B(sentinel) }), file('link/escaped', 'pwned')], code: 'ERR_UNSAFE_PATH' },
    { name: 'file beneath a relative symlink', entries: [entry('link', 'symlink', { linkTarget: B('../sentinel') }), file('link/victim', 'pwned')], code: 'ERR_UNSAFE_PATH' },
    {
      name: 'directory replaced by a symlink, then a file beneath it',
      entries: [entry('d', 'dir'), entry('d', 'symlink', { linkTarget: B(sentinel) }), file('d/escaped', 'pwned')],
      code: 'ERR_WRITE',
    },
    {
      name: 'hardlink to a file through a symlink',
      entries: [entry('s', 'symlink', { linkTarget: B(sentinel) }), file('h', '', { hardlinkTo: B('s/victim'), nlink: 2 })],
      code: 'ERR_UNSAFE_PATH',
    },
    { name: 'hardlink to ../', entries: [file('h', '', { hardlinkTo: B('../sentinel/victim'), nlink: 2 })], code: 'ERR_UNSAFE_PATH' },
  ]
  for (const c of cases) {
    const { snapshotId } = await backup({ repo: r, source: Readable.from(c.entries), sourcePaths: ['/hostile'] })
    const target = `${dir}/target-${c.name.replace(/\W+/g, '-')}`
    let caught: unknown
    try {
      await restore({ repo: r, snapshot: snapshotId, target, onWarning: () => {} })
    } catch (err) {
      caught = err
    }
    assert.ok(caught instanceof Error, `${c.name}: restore succeeded`)
    if (c.code) assert.equal((caught as SluiceError).code, c.code, `${c.name}: ${(caught as Error).message}`)
    assert.deepEqual(listTree(sentinel).map(String), ['victim'], `${c.name}: something was written into the sentinel`)
    assert.equal(fs.readFileSync(`${sentinel}/victim`, 'utf8'), 'untouched', c.name)
    assert.equal(fs.lstatSync(`${sentinel}/victim`).nlink, 1, `${c.name}: the victim got a hardlink`)
  }
  assert.deepEqual(fs.readdirSync(dir).filter((n) => !n.startsWith('target-')).sort(), ['repo', 'sentinel'])
})

test('check passes on a good repository', async () => {
  const r = await cli()(['check', '--read-data'])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /no problems/)
  const res = await check({ repo, readData: true, onProblem: (m) => assert.fail(m) })
  assert.equal(res.problems, 0)
  assert.ok(res.chunks > 2)
})

/** A copy of the repository and the id of the first (or last) chunk of `file` (relative to the tree). */
async function copyWithChunkOf(name: string, file: string, which: 'first' | 'last' = 'first'): Promise<{ dir: string; id: string; obj: string; repo: Repository }> {
  const dir = `${BASE}/${name}`
  fs.cpSync(`${BASE}/repo`, dir, { recursive: true })
  let id = ''
  for await (const rec of listSnapshot(repo, first.snapshot)) {
    if (rec.entry.path.equals(B(`${TREE_REL}/${file}`))) id = hex(rec.extents[which === 'first' ? 0 : rec.extents.length - 1]!.id)
  }
  assert.ok(id, `no extents for ${file}`)
  return { dir, id, obj: `${dir}/chunks/${id.slice(0, 2)}/${id}`, repo: await openRepository(createLocalStorage(dir), PW) }
}

test('a tampered chunk: check --read-data names it, restore leaves out its file with an ERR_CORRUPT warning', async () => {
  const { dir, id, obj, repo: bad } = await copyWithChunkOf('repo-tampered', 'files/big')
  fs.chmodSync(obj, 0o644)
  const bytes = fs.readFileSync(obj)
  bytes[bytes.length >> 1]! ^= 0x01
  fs.writeFileSync(obj, bytes)
  const r = await cliFor(home, dir, PW)(['check', '--read-data'])
  assert.equal(r.code, 1, r.stdout + r.stderr)
  assert.ok(r.stderr.includes(id), r.stderr)
  assert.match(r.stderr, /ERR_CHECK/)
  const target = `${BASE}/restore-tampered`
  const warnings: SluiceError[] = []
  const res = await restore({ repo: bad, snapshot: 'latest', target, onWarning: (e) => warnings.push(e) })
  assert.equal(res.warnings, warnings.length)
  // One warning per file that needs the chunk (the tree has another file with big's content),
  // each naming the chunk; those files are absent, everything else came back.
  const lost = damagedPaths(warnings, 'ERR_CORRUPT', id)
  assert.ok(lost.includes('files/big'), lost.join('\n'))
  for (const p of lost) assert.equal(fs.existsSync(`${target}/${TREE_REL}/${p}`), false, p)
  assert.deepEqual(compareTrees(TREE, `${target}/${TREE_REL}`).filter((d) => !lost.includes(d.split(':')[0]!)), [])
})

/** The tree-relative paths the warnings name (each must have `code` and name chunk `id`). */
function damagedPaths(warnings: SluiceError[], code: string, id: string): string[] {
  return warnings.map((w) => {
    assert.equal(w.code, code, w.message)
    assert.ok(w.message.includes(id), w.message)
    assert.ok(w.path, w.message)
    return w.path.toString().slice(TREE_REL.length + 1)
  })
}

// A large file's last chunk fails to open while its first ones may be being written (on the
// thread pool): the file is removed, the rest restored, one warning line, exit 3.
test('a tampered last chunk of a large file: the CLI restore warns once, leaves the file out, exits 3', async () => {
  const { dir, id, obj } = await copyWithChunkOf('repo-tampered-last', 'files/big', 'last')
  fs.chmodSync(obj, 0o644)
  const bytes = fs.readFileSync(obj)
  bytes[bytes.length - 20]! ^= 0x01
  fs.writeFileSync(obj, bytes)
  const target = `${BASE}/restore-tampered-last`
  const r = await cliFor(home, dir, PW)(['restore', 'latest', '--target', target])
  assert.equal(r.code, 3, r.stdout + r.stderr)
  const lines = r.stderr.split('\n').filter(l => l.length > 0)
  assert.ok(lines.length >= 1)
  for (const l of lines) assert.match(l, new RegExp(`^sluice: warning: ERR_CORRUPT: ${TREE_REL}/.*: chunk ${id} .*; the file is not restored$`))
  assert.ok(lines.some((l) => l.includes('files/big:')), r.stderr)
  const lost = lines.map((l) => l.slice(l.indexOf(TREE_REL) + TREE_REL.length + 1, l.indexOf(': chunk ')))
  for (const p of lost) assert.equal(fs.existsSync(`${target}/${TREE_REL}/${p}`), false, `${p}: the damaged file is not presented as complete`)
  assert.deepEqual(compareTrees(TREE, `${target}/${TREE_REL}`).filter((d) => !lost.includes(d.split(':')[0]!)), [])
  // cat and restore --tar cannot leave it out: they stop with the error, exit 1.
  const cat = await cliFor(home, dir, PW)(['cat', 'latest', `/${TREE_REL}/files/big`])
  assert.equal(cat.code, 1)
  assert.match(cat.stderr, new RegExp(`^sluice: ERR_CORRUPT: big: chunk ${id} failed authentication\n$`))
  assert.ok(cat.stdoutBytes.length < fs.statSync(`${TREE}/files/big`).size)
  const tar = await cliFor(home, dir, PW)(['restore', 'latest', '--tar', '-q'])
  assert.equal(tar.code, 1)
  assert.match(tar.stderr, new RegExp(`^sluice: ERR_CORRUPT: ${TREE_REL}/.*: chunk ${id} failed authentication\n$`))
})

test('a deleted chunk: check names it, restore leaves out the files that need it with ERR_MISSING', async () => {
  const { dir, id, obj, repo: bad } = await copyWithChunkOf('repo-deleted', 'hard/one')
  fs.rmSync(obj)
  const r = await cliFor(home, dir, PW)(['check'])
  assert.equal(r.code, 1, r.stdout + r.stderr)
  assert.ok(r.stderr.includes(id), r.stderr)
  const warnings: SluiceError[] = []
  await restore({ repo: bad, snapshot: 'latest', target: `${BASE}/restore-deleted`, onWarning: (e) => warnings.push(e) })
  const missing = warnings.filter((w) => w.code === 'ERR_MISSING')
  assert.ok(missing.length >= 1 && missing.every((w) => w.message.includes(id)), warnings.map((w) => w.message).join('\n'))
  assert.equal(fs.existsSync(`${BASE}/restore-deleted/${TREE_REL}/hard/one`), false)
})

test('a failed backup writes no snapshot', async () => {
  const r = await newRepo(`${BASE}/repo-failed`)
  const boom = new SluiceError('ERR_TAR', 'source broke')
  async function* source() {
    yield entry('a', 'dir')
    yield file('a/x', 'x'.repeat(100_000))
    yield file('a/y', 'y')
    throw boom
  }
  await rejectsWith(backup({ repo: r, source: Readable.from(source()), sourcePaths: ['/x'] }), 'ERR_TAR')
  await rejectsWith(backup({ repo: r, paths: [`${BASE}/no/such/path`] }), 'ERR_PATH_NOT_FOUND')
  assert.equal(await snapshotCount(r), 0)
  // The repository is still usable afterwards.
  await backup({ repo: r, source: Readable.from([entry('a', 'dir')]), sourcePaths: ['/x'] })
  assert.equal(await snapshotCount(r), 1)
})

test('a file that vanishes between walk and read is left out with a warning; the rest is kept (API)', async () => {
  // Through the API the vanishing is deterministic: the walk calls `descend` for an entry after
  // its lstat and before anyone opens it, so deleting the file there is exactly that race.
  const src = `${BASE}/vanish`
  fs.mkdirSync(`${src}/late`, { recursive: true })
  fs.writeFileSync(`${src}/early`, 'early')
  fs.writeFileSync(`${src}/late/victim`, 'gone soon')
  fs.writeFileSync(`${src}/late/z-after`, 'after')
  const r = await newRepo(`${BASE}/repo-vanish`)
  const warnings: SluiceError[] = []
  const walk = createWalk([src], {
    onWarning: (e) => warnings.push(e),
    descend: (e) => {
      if (e.path.toString().endsWith('/late/victim')) fs.rmSync(e.fsPath!)
      return true
    },
  })
  const res = await backup({ repo: r, source: walk, sourcePaths: [src], onWarning: (e) => warnings.push(e) })
  // Every warning is about the victim (xattr-read may report it too), one says it could not be opened.
  assert.ok(warnings.length >= 1)
  for (const w of warnings) {
    assert.equal(w.code, 'ERR_READ')
    assert.match(w.message, /late\/victim/)
  }
  assert.ok(warnings.some((w) => /cannot open/.test(w.message)), warnings.map((w) => w.message).join('\n'))
  assert.equal(res.stats.warnings, warnings.length)
  const paths: string[] = []
  for await (const rec of listSnapshot(r, res.snapshot)) paths.push(rec.entry.path.toString())
  const rel = src.slice(1)
  assert.ok(paths.includes(`${rel}/early`) && paths.includes(`${rel}/late/z-after`), paths.join('\n'))
  assert.ok(!paths.includes(`${rel}/late/victim`))
  const target = `${BASE}/restore-vanish`
  await restore({ repo: r, snapshot: res.snapshotId, target, onWarning: (e) => assert.fail(e.message) })
  assert.equal(fs.readFileSync(`${target}/${rel}/late/z-after`, 'utf8'), 'after')
})

