import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { execFileSync, spawnSync } from 'node:child_process'
import { createWalk, type WalkOptions, type WalkStats } from '../../transforms/backup/sources/walk.js'
import { comparePaths } from '../../lib/bytes.js'
import type { SourceEntry } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { READ_BLOCK } from '../../lib/limits.js'
import { lstatNumbers } from '../../lib/native.js'
import { scratch } from '../helpers/scratch.js'

const TOP = scratch('walk-task')
const BASE = `${TOP}/t`
/** The snapshot paths of BASE's ancestors and BASE itself (tmp, tmp/sluice-walk-task-XXXXXX, …/t). */
const ABOVE = BASE.slice(1).split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'))
const B = (s: string | Buffer): Buffer => (typeof s === 'string' ? Buffer.from(s) : s)
const cat = (...parts: (string | Buffer)[]): Buffer => Buffer.concat(parts.map(B))

async function walk(paths: (string | Buffer)[], opts: Partial<WalkOptions> = {}) {
  const warnings: SluiceError[] = []
  const entries: SourceEntry[] = []
  const w = createWalk(paths.map(B), { onWarning: (e) => warnings.push(e), ...opts })
  for await (const e of w) entries.push(e)
  return { entries, warnings }
}

/** Paths relative to `root` (a directory under BASE), for readable assertions. */
function rel(entries: SourceEntry[], root: string): Buffer[] {
  const prefix = B(root.slice(1) + '/')
  return entries.filter((e) => e.path.subarray(0, prefix.length).equals(prefix)).map((e) => e.path.subarray(prefix.length))
}

function find(entries: SourceEntry[], fsPath: string | Buffer): SourceEntry {
  const p = B(fsPath).subarray(1)
  const e = entries.find((x) => x.path.equals(p))
  assert.ok(e, `no entry for ${B(fsPath).toString()}`)
  return e
}

function assertCanonical(entries: SourceEntry[]): void {
  for (let i = 1; i < entries.length; i++) {
    assert.ok(comparePaths(entries[i - 1]!.path, entries[i]!.path) < 0, `order broken at ${entries[i]!.path.toString()}`)
  }
}

async function readAll(e: SourceEntry): Promise<Buffer> {
  const parts: Buffer[] = []
  for await (const p of e.content!()) parts.push(Buffer.from(p))
  return Buffer.concat(parts)
}

function mkdirp(p: string | Buffer): void {
  fs.mkdirSync(p, { recursive: true })
}

before(() => {
  fs.rmSync(BASE, { recursive: true, force: true })
  mkdirp(BASE)
})

test('entries come in canonical order: a directory before its children, siblings by raw bytes', async () => {
  const root = `${BASE}/order`
  mkdirp(`${root}/a/b`)
  for (const f of ['a-b', 'a.c', 'a0', 'B', 'a/b/z', 'a/c', 'ab']) fs.writeFileSync(`${root}/${f}`, f)
  fs.writeFileSync(cat(root, '/', Buffer.from([0x66, 0xff])), 'latin1')
  fs.writeFileSync(cat(root, '/', Buffer.from([0x66])), 'f')
  const { entries, warnings } = await walk([root])
  assert.deepEqual(warnings, [])
  assertCanonical(entries)
  assert.deepEqual(
    rel(entries, root).map((p) => p.toString('latin1')),
    ['B', 'a', 'a/b', 'a/b/z', 'a/c', 'a-b', 'a.c', 'a0', 'ab', 'f', 'f\xff'],
  )
})

test('the snapshot path is the absolute path without its leading slash, ancestors first', async () => {
  const root = `${BASE}/abs`
  mkdirp(`${root}/d`)
  const { entries } = await walk([root])
  const paths = entries.map((e) => e.path.toString())
  assert.deepEqual(paths, [...ABOVE, `${BASE.slice(1)}/abs`, `${BASE.slice(1)}/abs/d`])
  assert.ok(entries.every((e) => e.fsPath!.equals(cat('/', e.path))))
  // Ancestors carry their real metadata.
  const st = fs.lstatSync(TOP)
  assert.equal(entries[1]!.ino, st.ino)
  assert.equal(entries[1]!.type, 'dir')
})

test('a relative backup path is read from the working directory and stored as given, cleaned (restic 0.14)', async () => {
  const root = `${BASE}/relative`
  mkdirp(`${root}/x`)
  const cwd = process.cwd()
  process.chdir(root)
  try {
    const { entries } = await walk(['./x/../x'])
    assert.deepEqual(entries.map((e) => e.path.toString()), ['x'])
    assert.equal(entries[0]!.fsPath!.toString(), `${root}/x`)
  } finally {
    process.chdir(cwd)
  }
})

