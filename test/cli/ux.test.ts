/**
 * The command line as a restic user meets it (issue 17): help, the snapshots table in local time,
 * restic's JSON shapes, progress with percent and ETA on a terminal, and the flags restic users
 * type without thinking. Spawns dist/cli/main.js (run `npm run build` first).
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import { CLI, backupSummary, cliFor, runCli, type CliResult } from '../helpers/cli.js'
import { seededBytes } from '../helpers/tree.js'
import { scratch } from '../helpers/scratch.js'
import { createLocalStorage, initRepository } from '../../index.js'

const BASE = scratch('cli-ux')
const home = `${BASE}/home`
const PW = 'correct horse'
const REPO = `${BASE}/repo`
const SRC = `${BASE}/src`
const NY = { TZ: 'America/New_York' }
const sluice = cliFor(home, REPO, PW)
/** SRC as a regular expression. */
const SRC_RE = SRC.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')

/** Exit 1 with exactly one line on stderr that names `code`, and no stack trace. */
function assertFails(r: CliResult, code: string, message?: RegExp): void {
  assert.equal(r.code, 1, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  const lines = r.stderr.split('\n').filter(l => l !== '')
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`)
  assert.match(lines[0]!, new RegExp(`^sluice: ${code}: `))
  if (message) assert.match(lines[0]!, message)
}

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r
}

const jsonLines = (s: string) => s.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as Record<string, unknown>)
const snapshotFiles = (repo: string) => fs.readdirSync(`${repo}/snapshots`).sort()

/** A fresh repository with a cheap key derivation. */
async function freshRepo(dir: string): Promise<ReturnType<typeof cliFor>> {
  const repo = await initRepository(createLocalStorage(dir), PW, { kdf: { opslimit: 1, memlimit: 8192 } })
  await repo.close()
  return cliFor(home, dir, PW)
}

before(async () => {
  fs.mkdirSync(home, { recursive: true })
  fs.mkdirSync(`${SRC}/docs`, { recursive: true })
  fs.mkdirSync(`${SRC}/cache`, { recursive: true })
  fs.mkdirSync(`${SRC}/fake-cache`, { recursive: true })
  fs.writeFileSync(`${SRC}/a.txt`, 'a\n')
  fs.writeFileSync(`${SRC}/README.MD`, 'read me\n')
  fs.writeFileSync(`${SRC}/docs/big.bin`, seededBytes('big', 300_000))
  fs.writeFileSync(`${SRC}/cache/CACHEDIR.TAG`, 'Signature: 8a477f597d28d172789f06886806bc55\n# a cache\n')
  fs.writeFileSync(`${SRC}/cache/blob`, 'cached\n')
  // A tag without the signature does not make a cache directory.
  fs.writeFileSync(`${SRC}/fake-cache/CACHEDIR.TAG`, 'not a signature\n')
  fs.writeFileSync(`${SRC}/fake-cache/kept`, 'kept\n')
  // 2021-06-15 12:00:00 UTC: 08:00 in New York (EDT).
  fs.utimesSync(`${SRC}/a.txt`, 1623758400, 1623758400)
  await freshRepo(REPO)
})

// --- help ---------------------------------------------------------------------------------

test('sluice alone prints the usage and one coded error line, exit 1', async () => {
  const r = await runCli([], { home })
  assert.equal(r.code, 1)
  assert.match(r.stderr, /sluice <command> \[options\]/)
  for (const c of ['init', 'backup', 'snapshots', 'ls', 'restore', 'check', 'cat', 'diff', 'forget', 'stats']) assert.match(r.stderr, new RegExp(`sluice ${c}\\b`))
  const last = r.stderr.trimEnd().split('\n').at(-1)!
  assert.match(last, /^sluice: ERR_ARGS: give a command/)
  assert.ok(!r.stderr.includes('    at '))
})

test('sluice help backup, sluice backup -h and --help print the same help: examples, defaults, environment, exit codes', async () => {
  const a = await runCli(['help', 'backup'], { home })
  const b = await runCli(['backup', '-h'], { home })
  const c = await runCli(['backup', '--help'], { home })
  for (const r of [a, b, c]) {
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.stderr, '')
  }
  assert.equal(a.stdout, c.stdout)
  assert.equal(b.stdout, c.stdout)
  const h = a.stdout
  assert.match(h, /^sluice backup \[paths\.\.\]/)
  assert.match(h, /Examples:\n {2}sluice backup /)
  assert.match(h, /\[default: auto\]/)
  assert.match(h, /\[default: this host\]/)
  for (const v of ['SLUICE_REPOSITORY', 'SLUICE_PASSWORD', 'SLUICE_DEBUG']) assert.match(h, new RegExp(v))
  assert.match(h, /Exit codes:\n {2}0 {2}success\n {2}1 {2}failure/)
  assert.match(h, / {2}3 {2}done, but something was left out/)
  for (const flag of ['--dry-run', '--files-from', '--files-from-raw', '--exclude-caches', '--iexclude', '--iinclude', '--verbose', '--quiet', '--time', '--tag', '--json']) {
    assert.match(h, new RegExp(`${flag}\\b`), `backup help lacks ${flag}`)
  }
})

/** The commands a help lists, by their first word (`sluice key <command>` → key). */
function commandsOf(help: string): string[] {
  const block = help.split('Commands:\n')[1]?.split('\n\n')[0] ?? ''
  return [...block.matchAll(/^ {2}sluice (?:key )?([a-z-]+)/gm)].map(m => m[1]!)
}

test('every command and key subcommand has two or three examples, the environment and its exit codes in its help', async () => {
  const commands = commandsOf((await runCli(['--help'], { home })).stdout)
  // The list comes from the usage, so a command added later is held to the same rule.
  for (const c of ['init', 'backup', 'snapshots', 'ls', 'restore', 'check', 'cat', 'diff', 'forget', 'stats', 'prune', 'copy', 'find', 'key', 'tag', 'completion']) assert.ok(commands.includes(c), `${c} missing from the usage`)
  const keyCommands = commandsOf((await runCli(['key', '--help'], { home })).stdout)
  assert.deepEqual(keyCommands, ['list', 'add', 'remove', 'passwd'])
  for (const argv of [...commands.map(c => [c]), ...keyCommands.map(c => ['key', c])]) {
    const c = argv.join(' ')
    const r = await runCli([...argv, '--help'], { home })
    assert.equal(r.code, 0, `${c}: ${r.stderr}`)
    assert.equal(r.stderr, '', c)
    // An example's first line holds the command (wrapped lines of a long one do not).
    const examples = r.stdout.split('Examples:\n')[1]?.split('\n\n')[0] ?? ''
    const n = examples.split('\n').filter(l => /^ {2}(?:\S.*)?\bsluice [a-z]/.test(l)).length
    assert.ok(n >= 2 && n <= 3, `${c}: ${n} examples\n${r.stdout}`)
    assert.match(r.stdout, /\nEnvironment:\n {2}\S/, c)
    if (c !== 'completion') for (const v of ['SLUICE_REPOSITORY', 'SLUICE_PASSWORD', 'SLUICE_PASSWORD_FILE', 'SLUICE_DEBUG']) assert.match(r.stdout, new RegExp(`\\b${v}\\b`), `${c} lacks ${v}`)
    assert.match(r.stdout, /\nExit codes:\n {2}0 {2}\S.*\n(?:.*\n)*? {2}1 {2}\S/, c)
    if (c === 'check') assert.match(r.stdout, / {2}1 {2}problems found/)
  }
  // Defaults are shown where an option has one.
  const prune = (await runCli(['prune', '--help'], { home })).stdout
  for (const d of ['24h', '30m', '1h']) assert.match(prune, new RegExp(`\\[default: ${d}\\]`))
  assert.match((await runCli(['completion', '--help'], { home })).stdout, /source <\(sluice completion bash\)/)
})

test('a mistyped command suggests the right one, in one coded line', async () => {
  assertFails(await runCli(['snapshot'], { home }), 'ERR_ARGS', /unknown command "snapshot": did you mean snapshots\?$/)
  assertFails(await runCli(['bakup', '/x'], { home }), 'ERR_ARGS', /did you mean backup\?$/)
  assertFails(await runCli(['frobnicate'], { home }), 'ERR_ARGS', /unknown command "frobnicate" \(see sluice --help\)$/)
  assertFails(await runCli(['help', 'snapshot'], { home }), 'ERR_ARGS', /did you mean snapshots\?$/)
  const help = await runCli(['help'], { home })
  assert.equal(help.code, 0)
  assert.match(help.stdout, /sluice help COMMAND/)
})

// --- snapshots ------------------------------------------------------------------------------

test('snapshots under TZ=America/New_York: local times, oldest first, aligned, a count; --utc; --group-by', async () => {
  const run = await freshRepo(`${BASE}/repo-times`)
  // Made out of time order, each at a time given in New York's local time.
  const times = ['2024-07-04 23:15:00', '2023-12-25 08:30:00', '2024-03-01 10:00:00']
  const ids: string[] = []
  for (const [i, t] of times.entries()) {
    const b = ok(await run(['backup', '--json', '--time', t, '--host', i === 1 ? 'laptop' : 'server', `${SRC}/docs`], { env: NY }), `backup at ${t}`)
    ids.push(backupSummary<{ snapshot_id: string }>(b.stdout).snapshot_id)
  }
  const r = ok(await run(['snapshots'], { env: NY }), 'snapshots')
  const lines = r.stdout.trimEnd().split('\n')
  assert.match(lines[0]!, /^ID {8}Time {17}Host {4}Tags {2}Paths +Size$/)
  assert.match(lines[1]!, /^-+$/)
  const rows = lines.slice(2, 5)
  assert.deepEqual(rows.map(l => l.slice(0, 8)), [ids[1], ids[2], ids[0]].map(id => id!.slice(0, 8)))
  assert.deepEqual(rows.map(l => l.slice(10, 29)), ['2023-12-25 08:30:00', '2024-03-01 10:00:00', '2024-07-04 23:15:00'])
  // Aligned: every column starts where its header does.
  for (const [col, cell] of [['Host', /^(server|laptop)/], ['Paths', new RegExp(`^${SRC}/docs`)], ['Size', /^293\.0 KiB$/]] as const) {
    const at = lines[0]!.indexOf(col)
    for (const row of rows) {
      assert.equal(row.slice(at - 2, at), '  ', `${col} not aligned:\n${r.stdout}`)
      assert.match(row.slice(at), cell, `${col} not aligned:\n${r.stdout}`)
    }
  }
  assert.ok(rows.every(l => / 293\.0 KiB$/.test(l)), r.stdout)
  assert.match(lines[5]!, /^-+$/)
  assert.equal(lines[6], '3 snapshots')

  const utc = ok(await run(['snapshots', '--utc'], { env: NY }), 'snapshots --utc')
  assert.match(utc.stdout, /^ID {8}Time \(UTC\)/)
  // EST is UTC-5 in December, EDT UTC-4 in July.
  assert.match(utc.stdout, /2023-12-25 13:30:00/)
  assert.match(utc.stdout, /2024-07-05 03:15:00/)

  const g = ok(await run(['snapshots', '--group-by', 'host'], { env: NY }), 'snapshots --group-by host')
  const headers = g.stdout.split('\n').filter(l => l.startsWith('snapshots for'))
  assert.deepEqual(headers.sort(), ['snapshots for (host laptop):', 'snapshots for (host server):'])
  assert.match(g.stdout, /^1 snapshots$/m)
  assert.match(g.stdout, /^2 snapshots$/m)
  const gj = JSON.parse(ok(await run(['snapshots', '--group-by', 'host', '--json']), 'group json').stdout) as { group_key: Record<string, unknown>; snapshots: { id: string }[] }[]
  assert.deepEqual(gj.map(x => Object.keys(x.group_key)).at(0), ['hostname', 'paths', 'tags'])
  const server = gj.find(x => x.group_key.hostname === 'server')!
  assert.deepEqual(server.snapshots.map(s => s.id), [ids[2], ids[0]])
})

test('snapshots --json has restic field names; --tag a,b is two tags', async () => {
  ok(await sluice(['backup', '-q', '--tag', 'daily,laptop', '--tag', 'x', `${SRC}/docs`]), 'backup')
  const list = JSON.parse(ok(await sluice(['snapshots', '--json']), 'snapshots --json').stdout) as Record<string, unknown>[]
  const s = list.at(-1)!
  assert.deepEqual(Object.keys(s), ['time', 'tree', 'paths', 'hostname', 'username', 'tags', 'program_version', 'summary', 'id', 'short_id'])
  assert.deepEqual(s.tags, ['daily', 'laptop', 'x'])
  assert.equal(s.short_id, (s.id as string).slice(0, 8))
  assert.match(s.tree as string, /^[0-9a-f]{64}$/)
  assert.deepEqual(Object.keys(s.summary as object), ['files_new', 'files_changed', 'files_unmodified', 'data_added', 'total_files_processed', 'total_bytes_processed'])
  // Filtered as restic: --tag a,b means both.
  const both = JSON.parse(ok(await sluice(['snapshots', '--json', '--tag', 'daily,x']), 'tag filter').stdout) as unknown[]
  assert.equal(both.length, 1)
  const none = JSON.parse(ok(await sluice(['snapshots', '--json', '--tag', 'daily,nope']), 'tag filter').stdout) as unknown[]
  assert.equal(none.length, 0)
})

test('ls -l shows local times (and --utc UTC); ls SNAP DIR lists one directory', async () => {
  ok(await sluice(['backup', '-q', SRC]), 'backup')
  const l = ok(await sluice(['ls', '-l', 'latest', `${SRC}/a.txt`], { env: NY }), 'ls -l')
  assert.match(l.stdout, new RegExp(`^-rw\\S+ +\\d+ +\\d+ +2 2021-06-15 08:00:00 ${SRC_RE}/a\\.txt$`, 'm'))
  const u = ok(await sluice(['ls', '-l', '--utc', 'latest', `${SRC}/a.txt`], { env: NY }), 'ls -l --utc')
  assert.match(u.stdout, / 2021-06-15 12:00:00 /)
  const d = ok(await sluice(['ls', 'latest', `${SRC}/docs`]), 'ls SNAP DIR')
  assert.deepEqual(d.stdout.trimEnd().split('\n'), [`${SRC}/docs`, `${SRC}/docs/big.bin`])
})

// --- JSON -----------------------------------------------------------------------------------

test('backup --json: status lines then exactly one summary, in restic names', async () => {
  const b = ok(await sluice(['backup', '--json', '--force', SRC]), 'backup --json')
  assert.equal(b.stderr, '')
  const msgs = jsonLines(b.stdout)
  const status = msgs.filter(m => m.message_type === 'status')
  assert.ok(status.length >= 1, b.stdout)
  assert.equal(msgs[0]!.message_type, 'status')
  for (const s of status) {
    for (const k of ['seconds_elapsed', 'percent_done', 'total_files', 'files_done', 'total_bytes', 'bytes_done', 'error_count']) assert.ok(k in s, `status lacks ${k}`)
  }
  assert.equal(msgs.filter(m => m.message_type === 'summary').length, 1)
  assert.equal(msgs.at(-1)!.message_type, 'summary')
  const sum = backupSummary(b.stdout)
  for (const k of ['files_new', 'files_changed', 'files_unmodified', 'dirs_new', 'dirs_changed', 'dirs_unmodified', 'data_blobs', 'data_added', 'data_added_packed',
    'total_files_processed', 'total_bytes_processed', 'total_duration', 'backup_start', 'backup_end', 'snapshot_id', 'dry_run']) {
    assert.ok(k in sum, `summary lacks ${k}: ${JSON.stringify(sum)}`)
  }
  // README.MD, a.txt, docs/big.bin, fake-cache/{CACHEDIR.TAG,kept}, cache/{CACHEDIR.TAG,blob}
  assert.equal(sum.total_files_processed, 7)
  assert.equal(sum.files_new + sum.files_changed + sum.files_unmodified, 7)
  assert.equal(sum.total_bytes_processed, fs.readdirSync(SRC, { recursive: true }).map(p => fs.statSync(`${SRC}/${String(p)}`)).filter(s => s.isFile()).reduce((a, s) => a + s.size, 0))
  assert.equal(typeof sum.total_duration, 'number')
  assert.equal(sum.dry_run, false)
  assert.ok(snapshotFiles(REPO).includes(sum.snapshot_id))
})

test('backup -v lists each file as new, changed or unchanged; with --json as verbose_status', async () => {
  const run = await freshRepo(`${BASE}/repo-verbose`)
  const first = ok(await run(['backup', '-v', `${SRC}/docs`]), 'backup -v')
  assert.match(first.stdout, new RegExp(`^new {7}${SRC}/docs/big\\.bin$`, 'm'))
  const second = ok(await run(['backup', '-v', `${SRC}/docs`]), 'backup -v again')
  assert.match(second.stdout, new RegExp(`^unchanged ${SRC}/docs/big\\.bin$`, 'm'))
  fs.writeFileSync(`${SRC}/docs/more.txt`, 'more\n')
  try {
    const j = jsonLines(ok(await run(['backup', '-v', '--json', `${SRC}/docs`]), 'backup -v --json').stdout)
    const v = j.filter(m => m.message_type === 'verbose_status')
    assert.deepEqual(v.map(m => [m.action, m.item]).sort(), [['new', `${SRC}/docs/more.txt`], ['unchanged', `${SRC}/docs/big.bin`]])
  } finally {
    fs.rmSync(`${SRC}/docs/more.txt`)
  }
})

test('check --json lists each problem with its kind, chunk, snapshot and path, and counts the chunks', async () => {
  const dir = `${BASE}/repo-check`
  const run = await freshRepo(dir)
  const id = backupSummary<{ snapshot_id: string }>(ok(await run(['backup', '--json', `${SRC}/docs`]), 'backup').stdout).snapshot_id
  const clean = jsonLines(ok(await run(['check', '--json']), 'check --json').stdout).filter(m => m.message_type !== 'status')
  assert.equal(clean.length, 1)
  assert.equal(clean[0]!.message_type, 'summary')
  assert.equal(clean[0]!.num_errors, 0)
  assert.ok((clean[0]!.chunks as number) > 0, 'chunks are counted without --read-data')
  // Remove the content chunks of docs/big.bin (the metadata chunk is the smallest object).
  const ls = JSON.parse(ok(await run(['ls', '--json', `latest:${SRC}/docs/big.bin`]), 'ls').stdout.trim()) as { path: string }
  assert.equal(ls.path, `${SRC}/docs/big.bin`)
  const chunkFiles = fs.readdirSync(`${dir}/chunks`, { recursive: true }).map(String).filter(p => /[0-9a-f]{64}$/.test(p))
  const bySize = chunkFiles.map(p => ({ p, size: fs.statSync(`${dir}/chunks/${p}`).size })).sort((a, b) => b.size - a.size)
  const victim = bySize[0]!
  fs.rmSync(`${dir}/chunks/${victim.p}`)
  const r = await run(['check', '--json'])
  assert.equal(r.code, 1)
  assertFails({ ...r, stdout: '' }, 'ERR_CHECK')
  const msgs = jsonLines(r.stdout)
  const errors = msgs.filter(m => m.message_type === 'error')
  const withPath = errors.find(e => e.path !== undefined)!
  assert.ok(withPath, r.stdout)
  assert.deepEqual(Object.keys(withPath), ['message_type', 'kind', 'object', 'snapshot', 'path', 'message'])
  assert.equal(withPath.kind, 'missing_chunk')
  assert.equal(withPath.object, victim.p.split('/').at(-1))
  assert.equal(withPath.snapshot, id)
  assert.equal(withPath.path, `${SRC}/docs/big.bin`)
  assert.equal(msgs.at(-1)!.message_type, 'summary')
  assert.equal(msgs.at(-1)!.num_errors, errors.length)
})

// --- progress -------------------------------------------------------------------------------

function hasScript(): boolean {
  return spawnSync('script', ['-qc', 'true', '/dev/null'], { stdio: 'ignore' }).status === 0
}

/** Runs sluice under `script -qc` (a pseudo-terminal, 200 columns wide) and returns what the
 *  terminal received. */
function onTerminal(args: string[]): { code: number | null; out: string } {
  const quoted = [process.execPath, CLI, ...args].map(a => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
  const r = spawnSync('script', ['-qec', `stty cols 200; ${quoted}`, '/dev/null'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home, SLUICE_REPOSITORY: REPO, SLUICE_PASSWORD: PW, TERM: 'xterm' },
    encoding: 'utf8',
    timeout: 120_000,
  })
  return { code: r.status, out: r.stdout }
}

test('on a terminal the backup progress line shows elapsed, percent, ETA, totals, rate and a file', { skip: !hasScript() && 'needs script (util-linux)' }, () => {
  const r = onTerminal(['backup', '--force', SRC])
  assert.equal(r.code, 0, r.out)
  // Each redraw starts with \r and an erase-line; the last one before the summary is complete.
  const draws = r.out.split('\r\x1b[K').filter(d => d.startsWith('['))
  assert.ok(draws.length >= 2, JSON.stringify(r.out))
  const line = draws.at(-1)!
  assert.match(line, new RegExp(`^\\[\\d+:\\d\\d\\] 100\\.00% {2}7 files \\d+\\.\\d KiB, total 7 files \\d+\\.\\d KiB, 0 errors ETA \\d+:\\d\\d [\\d.]+ \\S+/s ${SRC_RE}/\\S+`))
  assert.match(r.out, /snapshot [0-9a-f]{8} saved/)
})

test('on a terminal restore shows the same line, with the snapshot totals', { skip: !hasScript() && 'needs script (util-linux)' }, () => {
  const target = `${BASE}/restore-tty`
  fs.rmSync(target, { recursive: true, force: true })
  const r = onTerminal(['restore', 'latest', '--target', target])
  assert.equal(r.code, 0, r.out)
  const line = r.out.split('\r\x1b[K').filter(d => d.startsWith('[')).at(-1)!
  assert.match(line, new RegExp(`^\\[\\d+:\\d\\d\\] 100\\.00% {2}7 files \\d+\\.\\d KiB, total 7 files \\d+\\.\\d KiB, 0 errors ETA \\d+:\\d\\d .*${SRC_RE}/`))
})

test('on a terminal check shows how many snapshots it has checked of how many', { skip: !hasScript() && 'needs script (util-linux)' }, () => {
  const r = onTerminal(['check'])
  assert.equal(r.code, 0, r.out)
  const n = fs.readdirSync(`${REPO}/snapshots`).length
  const line = r.out.split('\r\x1b[K').filter(d => d.startsWith('[')).at(-1)!
  assert.equal(line, `[0:00] 100.00% ${n} of ${n} snapshots checked, 0 problems`.replace('[0:00]', line.slice(0, line.indexOf(']') + 1)))
  assert.match(r.out, /checked \d+ snapshots: no problems/)
})

test('when stderr is not a terminal the progress is plain lines, the last one at the end', async () => {
  const b = ok(await sluice(['backup', '--force', SRC]), 'backup')
  assert.ok(!b.stderr.includes('\r') && !b.stderr.includes('\x1b'), JSON.stringify(b.stderr))
  const last = b.stderr.trimEnd().split('\n').at(-1)!
  assert.match(last, /^\[\d+:\d\d\] 100\.00% {2}7 files \d+\.\d KiB, total 7 files \d+\.\d KiB, 0 errors ETA 0:00 /)
  assert.match(b.stdout, /^snapshot [0-9a-f]{8} saved/)
})

/** A repository with two snapshots, the first forgotten: prune has chunks to mark, move aside
 *  (first run) and delete (second run). */
async function prunable(dir: string): Promise<ReturnType<typeof cliFor>> {
  const run = await freshRepo(dir)
  const first = backupSummary<{ snapshot_id: string }>(ok(await run(['backup', '--json', `${SRC}/docs`]), 'backup').stdout).snapshot_id
  ok(await run(['backup', '-q', `${SRC}/a.txt`]), 'backup 2')
  ok(await run(['forget', '-q', first]), 'forget')
  return run
}
const NO_MARGINS = ['--min-age', '0', '--lease-lifetime', '0', '--sweep-gap', '0']

test('on a terminal prune shows its phase and step with percent, ETA, totals and rate', { skip: !hasScript() && 'needs script (util-linux)' }, async () => {
  const dir = `${BASE}/repo-prune-tty`
  await prunable(dir)
  const onRepo = (args: string[]) => onTerminal(['-r', dir, ...args])
  const collect = onRepo(['prune', ...NO_MARGINS])
  assert.equal(collect.code, 0, collect.out)
  const draws = collect.out.split('\r\x1b[K').filter(d => d.startsWith('['))
  // Which steps get drawn depends on the clock; each line drawn has the one form, and the
  // finished line (drawn at the end on a terminal) is the chunks moved aside, of the candidates.
  for (const d of draws) assert.match(d, /^\[\d+:\d\d\] (prune: starting|(mark|collect) \([a-z -]+\) ([\d.]+% {2})?\d+ (snapshots|chunks)(, total \d+ (snapshots|chunks))?, 0 errors( ETA \d+:\d\d)?( [\d.]+ (snapshots|chunks)\/s)?( snapshot [0-9a-f]{8})?)$/)
  assert.match(draws.at(-1)!, /^\[\d+:\d\d\] collect \(moving aside\) 100\.00% {2}(\d+) chunks, total \1 chunks, 0 errors ETA 0:00 [\d.]+ chunks\/s/)
  const sweep = onRepo(['prune', ...NO_MARGINS])
  assert.equal(sweep.code, 0, sweep.out)
  // The sweep deletes, then the next collection runs: its line is the last.
  assert.match(sweep.out, /swept collection 1: deleted \d+ chunks/)
  assert.match(sweep.out.split('\r\x1b[K').filter(d => d.startsWith('[')).at(-1)!, /^\[\d+:\d\d\] collect \(moving aside\) 100\.00% {2}0 chunks, total 0 chunks, 0 errors ETA 0:00/)
})

test('on a terminal check --read-data shows chunks and bytes read of the total to read', { skip: !hasScript() && 'needs script (util-linux)' }, () => {
  const r = onTerminal(['check', '--read-data'])
  assert.equal(r.code, 0, r.out)
  const chunks = fs.readdirSync(`${REPO}/chunks`, { recursive: true }).map(String).filter(p => /[0-9a-f]{64}$/.test(p)).length
  const line = r.out.split('\r\x1b[K').filter(d => d.startsWith('[')).at(-1)!
  assert.match(line, new RegExp(`^\\[\\d+:\\d\\d\\] read data \\(reading chunks\\) 100\\.00% {2}${chunks} chunks [\\d.]+ \\S+, total ${chunks} chunks, 0 errors ETA 0:00 [\\d.]+ \\S+/s [0-9a-f]{8}$`))
  assert.match(r.out, new RegExp(`checked \\d+ snapshots and ${chunks} chunks: no problems`))
})

test('prune and check --read-data --json: status lines (phase, counts, totals) then exactly one summary', async () => {
  const run = await prunable(`${BASE}/repo-prune-json`)
  for (const args of [['prune', '--json', ...NO_MARGINS], ['prune', '--json', ...NO_MARGINS], ['check', '--read-data', '--json'], ['check', '--read-data-subset', '1/2', '--json']]) {
    const r = ok(await run(args), args.join(' '))
    const msgs = jsonLines(r.stdout)
    const status = msgs.filter(m => m.message_type === 'status')
    assert.ok(status.length >= 1, r.stdout)
    for (const s of status) {
      for (const k of ['phase', 'step', 'seconds_elapsed', 'percent_done', 'unit', 'items_done', 'error_count']) assert.ok(k in s, `${args.join(' ')}: ${k} missing in ${JSON.stringify(s)}`)
      assert.ok((s.percent_done as number) >= 0 && (s.percent_done as number) <= 1)
    }
    assert.equal(msgs.filter(m => m.message_type === 'summary').length, 1, r.stdout)
    assert.equal(msgs.at(-1)!.message_type, 'summary')
    assert.equal(msgs.length, status.length + 1, r.stdout)
    assert.equal(r.stderr, '')
  }
})

test('prune when stderr is not a terminal: plain lines, the finished step last', async () => {
  const run = await prunable(`${BASE}/repo-prune-plain`)
  const r = ok(await run(['prune', ...NO_MARGINS]), 'prune')
  assert.ok(!r.stderr.includes('\r') && !r.stderr.includes('\x1b'), JSON.stringify(r.stderr))
  assert.match(r.stderr.trimEnd().split('\n').at(-1)!, /^\[\d+:\d\d\] collect \(moving aside\) 100\.00% {2}(\d+) chunks, total \1 chunks, 0 errors ETA 0:00 /)
  assert.match(r.stdout, /^collection 1: /m)
})

// --- flags ----------------------------------------------------------------------------------

test('-q prints nothing at all on success', async () => {
  const b = ok(await sluice(['backup', '-q', SRC]), 'backup -q')
  assert.equal(b.stdout, '')
  assert.equal(b.stderr, '')
  const target = `${BASE}/restore-q`
  fs.rmSync(target, { recursive: true, force: true })
  const r = ok(await sluice(['restore', '-q', 'latest', '--target', target]), 'restore -q')
  assert.equal(r.stdout + r.stderr, '')
})

test('backup --dry-run writes nothing and says what would be stored', async () => {
  const dir = `${BASE}/repo-dry`
  const run = await freshRepo(dir)
  const before = fs.readdirSync(dir, { recursive: true }).map(String).sort()
  const b = ok(await run(['backup', '--dry-run', SRC]), 'backup --dry-run')
  assert.match(b.stdout, /would save snapshot \(dry run: nothing was written\)/)
  assert.match(b.stdout, /would store \d+\.\d KiB in \d+ new chunks/)
  const j = backupSummary(ok(await run(['backup', '-n', '--json', SRC]), 'backup -n --json').stdout)
  assert.equal(j.dry_run, true)
  assert.ok(j.data_added > 300_000 * 0.9, JSON.stringify(j))
  assert.ok(!('snapshot_id' in j))
  assert.deepEqual(fs.readdirSync(dir, { recursive: true }).map(String).sort(), before)
})

test('--files-from-raw backs up a name that is not UTF-8 as its bytes', async () => {
  const run = await freshRepo(`${BASE}/repo-raw-names`)
  const dir = Buffer.from(`${BASE}/raw-names`)
  fs.mkdirSync(dir, { recursive: true })
  const name = Buffer.from([0x66, 0xff, 0xfe, 0x6f]) // not UTF-8: decoding it would change it
  const file = Buffer.concat([dir, Buffer.from('/'), name])
  fs.writeFileSync(file, 'raw')
  fs.writeFileSync(`${BASE}/list-bytes.raw`, Buffer.concat([file, Buffer.from([0])]))
  const id = backupSummary<{ snapshot_id: string }>(ok(await run(['backup', '--json', '--files-from-raw', `${BASE}/list-bytes.raw`]), 'backup').stdout).snapshot_id
  const target = `${BASE}/raw-names-restored`
  ok(await run(['restore', id.slice(0, 12), '--target', target]), 'restore')
  const restoredDir = Buffer.concat([Buffer.from(target), dir])
  assert.deepEqual(fs.readdirSync(restoredDir, { encoding: 'buffer' }), [name])
  assert.equal(fs.readFileSync(Buffer.concat([restoredDir, Buffer.from('/'), name]), 'utf8'), 'raw')
})

test('--files-from, --files-from-raw, --exclude-caches, --iexclude, --iinclude, --time', async () => {
  const run = await freshRepo(`${BASE}/repo-flags`)
  const paths = async (args: string[]) => {
    const id = backupSummary<{ snapshot_id: string }>(ok(await run(['backup', '--json', ...args]), args.join(' ')).stdout).snapshot_id
    const l = ok(await run(['ls', id.slice(0, 12)]), 'ls').stdout.trimEnd().split('\n')
    return l.filter(p => p.startsWith(`${SRC}/`)).map(p => p.slice(SRC.length + 1))
  }
  fs.writeFileSync(`${BASE}/list.txt`, `# what to back up\n${SRC}/a.txt\n\n${SRC}/docs\n`)
  assert.deepEqual(await paths(['--files-from', `${BASE}/list.txt`]), ['a.txt', 'docs', 'docs/big.bin'])
  fs.writeFileSync(`${BASE}/list.raw`, `${SRC}/README.MD\0${SRC}/a.txt\0`)
  assert.deepEqual(await paths(['--files-from-raw', `${BASE}/list.raw`]), ['README.MD', 'a.txt'])
  const noCaches = await paths(['--exclude-caches', SRC])
  assert.ok(!noCaches.some(p => p.startsWith('cache')), noCaches.join(' '))
  assert.ok(noCaches.includes('fake-cache/kept'), noCaches.join(' '))
  assert.ok(!(await paths(['--iexclude', '*.md', SRC])).includes('README.MD'))
  assert.ok((await paths(['--exclude', '*.md', SRC])).includes('README.MD'))
  // Directories stay on the way to what an include might match; of the files only README.MD.
  const included = await paths(['--iinclude', 'readme.md', SRC])
  assert.ok(included.includes('README.MD'), included.join(' '))
  assert.ok(!included.some(p => /\.(txt|bin)$|kept|blob/.test(p)), included.join(' '))
  ok(await run(['backup', '-q', '--time', '2020-02-29 13:14:15', `${SRC}/a.txt`], { env: NY }), 'backup --time')
  const list = JSON.parse(ok(await run(['snapshots', '--json']), 'snapshots').stdout) as { time: string }[]
  assert.ok(list.some(s => s.time === '2020-02-29T18:14:15.000Z'), JSON.stringify(list.map(s => s.time)))
  assertFails(await run(['backup', '--time', 'yesterday', SRC]), 'ERR_ARGS', /--time: not a time/)
})

