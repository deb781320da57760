/**
 * restore's options a restic user reaches for (issues 15 and 17): `--include` creating only the
 * directories on the way to what matched; `--overwrite` (restic 0.17's modes) and resuming a
 * restore SIGKILLed at seeded points; `--delete`; `--verify`; `--dry-run`; owners by name.
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import { CLI, cliFor } from '../helpers/cli.js'
import { scratch } from '../helpers/scratch.js'
import { compareTrees, isRoot, listTree, seededBytes } from '../helpers/tree.js'
import { mixedRng } from '../helpers/rng.js'
import { ADDON_PATH, WRITE_FILES_META, WRITE_FILES_RESULTS, utimens } from '../../lib/native.js'
import { fileURLToPath } from 'node:url'

const BASE = `${scratch('restoreopts')}/opts`
const SRC = `${BASE}/src`
const REL = SRC.slice(1)
let cli: ReturnType<typeof cliFor>

const ok = (what: string, r: { code: number | null; stderr: string }) => assert.equal(r.code, 0, `${what}: ${r.stderr}`)

before(async () => {
  fs.mkdirSync(`${SRC}/a/b/c`, { recursive: true })
  fs.mkdirSync(`${SRC}/d/e`, { recursive: true })
  fs.mkdirSync(`${SRC}/empty`, { recursive: true })
  fs.mkdirSync(`${SRC}/keep/sub`, { recursive: true })
  fs.writeFileSync(`${SRC}/a/b/c/newfile.txt`, 'new\n')
  fs.writeFileSync(`${SRC}/d/e/other.txt`, 'other\n')
  fs.writeFileSync(`${SRC}/keep/sub/k`, 'k\n')
  fs.writeFileSync(`${SRC}/top`, seededBytes('top', 5000))
  fs.writeFileSync(`${SRC}/big`, seededBytes('big', 3 * 1024 * 1024))
  fs.mkdirSync(`${BASE}/home`)
  cli = cliFor(`${BASE}/home`, `${BASE}/repo`)
  ok('init', await cli(['init']))
  ok('backup', await cli(['backup', '-q', SRC]))
})

test('--include creates only the directories on the way to what matched (restic)', async () => {
  const target = `${BASE}/include`
  ok('restore', await cli(['restore', 'latest', '--include', 'newfile.txt', '--target', target, '-q']))
  const got = listTree(target).map(String).sort()
  const want = ['tmp', ...REL.split('/').map((_, i, a) => a.slice(0, i + 1).join('/')), `${REL}/a`, `${REL}/a/b`, `${REL}/a/b/c`, `${REL}/a/b/c/newfile.txt`]
  assert.deepEqual(got, [...new Set(want)].sort())
  // The directories on the way keep their recorded metadata (mode and mtime).
  const src = fs.statSync(`${SRC}/a/b`, { bigint: true })
  const out = fs.statSync(`${target}/${REL}/a/b`, { bigint: true })
  assert.equal(out.mtimeNs, src.mtimeNs)
  assert.equal(out.mode, src.mode)
  // A directory that matches itself is restored with what it holds, even an empty one.
  const t2 = `${BASE}/include2`
  ok('restore', await cli(['restore', 'latest', '--include', 'keep', '--include', 'empty', '--target', t2, '-q']))
  const got2 = listTree(t2).map(String).filter(p => p.startsWith(`${REL}/`)).sort()
  assert.deepEqual(got2, [`${REL}/empty`, `${REL}/keep`, `${REL}/keep/sub`, `${REL}/keep/sub/k`])
})

test('--tar with --target: one line saying to give one of them', async () => {
  const r = await cli(['restore', 'latest', '--tar', '--target', `${BASE}/x`])
  assert.equal(r.code, 1)
  assert.equal(r.stderr, 'sluice: ERR_ARGS: give one of --target or --tar, not both\n')
  assert.equal(fs.existsSync(`${BASE}/x`), false)
  // The directory-only options say so with --tar (before anything is written to stdout).
  for (const flag of [['--delete'], ['--verify'], ['--dry-run'], ['--overwrite', 'if-changed']]) {
    const t = await cli(['restore', 'latest', '--tar', ...flag])
    assert.equal(t.code, 1)
    assert.equal(t.stderr, `sluice: ERR_ARGS: ${flag[0]} applies to a restore into a directory (--target), not to --tar\n`)
    assert.equal(t.stdout, '')
  }
})

/** A module to preload that SIGKILLs the process at its `n`th write of file content, whatever
 *  the machine's speed: a large file's fs.write calls, and each small file of a write batch
 *  (the addon's writeFiles, sinks/fs.ts). A batch holding the `n`th file has the files before it
 *  written by the addon, that one cut short as a kill inside its write leaves it (created 0600,
 *  half its content), and the process killed there. */