test('odd names come through as raw bytes: not UTF-8, a newline, 255 bytes, over 1000 bytes deep', async () => {
  const root = `${BASE}/names`
  mkdirp(root)
  const latin = Buffer.from([0x66, 0xff])
  const newline = Buffer.from('line\nbreak')
  const long = Buffer.alloc(255, 0x6c)
  fs.writeFileSync(cat(root, '/', latin), 'x')
  fs.writeFileSync(cat(root, '/', newline), 'y')
  fs.writeFileSync(cat(root, '/', long), 'z')
  let deep = B(root)
  const seg = Buffer.alloc(100, 0x64)
  for (let i = 0; i < 11; i++) deep = cat(deep, '/', seg)
  mkdirp(deep)
  fs.writeFileSync(cat(deep, '/leaf'), 'deep')

  const { entries, warnings } = await walk([root])
  assert.deepEqual(warnings, [])
  assertCanonical(entries)
  assert.equal(await readAll(find(entries, cat(root, '/', latin))).then(String), 'x')
  assert.equal(await readAll(find(entries, cat(root, '/', newline))).then(String), 'y')
  assert.equal(await readAll(find(entries, cat(root, '/', long))).then(String), 'z')
  const leaf = find(entries, cat(deep, '/leaf'))
  assert.ok(leaf.path.length > 1000)
  assert.equal(await readAll(leaf).then(String), 'deep')
})

test('symlinks are recorded, never followed: to a directory, dangling, looping', async () => {
  const root = `${BASE}/links`
  mkdirp(`${root}/real/inside`)
  fs.symlinkSync('real', `${root}/todir`)
  fs.symlinkSync('nowhere', `${root}/dangling`)
  fs.symlinkSync('loop2', `${root}/loop1`)
  fs.symlinkSync('loop1', `${root}/loop2`)
  fs.symlinkSync(Buffer.from([0x74, 0xfe]), `${root}/rawtarget`)
  const { entries, warnings } = await walk([root])
  assert.deepEqual(warnings, [])
  assert.deepEqual(rel(entries, root).map(String), ['dangling', 'loop1', 'loop2', 'rawtarget', 'real', 'real/inside', 'todir'])
  const todir = find(entries, `${root}/todir`)
  assert.equal(todir.type, 'symlink')
  assert.deepEqual(todir.linkTarget, B('real'))
  assert.equal(todir.content, undefined)
  assert.deepEqual(find(entries, `${root}/dangling`).linkTarget, B('nowhere'))
  assert.deepEqual(find(entries, `${root}/loop1`).linkTarget, B('loop2'))
  assert.deepEqual(find(entries, `${root}/rawtarget`).linkTarget, Buffer.from([0x74, 0xfe]))
})

test('a backup path that is a symlink is recorded as the symlink', async () => {
  const root = `${BASE}/rootlink`
  mkdirp(`${root}/target/child`)
  fs.symlinkSync('target', `${root}/ln`)
  const { entries } = await walk([`${root}/ln`])
  const last = entries[entries.length - 1]!
  assert.equal(last.type, 'symlink')
  assert.equal(last.path.toString(), `${root.slice(1)}/ln`)
})

test('hardlinks: later links point at the first and carry no content; the map empties', async () => {
  const root = `${BASE}/hard`
  mkdirp(`${root}/d`)
  fs.writeFileSync(`${root}/h1`, 'shared')
  fs.linkSync(`${root}/h1`, `${root}/d/h2`)
  fs.linkSync(`${root}/h1`, `${root}/h3`)
  fs.writeFileSync(`${root}/single`, 'one')
  const stats: WalkStats = { warnings: 0, pendingHardlinks: 0 }
  const { entries } = await walk([root], { stats })
  const h1 = find(entries, `${root}/h1`)
  const h2 = find(entries, `${root}/d/h2`)
  const h3 = find(entries, `${root}/h3`)
  // d/h2 sorts before h1 ('d' < 'h'), so it is the first link.
  assert.equal(h2.hardlinkTo, undefined)
  assert.equal(await readAll(h2).then(String), 'shared')
  for (const later of [h1, h3]) {
    assert.deepEqual(later.hardlinkTo, h2.path)
    assert.equal(later.content, undefined)
    assert.equal(later.type, 'file')
    assert.equal(later.nlink, 3)
  }
  assert.equal(find(entries, `${root}/single`).hardlinkTo, undefined)
  assert.equal(stats.pendingHardlinks, 0)

  // A link outside the backup path keeps its inode pending until the end, and no more.
  fs.linkSync(`${root}/single`, `${BASE}/outside-link`)
  const stats2: WalkStats = { warnings: 0, pendingHardlinks: 0 }
  await walk([root], { stats: stats2 })
  assert.equal(stats2.pendingHardlinks, 1)
})