test('--host and --path choose what latest means for restore, ls, cat and diff', async () => {
  const run = await freshRepo(`${BASE}/repo-latest`)
  const idOf = async (args: string[]) => backupSummary<{ snapshot_id: string }>(ok(await run(['backup', '--json', ...args]), args.join(' ')).stdout).snapshot_id
  const onA = await idOf(['--host', 'a', `${SRC}/a.txt`])
  await idOf(['--host', 'b', `${SRC}/docs`])
  assertFails(await run(['cat', 'latest', `${SRC}/a.txt`]), 'ERR_PATH_NOT_FOUND')
  const cat = ok(await run(['cat', '--host', 'a', 'latest', `${SRC}/a.txt`]), 'cat --host a')
  assert.equal(cat.stdout, 'a\n')
  assert.match(ok(await run(['ls', '--path', `${SRC}/a.txt`, 'latest']), 'ls --path').stdout, /a\.txt/)
  const target = `${BASE}/restore-host`
  fs.rmSync(target, { recursive: true, force: true })
  ok(await run(['restore', 'latest', '--host', 'a', '--target', target]), 'restore --host a')
  assert.equal(fs.readFileSync(`${target}${SRC}/a.txt`, 'utf8'), 'a\n')
  const d = ok(await run(['diff', '--json', onA, 'latest', '--host', 'a']), 'diff --host a')
  assert.equal(d.stdout, '')
  assertFails(await run(['ls', '--host', 'nobody', 'latest']), 'ERR_SNAPSHOT_NOT_FOUND')
})

test('restore --tar with --target says to give one of them', async () => {
  assertFails(await sluice(['restore', 'latest', '--tar', '--target', `${BASE}/x`]), 'ERR_ARGS', /give one of --target or --tar, not both/)
})
