/**
 * `--memory` below the default: the bin runs itself again, once, with node's low-memory flags
 * (cli/main.ts, native `execSelf`): the same process, so exit codes, signals and stdin are the
 * user's as without it. A hook given to node (`--import`, kept across the exec as every other
 * argument) records each start's execArgv. Spawns dist/cli/main.js (run `npm run build` first).
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { spawn } from 'node:child_process'
import { CLI, cliFor } from '../helpers/cli.js'
import { seededBytes } from '../helpers/tree.js'
import { scratch } from '../helpers/scratch.js'
import { LOW_MEMORY_NODE_FLAGS } from '../../lib/limits.js'

const BASE = scratch('cli-low-memory')
const home = `${BASE}/home`
const REPO = `${BASE}/repo`
const PW = 'correct horse'
const sluice = cliFor(home, REPO, PW)
const HOOK = `${BASE}/starts-hook.mjs`

/** A fresh file the hook appends one JSON line to at each start of node: its pid and execArgv. */
function startsFile(name: string): string {
  const file = `${BASE}/${name}.starts`
  fs.rmSync(file, { force: true })
  return file
}

function starts(file: string): { pid: number; execArgv: string[] }[] {
  if (!fs.existsSync(file)) return []
  return fs.readFileSync(file, 'utf8').split('\n').filter(l => l !== '').map(l => JSON.parse(l))
}

/** How many times `flag` is in an execArgv. */
const count = (argv: string[], flag: string) => argv.filter(a => a === flag).length

before(async () => {
  fs.mkdirSync(home, { recursive: true })
  fs.writeFileSync(HOOK, `
import fs from 'node:fs'
if (process.env.SLUICE_TEST_STARTS) fs.appendFileSync(process.env.SLUICE_TEST_STARTS, JSON.stringify({ pid: process.pid, execArgv: process.execArgv }) + '\\n')
`)
  const r = await sluice(['init'])
  assert.equal(r.code, 0, r.stderr)
})

test('--memory below the default runs the flags once, in the same process; the default never', async () => {
  const low = startsFile('low')
  const r = await sluice(['check', '--memory', '64M'], { nodeArgs: ['--import', HOOK], env: { SLUICE_TEST_STARTS: low } })
  assert.equal(r.code, 0, r.stderr)
  const [first, second, ...more] = starts(low)
  assert.deepEqual(more, [])
  assert.ok(first && second, `two starts expected: ${fs.readFileSync(low, 'utf8')}`)
  assert.equal(second.pid, first.pid, 'the run again is the same process')
  for (const flag of LOW_MEMORY_NODE_FLAGS) {
    assert.equal(count(first.execArgv, flag), 0)
    assert.equal(count(second.execArgv, flag), 1, `${flag} once in ${second.execArgv.join(' ')}`)
  }

  // $SLUICE_MEMORY as --memory; the marker of a run that already happened stops a second one.
  const env = startsFile('env')
  assert.equal((await sluice(['snapshots'], { nodeArgs: ['--import', HOOK], env: { SLUICE_TEST_STARTS: env, SLUICE_MEMORY: '64M' } })).code, 0)
  assert.equal(starts(env).length, 2)
  const marked = startsFile('marked')
  assert.equal((await sluice(['check', '--memory=64M'], { nodeArgs: ['--import', HOOK], env: { SLUICE_TEST_STARTS: marked, SLUICE_LOW_MEMORY: '1' } })).code, 0)
  assert.equal(starts(marked).length, 1)

  // The default budget, a larger one, and a value yargs will refuse: no second run.
  for (const args of [[], ['--memory', '95M'], ['--memory', '1G']]) {
    const file = startsFile('default')
    const d = await sluice(['check', ...args], { nodeArgs: ['--import', HOOK], env: { SLUICE_TEST_STARTS: file } })
    assert.equal(d.code, 0, d.stderr)
    assert.equal(starts(file).length, 1, args.join(' '))
  }
  const bad = await sluice(['check', '--memory', 'lots'])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /^sluice: ERR_ARGS: /)
})

test('--memory 64M: the exit code and the one-line error are those of the run without it', async () => {
  const missing = cliFor(home, `${BASE}/no-such-repo`, PW)
  const plain = await missing(['check'])
  const low = await missing(['check', '--memory', '64M'])
  assert.notEqual(plain.code, 0)
  assert.equal(low.code, plain.code)
  assert.equal(low.stderr, plain.stderr)
  assert.equal(low.stderr.trim().split('\n').length, 1, low.stderr)
})

test('--memory 64M: stdin reaches the backup whole', async () => {
  const data = seededBytes('piped', 3 * 1024 * 1024 + 17)
  const b = await sluice(['backup', '--stdin', '--stdin-filename', 'piped.bin', '--memory', '64M'], { input: data })
  assert.equal(b.code, 0, b.stderr)
  const target = `${BASE}/restored`
  const r = await sluice(['restore', 'latest', '--target', target, '--memory', '64M'])
  assert.equal(r.code, 0, r.stderr)
  const found = fs.readdirSync(target, { recursive: true, withFileTypes: true }).filter(e => e.isFile() && e.name === 'piped.bin')
  assert.equal(found.length, 1)
  assert.ok(fs.readFileSync(`${found[0]!.parentPath ?? found[0]!.path}/piped.bin`).equals(data))
})

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`--memory 64M: ${signal} sent to the pid started ends the backup it runs`, async () => {
    const file = startsFile(signal)
    const child = spawn(process.execPath, ['--import', HOOK, CLI, 'backup', '--stdin', '--stdin-filename', 'endless', '--memory', '64M'], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, SLUICE_REPOSITORY: REPO, SLUICE_PASSWORD: PW, SLUICE_TEST_STARTS: file },
      stdio: ['pipe', 'ignore', 'pipe'],
    })
    child.stdin.on('error', () => {})
    let stderr = ''
    child.stderr.on('data', (b: Buffer) => (stderr += b))
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(resolve => child.on('close', (code, sig) => resolve({ code, signal: sig })))
    // Feed stdin until the second start has read some of it: the backup is running then.
    const piece = seededBytes('endless', 64 * 1024)
    let fed = 0
    while (starts(file).length < 2 || fed < 4 * 1024 * 1024) {
      await new Promise<void>(resolve => (child.stdin.write(piece) ? setImmediate(resolve) : child.stdin.once('drain', resolve)))
      fed += piece.length
      assert.equal(child.exitCode, null, stderr)
    }
    assert.equal(starts(file)[1]!.pid, child.pid)
    child.kill(signal)
    const end = await exited
    assert.equal(end.signal, signal, `exit ${end.code}: ${stderr}`)
    // Nothing was committed by the killed backup.
    const snaps = await sluice(['snapshots', '--json'])
    assert.ok(!snaps.stdout.includes('endless'), snaps.stdout)
  })
}