function killAtWriteHook(n: number): string {
  const file = `${BASE}/kill-at-write-${n}.mjs`
  const addonFile = fileURLToPath(new URL(`../../${ADDON_PATH}`, import.meta.url))
  fs.writeFileSync(file, `
import fs from 'node:fs'
import { createRequire, syncBuiltinESMExports } from 'node:module'
const write = fs.write
let calls = 0
fs.write = function (...args) {
  if (++calls === ${n}) process.kill(process.pid, 'SIGKILL')
  return write.apply(this, args)
}
syncBuiltinESMExports()
const addon = createRequire(import.meta.url)(${JSON.stringify(addonFile)})
const writeFiles = addon.writeFiles
addon.writeFiles = async function (paths, meta, arena, results) {
  const k = ${n} - calls - 1
  calls += paths.length
  if (k >= paths.length) return writeFiles.call(this, paths, meta, arena, results)
  if (k > 0) await writeFiles.call(this, paths.slice(0, k), meta.subarray(0, k * ${WRITE_FILES_META}), arena, results.subarray(0, k * ${WRITE_FILES_RESULTS}))
  const at = meta[k * ${WRITE_FILES_META}], length = meta[k * ${WRITE_FILES_META} + 1]
  fs.writeFileSync(paths[k], arena.subarray(at, at + Math.floor(length / 2)), { flag: 'wx', mode: 0o600 })
  process.kill(process.pid, 'SIGKILL')
}
`)
  return file
}

test('a restore SIGKILLed at seeded points, rerun with --overwrite if-changed, is exact and rewrites only what was not done', async (t) => {
  const src = `${BASE}/kill-src`
  fs.mkdirSync(`${src}/many`, { recursive: true })
  const rnd = mixedRng(15)
  let total = 0
  for (let i = 0; i < 120; i++) {
    const n = 100 + Math.floor(rnd() * 30000)
    fs.writeFileSync(`${src}/many/f${String(i).padStart(3, '0')}`, seededBytes(`k${i}`, n))
    total += n
  }
  for (let i = 0; i < 2; i++) {
    fs.writeFileSync(`${src}/large${i}`, seededBytes(`large${i}`, 3 * 1024 * 1024))
    total += 3 * 1024 * 1024
  }
  // A repository of its own: `latest` in the other tests stays their snapshot.
  const run = cliFor(`${BASE}/home`, `${BASE}/kill-repo`)
  ok('init', await run(['init']))
  ok('backup', await run(['backup', '-q', src]))
  const files = [...listTree(src)].map(String).filter(p => fs.lstatSync(`${src}/${p}`).isFile())
  // Content is written in path order: the two large files (a write per chunk piece, about eight
  // in all) come first, then 120 small ones (one write each, in batches). One kill point is drawn among the
  // first writes, so it lands inside a large file; two among all of them.
  for (const [seed, range] of [[1, 125], [2, 125], [3, 6]] as const) {
    const n = 1 + Math.floor(mixedRng(seed)() * range)
    const target = `${BASE}/kill-target-${seed}`
    const killed = await run(['restore', 'latest', '--target', target, '-q'], { nodeArgs: ['--import', killAtWriteHook(n)] })
    assert.equal(killed.signal, 'SIGKILL', `seed ${seed}: the restore was not killed at write ${n}`)
    // A file cut short never passes for complete: whatever has the snapshot's size and mtime
    // holds the snapshot's bytes. Those are what the rerun must not write again.
    let doneFiles = 0
    let doneBytes = 0
    for (const p of files) {
      const want = fs.statSync(`${src}/${p}`, { bigint: true })
      const got = fs.statSync(`${target}${src}/${p}`, { bigint: true, throwIfNoEntry: false })
      if (!got || got.size !== want.size || got.mtimeNs !== want.mtimeNs) continue
      assert.ok(fs.readFileSync(`${target}${src}/${p}`).equals(fs.readFileSync(`${src}/${p}`)), `seed ${seed}: ${p} looks restored but is not`)
      doneFiles++
      doneBytes += Number(want.size)
    }
    const r = await run(['restore', 'latest', '--target', target, '--overwrite', 'if-changed', '--json'])
    ok('the rerun', r)
    const sum = JSON.parse(r.stdout)
    assert.equal(sum.files_skipped, doneFiles)
    assert.equal(sum.bytes_skipped, doneBytes)
    assert.equal(sum.files_restored, files.length - doneFiles)
    assert.equal(sum.bytes_restored, total - doneBytes)
    assert.deepEqual(compareTrees(src, `${target}${src}`), [])
    t.diagnostic(`seed ${seed}: killed at write ${n}; ${doneFiles} files done, the rerun wrote ${sum.bytes_restored} of ${total} bytes`)
  }
})

