/**
 * Restore from S3 against restore from a local directory (issue 15: S3 no slower than 1.2x the
 * local restore; the download's fetch-ahead hides the round trips). One data set (default the
 * big-2x512M set, bench/gen; any directory may be given) is backed up into a local repository,
 * copied into S3 (s3rver, as test/helpers/s3rver.ts starts it), and restored from each, twice,
 * alternating; each restore is checked against the source (diff -r). (The copy in big-2x512M is
 * fetched from S3 once: restore keeps repeated chunks' objects in a temporary file.) Prints each step's time,
 * CPU and peak RSS, s3rver's own CPU during each S3 step, and the S3/local ratio of the best
 * times. Exits 1 if a restore differs or the ratio is above 1.2.
 *
 * Then the floor: every chunk object fetched with the AWS SDK alone (as lib/storage/s3.ts does
 * it, S3_READ_AHEAD GETs in flight, bodies read into one reused buffer, nothing decoded), and
 * read from the local repository's files the same way. What those GETs cost (sluice's CPU and
 * s3rver's) is what S3 adds to a restore before any of sluice's own work: s3rver runs on this
 * machine and takes CPU of its own, so the ratio says what latency and the HTTP stack cost here,
 * not what a remote S3 would.
 * Run: npm run build && node --import tsx bench/s3-restore.ts [DIR]
 */
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs'
import { open, readdir } from 'node:fs/promises'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { measure, type Measurement } from './measure.js'
import { PROJECT_ROOT, SLUICE_CLI } from './tools.js'
import { S3RVER_CREDENTIALS, startS3rver } from '../test/helpers/s3rver.js'
import { s3BenchEnv } from './s3-env.js'
import { S3_READ_AHEAD } from '../lib/limits.js'

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
/** s3rver's CPU seconds so far (user + system, from /proc). */
function serverCpu(): number {
  const fields = readFileSync(`/proc/${server.pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100
}
const load = () => loadavg()[0]!.toFixed(1)
let step = 0
function run(label: string, args: string[]): Measurement {
  const cpu0 = serverCpu()
  // Run as an executable, as a user's `sluice` is, so the V8 flags of its shebang apply.
  const m = measure({ argv: [SLUICE_CLI, ...args], env, cwd: BASE }, join(BASE, 'logs', `${String(++step).padStart(2, '0')}`))
  const rss = m.peakRssBytes === null ? '?' : (m.peakRssBytes / MB).toFixed(1)
  const cpu = m.cpuSeconds === null ? '' : `${m.cpuSeconds.toFixed(1)} s CPU`
  const server = args.some(a => a.startsWith('s3:')) ? `  s3rver ${(serverCpu() - cpu0).toFixed(1)} s CPU` : ''
  console.log(`${label.padEnd(28)} ${m.seconds.toFixed(1).padStart(7)} s  ${cpu.padStart(12)}  ${rss.padStart(6)} MB peak RSS${server}  (load ${m.load1.toFixed(1)})`)
  if (m.exitCode !== 0) throw new Error(`${label}: exit ${m.exitCode}: ${readFileSync(m.stderrPath, 'utf8').slice(0, 500)}`)
  return m
}

/** Every chunk object, S3_READ_AHEAD at a time, through `read` into one reused buffer. */
async function fetchAll(label: string, fromServer: boolean, keys: string[], read: (key: string, buf: Buffer) => Promise<number>): Promise<void> {
  const buf = Buffer.allocUnsafe(8 * MB)
  const t0 = performance.now()
  const c0 = process.cpuUsage()
  const s0 = serverCpu()
  let bytes = 0
  let next = 0
  await Promise.all(Array.from({ length: S3_READ_AHEAD }, async () => {
    while (next < keys.length) {
      const n = await read(keys[next++]!, buf)
      bytes += n
    }
  }))
  const c = process.cpuUsage(c0)
  const cpu = `${((c.user + c.system) / 1e6).toFixed(1)} s CPU`
  const server = fromServer ? `  s3rver ${(serverCpu() - s0).toFixed(1)} s CPU` : ''
  console.log(`${label.padEnd(28)} ${((performance.now() - t0) / 1e3).toFixed(1).padStart(7)} s  ${cpu.padStart(12)}  ${keys.length} objects, ${(bytes / MB).toFixed(0)} MB${server}  (load ${load()})`)
}

/** The floor: the chunk objects alone, with the SDK from s3rver and from the local files. */
async function rawReads(): Promise<void> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'
  const { GetObjectCommand, S3Client } = await import('@aws-sdk/client-s3')
  const client = new S3Client({ endpoint: server.endpoint, forcePathStyle: true, region: 'us-east-1', credentials: S3RVER_CREDENTIALS, maxAttempts: 1, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' })
  const keys: string[] = []
  for (const dir of await readdir(join(repos.local, 'chunks'))) for (const name of await readdir(join(repos.local, 'chunks', dir))) keys.push(`chunks/${dir}/${name}`)
  for (let round = 1; round <= 2; round++) {
    await fetchAll(`raw SDK GETs (${round})`, true, keys, async (key, buf) => {
      const res = await client.send(new GetObjectCommand({ Bucket: 'bench-restore', Key: `repo/${key}` }))
      let got = 0
      for await (const piece of res.Body as AsyncIterable<Uint8Array>) {
        buf.set(piece, got)
        got += piece.length
      }
      return got
    })
    await fetchAll(`raw local reads (${round})`, false, keys, async (key, buf) => {
      const fh = await open(join(repos.local, key))
      try {
        let got = 0
        for (;;) {
          const { bytesRead } = await fh.read(buf, 0, buf.length, got)
          if (bytesRead === 0) return got
          got += bytesRead
        }
      } finally {
        await fh.close()
      }
    })
  }
  client.destroy()
}

let failed = false
try {
  console.log(`data: ${DATA}; load ${loadavg().map(l => l.toFixed(1)).join(' ')}`)
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
  await rawReads()
} finally {
  await server.stop()
  rmSync(BASE, { recursive: true, force: true })
}
if (failed) process.exitCode = 1
