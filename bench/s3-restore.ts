/**
 * Restore from S3 against restore from a local directory (issue 15: S3 no slower than 1.2x the
 * local restore; the download's concurrency hides the round trips). One data set (default the
 * big-2x512M set, bench/gen; any directory may be given) is backed up into a local repository,
 * copied into S3 (s3rver, as test/helpers/s3rver.ts starts it), and restored from each, twice,
 * alternating; each restore is checked against the source (diff -r). Prints each step's time,
 * CPU and peak RSS, and the S3/local ratio of the best times. Exits 1 if a restore differs or
 * the ratio is above 1.2. s3rver runs on this machine and takes CPU of its own: the ratio says
 * what latency and the HTTP stack cost, not what a remote S3 would.
 * Run: npm run build && node --import tsx bench/s3-restore.ts [DIR]
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { measure, type Measurement } from './measure.js'
import { PROJECT_ROOT, SLUICE_CLI } from './tools.js'
import { startS3rver } from '../test/helpers/s3rver.js'
import { s3BenchEnv } from './s3-env.js'

const BENCH_DIR = process.env.BENCH_DIR ?? '/tmp/bench'
const BASE = join(BENCH_DIR, 's3-restore')
let DATA = process.argv[2]
if (!DATA) {
  DATA = join(BENCH_DIR, 'data', 'big-files-2x512')
  if (!existsSync(`${DATA}.complete`)) {
    const gen = spawnSync(process.execPath, [join(PROJECT_ROOT, 'bench/gen/gen-big-files.cjs'), DATA, '42', '2', '512'], { stdio: 'inherit' })
    if (gen.status !== 0) throw new Error('data generation failed')
  }
}
const MB = 1e6
const MAX_RATIO = 1.2

rmSync(BASE, { recursive: true, force: true })
mkdirSync(join(BASE, 'logs'), { recursive: true })
const server = await startS3rver({ bucket: 'bench-restore' })
const repos = { local: join(BASE, 'repo'), s3: `s3:${server.endpoint}/bench-restore/repo` }
const env = s3BenchEnv(BASE)
let step = 0
function run(label: string, args: string[]): Measurement {
  // Run as an executable, as a user's `sluice` is, so the V8 flags of its shebang apply.
  const m = measure({ argv: [SLUICE_CLI, ...args], env, cwd: BASE }, join(BASE, 'logs', `${String(++step).padStart(2, '0')}`))
  const rss = m.peakRssBytes === null ? '?' : (m.peakRssBytes / MB).toFixed(1)
  const cpu = m.cpuSeconds === null ? '' : `${m.cpuSeconds.toFixed(1)} s CPU`
  console.log(`${label.padEnd(28)} ${m.seconds.toFixed(1).padStart(7)} s  ${cpu.padStart(12)}  ${rss.padStart(6)} MB peak RSS  (load ${m.load1.toFixed(1)})`)
  if (m.exitCode !== 0) throw new Error(`${label}: exit ${m.exitCode}: ${readFileSync(m.stderrPath, 'utf8').slice(0, 500)}`)
  return m
}

let failed = false
try {
  console.log(`data: ${DATA}; load ${(await import('node:os')).loadavg().map(l => l.toFixed(1)).join(' ')}`)
  run('init local', ['init', '-r', repos.local])
  run('backup', ['backup', '-r', repos.local, '-q', DATA])
  run('init S3', ['init', '-r', repos.s3, '--copy-chunker-params', '--from-repo', repos.local])
  run('copy local → S3', ['copy', '-r', repos.s3, '--from-repo', repos.local, '-q'])
  const best = { local: Infinity, s3: Infinity }
  for (let round = 1; round <= 2; round++) {
    for (const where of ['local', 's3'] as const) {
      const target = join(BASE, 'restore')
      spawnSync('sync')
      const m = run(`restore from ${where} (${round})`, ['restore', '-r', repos[where], 'latest', '--target', target, '-q'])
      best[where] = Math.min(best[where], m.seconds)
      const diff = spawnSync('diff', ['-r', '--no-dereference', DATA, join(target, DATA)], { encoding: 'utf8' })
      if (diff.status !== 0) {
        console.log(`restore from ${where} DIFFERS from the source: ${diff.stdout.slice(0, 300)}`)
        failed = true
      }
      rmSync(target, { recursive: true, force: true })
    }
  }
  const ratio = best.s3 / best.local
  console.log(`S3 / local restore time (best of 2 each): ${ratio.toFixed(2)} (limit ${MAX_RATIO})`)
  if (ratio > MAX_RATIO) failed = true
} finally {
  await server.stop()
  rmSync(BASE, { recursive: true, force: true })
}
if (failed) process.exitCode = 1