test('--overwrite never and if-newer leave existing files alone; always rewrites them', async () => {
  const target = `${BASE}/modes`
  ok('restore', await cli(['restore', `latest:${REL}`, '--target', target, '-q']))
  fs.writeFileSync(`${target}/top`, 'local edit')
  const sum = async (args: string[]) => {
    const r = await cli(['restore', `latest:${REL}`, '--target', target, '--json', ...args])
    ok(args.join(' '), r)
    return JSON.parse(r.stdout)
  }
  // The local edit is newer than the snapshot's file: if-newer and never keep it.
  for (const mode of ['never', 'if-newer']) {
    const s = await sum(['--overwrite', mode])
    assert.equal(fs.readFileSync(`${target}/top`, 'utf8'), 'local edit', mode)
    assert.equal(s.files_restored, 0, mode)
  }
  // An older local file is replaced by if-newer.
  fs.utimesSync(`${target}/top`, new Date(1000_000), new Date(1000_000))
  await sum(['--overwrite', 'if-newer'])
  assert.ok(fs.readFileSync(`${target}/top`).equals(fs.readFileSync(`${SRC}/top`)))
  fs.writeFileSync(`${target}/top`, 'local edit')
  const s = await sum([])
  assert.ok(fs.readFileSync(`${target}/top`).equals(fs.readFileSync(`${SRC}/top`)))
  assert.equal(s.files_skipped, 0)
  const bad = await cli(['restore', 'latest', '--target', target, '--overwrite', 'sometimes'])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /^sluice: ERR_ARGS: .*overwrite/)
})

/** Extra entries in a restored target: a file, a directory tree, a symlink leading out of the
 *  target, and a snapshot directory replaced by a symlink to a directory outside. */
function addExtras(target: string): void {
  const t = `${target}/${REL}`
  fs.writeFileSync(`${t}/extra-file`, 'x')
  fs.mkdirSync(`${t}/a/extra-dir/deeper`, { recursive: true })
  fs.writeFileSync(`${t}/a/extra-dir/deeper/y`, 'y')
  fs.rmSync(`${BASE}/outside`, { recursive: true, force: true })
  fs.mkdirSync(`${BASE}/outside/k-dir`, { recursive: true })
  fs.writeFileSync(`${BASE}/outside/precious`, 'keep me')
  fs.writeFileSync(`${BASE}/outside/k-dir/other`, 'keep me too')
  fs.symlinkSync(`${BASE}/outside`, `${t}/d/link-out`)
  fs.rmSync(`${t}/keep`, { recursive: true })
  fs.symlinkSync(`${BASE}/outside/k-dir`, `${t}/keep`)
  fs.writeFileSync(`${target}/stray`, 'not in the snapshot')
}

const outsideIntact = () => {
  assert.equal(fs.readFileSync(`${BASE}/outside/precious`, 'utf8'), 'keep me')
  assert.equal(fs.readFileSync(`${BASE}/outside/k-dir/other`, 'utf8'), 'keep me too')
  assert.deepEqual(fs.readdirSync(`${BASE}/outside/k-dir`), ['other'])
}