test('metadata: empty file and dir, FIFO, modes, nanosecond and negative mtimes', async () => {
  const root = `${BASE}/meta`
  mkdirp(`${root}/emptydir`)
  fs.writeFileSync(`${root}/empty`, '')
  fs.writeFileSync(`${root}/exec`, 'x')
  fs.chmodSync(`${root}/exec`, 0o4755)
  execFileSync('mkfifo', [`${root}/fifo`])
  execFileSync('touch', ['-m', '-d', '2001-02-03 04:05:06.123456789 UTC', `${root}/exec`])
  execFileSync('touch', ['-m', '-d', '1960-01-01 00:00:00.25 UTC', `${root}/empty`])
  const { entries, warnings } = await walk([root])
  assert.deepEqual(warnings, [])
  const empty = find(entries, `${root}/empty`)
  assert.equal(empty.type, 'file')
  assert.equal(empty.size, 0)
  assert.equal((await readAll(empty)).length, 0)
  assert.equal(empty.mtimeSec, -315619200)
  assert.equal(empty.mtimeNsec, 250_000_000)
  assert.equal(find(entries, `${root}/emptydir`).type, 'dir')
  const fifo = find(entries, `${root}/fifo`)
  assert.equal(fifo.type, 'fifo')
  assert.equal(fifo.content, undefined)
  const exec = find(entries, `${root}/exec`)
  assert.equal(exec.mode, 0o4755)
  assert.equal(exec.mtimeSec, 981173106)
  assert.equal(exec.mtimeNsec, 123456789)
  const st = fs.lstatSync(`${root}/exec`, { bigint: true })
  assert.equal(BigInt(exec.ctimeSec) * 1_000_000_000n + BigInt(exec.ctimeNsec), st.ctimeNs)
  assert.equal(exec.uid, Number(st.uid))
  assert.equal(exec.ino, Number(st.ino))
  assert.equal(exec.dev, Number(st.dev))
})

test('a character device gets its rdev', async () => {
  const { entries } = await walk(['/dev/null'])
  const e = entries[entries.length - 1]!
  assert.equal(e.type, 'char')
  assert.equal(e.rdev, Number(fs.lstatSync('/dev/null').rdev))
  assert.equal(e.content, undefined)
})

test('content: read in READ_BLOCK pieces, never past the recorded size, fd closed on early exit', async () => {
  const root = `${BASE}/content`
  mkdirp(root)
  const big = Buffer.alloc(2 * READ_BLOCK + 12345)
  for (let i = 0; i < big.length; i++) big[i] = (i * 7 + (i >> 13)) & 0xff
  fs.writeFileSync(`${root}/big`, big)
  const { entries } = await walk([root])
  const e = find(entries, `${root}/big`)
  assert.equal(e.size, big.length)
  fs.appendFileSync(`${root}/big`, 'grown after the walk')
  const sizes: number[] = []
  const parts: Buffer[] = []
  for await (const p of e.content!()) {
    sizes.push(p.length)
    parts.push(Buffer.from(p))
  }
  assert.deepEqual(sizes, [READ_BLOCK, READ_BLOCK, 12345])
  assert.ok(Buffer.concat(parts).equals(big))

  const fds = () => fs.readdirSync('/proc/self/fd').length
  const before = fds()
  for await (const _ of e.content!()) break
  assert.equal(fds(), before)
  const it = e.content!()[Symbol.asyncIterator]()
  await it.next()
  await it.throw?.(new Error('consumer failed')).catch(() => {})
  assert.equal(fds(), before)
  // Calling content() opens nothing until the first read.
  e.content!()
  assert.equal(fds(), before)
})

