/**
 * find measured (issue 18 item 3): a tree of N small files (default 100,000, bench/gen) backed
 * up S times (default 20; one file changed between backups), then `find` for a name that
 * matches once per snapshot, over one snapshot and over all of them: peak RSS over all S should
 * be within 10% of one snapshot's (find streams one snapshot at a time).
 * Run: npm run build && node --import tsx bench/find.ts [N] [S]
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { measure, type Measurement } from './measure.js'
import { PROJECT_ROOT, SLUICE_CLI } from './tools.js'

const N = Number(process.argv[2] ?? 100_000)
const S = Number(process.argv[3] ?? 20)
const BASE = join(process.env.BENCH_DIR ?? '/tmp/bench-find', `find-${N}`)
const TREE = join(BASE, 'tree')
const REPO = join(BASE, 'repo')
const MB = 1e6

rmSync(REPO, { recursive: true, force: true })
mkdirSync(join(BASE, 'logs'), { recursive: true })
if (!existsSync(TREE)) {
  const gen = spawnSync(process.execPath, [join(PROJECT_ROOT, 'bench/gen/gen-many-files.cjs'), String(N), TREE], { stdio: 'inherit', env: { ...process.env, NO_XATTR: '1' } })
  if (gen.status !== 0) throw new Error('tree generation failed')
}
const env = { PATH: process.env.PATH, HOME: BASE, SLUICE_PASSWORD: 'bench' }
let step = 0
function run(label: string, args: string[], show = true): Measurement & { stdout: string } {
  // Run as an executable, as a user's `sluice` is, so the V8 flags of its shebang apply.
  const m = measure({ argv: [SLUICE_CLI, '-r', REPO, ...args], env, cwd: BASE }, join(BASE, 'logs', `${String(++step).padStart(3, '0')}`))
  if (m.exitCode !== 0) throw new Error(`${label}: exit ${m.exitCode}: ${readFileSync(m.stderrPath, 'utf8').slice(0, 500)}`)
  if (show) console.log(`${label.padEnd(30)} ${m.seconds.toFixed(1).padStart(7)} s  ${((m.peakRssBytes ?? 0) / MB).toFixed(1).padStart(6)} MB peak RSS`)
  return { ...m, stdout: readFileSync(m.stdoutPath, 'utf8') }
}

run('init', ['init'])
for (let i = 0; i < S; i++) {
  writeFileSync(join(TREE, 'find-me'), `backup ${i}\n`)
  run(`backup ${i + 1}/${S}`, ['backup', '-q', TREE], i === 0 || i === S - 1)
}
const latest = (JSON.parse(run('snapshots', ['snapshots', '--json'], false).stdout) as { id: string; time: string }[]).sort((a, b) => a.time.localeCompare(b.time)).at(-1)!.id
const one = run('find in 1 snapshot', ['find', '--json', '--snapshot', latest, 'find-me'])
const all = run(`find in ${S} snapshots`, ['find', '--json', 'find-me'])
const hits = (JSON.parse(all.stdout) as { hits: number }[]).reduce((a, s) => a + s.hits, 0)
const ratio = (all.peakRssBytes ?? 0) / (one.peakRssBytes ?? 1)
console.log(`${hits} matches over ${S} snapshots; peak RSS ${S} snapshots / 1 snapshot = ${ratio.toFixed(3)} (${ratio <= 1.1 ? 'within 10%' : 'OVER 10%'})`)
if (hits !== S || ratio > 1.1) process.exitCode = 1
