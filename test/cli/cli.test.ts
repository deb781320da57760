/**
 * The `sluice` command as a user meets it: spawned from dist/ (run `npm run build` first) with a
 * scrubbed environment, asserting exit codes, the one-line error messages with their codes, and
 * what goes to stdout (results, JSON) versus stderr (progress, warnings, errors).
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import { CLI, cliFor, runCli, type CliResult, backupSummary } from '../helpers/cli.js'
import { seededBytes } from '../helpers/tree.js'
import { createLocalStorage, initRepository } from '../../index.js'
import { READ_BLOCK } from '../../lib/limits.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('e2e-task')}/cli`
const home = `${BASE}/home`
const PW = 'correct horse'
const REPO = `${BASE}/repo`
const sluice = cliFor(home, REPO, PW)
/** The snapshot of ${BASE}/src made by the JSON test. */
let srcSnapshot = ''

/** Exit 1 with exactly one line on stderr that names `code`, and no stack trace. */
function assertFails(r: CliResult, code: string): void {
  assert.equal(r.code, 1, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  const lines = r.stderr.split('\n').filter((l) => l !== '')
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`)
  assert.match(lines[0]!, new RegExp(`^sluice: ${code}: `))
  assert.ok(!r.stderr.includes('    at '), `stack trace on stderr:\n${r.stderr}`)
}

function snapshotFiles(repo: string): string[] {
  return fs.existsSync(`${repo}/snapshots`) ? fs.readdirSync(`${repo}/snapshots`) : []
}

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(home, { recursive: true })
  fs.mkdirSync(`${BASE}/src/sub`, { recursive: true })
  fs.writeFileSync(`${BASE}/src/a`, 'a\n')
  fs.writeFileSync(`${BASE}/src/sub/b`, seededBytes('b', 200_000))
  // A cheap key derivation keeps each command fast; the CLI reads the parameters from the key file.
  const repo = await initRepository(createLocalStorage(REPO), PW, { kdf: { opslimit: 1, memlimit: 8192 } })
  await repo.close()
})

test('--help prints the commands on stdout and exits 0', async () => {
  const r = await runCli(['--help'], { home })
  assert.equal(r.code, 0, r.stderr)
  for (const c of ['init', 'backup', 'snapshots', 'ls', 'restore', 'check']) assert.match(r.stdout, new RegExp(`sluice ${c}`))
  assert.equal(r.stderr, '')
  const sub = await runCli(['backup', '--help'], { home })
  assert.equal(sub.code, 0)
  assert.match(sub.stdout, /--exclude/)
})

test('init creates a repository; init again fails with ERR_REPO_EXISTS', async () => {
  const repo = `${BASE}/repo-init`
  const init = cliFor(home, repo, 'pw')
  const r = await init(['init'])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /created sluice repository/)
  assert.ok(fs.existsSync(`${repo}/config`))
  assertFails(await init(['init']), 'ERR_REPO_EXISTS')
})

test('a wrong password fails with one line, ERR_WRONG_PASSWORD', async () => {
  assertFails(await cliFor(home, REPO, 'wrong')(['snapshots']), 'ERR_WRONG_PASSWORD')
})

test('a repository that does not exist fails with ERR_REPO_NOT_FOUND', async () => {
  const r = await cliFor(home, `${BASE}/no-such-repo`, PW)(['snapshots'])
  assertFails(r, 'ERR_REPO_NOT_FOUND')
  assert.ok(!fs.existsSync(`${BASE}/no-such-repo`), 'a read-only command created the repository directory')
})

test('backup of a path that does not exist fails with ERR_PATH_NOT_FOUND and writes no snapshot', async () => {
  const before = snapshotFiles(REPO)
  const r = await sluice(['backup', `${BASE}/src/no-such`])
  assertFails(r, 'ERR_PATH_NOT_FOUND')
  assert.match(r.stderr, /no-such/)
  assert.deepEqual(snapshotFiles(REPO), before)
})

test('backup --json and snapshots --json print valid JSON with the documented fields', async () => {
  const b = await sluice(['backup', '--json', '--tag', 'first', `${BASE}/src`])
  assert.equal(b.code, 0, b.stderr)
  assert.equal(b.stderr, '')
  const res = backupSummary(b.stdout)
  for (const k of ['snapshot', 'files', 'dirs', 'others', 'filesNew', 'filesChanged', 'filesUnchanged', 'bytesRead', 'bytesTotal', 'chunksNew', 'bytesStored', 'warnings', 'durationMs', 'peakRss']) {
    assert.ok(k in res, `backup --json lacks ${k}: ${b.stdout}`)
  }
  assert.match(res.snapshot, /^[0-9a-f]{64}$/)
  srcSnapshot = res.snapshot
  assert.equal(res.files, 2)
  assert.equal(res.bytesRead, 200_002)
  assert.equal(res.warnings, 0)

  const b2 = await sluice(['backup', '--json', `${BASE}/src/sub`])
  assert.equal(b2.code, 0, b2.stderr)
  const s = await sluice(['snapshots', '--json'])
  assert.equal(s.code, 0, s.stderr)
  const list = JSON.parse(s.stdout)
  assert.ok(Array.isArray(list), s.stdout)
  assert.ok(list.length >= 2)
  const mine = list.find((x: { id: string }) => x.id === res.snapshot)
  assert.ok(mine, s.stdout)
  for (const k of ['id', 'short_id', 'time', 'hostname', 'username', 'paths', 'tags', 'tree', 'summary', 'program_version']) assert.ok(k in mine, `snapshots --json lacks ${k}`)
  assert.deepEqual(mine.paths, [`${BASE}/src`])
  assert.deepEqual(mine.tags, ['first'])
  assert.ok(!Number.isNaN(Date.parse(mine.time)))
  const none = await cliFor(home, `${BASE}/repo-init`, 'pw')(['snapshots', '--json'])
  assert.deepEqual(JSON.parse(none.stdout), [])
})

// --compression as restic spells it. Each level backs up the same text into a copy of one empty
// repository: nothing is deduplicated away, and every copy has the same keys, so the text is cut
// into the same chunks (same ids) and their stored sizes differ only by the compression level.
// The metadata chunk holds the ancestors' times (/tmp changes under us), so only the text's
// chunks are compared byte for byte.
test('backup --compression off, auto, max and a level: what is stored, and the same bytes back', async () => {
  const file = `${BASE}/text.txt`
  const text = Array.from({ length: 20_000 }, (_, i) => `line ${i}: the quick brown fox ${i % 97} jumps over ${i % 13} lazy dogs\n`).join('')
  fs.writeFileSync(file, text)
  const empty = `${BASE}/repo-compression-empty`
  await (await initRepository(createLocalStorage(empty), PW, { kdf: { opslimit: 1, memlimit: 8192 } })).close()
  const stored: Record<string, number> = {}
  for (const c of ['off', 'auto', 'max', '1', 'default']) {
    const dir = `${BASE}/repo-compression-${c}`
    fs.cpSync(empty, dir, { recursive: true })
    const run = cliFor(home, dir, PW)
    const b = await run(['backup', '--json', file, ...(c === 'default' ? [] : ['--compression', c])])
    assert.equal(b.code, 0, b.stderr)
    const res = backupSummary(b.stdout)
    assert.equal(res.bytesRead, text.length)
    stored[c] = res.bytesStored
    // The compression byte each chunk object records (docs/FORMAT.md): off stores every chunk as
    // is; every other setting compresses this text.
    const flags = chunkObjects(dir).map((f) => fs.readFileSync(f)[1])
    if (c === 'off') assert.ok(flags.every((f) => f === 0), `--compression off: compression bytes ${flags}`)
    else assert.ok(flags.includes(1), `--compression ${c}: no chunk is compressed (${flags})`)
    const back = await run(['cat', 'latest', file])
    assert.equal(back.code, 0, back.stderr)
    assert.ok(back.stdout === text, `--compression ${c}: cat gives other bytes`)
    // max compresses every chunk on the thread pool, two at once: every object decrypts,
    // decompresses and hashes to its id.
    if (c === 'max') {
      const ck = await run(['check', '--read-data'])
      assert.equal(ck.code, 0, ck.stderr)
    }
  }
  assert.ok(stored.off! >= text.length, `off stores ${stored.off} of ${text.length}`)
  assert.ok(stored.auto! < text.length / 4, `auto stores ${stored.auto} of ${text.length}`)
  const auto = objectSizes(`${BASE}/repo-compression-auto`)
  const byDefault = objectSizes(`${BASE}/repo-compression-default`)
  const shared = [...auto.keys()].filter((id) => byDefault.has(id))
  assert.ok(shared.reduce((n, id) => n + auto.get(id)!, 0) > stored.auto! * 0.9, 'the text is not cut alike in the two copies')
  for (const id of shared) assert.equal(byDefault.get(id), auto.get(id), `no flag stores chunk ${id} unlike auto`)
  assert.ok(stored.max! <= stored.auto!, `max ${stored.max} > auto ${stored.auto}`)
  assert.ok(stored['1']! < text.length / 4 && stored['1']! >= stored.max!, `level 1 stores ${stored['1']}`)
  for (const bad of ['fast', '20', '0', '-1', '']) {
    const before = snapshotFiles(REPO)
    assertFails(await sluice(['backup', file, '--compression', bad]), 'ERR_ARGS')
    assert.deepEqual(snapshotFiles(REPO), before)
  }
})

/** Stored size of each chunk object of a local repository, by id. */
function objectSizes(repo: string): Map<string, number> {
  return new Map(chunkObjects(repo).map((f) => [f.slice(f.lastIndexOf('/') + 1), fs.statSync(f).size]))
}

/** Every chunk object's file in a local repository. */
function chunkObjects(repo: string): string[] {
  const dir = `${repo}/chunks`
  return fs.readdirSync(dir).flatMap((d) => fs.readdirSync(`${dir}/${d}`).map((f) => `${dir}/${d}/${f}`))
}

test('restore SNAP:PATH with --exclude and --include', async () => {
  const t1 = `${BASE}/restore-exclude`
  assert.ok(srcSnapshot)
  const r1 = await sluice(['restore', `${srcSnapshot.slice(0, 8)}:${BASE}/src`, '--target', t1, '--exclude', 'sub', '--quiet'])
  assert.equal(r1.code, 0, r1.stderr)
  assert.deepEqual(fs.readdirSync(t1), ['a'])
  assert.equal(fs.readFileSync(`${t1}/a`, 'utf8'), 'a\n')
  const t2 = `${BASE}/restore-include`
  const r2 = await sluice(['restore', srcSnapshot, '--include', `${BASE}/src/sub/b`, '--target', t2])
  assert.equal(r2.code, 0, r2.stderr)
  assert.ok(fs.readFileSync(`${t2}${BASE}/src/sub/b`).equals(seededBytes('b', 200_000)))
  assert.ok(!fs.existsSync(`${t2}${BASE}/src/a`))
  assertFails(await sluice(['restore', `${srcSnapshot}:${BASE}/src/nope`, '--target', `${BASE}/restore-nope`]), 'ERR_PATH_NOT_FOUND')
})

test('--password-file works without SLUICE_PASSWORD', async () => {
  fs.writeFileSync(`${BASE}/pwfile`, `${PW}\n`, { mode: 0o600 })
  const r = await runCli(['snapshots', '--password-file', `${BASE}/pwfile`], { home, env: { SLUICE_REPOSITORY: REPO } })
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /^ID/)
  fs.writeFileSync(`${BASE}/pwfile-bad`, 'nope\n')
  assertFails(await runCli(['snapshots', '--password-file', `${BASE}/pwfile-bad`], { home, env: { SLUICE_REPOSITORY: REPO } }), 'ERR_WRONG_PASSWORD')
  assertFails(await runCli(['snapshots', '--password-file', `${BASE}/no-such-file`], { home, env: { SLUICE_REPOSITORY: REPO } }), 'ERR_ARGS')
})

test('no password and no terminal fails with one line, ERR_ARGS', async () => {
  const r = await runCli(['snapshots'], { home, env: { SLUICE_REPOSITORY: REPO } })
  assertFails(r, 'ERR_ARGS')
  assert.match(r.stderr, /password/)
})

test('a file that vanishes between walk and read: exit 3, named on stderr, the rest backed up', async () => {
  // Deterministic through the real CLI: a preloaded hook deletes the victim just before the
  // backup opens it, after the walk has listed and lstat'ed it. The victim is larger than
  // READ_BLOCK, so it is read on its own (read-content.ts, through fs.open), not in a batch.
  const src = `${BASE}/vanish`
  fs.mkdirSync(`${src}/late`, { recursive: true })
  fs.writeFileSync(`${src}/early`, 'early')
  fs.writeFileSync(`${src}/late/victim`, seededBytes('victim', READ_BLOCK + 1))
  fs.writeFileSync(`${src}/late/z-after`, 'after')
  const hook = `${BASE}/vanish-hook.mjs`
  fs.writeFileSync(hook, `
import fs from 'node:fs'
const victim = ${JSON.stringify(`${src}/late/victim`)}
// Every way of opening a file, so the test does not depend on which one the walk uses.
for (const [obj, name] of [[fs, 'open'], [fs, 'openSync'], [fs.promises, 'open']]) {
  const orig = obj[name]
  obj[name] = function (p, ...rest) {
    if (String(p) === victim) fs.rmSync(victim, { force: true })
    return orig.call(this, p, ...rest)
  }
}
`)
  const r = await sluice(['backup', src], { nodeArgs: ['--import', hook] })
  assert.equal(r.code, 3, `exit ${r.code}\n${r.stderr}`)
  assert.match(r.stderr, /warning: ERR_READ: .*late\/victim/)
  assert.ok(!r.stderr.includes('    at '), r.stderr)
  assert.match(r.stdout, /snapshot [0-9a-f]{8} saved/)
  const ls = await sluice(['ls', 'latest'])
  assert.equal(ls.code, 0, ls.stderr)
  const lines = ls.stdout.split('\n')
  assert.ok(lines.includes(`${src}/early`) && lines.includes(`${src}/late/z-after`), ls.stdout)
  assert.ok(!lines.includes(`${src}/late/victim`), ls.stdout)
})

test('progress goes to stderr, never to stdout', { skip: !hasPython() && 'needs python3 for a pseudo-terminal' }, async () => {
  // Progress is redrawn 4 times a second when stderr is a terminal. No clock decides whether
  // one is drawn: the backup reads stdin, which stays open until a progress line has appeared.
  // stderr on a pty (so progress is on), stdout on a pipe; both captured separately.
  const py = `
import os, pty, subprocess, sys, threading
m, s = pty.openpty()
p = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=s)
p.stdin.write(os.urandom(1 << 20)); p.stdin.flush()
err = []
def pump():
    open_ = True
    while True:
        try:
            b = os.read(m, 65536)
        except OSError:
            break
        if not b:
            break
        err.append(b)
        if open_ and b' errors' in b''.join(err):
            open_ = False
            p.stdin.close()
t = threading.Thread(target=pump, daemon=True); t.start()
out = p.stdout.read()
p.wait()
os.close(s); t.join(5)
sys.stdout.buffer.write(out)
sys.stderr.buffer.write(b''.join(err))
sys.exit(p.returncode)
`
  const r = spawnSync('python3', ['-c', py, process.execPath, CLI, 'backup', '--stdin', '--stdin-filename', 'progress.bin'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, SLUICE_REPOSITORY: REPO, SLUICE_PASSWORD: PW },
    encoding: 'utf8',
    timeout: 120_000,
  })
  assert.equal(r.status, 0, r.stderr)
  assert.match(r.stderr, /\[\d+:\d\d\] .*\d+ files .*\d+ errors/, `no progress on stderr:\n${JSON.stringify(r.stderr)}`)
  assert.ok(!/ errors/.test(r.stdout), `progress on stdout:\n${r.stdout}`)
  assert.ok(!r.stdout.includes('\r') && !r.stdout.includes('\x1b'), `terminal control on stdout:\n${JSON.stringify(r.stdout)}`)
  assert.match(r.stdout, /^snapshot [0-9a-f]{8} saved/)
})

function hasPython(): boolean {
  return spawnSync('python3', ['-c', 'import pty'], { stdio: 'ignore' }).status === 0
}

// Issue 13, item 8: a file whose lstat size is 0 but whose content comes on read (procfs) is
// read to its end, as restic does, and comes back whole; nothing is warned.
test('backup /proc/version stores its content, not 0 bytes', { skip: !fs.existsSync('/proc/version') && 'no /proc' }, async () => {
  const b = await sluice(['backup', '--json', '/proc/version'])
  assert.equal(b.code, 0, b.stderr)
  assert.equal(b.stderr, '')
  const expected = fs.readFileSync('/proc/version', 'utf8')
  assert.equal(backupSummary(b.stdout).bytesRead, Buffer.byteLength(expected))
  const back = await sluice(['cat', 'latest', '/proc/version'])
  assert.equal(back.code, 0, back.stderr)
  assert.equal(back.stdout, expected)
  // The record says the size that was read (its extents add up to it).
  const ls = await sluice(['ls', '--json', 'latest:/proc/version'])
  assert.equal(ls.code, 0, ls.stderr)
  const rec = ls.stdout.trim().split('\n').map((l) => JSON.parse(l)).find((r) => r.path === '/proc/version')
  assert.equal(rec.size, Buffer.byteLength(expected), ls.stdout)
})