test('a file of several blocks is read one block ahead: each piece holds until the next is asked for; a shrunk one ends where it ends', async () => {
  const root = `${BASE}/ahead`
  mkdirp(root)
  const big = Buffer.alloc(3 * READ_BLOCK + 999)
  for (let i = 0; i + 4 <= big.length; i += 4) big.writeUInt32LE(i, i)
  fs.writeFileSync(`${root}/big`, big)
  fs.writeFileSync(`${root}/shrinks`, big)
  const { entries, warnings } = await walk([root])
  let at = 0
  for await (const p of find(entries, `${root}/big`).content!()) {
    // The read of the next block runs meanwhile: it must not land in this piece.
    await new Promise((r) => setTimeout(r, 20))
    assert.ok(Buffer.from(p).equals(big.subarray(at, at + p.length)), `piece at ${at} intact`)
    at += p.length
  }
  assert.equal(at, big.length)
  assert.equal(warnings.length, 0)

  fs.truncateSync(`${root}/shrinks`, READ_BLOCK + 500)
  const got = await readAll(find(entries, `${root}/shrinks`))
  assert.ok(got.equals(big.subarray(0, READ_BLOCK + 500)))
  assert.equal(warnings.length, 1)
  assert.match(warnings[0]!.message, new RegExp(`shrank while reading \\(${READ_BLOCK + 500} of ${big.length} bytes\\)`))
})

test('content of a file that vanished before reading throws ERR_READ with the path', async () => {
  const root = `${BASE}/gone`
  mkdirp(root)
  fs.writeFileSync(`${root}/f`, 'bye')
  const { entries } = await walk([root])
  fs.unlinkSync(`${root}/f`)
  await assert.rejects(readAll(find(entries, `${root}/f`)), (err: SluiceError) => {
    assert.equal(err.code, 'ERR_READ')
    assert.deepEqual(err.path, B(`${root}/f`))
    return true
  })
})

test('a file that shrank before reading yields what is left, with a warning; a FIFO in its place does not hang', async () => {
  const root = `${BASE}/shrink`
  mkdirp(root)
  fs.writeFileSync(`${root}/f`, 'abcdefgh')
  fs.writeFileSync(`${root}/p`, 'was a file')
  const { entries, warnings } = await walk([root])
  fs.truncateSync(`${root}/f`, 3)
  assert.equal(await readAll(find(entries, `${root}/f`)).then(String), 'abc')
  assert.equal(warnings.length, 1)
  assert.equal(warnings[0]!.code, 'ERR_READ')
  assert.match(warnings[0]!.message, /shrank/)
  fs.unlinkSync(`${root}/p`)
  execFileSync('mkfifo', [`${root}/p`])
  assert.equal((await readAll(find(entries, `${root}/p`))).length, 0)
  assert.equal(warnings.length, 2)
})

test('two sibling backup paths share their ancestors, emitted once; nested paths are dropped', async () => {
  const root = `${BASE}/anc`
  mkdirp(`${root}/x/sub`)
  mkdirp(`${root}/y`)
  mkdirp(`${root}/x-y`)
  const { entries } = await walk([`${root}/y`, `${root}/x/sub`, `${root}/x-y`, `${root}/x`, `${root}/x/`])
  assertCanonical(entries)
  assert.deepEqual(
    entries.map((e) => e.path.toString()),
    [...ABOVE, `${BASE.slice(1)}/anc`, ...['x', 'x/sub', 'x-y', 'y'].map((p) => `${root.slice(1)}/${p}`)],
  )
})

test('a nonexistent backup path fails with ERR_PATH_NOT_FOUND before anything is emitted', async () => {
  mkdirp(`${BASE}/exists`)
  const got: SourceEntry[] = []
  const w = createWalk([B(`${BASE}/exists`), B(`${BASE}/missing`)], { onWarning: () => {} })
  await assert.rejects(
    (async () => {
      for await (const e of w) got.push(e)
    })(),
    (err: SluiceError) => err instanceof SluiceError && err.code === 'ERR_PATH_NOT_FOUND',
  )
  assert.deepEqual(got, [])
  await assert.rejects(walk([`${BASE}/exists/file/below`]), { code: 'ERR_PATH_NOT_FOUND' })
})

test('an entry that vanishes between listing and lstat is a warning, and the walk goes on', async () => {
  const root = `${BASE}/vanish`
  mkdirp(root)
  for (const f of ['a', 'b', 'c']) fs.writeFileSync(`${root}/${f}`, f)
  const victim = B(`${root}/b`)
  // Delete the file just before the walk's lstat reaches it.
  const lstat = (p: Buffer) => {
    if (p.equals(victim)) fs.unlinkSync(p)
    return lstatNumbers(p)
  }
  const stats: WalkStats = { warnings: 0, pendingHardlinks: 0 }
  const { entries, warnings } = await walk([root], { stats, lstat })
  assert.deepEqual(rel(entries, root).map(String), ['a', 'c'])
  assert.equal(warnings.length, 1)
  assert.equal(warnings[0]!.code, 'ERR_READ')
  assert.deepEqual(warnings[0]!.path, victim)
  assert.equal(stats.warnings, 1)
})

