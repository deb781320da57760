/**
 * The pipe features end to end, through the built CLI and the real GNU tar and bsdtar:
 * `tar c | sluice backup --tar`, `sluice restore --tar | tar x`, `... | sluice backup --stdin`,
 * `--stdin-from-command`, `sluice cat`, broken archives on stdin, a reader that goes away
 * (`| head -c 100`), and stdout that carries nothing but the data.
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createCipheriv, createHash } from 'node:crypto'
import { execFileSync, spawnSync } from 'node:child_process'
import net from 'node:net'
import { Readable } from 'node:stream'
import { cliFor, type CliResult, backupSummary } from '../helpers/cli.js'
import { buildHostileTree, compareTrees, listTree, seededBytes, NAMES } from '../helpers/tree.js'
import { createLocalStorage, initRepository } from '../../index.js'
import { scratch } from '../helpers/scratch.js'

const BASE = scratch('pipes-task')
const home = `${BASE}/home`
const PW = 'correct horse'
const TREE = `${BASE}/src/tree`
const MiB = 1024 * 1024

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

/** A fresh repository (cheap key derivation) and a CLI runner bound to it. */
async function newRepo(name: string) {
  const dir = `${BASE}/repo-${name}`
  const r = await initRepository(createLocalStorage(dir), PW, { kdf: { opslimit: 1, memlimit: 8192 } })
  await r.close()
  return { dir, sluice: cliFor(home, dir, PW) }
}

function snapshotFiles(repo: string): string[] {
  return fs.existsSync(`${repo}/snapshots`) ? fs.readdirSync(`${repo}/snapshots`) : []
}

function ok(r: CliResult, what: string): void {
  assert.equal(r.code, 0, `${what}: exit ${r.code} ${r.signal ?? ''}\nstderr: ${r.stderr}`)
}

