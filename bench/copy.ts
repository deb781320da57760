/**
 * copy measured (issue 18 item 2): a tree of N small files (default 100,000, bench/gen) and its
 * incremental (1% more files) go local → S3 (s3rver) → local with the built CLI. Prints each
 * step's time and peak RSS, the bytes each copy stored (from its --json summary), checks that
 * the last repository restores both snapshots identical to the source's own restores, and
 * that check --read-data passes on all three. Exits 1 if a copy peaks at 100 MB or more.
 * Run: npm run build && node --import tsx bench/copy.ts [N]
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { measure, type Measurement } from './measure.js'
import { PROJECT_ROOT, SLUICE_CLI } from './tools.js'
import { startS3rver } from '../test/helpers/s3rver.js'
import { s3BenchEnv } from './s3-env.js'

const N = Number(process.argv[2] ?? 100_000)
const BASE = join(process.env.BENCH_DIR ?? '/tmp/bench-copy', `copy-${N}`)
const TREE = join(BASE, 'tree')
const MB = 1e6
const RSS_LIMIT = 100 * MB

// The generated tree is kept between runs (gen-many-files skips a complete one).
for (const d of ['logs', 'repo-a', 'repo-c', join('tree', 'incremental')]) rmSync(join(BASE, d), { recursive: true, force: true })
mkdirSync(join(BASE, 'logs'), { recursive: true })
const gen = spawnSync(process.execPath, [join(PROJECT_ROOT, 'bench/gen/gen-many-files.cjs'), String(N), TREE], { stdio: 'inherit', env: { ...process.env, NO_XATTR: '1' } })
if (gen.status !== 0) throw new Error('tree generation failed')

const server = await startS3rver({ bucket: 'bench-copy' })
const repos = { a: join(BASE, 'repo-a'), s3: `s3:${server.endpoint}/bench-copy/repo`, c: join(BASE, 'repo-c') }
const env = s3BenchEnv(BASE)
let step = 0
function run(label: string, args: string[]): Measurement & { stdout: string } {
  // Run as an executable, as a user's `sluice` is, so the V8 flags of its shebang apply.
  const m = measure({ argv: [SLUICE_CLI, ...args], env, cwd: BASE }, join(BASE, 'logs', `${String(++step).padStart(2, '0')}`))
  const stdout = readFileSync(m.stdoutPath, 'utf8')
  const rss = m.peakRssBytes === null ? '?' : (m.peakRssBytes / MB).toFixed(1)
  console.log(`${label.padEnd(34)} ${m.seconds.toFixed(1).padStart(7)} s  ${rss.padStart(6)} MB peak RSS`)
  if (m.exitCode !== 0) throw new Error(`${label}: exit ${m.exitCode}: ${readFileSync(m.stderrPath, 'utf8').slice(0, 500)}`)
  return { ...m, stdout }
}
const summary = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!) as { snapshots_copied: number; bytes_copied: number; chunks_copied: number }
// backup --json prints status lines, then its summary last.
const snapshotOf = (stdout: string) => (JSON.parse(stdout.trim().split('\n').at(-1)!) as { snapshot_id: string }).snapshot_id

let failed = false
try {
  run('init A', ['init', '-r', repos.a])
  const snap1 = snapshotOf(run(`backup ${N} files`, ['backup', '-r', repos.a, '--json', TREE]).stdout)
  mkdirSync(join(TREE, 'incremental'))
  let added = 0
  for (let i = 0; i < N / 100; i++) {
    const body = Buffer.from(`new file ${i} `.repeat(50 + (i % 200)))
    writeFileSync(join(TREE, 'incremental', `n-${i}`), body)
    added += body.length
  }
  const snap2 = snapshotOf(run(`backup +${N / 100} files`, ['backup', '-r', repos.a, '--json', TREE]).stdout)

  run('init S3 --copy-chunker-params', ['init', '-r', repos.s3, '--copy-chunker-params', '--from-repo', repos.a])
  const copies: Measurement[] = []
  const c1 = run('copy A → S3 (first snapshot)', ['copy', '-r', repos.s3, '--from-repo', repos.a, '--json', snap1])
  const c2 = run('copy A → S3 (all: the incremental)', ['copy', '-r', repos.s3, '--from-repo', repos.a, '--json'])
  run('init C --copy-chunker-params', ['init', '-r', repos.c, '--copy-chunker-params', '--from-repo', repos.s3])
  const c3 = run('copy S3 → C (both)', ['copy', '-r', repos.c, '--from-repo', repos.s3, '--json'])
  // The floor of the command: both repositories opened (two Argon2id runs), nothing to copy.
  run('copy S3 → C again (nothing to do)', ['copy', '-r', repos.c, '--from-repo', repos.s3, '--json'])
  copies.push(c1, c2, c3)
  const [s1, s2, s3] = [summary(c1.stdout), summary(c2.stdout), summary(c3.stdout)]
  console.log(`first copy stored ${(s1.bytes_copied / MB).toFixed(1)} MB in ${s1.chunks_copied} chunks; the incremental's ${(s2.bytes_copied / MB).toFixed(2)} MB in ${s2.chunks_copied} chunks (${(added / MB).toFixed(2)} MB of new files, before compression); S3 → C ${(s3.bytes_copied / MB).toFixed(1)} MB`)

  // C's copies restore as A's own snapshots do.
  const ids = JSON.parse(run('snapshots C', ['snapshots', '-r', repos.c, '--json']).stdout) as { id: string; original: string }[]
  for (const [n, snap] of [[1, snap1], [2, snap2]] as const) {
    run(`restore ${n} from A`, ['restore', '-r', repos.a, snap, '--target', join(BASE, `ra${n}`), '-q'])
    run(`restore ${n} from C`, ['restore', '-r', repos.c, ids.find(s => s.original === snap)!.id, '--target', join(BASE, `rc${n}`), '-q'])
    const diff = spawnSync('diff', ['-r', '--no-dereference', join(BASE, `ra${n}`), join(BASE, `rc${n}`)], { encoding: 'utf8' })
    console.log(`snapshot ${n}: restores from A and C ${diff.status === 0 ? 'identical' : 'DIFFER'}`)
    if (diff.status !== 0) failed = true
    rmSync(join(BASE, `ra${n}`), { recursive: true, force: true })
    rmSync(join(BASE, `rc${n}`), { recursive: true, force: true })
  }
  for (const [name, repo] of Object.entries(repos)) run(`check --read-data ${name}`, ['check', '-r', repo, '--read-data'])
  for (const m of copies) if (m.peakRssBytes !== null && m.peakRssBytes >= RSS_LIMIT) failed = true
  console.log(failed ? 'FAILED' : `every copy under ${RSS_LIMIT / MB} MB peak RSS`)
} finally {
  await server.stop()
}
if (failed) process.exitCode = 1
