/**
 * Prune at scale: peak memory and time of `sluice prune` on a repository of about `--chunks`
 * chunks (small chunker parameters at init make that cheap), against `restic prune` on the same
 * data in restic's own repository.
 *
 *   npm run build && node --import tsx bench/prune.ts --chunks 100000 [--dir DIR] [--no-restic]
 *     [--default-kdf] [--no-sluice] [--restic-files N] [--keep | --reuse]
 *
 * Data: three stdin snapshots of seeded streams (bench/gen-stream.ts), A, B and A again (every
 * chunk of the third is a dedup hit: snapshots sharing chunks). B is forgotten, then prune runs
 * twice with every margin at zero: the first collects (moves B's chunks aside), the second
 * sweeps (deletes them). restic: the same three streams, `forget` of B, one `prune`.
 */
import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { measure, type Measurement } from './measure.js'
import { newRun, SLUICE_CLI } from './tools.js'
import { backup, createLocalStorage, initRepository, type Storage } from '../index.js'

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? dflt : process.argv[i + 1]!
}
const chunks = Number(arg('chunks', '100000'))
const dir = arg('dir', `/tmp/sluice-prune-bench-${chunks}`)
const withRestic = !process.argv.includes('--no-restic')
const defaultKdf = process.argv.includes('--default-kdf')
const resticFiles = Number(arg('restic-files', '0'))
const skipSluice = process.argv.includes('--no-sluice')
/** Keep a hard-linked copy of Sluice's repository as it was before the first prune (DIR/sluice/
 *  repo.before), for profiling prune again on the same data: `cp -al` it back and rerun. */
const keep = process.argv.includes('--keep')
/** Prune a copy (`cp -al`) of the repository an earlier `--keep` run left in DIR, instead of
 *  building it again (an hour at 1M chunks on a loaded machine); the streams stay in DIR too. */
const reuse = process.argv.includes('--reuse')
/** Chunker parameters: a mean chunk of about 340 bytes (measured), so a MiB of stream is about
 *  3,000 chunks. */
const CHUNKER = { min: 128, avg: 256, max: 1024 }
const CHUNKS_PER_MIB = 3080
const GEN = join(import.meta.dirname, 'gen-stream.ts')

if (!reuse) rmSync(dir, { recursive: true, force: true })
mkdirSync(dir, { recursive: true })
const mib = Math.max(1, Math.round(chunks / 2 / CHUNKS_PER_MIB))
const streams: { name: string; seed: string; file: string }[] = [
  { name: 'a', seed: 'prune-a', file: join(dir, 'a.bin') },
  { name: 'b', seed: 'prune-b', file: join(dir, 'b.bin') },
  { name: 'a', seed: 'prune-a', file: join(dir, 'a.bin') },
]
for (const s of streams.slice(0, 2)) {
  if (!reuse || !existsSync(s.file)) writeFileSync(s.file, execFileSync(process.execPath, ['--import', 'tsx', GEN, String(mib), s.seed], { maxBuffer: 1 << 30 }))
}

function show(label: string, m: Measurement): string {
  if (m.exitCode !== 0) throw new Error(`${label} failed (exit ${m.exitCode}): see ${m.stderrPath}`)
  return `${label}: ${m.seconds.toFixed(1)} s, CPU ${m.cpuSeconds === null ? '?' : m.cpuSeconds.toFixed(1)} s, peak ${m.peakRssBytes === null ? '?' : (m.peakRssBytes / 1e6).toFixed(1)} MB, load ${m.load1.toFixed(1)}`
}

function count(root: string): number {
  let n = 0
  for (const d of readdirSync(root, { withFileTypes: true })) n += d.isDirectory() ? count(join(root, d.name)) : 1
  return n
}

/**
 * A Storage for building the benchmark's repository only: plain writes without fsync (the
 * local storage syncs each object, and this machine creates a few hundred synced files a
 * second, which would make a million-chunk repository take hours). Same layout on disk; prune
 * then runs on it through the ordinary local storage.
 */
function fastLocal(root: string): Storage {
  const local = createLocalStorage(root)
  const made = new Set<string>()
  return {
    ...local,
    async put(key, data) {
      const file = join(root, key)
      const parent = dirname(file)
      if (!made.has(parent)) {
        mkdirSync(parent, { recursive: true })
        made.add(parent)
      }
      try {
        writeFileSync(file, data, { flag: 'wx' })
        return true
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
        throw err
      }
    },
  }
}