test('--delete removes what the snapshot does not hold, inside the target only, following no symlink', async () => {
  const target = `${BASE}/delete`
  ok('restore', await cli(['restore', 'latest', '--target', target, '-q']))
  addExtras(target)
  const r = await cli(['restore', 'latest', '--target', target, '--delete', '--overwrite', 'if-changed', '--json'])
  ok('restore --delete', r)
  assert.deepEqual(compareTrees(SRC, `${target}/${REL}`), [])
  assert.deepEqual(fs.readdirSync(target), ['tmp'])
  outsideIntact()
  // extra-file, a/extra-dir, d/link-out, the keep symlink (replaced by the directory), stray
  assert.equal(JSON.parse(r.stdout).files_deleted, 4)
  const bad = await cli(['restore', 'latest', '--target', target, '--delete', '--include', 'top'])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /^sluice: ERR_ARGS: --delete cannot be combined with --include/)
})

test('--dry-run lists what would be restored and removed, and writes nothing', async () => {
  const target = `${BASE}/dry`
  ok('restore', await cli(['restore', 'latest', '--target', target, '-q']))
  addExtras(target)
  fs.writeFileSync(`${target}/${REL}/top`, 'changed locally')
  const before = listTree(target).map(String).sort()
  const r = await cli(['restore', 'latest', '--target', target, '--delete', '--overwrite', 'if-changed', '--dry-run'])
  ok('dry run', r)
  const lines = r.stdout.trim().split('\n')
  // keep/sub/k: its directory is a symlink in the target (to be replaced), so it is written.
  for (const want of [`would restore /${REL}/keep/sub/k`, `would remove /${REL}/extra-file`, `would remove /${REL}/a/extra-dir`, `would remove /${REL}/d/link-out`, 'would remove /stray', `would restore /${REL}/top`]) {
    assert.ok(lines.includes(want), `${want} not in:\n${r.stdout}`)
  }
  // Unchanged files are not listed; nothing is removed, written or followed.
  assert.ok(!lines.includes(`would restore /${REL}/big`), r.stdout)
  assert.ok(!lines.some(l => l.includes('precious')), r.stdout)
  assert.deepEqual(listTree(target).map(String).sort(), before)
  assert.equal(fs.readFileSync(`${target}/${REL}/top`, 'utf8'), 'changed locally')
  outsideIntact()
  assert.match(lines[lines.length - 1]!, /^dry run: would restore \d+ entries .* 2 files \(4\.9 KiB\) to write, \d+ files .* skipped by --overwrite if-changed, 4 entries to remove/)
  // Into a target that does not exist: nothing is created.
  ok('dry run', await cli(['restore', 'latest', '--target', `${BASE}/dry-new`, '--dry-run', '-q']))
  assert.equal(fs.existsSync(`${BASE}/dry-new`), false)
})

test('--verify reads restored files back and reports each mismatch on one line', async () => {
  const target = `${BASE}/verify`
  const first = await cli(['restore', `latest:${REL}`, '--target', target, '--verify', '--json'])
  ok('restore --verify', first)
  assert.equal(JSON.parse(first.stdout).verify_errors, 0)
  assert.ok(JSON.parse(first.stdout).files_verified >= 5)
  // Damage two files behind the restore's back, keeping size and mtime: a slice of a packed
  // chunk (top) and whole chunks (big).
  for (const name of ['top', 'big']) {
    const p = `${target}/${name}`
    const st = fs.statSync(p, { bigint: true })
    const fd = fs.openSync(p, 'r+')
    fs.writeSync(fd, Buffer.from('XX'), 0, 2, 1000)
    fs.closeSync(fd)
    const t = (ns: bigint) => ({ sec: Number(ns / 1_000_000_000n), nsec: Number(ns % 1_000_000_000n) })
    utimens(Buffer.from(p), t(st.atimeNs), t(st.mtimeNs))
  }
  // A pass that trusts size and mtime (and keeps the files) finds the damage with --verify.
  const r = await cli(['restore', `latest:${REL}`, '--target', target, '--overwrite', 'never', '--verify'])
  assert.equal(r.code, 3, r.stderr)
  const lines = r.stderr.trim().split('\n').sort()
  assert.deepEqual(lines, [`sluice: warning: ERR_VERIFY: big: content differs from the snapshot`, `sluice: warning: ERR_VERIFY: top: content differs from the snapshot`])
  // if-changed --verify compares content too, and rewrites exactly the damaged files.
  const fix = await cli(['restore', `latest:${REL}`, '--target', target, '--overwrite', 'if-changed', '--verify', '--json'])
  ok('if-changed --verify', fix)
  const s = JSON.parse(fix.stdout)
  assert.equal(s.files_restored, 2)
  assert.equal(s.verify_errors, 0)
  assert.deepEqual(compareTrees(SRC, target), [])
})

