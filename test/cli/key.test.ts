/**
 * Issue 18 items 1 and 7 as a user meets them, through the built CLI (`npm run build` first):
 * `sluice key list|add|remove|passwd` with --json and one-line coded errors; restic's password
 * sources (--password-file, SLUICE_PASSWORD_FILE, --password-command, SLUICE_PASSWORD_COMMAND,
 * split into words without a shell); a SIGKILL at every storage write of `key passwd` leaves a
 * repository that opens with the old password or the new; `sluice completion bash|zsh`.
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { cliFor, runCli, type CliResult } from '../helpers/cli.js'
import { createLocalStorage, initRepository } from '../../index.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('e2e-task')}/key`
const home = `${BASE}/home`
const FAST_KDF = { opslimit: 1, memlimit: 8192 }
const [A, B, C] = ['password A', 'password B', 'password C']
const pwFile = (pw: string) => `${BASE}/pw-${pw.slice(-1)}`

/** Exit 1 with exactly one line on stderr naming `code`, no stack trace. */
function fails(r: CliResult, code: string, message?: RegExp): void {
  assert.equal(r.code, 1, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  const lines = r.stderr.split('\n').filter(l => l !== '')
  assert.equal(lines.length, 1, r.stderr)
  assert.match(lines[0]!, new RegExp(`^sluice: ${code}: `))
  if (message) assert.match(lines[0]!, message)
}

function ok(r: CliResult): CliResult {
  assert.equal(r.code, 0, `exit ${r.code} ${r.signal ?? ''}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r
}

async function freshRepo(name: string, pw = A): Promise<string> {
  const dir = `${BASE}/${name}`
  const repo = await initRepository(createLocalStorage(dir), pw, { kdf: FAST_KDF })
  await repo.close()
  return dir
}

interface Key { current: boolean; id: string; userName: string; hostName: string; created: string }

before(() => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(home, { recursive: true })
  for (const pw of [A, B, C]) fs.writeFileSync(pwFile(pw), `${pw}\n`)
})

test('key lifecycle: init A, add B, open with B, passwd A→C, the key in use refused, open with C and B', async () => {
  const dir = `${BASE}/life`
  const as = (pw: string) => cliFor(home, dir, pw)
  ok(await as(A)(['init']))
  const added = ok(await as(A)(['key', 'add', '--new-password-file', pwFile(B), '--host', 'laptop', '--user', 'alice', '--json']))
  const idB = (JSON.parse(added.stdout) as { id: string }).id
  const listB = JSON.parse(ok(await as(B)(['key', 'list', '--json'])).stdout) as Key[]
  assert.equal(listB.length, 2)
  const idA = listB.find(k => !k.current)!.id
  assert.deepEqual(listB.find(k => k.current), { ...listB.find(k => k.id === idB)!, current: true, hostName: 'laptop', userName: 'alice' })
  // The table: restic's columns, * on the key in use.
  const table = ok(await as(A)(['key', 'list'])).stdout.split('\n')
  assert.match(table[0]!, /^ ID\s+User\s+Host\s+Created/)
  assert.ok(table.some(l => l.startsWith(`*${idA.slice(0, 8)}`)), table.join('\n'))
  assert.ok(table.some(l => l.startsWith(` ${idB.slice(0, 8)}`) && l.includes('alice') && l.includes('laptop')), table.join('\n'))

  fails(await as(A)(['key', 'remove', idA.slice(0, 8)]), 'ERR_KEY_IN_USE', /refusing to remove key currently used to access repository/)
  fails(await as(A)(['key', 'remove', 'ffffffff']), 'ERR_KEY_NOT_FOUND')
  fails(await as(A)(['key', 'remove']), 'ERR_ARGS')
  fails(await as(A)(['key']), 'ERR_ARGS')

  const changed = JSON.parse(ok(await as(A)(['key', 'passwd', '--new-password-file', pwFile(C), '--json'])).stdout) as { id: string; removed: string }
  assert.equal(changed.removed, idA)
  fails(await as(A)(['key', 'list']), 'ERR_WRONG_PASSWORD')
  const listC = JSON.parse(ok(await as(C)(['key', 'list', '--json'])).stdout) as Key[]
  assert.deepEqual(listC.map(k => [k.id, k.current]).sort(), [[changed.id, true], [idB, false]].sort())
  ok(await as(B)(['key', 'list']))
  fails(await as(C)(['key', 'remove', changed.id]), 'ERR_KEY_IN_USE')
  assert.match(ok(await as(B)(['key', 'remove', changed.id.slice(0, 8)])).stdout, new RegExp(`removed key ${changed.id}`))
  fails(await as(C)(['key', 'list']), 'ERR_WRONG_PASSWORD')
  // A damaged key file: named on stderr, skipped, exit 3 (something was left out).
  const bad = `${dir}/keys/${'ab'.repeat(32)}`
  fs.writeFileSync(bad, '{"version": 1}')
  const damaged = await as(B)(['key', 'list', '--json'])
  assert.equal(damaged.code, 3, damaged.stderr)
  assert.equal((JSON.parse(damaged.stdout) as Key[]).length, 1)
  assert.match(damaged.stderr, new RegExp(`^sluice: warning: ERR_CORRUPT: key file keys/${'ab'.repeat(32)} is damaged[^\\n]*\\n$`))
  fs.rmSync(bad)
  // Without a terminal a new password can only come from a file; an empty one is refused.
  fails(await as(B)(['key', 'add']), 'ERR_ARGS', /--new-password-file/)
  fs.writeFileSync(`${BASE}/empty`, '\n')
  fails(await as(B)(['key', 'add', '--new-password-file', `${BASE}/empty`]), 'ERR_ARGS', /empty new password/)
})

test("password sources in restic's order: command, file, SLUICE_PASSWORD; a command is split into words, no shell", async () => {
  const dir = await freshRepo('sources', 'it is "B"')
  const run = (args: string[], env: Record<string, string>) => runCli(['key', 'list', ...args], { home, env: { SLUICE_REPOSITORY: dir, ...env } })
  const file = `${BASE}/pw-quoted`
  fs.writeFileSync(file, 'it is "B"\n')
  ok(await run(['--password-file', file], {}))
  ok(await run(['-p', file], {}))
  ok(await run([], { SLUICE_PASSWORD_FILE: file }))
  // A file beats SLUICE_PASSWORD; a command beats both.
  ok(await run(['--password-file', file], { SLUICE_PASSWORD: 'wrong' }))
  // Quotes group words and are removed; $HOME and the pipe reach printf as plain words (no
  // shell ran): the password is exactly what printf prints.
  ok(await run(['--password-command', `printf '%s %s "%s"' it is B`], { SLUICE_PASSWORD: 'wrong' }))
  ok(await run([], { SLUICE_PASSWORD_COMMAND: `printf "it is \\"%s\\"\\n" B` }))
  fails(await run(['--password-command', 'printf "$HOME|x"'], {}), 'ERR_WRONG_PASSWORD')
  const shellWords = await runCli(['key', 'list', '--password-command', `sh -c 'echo "$0" > ${BASE}/argv0' 'a b'`], { home, env: { SLUICE_REPOSITORY: dir } })
  fails(shellWords, 'ERR_ARGS', /empty password/)
  assert.equal(fs.readFileSync(`${BASE}/argv0`, 'utf8'), 'a b\n')
  // Refusals: both sources, a failing command, an unterminated quote, nothing at all.
  fails(await run(['--password-file', file, '--password-command', 'echo x'], {}), 'ERR_ARGS', /password file and command are mutually exclusive options/)
  fails(await run(['--password-command', 'echo x'], { SLUICE_PASSWORD_FILE: file }), 'ERR_ARGS', /mutually exclusive/)
  fails(await run(['--password-command', 'false'], {}), 'ERR_ARGS', /password command "false" failed: exited with code 1/)
  fails(await run(['--password-command', 'no-such-command-here'], {}), 'ERR_ARGS', /ENOENT/)
  fails(await run(['--password-command', `echo 'open`], {}), 'ERR_ARGS', /single-quoted string not terminated/)
  fails(await run([], {}), 'ERR_ARGS', /no password/)
})

test('a SIGKILL at every storage write of key passwd leaves a repository that opens with the old password or the new', async () => {
  const template = await freshRepo('kill-template')
  const hook = (n: number) => {
    const file = `${BASE}/kill-at-${n}.mjs`
    // Counts the calls that change the repository directory (a temp file created for writing,
    // a link into place, an unlink) and kills the process before the n-th.
    fs.writeFileSync(file, `
import fs from 'node:fs'
import { syncBuiltinESMExports } from 'node:module'
let calls = 0
const before = () => { if (++calls === ${n}) process.kill(process.pid, 'SIGKILL') }
for (const name of ['link', 'unlink', 'open']) {
  const real = fs.promises[name]
  fs.promises[name] = function (...args) {
    if (name !== 'open' || String(args[1]).includes('w')) before()
    return real.apply(this, args)
  }
}
// The local storage links and unlinks synchronously when it moves or deletes.
for (const name of ['linkSync', 'unlinkSync']) {
  const real = fs[name]
  fs[name] = function (...args) {
    before()
    return real.apply(this, args)
  }
}
syncBuiltinESMExports()
`)
    return file
  }
  let killed = 0
  for (let n = 1; ; n++) {
    const dir = `${BASE}/kill-${n}`
    fs.cpSync(template, dir, { recursive: true })
    const r = await cliFor(home, dir, A)(['key', 'passwd', '--new-password-file', pwFile(C)], { nodeArgs: ['--import', hook(n)] })
    const [a, c] = [await cliFor(home, dir, A)(['key', 'list']), await cliFor(home, dir, C)(['key', 'list'])]
    assert.ok(a.code === 0 || c.code === 0, `killed before write ${n}: neither password opens\n${a.stderr}${c.stderr}`)
    if (r.signal === null) {
      ok(r)
      fails(a, 'ERR_WRONG_PASSWORD')
      ok(c)
      break
    }
    assert.equal(r.signal, 'SIGKILL')
    killed++
  }
  // Every write was a kill point: the new key's temp file, its link, the temp's removal, the old key's removal.
  assert.ok(killed >= 4, `only ${killed} kill points`)
})

test('completion bash|zsh prints a script that names sluice and calls back for its commands', async () => {
  const bash = ok(await runCli(['completion', 'bash'], { home }))
  assert.match(bash.stdout, /###-begin-sluice-completions-###/)
  assert.match(bash.stdout, /complete -o bashdefault -o default -F _sluice_yargs_completions sluice/)
  assert.match(bash.stdout, /sluice --get-yargs-completions/)
  assert.match(bash.stdout, /sluice completion bash >> ~\/\.bashrc/)
  const zsh = ok(await runCli(['completion', 'zsh'], { home }))
  assert.match(zsh.stdout, /^#compdef sluice/)
  assert.match(zsh.stdout, /compdef _sluice_yargs_completions sluice/)
  // The callback the scripts make: the commands, then a command's options.
  const words = ok(await runCli(['--get-yargs-completions', 'sluice', ''], { home })).stdout.split('\n')
  for (const c of ['init', 'backup', 'restore', 'key', 'tag', 'check', 'completion']) assert.ok(words.includes(c), words.join(' '))
  const keyWords = ok(await runCli(['--get-yargs-completions', 'sluice', 'key', ''], { home })).stdout.split('\n')
  for (const c of ['list', 'add', 'remove', 'passwd']) assert.ok(keyWords.includes(c), keyWords.join(' '))
  const opts = ok(await runCli(['--get-yargs-completions', 'sluice', 'check', '--'], { home })).stdout
  assert.match(opts, /--read-data-subset/)
  fails(await runCli(['completion', 'fish'], { home }), 'ERR_ARGS')
})