const out: Record<string, unknown> = { chunks, mib, kdf: defaultKdf ? 'default' : 'cheap' }
if (!skipSluice && reuse) {
  const run = newRun('sluice', join(dir, 'sluice'))
  rmSync(run.repo, { recursive: true, force: true })
  execFileSync('cp', ['-al', `${run.repo}.before`, run.repo])
  const stored = count(join(run.repo, 'chunks'))
  console.log(`sluice repository (a copy of ${run.repo}.before): ${stored} chunks`)
  out.sluice = pruneTwice(run.env, run.repo, stored)
} else if (!skipSluice) {
  const run = newRun('sluice', join(dir, 'sluice'))
  // The default key derivation alone peaks at ~98 MB when a command opens the repository
  // (Argon2id's 32 MiB); --default-kdf measures that, the default run measures prune's own.
  const repo = await initRepository(fastLocal(run.repo), run.env.SLUICE_PASSWORD!, { chunker: CHUNKER, ...(defaultKdf ? {} : { kdf: { opslimit: 1, memlimit: 8192 * 1024 } }) })
  const ids: string[] = []
  for (const s of streams) {
    const src = join(dir, 'src', s.name)
    mkdirSync(src, { recursive: true })
    renameSync(s.file, join(src, 'data'))
    const t0 = Date.now()
    const r = await backup({ repo, paths: [src] })
    renameSync(join(src, 'data'), s.file)
    console.log(`sluice backup ${s.seed} (in-process, unsynced writes): ${((Date.now() - t0) / 1000).toFixed(1)} s, ${r.stats.chunksNew} new chunks`)
    ids.push(r.snapshotId)
  }
  await repo.close()
  const stored = count(join(run.repo, 'chunks'))
  console.log(`sluice repository: ${stored} chunks`)
  // forget B (the forget command's contract: the root moves to forgotten/<id>)
  const storage = createLocalStorage(run.repo)
  await storage.put(`forgotten/${ids[1]}`, await storage.get(`snapshots/${ids[1]}`))
  await storage.delete(`snapshots/${ids[1]}`)
  if (keep) execFileSync('cp', ['-al', run.repo, `${run.repo}.before`])
  out.sluice = pruneTwice(run.env, run.repo, stored)
}

/** The two prunes every margin at zero: the first collects, the second sweeps and collects. */
function pruneTwice(env: NodeJS.ProcessEnv, repo: string, stored: number): Record<string, unknown> {
  const margins = ['--min-age', '0', '--lease-lifetime', '0', '--sweep-gap', '0', '--json']
  const collect = measure({ argv: [SLUICE_CLI, 'prune', ...margins], env }, join(dir, 'sluice-prune-1'))
  console.log(show('sluice prune (collect)', collect))
  const sweep = measure({ argv: [SLUICE_CLI, 'prune', ...margins], env }, join(dir, 'sluice-prune-2'))
  console.log(show('sluice prune (sweep + collect)', sweep))
  return { stored, collect: { s: collect.seconds, cpu: collect.cpuSeconds, rss: collect.peakRssBytes }, sweep: { s: sweep.seconds, cpu: sweep.cpuSeconds, rss: sweep.peakRssBytes }, left: count(join(repo, 'chunks')) }
}
if (withRestic) {
  const run = newRun('restic', join(dir, 'restic'))
  rmSync(run.repo, { recursive: true, force: true }) // a --reuse run's
  execFileSync('restic', ['init'], { env: run.env, stdio: 'ignore' })
  for (const s of streams) {
    const m = measure({ argv: ['restic', 'backup', '--stdin', '--stdin-filename', s.name, '--host', s.seed], env: run.env, stdinPath: s.file }, join(dir, `restic-backup-${s.seed}`))
    console.log(show(`restic backup ${s.seed}`, m))
  }
  const snaps = JSON.parse(execFileSync('restic', ['snapshots', '--json'], { env: run.env, encoding: 'utf8' })) as { id: string; hostname: string }[]
  for (const s of snaps) if (s.hostname === 'prune-b') execFileSync('restic', ['forget', s.id], { env: run.env, stdio: 'ignore' })
  const m = measure({ argv: ['restic', 'prune'], env: run.env }, join(dir, 'restic-prune'))
  console.log(show('restic prune', m))
  out.restic = { s: m.seconds, cpu: m.cpuSeconds, rss: m.peakRssBytes }
}
if (resticFiles > 0) {
  // restic cannot cut 340-byte chunks; a tree of small files gives its repository about as many
  // blobs (one per file) as sluice's has chunks: the object-count comparison.
  const run = newRun('restic', join(dir, 'restic-files'))
  rmSync(run.repo, { recursive: true, force: true })
  rmSync(join(dir, 'files'), { recursive: true, force: true })
  execFileSync('restic', ['init'], { env: run.env, stdio: 'ignore' })
  for (const set of ['a', 'b']) {
    const d = join(dir, 'files', set)
    mkdirSync(d, { recursive: true })
    for (let i = 0; i < resticFiles / 2; i++) writeFileSync(join(d, String(i)), randomBytes(340))
  }
  for (const set of ['a', 'b', 'a']) {
    const m = measure({ argv: ['restic', 'backup', '--host', `files-${set}`, join(dir, 'files', set)], env: run.env }, join(dir, `restic-files-backup-${set}`))
    console.log(show(`restic backup of ${resticFiles / 2} files (${set})`, m))
  }
  const snaps = JSON.parse(execFileSync('restic', ['snapshots', '--json'], { env: run.env, encoding: 'utf8' })) as { id: string; hostname: string }[]
  for (const s of snaps) if (s.hostname === 'files-b') execFileSync('restic', ['forget', s.id], { env: run.env, stdio: 'ignore' })
  const m = measure({ argv: ['restic', 'prune'], env: run.env }, join(dir, 'restic-files-prune'))
  console.log(show(`restic prune (${resticFiles} one-blob files)`, m))
  out.resticFiles = { files: resticFiles, s: m.seconds, cpu: m.cpuSeconds, rss: m.peakRssBytes }
}
console.log(JSON.stringify(out))
