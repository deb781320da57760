/**
 * Issue 13 items 1, 4, 6, 7 and 10 as a user meets them, through the built CLI on a local
 * repository made by `sluice init` and `sluice backup`:
 * - a damaged snapshot object: snapshots, backup, restore latest and check go on (one warning
 *   line naming it, exit 3; check counts it as a problem, exit 1);
 * - `echo hello > keys/README` changes nothing; a damaged key file is named;
 * - an edited config is refused with ERR_CORRUPT naming the config;
 * - init refuses an empty password from SLUICE_PASSWORD or a password file;
 * - temporary files of killed writers: check reports them, the next backup removes the old
 *   ones and never a fresh one.
 */
import { before, test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { cliFor, runCli, type CliResult, backupSummary } from '../helpers/cli.js'
import { compareTrees } from '../helpers/tree.js'
import { seeded } from '../helpers/damage.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('repo-safety')}/e2e`
const home = `${BASE}/home`
const PW = 'correct horse'
const REPO = `${BASE}/repo`
const SRC = `${BASE}/src`
const sluice = cliFor(home, REPO, PW)
let snaps: string[] = [] // oldest first

function lines(s: string): string[] {
  return s.split('\n').filter(l => l !== '')
}

/** Exit 1 with exactly one line on stderr naming `code`, no stack trace. */
function assertFails(r: CliResult, code: string, message: RegExp): void {
  assert.equal(r.code, 1, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  assert.equal(lines(r.stderr).length, 1, r.stderr)
  assert.match(r.stderr, new RegExp(`^sluice: ${code}: `))
  assert.match(r.stderr, message)
  assert.ok(!r.stderr.includes('    at '), r.stderr)
}

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(`${SRC}/sub`, { recursive: true })
  fs.mkdirSync(home, { recursive: true })
  for (let i = 0; i < 4; i++) fs.writeFileSync(`${SRC}/sub/f${i}`, seeded(`e2e${i}`, 10_000 * (i + 1)))
  const init = await sluice(['init'])
  assert.equal(init.code, 0, init.stderr)
  for (let i = 0; i < 3; i++) {
    const b = await sluice(['backup', '--json', '--tag', `t${i}`, SRC])
    assert.equal(b.code, 0, b.stderr)
    snaps.push((backupSummary(b.stdout) as { snapshot: string }).snapshot)
  }
})

test('a random-bytes snapshot object: snapshots, backup, restore latest go on with a warning (exit 3), check counts it', async () => {
  const [, middle, newest] = snaps as [string, string, string]
  const file = `${REPO}/snapshots/${newest}`
  const good = fs.readFileSync(file)
  fs.writeFileSync(file, seeded('junk', 300))
  try {
    const warning = new RegExp(`^sluice: warning: ERR_CORRUPT: skipped unreadable snapshot ${newest}: `)
    const s = await sluice(['snapshots'])
    assert.equal(s.code, 3, s.stderr)
    assert.equal(lines(s.stderr).length, 1, s.stderr)
    assert.match(s.stderr, warning)
    assert.match(s.stdout, /^2 snapshots$/m)
    assert.ok(!s.stdout.includes(newest.slice(0, 8)))

    const target = `${BASE}/restored`
    const r = await sluice(['restore', 'latest', '--target', target])
    assert.equal(r.code, 3, r.stderr)
    assert.match(lines(r.stderr)[0]!, warning)
    assert.deepEqual(compareTrees(SRC, `${target}${SRC}`), [])

    const b = await sluice(['backup', '--json', SRC])
    assert.equal(b.code, 3, b.stderr)
    assert.match(lines(b.stderr)[0]!, warning)
    const res = backupSummary(b.stdout) as { snapshot: string; parent: string | null; filesUnchanged: number }
    assert.equal(res.parent, middle)
    assert.equal(res.filesUnchanged, 4)
    fs.rmSync(`${REPO}/snapshots/${res.snapshot}`)

    const c = await sluice(['check'])
    assert.equal(c.code, 1, c.stderr)
    assert.match(c.stdout, /checked 2 snapshots: 1 problems/)
    assert.ok(lines(c.stderr).some(l => l.startsWith('sluice: problem: ') && l.includes(newest)), c.stderr)
    assert.match(lines(c.stderr).at(-1)!, /^sluice: ERR_CHECK: /)
  } finally {
    fs.writeFileSync(file, good)
  }
})

test('head -c 300 /dev/urandom > snapshots/bbbb…: planted under an id of its own, named once and skipped', async () => {
  const planted = `${REPO}/snapshots/${'b'.repeat(64)}`
  fs.writeFileSync(planted, seeded('planted', 300))
  try {
    for (const args of [['snapshots'], ['ls', 'latest'], ['cat', 'latest', `${SRC.slice(1)}/sub/f0`]]) {
      const r = await sluice(args)
      assert.equal(r.code, 3, `${args.join(' ')}: ${r.stderr}`)
      assert.equal(lines(r.stderr).length, 1, r.stderr)
      assert.match(r.stderr, new RegExp(`^sluice: warning: ERR_CORRUPT: skipped unreadable snapshot ${'b'.repeat(64)}: `))
      if (args[0] === 'cat') assert.ok(r.stdoutBytes.equals(fs.readFileSync(`${SRC}/sub/f0`)))
      if (args[0] === 'ls') assert.match(r.stdout, /sub\/f3/)
    }
    const c = await sluice(['check'])
    assert.equal(c.code, 1)
    assert.match(c.stdout, /checked 3 snapshots: 1 problems/)
  } finally {
    fs.rmSync(planted)
  }
})