/** Exit 1 with exactly one line on stderr that names `code`, and no stack trace. */
function assertFails(r: CliResult, code: string): void {
  assert.equal(r.code, 1, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  const lines = r.stderr.split('\n').filter((l) => l !== '')
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`)
  assert.match(lines[0]!, new RegExp(`^sluice: ${code}: `))
  assert.ok(!r.stderr.includes('    at '), `stack trace on stderr:\n${r.stderr}`)
}

/** A fresh, empty directory. */
function fresh(name: string): string {
  const dir = `${BASE}/out/${name}`
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir, { recursive: true })
  return dir
}

/** Extracts a tar stream with GNU tar (as root: owners, modes, xattrs) or bsdtar into `dir`. */
function untar(tool: 'tar' | 'bsdtar', archive: Buffer, dir: string): void {
  // The tree has pre-1970 mtimes on purpose; GNU tar warns about those ("implausibly old").
  const args = tool === 'tar' ? ['--xattrs', '--xattrs-include=*', '--warning=no-timestamp', '-xf', '-'] : ['-xpf', '-']
  const r = spawnSync(tool, args, { cwd: dir, input: archive, maxBuffer: 16 * MiB })
  assert.equal(r.status, 0, `${tool} x failed: ${r.stderr.toString()}`)
  assert.equal(r.stderr.toString(), '', `${tool} x complained`)
}

/** An endless-looking seeded byte stream of `n` bytes, in 1 MiB pieces, hashed as it goes. */
function seededStream(seed: string, n: number): { stream: Readable; digest: () => string } {
  const cipher = createCipheriv('aes-256-ctr', createHash('sha256').update(seed).digest(), Buffer.alloc(16))
  const hash = createHash('sha256')
  const zeros = Buffer.alloc(MiB)
  let left = n
  const stream = new Readable({
    highWaterMark: MiB,
    read() {
      if (left === 0) return void this.push(null)
      const piece = cipher.update(zeros.subarray(0, Math.min(left, MiB)))
      left -= piece.length
      hash.update(piece)
      this.push(piece)
    },
  })
  return { stream, digest: () => hash.digest('hex') }
}

let tarRepo: Awaited<ReturnType<typeof newRepo>>
/** GNU tar (PAX, user xattrs) of the hostile tree. */
let gnuArchive: Buffer

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(`${BASE}/src`, { recursive: true })
  fs.mkdirSync(home, { recursive: true })
  buildHostileTree(TREE)
  gnuArchive = execFileSync('tar', ['--format=posix', '--xattrs', '--xattrs-include=user.*', '-cf', '-', '.'], {
    cwd: TREE,
    maxBuffer: 64 * MiB,
  })
  tarRepo = await newRepo('tar')
})

test('tar c | backup --tar | restore --tar | tar x gives back the tree GNU tar archived', async () => {
  const { sluice, dir } = tarRepo
  const b = await sluice(['backup', '--tar', '--stdin-filename', 'srv', '--json'], { input: gnuArchive })
  ok(b, 'backup --tar')
  const summary = backupSummary(b.stdout) as { snapshot: string; files: number }
  assert.ok(summary.files > 10, b.stdout)
  assert.equal(snapshotFiles(dir).length, 1)

  const r = await sluice(['restore', '--tar', 'latest'])
  ok(r, 'restore --tar')
  const gnuOut = fresh('tar-gnu')
  untar('tar', r.stdoutBytes, gnuOut)
  assert.deepEqual(compareTrees(TREE, `${gnuOut}/srv`, { root: true }), [])

  // bsdtar reads the same stream to the same names and contents.
  const bsdOut = fresh('tar-bsd')
  untar('bsdtar', r.stdoutBytes, bsdOut)
  const names = (d: string) => listTree(d).map((p) => p.toString('latin1')).sort()
  assert.deepEqual(names(`${bsdOut}/srv`), names(TREE))
  const contentDiffs = compareTrees(TREE, `${bsdOut}/srv`).filter((l) => /missing|only in|type|content|size|symlink target/.test(l))
  assert.deepEqual(contentDiffs, [])
  assert.ok(fs.existsSync(Buffer.from(`${bsdOut}/srv/names/${NAMES.nonUtf8.toString('latin1')}`, 'latin1')))

  // A directory restore of the tar-sourced snapshot gives the same tree.
  const target = fresh('tar-dir')
  ok(await sluice(['restore', '--target', target, 'latest']), 'restore --target')
  assert.deepEqual(compareTrees(TREE, `${target}/srv`, { root: true }), [])
})

test('restore --tar of a walked snapshot extracts to what a directory restore gives', async () => {
  const { sluice } = await newRepo('walk')
  ok(await sluice(['backup', TREE]), 'backup')
  const r = await sluice(['restore', '--tar', 'latest'])
  ok(r, 'restore --tar')
  const viaTar = fresh('walk-tar')
  untar('tar', r.stdoutBytes, viaTar)
  const viaDir = fresh('walk-dir')
  ok(await sluice(['restore', '--target', viaDir, 'latest']), 'restore --target')
  assert.deepEqual(compareTrees(viaDir, viaTar), [])
  assert.deepEqual(compareTrees(TREE, `${viaTar}${TREE}`, { root: true }), [])
})

test('backup --stdin of 20 MB: cat gives the same bytes; the same stream again stores almost nothing', async () => {
  const { sluice, dir } = await newRepo('stdin')
  const data = seededBytes('db.sql', 20 * MiB + 777)
  const first = await sluice(['backup', '--stdin', '--stdin-filename', 'db.sql', '--json'], { input: data })
  ok(first, 'backup --stdin')
  const s1 = backupSummary(first.stdout) as { files: number; bytesRead: number; bytesStored: number }
  assert.equal(s1.files, 1)
  assert.equal(s1.bytesRead, data.length)
  assert.ok(s1.bytesStored > 19 * MiB, `first backup stored only ${s1.bytesStored} bytes of random data`)

  const c = await sluice(['cat', 'latest', 'db.sql'])
  ok(c, 'cat')
  assert.equal(c.stdoutBytes.length, data.length)
  assert.equal(sha(c.stdoutBytes), sha(data))
  const c2 = await sluice(['cat', 'latest:db.sql'])
  ok(c2, 'cat SNAP:PATH')
  assert.equal(sha(c2.stdoutBytes), sha(data))

  const second = await sluice(['backup', '--stdin', '--stdin-filename', 'db.sql', '--json'], { input: data })
  ok(second, 'second backup --stdin')
  const s2 = backupSummary(second.stdout) as { bytesStored: number; bytesRead: number }
  assert.equal(s2.bytesRead, data.length)
  assert.ok(s2.bytesStored < 64 * 1024, `the same stream again stored ${s2.bytesStored} bytes`)
  assert.equal(snapshotFiles(dir).length, 2)
})

test('--stdin-from-command: a failing command fails the backup with its stderr shown and no snapshot', async () => {
  const { sluice, dir } = await newRepo('command')
  const bad = await sluice(['backup', '--stdin-from-command', '--stdin-filename', 'out.txt', '--', 'sh', '-c', 'printf data; echo oops >&2; exit 1'])
  assert.notEqual(bad.code, 0)
  assert.match(bad.stderr, /oops/)
  const errLines = bad.stderr.split('\n').filter((l) => l.startsWith('sluice: '))
  assert.equal(errLines.length, 1, bad.stderr)
  assert.match(errLines[0]!, /^sluice: ERR_COMMAND: .*exited with code 1/)
  assert.ok(!bad.stderr.includes('    at '), bad.stderr)
  assert.deepEqual(bad.stderr.split('\n').filter((l) => l !== '' && l !== 'oops' && !l.startsWith('sluice: ')), [], bad.stderr)
  assert.equal(snapshotFiles(dir).length, 0)

  const missing = await sluice(['backup', '--stdin-from-command', '--', '/nonexistent/sluice-no-such-command', 'x'])
  assertFails(missing, 'ERR_COMMAND')
  assert.match(missing.stderr, /cannot start command \/nonexistent\/sluice-no-such-command x/)
  const killed = await sluice(['backup', '--stdin-from-command', '--', 'sh', '-c', 'printf partial; kill -9 $$'])
  assertFails(killed, 'ERR_COMMAND')
  assert.match(killed.stderr, /was killed by SIGKILL/)
  assertFails(await sluice(['backup', '--stdin-from-command']), 'ERR_ARGS')
  assert.equal(snapshotFiles(dir).length, 0)

  const good = await sluice(['backup', '--stdin-from-command', '--stdin-filename', 'out.txt', '--', 'sh', '-c', 'printf "from the command\\n"; seq 1 5000'])
  ok(good, 'backup --stdin-from-command')
  assert.equal(snapshotFiles(dir).length, 1)
  const c = await sluice(['cat', 'latest', 'out.txt'])
  ok(c, 'cat')
  const want = 'from the command\n' + Array.from({ length: 5000 }, (_, i) => `${i + 1}\n`).join('')
  assert.equal(c.stdout.length, want.length)
  assert.ok(c.stdout === want, 'cat gives other bytes than the command wrote')
})

test('a truncated or corrupt tar on stdin fails with one ERR_TAR line and writes no snapshot', async (t) => {
  const { sluice, dir } = await newRepo('bad-tar')
  const good = fs.readFileSync('fixtures/tar/small.tar')
  const garbage = Buffer.concat([good.subarray(0, 1024), seededBytes('garbage', 8192)])
  const cases: [string, Buffer][] = [
    ['truncated.tar', fs.readFileSync('fixtures/tar/truncated.tar')],
    ['corrupt-checksum.tar', fs.readFileSync('fixtures/tar/corrupt-checksum.tar')],
    ['no-eof.tar', fs.readFileSync('fixtures/tar/no-eof.tar')],
    ['dotdot.tar', fs.readFileSync('fixtures/tar/dotdot.tar')],
    ['GNU tar cut in the middle of a file', gnuArchive.subarray(0, Math.floor(gnuArchive.length / 2))],
    ['garbage after a valid member', garbage],
  ]
  for (const [name, bytes] of cases) {
    const r = await sluice(['backup', '--tar', '--stdin-filename', 'x'], { input: bytes })
    await t.test(name, () => assertFails(r, 'ERR_TAR'))
    assert.equal(snapshotFiles(dir).length, 0, `${name} left a snapshot`)
  }
})

// The reader going away must end the command by itself, exit 0 and quiet; the hang guard
// (timeoutMs, which kills the child) is the only clock, so machine load cannot fail it.
test('restore --tar | head -c 100 and cat | head -c 100 end on their own and quietly', async () => {
  const { sluice } = await newRepo('head')
  const data = seededBytes('big', 50 * MiB)
  ok(await sluice(['backup', '--stdin', '--stdin-filename', 'big.bin'], { input: data }), 'backup')

  for (const args of [['restore', '--tar', 'latest'], ['cat', 'latest', 'big.bin']]) {
    const r = await sluice(args, { stdoutLimit: 100, timeoutMs: 60_000 })
    const what = args.join(' ')
    assert.equal(r.signal, null, `${what} was killed (${r.signal}): it did not stop when its reader went away`)
    assert.equal(r.code, 0, `${what}: exit ${r.code}\n${r.stderr}`)
    assert.ok(!/sluice: ERR|    at |Error/.test(r.stderr), `${what} stderr:\n${r.stderr}`)
    assert.equal(r.stdoutBytes.length, 100)
    if (args[0] === 'cat') assert.ok(r.stdoutBytes.equals(data.subarray(0, 100)))
  }
})

test('restore --tar writes only tar to stdout; the summary goes to stderr', async () => {
  const { sluice } = await newRepo('stdout')
  // backup --json: stdout is the one JSON line, nothing else.
  const b = await sluice(['backup', '--tar', '--stdin-filename', 'srv', '--json'], { input: gnuArchive })
  ok(b, 'backup --tar --json')
  // restic's shape: status lines, then exactly one summary (backupSummary checks).
  const id = (backupSummary(b.stdout) as { snapshot: string }).snapshot

  const r = await sluice(['restore', '--tar', 'latest'])
  ok(r, 'restore --tar')
  const out = r.stdoutBytes
  assert.equal(out.length % 512, 0)
  assert.ok(out.subarray(out.length - 1024).every((x) => x === 0), 'no end-of-archive blocks')
  const list = spawnSync('tar', ['-tvf', '-'], { input: out, maxBuffer: 16 * MiB })
  assert.equal(list.status, 0, list.stderr.toString())
  assert.equal(list.stderr.toString(), '')
  const members = list.stdout.toString('latin1').split('\n').filter((l) => l !== '')
  assert.ok(members.length > 20, `only ${members.length} members`)
  // bsdtar reads it to the end as well.
  const bsd = spawnSync('bsdtar', ['-tf', '-'], { input: out, maxBuffer: 16 * MiB })
  assert.equal(bsd.status, 0, bsd.stderr.toString())
  assert.equal(r.stderr, `restored ${members.length} entries of snapshot ${id.slice(0, 8)} as tar\n`)
  // --json changes nothing on stdout: the tar stays alone there.
  const j = await sluice(['restore', '--tar', '--json', 'latest'])
  ok(j, 'restore --tar --json')
  assert.ok(j.stdoutBytes.equals(out), 'restore --tar --json wrote something else to stdout')
})

test('restore --tar of a snapshot holding a socket: a warning on stderr, exit 3, stdout still a whole tar', async () => {
  const { sluice } = await newRepo('socket')
  const dir = `${BASE}/src/with-socket`
  fs.mkdirSync(dir, { recursive: true })
  fs.writeFileSync(`${dir}/before`, 'before\n')
  fs.writeFileSync(`${dir}/zafter`, 'after\n')
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(`${dir}/sock`, resolve))
  try {
    ok(await sluice(['backup', dir]), 'backup')
  } finally {
    server.close()
  }
  const r = await sluice(['restore', '--tar', 'latest'])
  assert.equal(r.code, 3, r.stderr)
  assert.match(r.stderr, /^sluice: warning: ERR_WRITE: .*sock: a socket cannot be stored in a tar; skipped$/m)
  const list = spawnSync('tar', ['-tf', '-'], { input: r.stdoutBytes })
  assert.equal(list.status, 0, list.stderr.toString())
  const names = list.stdout.toString().split('\n').filter((l) => l !== '')
  assert.ok(names.some((n) => n.endsWith('with-socket/before')) && names.some((n) => n.endsWith('with-socket/zafter')), names.join('\n'))
  assert.ok(!names.some((n) => n.endsWith('sock')))
})

test('backup --stdin of a 300 MB stream through a pipe succeeds and cat gives it back', async () => {
  const { sluice } = await newRepo('large')
  const n = 300 * MiB
  const src = seededStream('large', n)
  const b = await sluice(['backup', '--stdin', '--stdin-filename', 'large.bin', '--json'], { input: src.stream, timeoutMs: 60_000 })
  ok(b, 'backup --stdin')
  const summary = backupSummary(b.stdout) as { bytesRead: number; peakRss: number }
  assert.equal(summary.bytesRead, n)
  const hash = createHash('sha256')
  let got = 0
  const c = await sluice(['cat', 'latest', 'large.bin'], {
    timeoutMs: 60_000,
    onStdout: (piece) => {
      got += piece.length
      hash.update(piece)
    },
  })
  ok(c, 'cat')
  assert.equal(got, n)
  assert.equal(hash.digest('hex'), src.digest())
})