test('an unreadable directory is emitted without children and warned about (run as nobody)', async (t) => {
  if (process.getuid?.() !== 0) return t.skip('needs root to switch to uid 65534')
  const root = `${BASE}/noperm`
  mkdirp(`${root}/locked/secret`)
  fs.writeFileSync(`${root}/open`, 'o')
  fs.chmodSync(`${root}/locked`, 0o000)
  // Root bypasses permissions, so the walk runs in a child process as nobody.
  const script = `${BASE}/noperm-child.mts`
  fs.writeFileSync(
    script,
    `import { createWalk } from ${JSON.stringify(new URL('../../transforms/backup/sources/walk.ts', import.meta.url).pathname)}
const warnings = []
const paths = []
for await (const e of createWalk([${JSON.stringify(root)}], { onWarning: (w) => warnings.push(w.code + ' ' + w.path.toString()) })) paths.push(e.path.toString())
console.log(JSON.stringify({ paths, warnings }))`,
  )
  const r = spawnSync(process.execPath, ['--import', 'tsx', script], {
    cwd: new URL('../..', import.meta.url).pathname,
    uid: 65534,
    gid: 65534,
    env: { PATH: process.env.PATH, HOME: '/tmp' },
    encoding: 'utf8',
  })
  fs.chmodSync(`${root}/locked`, 0o755)
  // A checkout that uid 65534 cannot read (a 0700 temp dir) cannot run the child at all.
  if (r.status !== 0 && /EACCES|permission|ERR_MODULE_NOT_FOUND/i.test(r.stderr) && !/transforms\/walk/.test(r.stderr)) {
    return t.skip(`the checkout is not readable by uid 65534: ${r.stderr.split('\n').find(l => /Error/.test(l)) ?? ''}`)
  }
  assert.equal(r.status, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { paths: string[]; warnings: string[] }
  const p = root.slice(1)
  assert.deepEqual(out.paths.filter((x) => x.startsWith(p + '/')), [`${p}/locked`, `${p}/open`])
  assert.deepEqual(out.warnings, [`ERR_READ ${root}/locked`])
})

test('oneFileSystem: a mount point is emitted but not entered', async (t) => {
  const outer = fs.statSync('/dev')
  const mounts = ['/dev/shm', '/dev/pts', '/dev/mqueue'].filter((m) => fs.existsSync(m) && fs.statSync(m).dev !== outer.dev)
  if (mounts.length === 0) return t.skip('no mount point below /dev here')
  const m = mounts[0]!
  const { entries } = await walk(['/dev'], { oneFileSystem: true })
  assert.ok(entries.some((e) => e.path.toString() === m.slice(1)))
  assert.ok(!entries.some((e) => e.path.toString().startsWith(m.slice(1) + '/')))
})

test('descend: a refused entry is dropped and a refused directory is not read', async () => {
  const root = `${BASE}/descend`
  mkdirp(`${root}/skip/deeper`)
  mkdirp(`${root}/keep`)
  fs.writeFileSync(`${root}/skip/f`, 'x')
  fs.writeFileSync(`${root}/keep/f`, 'x')
  fs.writeFileSync(`${root}/drop.tmp`, 'x')
  const { entries } = await walk([root], {
    descend: (e) => !e.path.toString().endsWith('/skip') && !e.path.toString().endsWith('.tmp'),
  })
  assert.deepEqual(rel(entries, root).map(String), ['keep', 'keep/f'])
})

test('excludeIfPresent drops a directory holding the marker, with everything in it', async () => {
  const root = `${BASE}/marker`
  mkdirp(`${root}/cache/sub`)
  mkdirp(`${root}/data`)
  fs.writeFileSync(`${root}/cache/CACHEDIR.TAG`, 'Signature: 8a477f597d28d172789f06886806bc55')
  fs.writeFileSync(`${root}/data/f`, 'x')
  const { entries } = await walk([root], { excludeIfPresent: ['CACHEDIR.TAG', '.nobackup'] })
  assert.deepEqual(rel(entries, root).map(String), ['data', 'data/f'])
})

test('a consumer that stops early ends the walk cleanly', async () => {
  const root = `${BASE}/early`
  mkdirp(root)
  for (let i = 0; i < 100; i++) fs.writeFileSync(`${root}/f${i}`, '')
  const w = createWalk([root], { onWarning: () => {} })
  let n = 0
  for await (const _ of w) if (++n === 5) break
  assert.equal(n, 5)
  assert.ok(w.destroyed)
})