test('a file under snapshots/ that is not a snapshot id is ignored', async () => {
  fs.writeFileSync(`${REPO}/snapshots/README`, 'hello\n')
  try {
    const s = await sluice(['snapshots'])
    assert.equal(s.code, 0, s.stderr)
    assert.equal(s.stderr, '')
    assert.match(s.stdout, /^3 snapshots$/m)
  } finally {
    fs.rmSync(`${REPO}/snapshots/README`)
  }
})

test('echo hello > keys/README changes nothing; a truncated key file is named, not a wrong password', async () => {
  fs.writeFileSync(`${REPO}/keys/README`, 'hello\n')
  try {
    const s = await sluice(['snapshots'])
    assert.equal(s.code, 0, s.stderr)
    assert.equal(s.stderr, '')
  } finally {
    fs.rmSync(`${REPO}/keys/README`)
  }
  const [key] = fs.readdirSync(`${REPO}/keys`)
  const file = `${REPO}/keys/${key}`
  const good = fs.readFileSync(file)
  fs.writeFileSync(file, good.subarray(0, 40))
  try {
    const s = await sluice(['snapshots'])
    assert.equal(s.code, 1)
    const l = lines(s.stderr)
    assert.equal(l.length, 2, s.stderr)
    assert.match(l[0]!, new RegExp(`^sluice: warning: ERR_CORRUPT: key file keys/${key} is damaged`))
    assert.match(l[1]!, /^sluice: ERR_CORRUPT: repository at .* has no usable key file: 1 damaged/)
  } finally {
    fs.writeFileSync(file, good)
  }
})

test('a config edited to a tiny chunker, or with the chunker nulled, is refused naming the config', async () => {
  const good = fs.readFileSync(`${REPO}/config`, 'utf8')
  const outer = JSON.parse(good) as { config: string }
  const body = JSON.parse(outer.config) as Record<string, unknown>
  for (const chunker of [{ min: 64, avg: 64, max: 64 }, null]) {
    fs.writeFileSync(`${REPO}/config`, JSON.stringify({ ...outer, config: JSON.stringify({ ...body, chunker }) }))
    try {
      assertFails(await sluice(['backup', SRC]), 'ERR_CORRUPT', /the config of .* failed authentication/)
    } finally {
      fs.writeFileSync(`${REPO}/config`, good)
    }
  }
  const s = await sluice(['snapshots'])
  assert.equal(s.code, 0, s.stderr)
})

test('init refuses an empty password from SLUICE_PASSWORD or an empty password file, and writes nothing', async () => {
  const dir = `${BASE}/empty-pw`
  assertFails(await runCli(['init', '--repo', dir], { home, env: { SLUICE_PASSWORD: '' } }), 'ERR_ARGS', /empty password in SLUICE_PASSWORD/)
  for (const content of ['', '\n', '\r\n']) {
    fs.writeFileSync(`${BASE}/pwfile`, content)
    assertFails(await runCli(['init', '--repo', dir, '--password-file', `${BASE}/pwfile`], { home }), 'ERR_ARGS', /empty password in password file/)
  }
  assert.equal(fs.existsSync(dir), false)
})

test('leftover temp files: check reports the old ones, backup removes them, a fresh one stays', async () => {
  const tmp = `${REPO}/tmp`
  fs.mkdirSync(tmp, { recursive: true })
  const hourAgo = Date.now() / 1000 - 3600
  const old = [`${tmp}/0123456789abcdef01234567`, `${tmp}/89abcdef0123456789abcdef`]
  old.forEach((f, i) => {
    fs.writeFileSync(f, seeded(f, 100_000 * (i + 1)))
    fs.utimesSync(f, hourAgo - 10 - i * 86400, hourAgo - 10 - i * 86400)
  })
  // A file a running writer could hold: written a minute ago, and one just now.
  const fresh = [`${tmp}/fedcba9876543210fedcba98`, `${tmp}/00000000000000000000aaaa`]
  fs.writeFileSync(fresh[0]!, 'being written')
  fs.utimesSync(fresh[0]!, Date.now() / 1000 - 60, Date.now() / 1000 - 60)
  fs.writeFileSync(fresh[1]!, 'being written')

  const c = await sluice(['check'])
  assert.equal(c.code, 0, c.stderr)
  assert.match(c.stdout, /^2 leftover temporary files \(293\.0 KiB\) of interrupted writes: the next backup removes them$/m)
  const cj = await sluice(['check', '--json'])
  assert.deepEqual(backupSummary<{ leftovers: unknown }>(cj.stdout).leftovers, { files: 2, bytes: 300_000 })
  for (const f of [...old, ...fresh]) assert.ok(fs.existsSync(f), `check removed ${f}`)

  const b = await sluice(['backup', SRC])
  assert.equal(b.code, 0, b.stderr)
  for (const f of old) assert.ok(!fs.existsSync(f), `backup left ${f}`)
  for (const f of fresh) assert.ok(fs.existsSync(f), `backup removed the fresh ${f}`)
  const c2 = await sluice(['check'])
  assert.equal(c2.code, 0, c2.stderr)
  assert.ok(!c2.stdout.includes('leftover'), c2.stdout)
  for (const f of fresh) fs.rmSync(f)
})