/** Runs the CLI as root in a mount namespace of its own where /etc/passwd and /etc/group are
 *  the given files: another system's user database, without touching this one's. */
function cliWithUsers(passwd: string, group: string, args: string[]): { code: number; stdout: string; stderr: string } {
  const script = 'mount --bind "$1" /etc/passwd && mount --bind "$2" /etc/group && shift 2 && exec "$@"'
  const r = spawnSync('unshare', ['-m', 'sh', '-c', script, 'sh', passwd, group, process.execPath, CLI, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: `${BASE}/home`, SLUICE_REPOSITORY: `${BASE}/owner-repo`, SLUICE_PASSWORD: 'correct horse' },
    encoding: 'utf8',
  })
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr }
}

test('owners by name: recorded at backup, mapped by name on restore as root, --numeric-owner forces numbers', async (t) => {
  if (!isRoot) return t.skip('needs root (chown, and a mount namespace for another user database)')
  if (spawnSync('unshare', ['-m', 'true']).status !== 0) return t.skip('cannot make a mount namespace here')
  const dir = `${BASE}/owners`
  fs.mkdirSync(`${dir}/src`, { recursive: true })
  fs.writeFileSync(`${dir}/src/f`, 'owned')
  fs.writeFileSync(`${dir}/src/nameless`, 'by number')
  fs.chownSync(`${dir}/src/f`, 4242, 4343)
  fs.chownSync(`${dir}/src/nameless`, 4444, 4545)
  const db = (name: string, passwd: string, group: string) => {
    fs.writeFileSync(`${dir}/${name}.passwd`, fs.readFileSync('/etc/passwd', 'utf8') + passwd)
    fs.writeFileSync(`${dir}/${name}.group`, fs.readFileSync('/etc/group', 'utf8') + group)
    return [`${dir}/${name}.passwd`, `${dir}/${name}.group`] as const
  }
  // The backup host knows sluiceu (4242) and sluiceg (4343); the restore host has them as 5252
  // and 5353, and knows neither 4444 nor 4545 by any name.
  const here = db('backup', 'sluiceu:x:4242:4343::/nonexistent:/bin/false\n', 'sluiceg:x:4343:\n')
  const there = db('restore', 'sluiceu:x:5252:5353::/nonexistent:/bin/false\n', 'sluiceg:x:5353:\n')
  assert.equal(cliWithUsers(...here, ['init']).code, 0)
  const b = cliWithUsers(...here, ['backup', '-q', `${dir}/src`])
  assert.equal(b.code, 0, b.stderr)
  // The names are in the snapshot: the tar stream carries them as uname/gname.
  const tar = spawnSync('sh', ['-c', `"${process.execPath}" "${CLI}" restore latest --tar | tar -tvf -`], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: `${BASE}/home`, SLUICE_REPOSITORY: `${BASE}/owner-repo`, SLUICE_PASSWORD: 'correct horse' },
    encoding: 'utf8',
  })
  assert.match(tar.stdout, /sluiceu\/sluiceg .* \S*src\/f\n/, tar.stdout)
  const owner = (p: string) => {
    const st = fs.lstatSync(p)
    return `${st.uid}:${st.gid}`
  }
  const restoreTo = (target: string, extra: string[]) => {
    const r = cliWithUsers(...there, ['restore', `latest:${dir.slice(1)}/src`, '--target', target, '-q', ...extra])
    assert.equal(r.code, 0, r.stderr)
  }
  restoreTo(`${dir}/by-name`, [])
  assert.equal(owner(`${dir}/by-name/f`), '5252:5353')
  assert.equal(owner(`${dir}/by-name/nameless`), '4444:4545')
  restoreTo(`${dir}/by-number`, ['--numeric-owner'])
  assert.equal(owner(`${dir}/by-number/f`), '4242:4343')
  assert.equal(owner(`${dir}/by-number/nameless`), '4444:4545')
})

test('on a terminal a partial restore (SNAP:PATH, --include) shows percent and ETA against its own totals', { skip: spawnSync('script', ['-qc', 'true', '/dev/null'], { stdio: 'ignore' }).status !== 0 && 'needs script (util-linux)' }, () => {
  const target = `${BASE}/progress`
  const args = [process.execPath, CLI, 'restore', `latest:${REL}`, '--include', 'top', '--include', 'big', '--target', target]
  const r = spawnSync('script', ['-qec', `stty cols 200; ${args.map(a => `'${a}'`).join(' ')}`, '/dev/null'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: `${BASE}/home`, SLUICE_REPOSITORY: `${BASE}/repo`, SLUICE_PASSWORD: 'correct horse', TERM: 'xterm' },
    encoding: 'utf8',
    timeout: 120_000,
  })
  assert.equal(r.status, 0, r.stdout)
  const line = r.stdout.split('\r\x1b[K').filter(d => d.startsWith('[')).at(-1)!
  assert.match(line, /^\[\d+:\d\d\] 100\.00% {2}2 files 3\.0 MiB, total 2 files 3\.0 MiB, 0 errors ETA \d+:\d\d /, JSON.stringify(r.stdout))
})

test('--delete refuses a snapshot out of canonical order (a tar stream) before removing what it holds', async () => {
  const dir = `${BASE}/tar-order`
  fs.mkdirSync(`${dir}/in`, { recursive: true })
  fs.writeFileSync(`${dir}/in/b`, 'b')
  fs.writeFileSync(`${dir}/in/a`, 'a')
  // b before a: a tar keeps its members' order, the snapshot too.
  const tarBytes = spawnSync('tar', ['-cf', '-', '--no-recursion', '-C', dir, 'in', 'in/b', 'in/a']).stdout
  const run = cliFor(`${BASE}/home`, `${BASE}/tar-repo`)
  ok('init', await run(['init']))
  ok('backup --tar', await run(['backup', '--tar', '-q'], { input: tarBytes }))
  const target = `${dir}/target`
  fs.mkdirSync(`${target}/tar/in`, { recursive: true })
  fs.writeFileSync(`${target}/tar/in/a`, 'older a')
  fs.writeFileSync(`${target}/tar/in/stray`, 'stray')
  const r = await run(['restore', 'latest', '--target', target, '--delete'])
  assert.equal(r.code, 1)
  assert.equal(r.stderr, 'sluice: ERR_ARGS: --delete needs a snapshot in canonical order (a walked one); "tar/in/a" comes out of order\n')
  // a, which the snapshot holds, is still there (the older content: the restore stopped).
  assert.equal(fs.readFileSync(`${target}/tar/in/a`, 'utf8'), 'older a')
  assert.equal(fs.readFileSync(`${target}/tar/in/stray`, 'utf8'), 'stray')
  // The same members in order (the tar's implicit top directory has no record): it works.
  const ordered = spawnSync('tar', ['-cf', '-', '--no-recursion', '-C', dir, 'in', 'in/a', 'in/b']).stdout
  ok('backup --tar', await run(['backup', '--tar', '-q'], { input: ordered }))
  fs.writeFileSync(`${target}/stray-top`, 'stray')
  ok('restore --delete', await run(['restore', 'latest', '--target', target, '--delete', '-q']))
  assert.deepEqual(listTree(target).map(String).sort(), ['tar', 'tar/in', 'tar/in/a', 'tar/in/b'])
  assert.equal(fs.readFileSync(`${target}/tar/in/a`, 'utf8'), 'a')
})
