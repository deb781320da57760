/**
 * Benchmark: Sluice against restic and borg on generated data.
 *
 *   npm run bench                 # small (100k files) + big-2x512M: a few minutes
 *   npm run bench -- small        # 100k small files
 *   npm run bench -- many         # 1M small files, plus 100k for the memory-flatness comparison
 *   npm run bench -- million      # 1M small files only
 *   npm run bench -- big          # 4 x 1 GiB + a duplicate of the first
 *   npm run bench -- stdin        # one 512 MiB file piped on stdin, restored to stdout (cat/dump)
 *   npm run bench -- real         # system directories copied into place (~60k files, ~1.5 GB)
 *   npm run bench -- sparse       # sparse files: 6 GiB apparent, 64 MiB of data (issue 15)
 *   npm run bench -- xattr        # 50k small files, each with two ~1.9 KB user xattrs
 *   npm run bench -- all          # small, many, real, big, stdin
 *   npm run bench -- tiny         # 2000 files + 2 x 8 MiB: a smoke test of the harness
 *   npm run bench -- tar100k      # a generated tar stream of 100k entries (sluice --tar only)
 *   npm run bench -- tar10m       # 10M entries (~10 GB, generated as it is read: no disk)
 *   npm run bench -- dir1m        # one directory of 1M tiny files (and restic)
 *   npm run bench -- dir5m        # one directory of 5M empty files (and restic)
 *   npm run bench -- huge         # small, tar100k, tar10m, dir1m, dir5m: the flatness rows
 *
 * The tar and one-directory scenarios also time Sluice's `restore --tar` (to /dev/null), `ls`,
 * `diff` of the two snapshots, `check` and `prune` (after forgetting the first snapshot).
 *
 * Environment: BENCH_DIR (default /tmp/bench) holds data, repositories, logs and results;
 * BENCH_TOOLS=sluice,restic limits the tools and runs them in that order (restic,sluice: restic
 * first); BENCH_SETTLE (default 61) is the untimed wait before each restore (below);
 * BENCH_KEEP=1 keeps repositories and restores;
 * BENCH_SLUICE_MEMORY=64M runs Sluice with that --memory.
 * BENCH_COMPRESSION=max backs up with every tool's highest compression (bench/tools.ts).
 * BENCH_NO_TREE_RESTORE=1 skips restores into a directory (inodes: dir5m restores 5M files).
 *
 * For each scenario and each tool found: a fresh repository, init (not timed), backup, restore
 * into an empty directory (checked against the source), then a second backup of the unchanged
 * tree. Every timed command runs on a warm page cache and is followed by an untimed `sync`, so
 * one command's writeback does not land in the next one's time.
 *
 * Fairness between tools: ext4 without a journal (the bench disk) scans past every inode freed
 * in the last 60-365 s each time it creates a file, so a restore after a large deletion pays for
 * it. Run directories (repositories, restored trees) are deleted only when the run ends, each
 * deletion followed by a `sync`, and each timed restore first waits, untimed, until BENCH_SETTLE
 * seconds have passed since the last deletion's sync (SETTLE_SECONDS below; docs/BENCHMARKS.md).
 */
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { join } from 'node:path'
import { logPath, measure, quiet, rssMethod, tail, type CommandSpec, type Measurement } from './measure.js'
import { problems, render, type Op, type OpResult } from './report.js'
import type { ChildProcess } from 'node:child_process'
import { PROJECT_ROOT, SLUICE_CLI, TOOLS, lastJsonLine, newRun, type Tool, type ToolRun } from './tools.js'
import { fileHash, treeBytes, verifyRestore, warmAndCount, type TreeStats } from './tree.js'

const BENCH_DIR = process.env.BENCH_DIR ?? '/tmp/bench'
const GEN_DIR = process.env.BENCH_GENERATORS ?? join(PROJECT_ROOT, 'bench', 'gen')
const KEEP = process.env.BENCH_KEEP === '1'
/** BENCH_NO_TREE_RESTORE=1: skip restores into a directory (a 5M-file restore takes 5M inodes). */
const NO_TREE_RESTORE = process.env.BENCH_NO_TREE_RESTORE === '1'
if (![undefined, '', 'max'].includes(process.env.BENCH_COMPRESSION)) {
  console.error(`BENCH_COMPRESSION takes "max" (every tool at its highest level), not "${process.env.BENCH_COMPRESSION}"`)
  process.exit(2)
}

/** One data set the tools back up. */
interface Scenario {
  name: string
  description: string
  /** Absolute path of the generated tree. */
  data: string
  /** argv that generates `data`; the generator writes `marker` when done and then skips the work. */
  generate: string[]
  marker: string
  /** When set, `data` is one file fed to the tool on stdin under this name. */
  stdinName?: string
  /** When set, the source is a tar stream of this many entries from bench/gen-tar.ts, piped
   *  through a FIFO as it is generated (`data` is unused); only Sluice reads it (`--tar`). */
  tar?: { entries: number; perDir: number }
  /** Also time Sluice's restore --tar, ls, diff, check and prune. */
  moreOps?: boolean
}

function manyFiles(name: string, n: number, description: string): Scenario {
  const data = join(BENCH_DIR, 'data', `many-files-${n}`)
  return { name, description, data, marker: `${data}.complete`, generate: [join(GEN_DIR, 'gen-many-files.cjs'), String(n), data, '42'] }
}

function bigFiles(name: string, count: number, mib: number, description: string): Scenario {
  const data = join(BENCH_DIR, 'data', `big-files-${count}x${mib}`)
  return {
    name, description, data, marker: `${data}.complete`,
    generate: [join(GEN_DIR, 'gen-big-files.cjs'), data, '42', String(count), String(mib)],
  }
}

function stdinFile(name: string, from: Scenario, file: string, description: string): Scenario {
  return { ...from, name, description, data: join(from.data, file), stdinName: file }
}

/** System directories copied into place: see bench/gen/gen-real-tree.cjs. */
function realTree(name: string, description: string): Scenario {
  const data = join(BENCH_DIR, 'data', 'real-tree')
  return { name, description, data, marker: `${data}.complete`, generate: [join(GEN_DIR, 'gen-real-tree.cjs'), data] }
}

/** Sparse files (2 GiB with 8 KiB of data, 4 GiB with 64 MiB): see bench/gen/gen-sparse.cjs. */
function sparseFiles(name: string, description: string): Scenario {
  const data = join(BENCH_DIR, 'data', 'sparse')
  return { name, description, data, marker: `${data}.complete`, generate: [join(GEN_DIR, 'gen-sparse.cjs'), data, '42'] }
}

/** Small files that each carry two ~1.9 KB user xattrs: see bench/gen/gen-xattr-files.cjs. */
function xattrFiles(name: string, n: number, description: string): Scenario {
  const data = join(BENCH_DIR, 'data', `xattr-files-${n}`)
  return { name, description, data, marker: `${data}.complete`, generate: [join(GEN_DIR, 'gen-xattr-files.cjs'), String(n), data, '42'] }
}

/** One directory of `n` files (bench/gen/gen-one-dir.cjs), each of 0..maxBytes bytes. */
function oneDir(name: string, n: number, maxBytes: number, description: string): Scenario {
  const data = join(BENCH_DIR, 'data', `one-dir-${n}`)
  return {
    name, description, data, marker: `${data}.complete`, moreOps: true,
    generate: [join(GEN_DIR, 'gen-one-dir.cjs'), String(n), data, '42', String(maxBytes)],
  }
}

function tarStream(name: string, entries: number, description: string): Scenario {
  return { name, description, data: '', marker: '', generate: [], tar: { entries, perDir: 1000 }, moreOps: true }
}

const BIG512 = bigFiles('big-2x512M', 2, 512, '2 x 512 MiB (half random, half text) + an exact copy of the first')

const SCENARIOS = {
  tiny: manyFiles('tiny-2k', 2000, '2000 small files (harness smoke test)'),
  tinyBig: bigFiles('tiny-big', 2, 8, '2 x 8 MiB + duplicate (harness smoke test)'),
  small: manyFiles('small-100k', 100_000, '100k small files (0-8 KiB), 100 dirs, xattr on every 10th'),
  many: manyFiles('many-1m', 1_000_000, '1M small files (0-8 KiB), 1000 dirs, xattr on every 10th'),
  big512: BIG512,
  stdin: stdinFile('stdin-512M', BIG512, 'big-1.bin', 'one 512 MiB file (big-1.bin of big-2x512M) piped on stdin'),
  real: realTree('real-tree', 'a real tree: /usr/share, /usr/include, /usr/lib/python3 and /usr/lib/x86_64-linux-gnu copied into place'),
  xattr: xattrFiles('xattr-50k', 50_000, '50k small files (100 B-3 KiB), 50 dirs, two ~1.9 KB user xattrs on each'),
  big: bigFiles('big-4x1G', 4, 1024, '4 x 1 GiB (half random, half text) + an exact copy of the first'),
  sparse: sparseFiles('sparse-6G', 'sparse files: 2 GiB holding 8 KiB, 4 GiB holding 64 x 1 MiB (6 GiB apparent, 64 MiB of data)'),
  tar100k: tarStream('tar-100k', 100_000, 'a tar stream of 100k small files (0-64 bytes), 1000 per directory'),
  tar10m: tarStream('tar-10m', 10_000_000, 'a tar stream of 10M small files (0-64 bytes), 1000 per directory'),
  dir1m: oneDir('dir-1m', 1_000_000, 32, 'one directory of 1M tiny files (0-32 bytes)'),
  // Empty files: 5M files of even one byte would take 20 GB of 4 KiB blocks (twice, restored).
  dir5m: oneDir('dir-5m', 5_000_000, 0, 'one directory of 5M empty files'),
} satisfies Record<string, Scenario>

/** What each command-line word selects. */
const SELECTORS: Record<string, Scenario[]> = {
  default: [SCENARIOS.small, SCENARIOS.big512],
  tiny: [SCENARIOS.tiny, SCENARIOS.tinyBig],
  small: [SCENARIOS.small],
  many: [SCENARIOS.small, SCENARIOS.many],
  million: [SCENARIOS.many],
  big512: [SCENARIOS.big512],
  big: [SCENARIOS.big],
  stdin: [SCENARIOS.stdin],
  real: [SCENARIOS.real],
  sparse: [SCENARIOS.sparse],
  xattr: [SCENARIOS.xattr],
  all: [SCENARIOS.small, SCENARIOS.many, SCENARIOS.real, SCENARIOS.big, SCENARIOS.stdin],
  tar100k: [SCENARIOS.tar100k],
  tar10m: [SCENARIOS.tar10m],
  dir1m: [SCENARIOS.dir1m],
  dir5m: [SCENARIOS.dir5m],
  huge: [SCENARIOS.small, SCENARIOS.tar100k, SCENARIOS.tar10m, SCENARIOS.dir1m, SCENARIOS.dir5m],
}

function selectScenarios(words: string[]): Scenario[] {
  if (words.length === 0) words = (process.env.BENCH_SCENARIOS ?? 'default').split(/[ ,]+/).filter(Boolean)
  const out: Scenario[] = []
  for (const w of words) {
    const sel = SELECTORS[w]
    if (sel === undefined) {
      console.error(`unknown scenario "${w}"; choose from: ${Object.keys(SELECTORS).join(', ')}`)
      process.exit(2)
    }
    for (const s of sel) if (!out.includes(s)) out.push(s)
  }
  // Rows at the highest compression are named apart from the default ones (small-100k-max).
  return process.env.BENCH_COMPRESSION === 'max' ? out.map((s) => ({ ...s, name: `${s.name}-max` })) : out
}

function selectTools(): { tools: Tool[]; versions: Record<string, string> } {
  const wanted = process.env.BENCH_TOOLS?.split(/[ ,]+/).filter(Boolean)
  const tools: Tool[] = []
  const versions: Record<string, string> = {}
  // In BENCH_TOOLS's order when given (restic,sluice runs restic first), so runs can alternate.
  const ordered = wanted === undefined ? TOOLS : wanted.map((w) => TOOLS.find((t) => t.name === w)).filter((t) => t !== undefined)
  for (const w of wanted ?? []) if (!TOOLS.some((t) => t.name === w)) console.log(`unknown tool "${w}" in BENCH_TOOLS: ignored`)
  for (const t of ordered) {
    const v = t.probe()
    versions[t.name] = v
    if (v.startsWith('unavailable')) console.log(`skipping ${t.name}: ${v}`)
    else tools.push(t)
  }
  return { tools, versions }
}

/** The machine the numbers come from, for the results file and the docs. */
function machine(): Record<string, unknown> {
  const df = quiet(['df', '-PT', BENCH_DIR])?.trim().split('\n')[1]?.split(/\s+/)
  return {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    nproc: os.availableParallelism(),
    memoryBytes: os.totalmem(),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    disk: df === undefined ? 'unknown' : { device: df[0], fstype: df[1], sizeKiB: Number(df[2]), mount: df[6] },
    rssMethod: rssMethod(),
  }
}

function generate(s: Scenario): void {
  if (s.tar !== undefined || existsSync(s.marker)) return
  console.log(`[${s.name}] generating ${s.description} in ${s.data} ...`)
  const env: NodeJS.ProcessEnv = { ...process.env, BENCH_DIR }
  // The xattr step needs setfattr (package "attr"); without it, generate without xattrs.
  if (quiet(['setfattr', '--version']) === undefined) env.NO_XATTR = '1'
  const res = spawnSync(process.execPath, s.generate, { stdio: 'inherit', env })
  if (res.status !== 0) throw new Error(`generator failed for ${s.name}`)
}

function sync(): void {
  spawnSync('sync', { stdio: 'ignore' })
}

/**
 * Seconds a timed restore waits (untimed) after the last deletion's `sync`. On ext4 without a
 * journal (the bench disk) the inode allocator skips every inode freed less than 60 s ago (365 s
 * while its inode-table block is dirty, which the restore's own creates make it), scanning past
 * each one from the start of the block group on every create (`recently_deleted` in
 * fs/ext4/ialloc.c; RECENTCY_MIN was 5 s before Linux 5.7, 60 s since), so a restore after
 * deleting a large tree creates its files far more slowly than one on an even disk. Hence the
 * run deletes nothing large until it ends (`deferred`); the wait covers what it must delete
 * before it starts (a kept run's directories). BENCH_SETTLE overrides it (0: no wait).
 */
const SETTLE_SECONDS = Number(process.env.BENCH_SETTLE ?? 61)
/** performance.now() when the last deletion's `sync` returned; -Infinity before any deletion. */
let lastDeletionSynced = -Infinity

/** Run directories (repositories, caches, restored trees) deleted when the run ends, not
 *  between restores (see SETTLE_SECONDS); BENCH_KEEP=1 keeps them. */
const deferred: string[] = []

/** Deletes `path` (if it exists), then `sync`s, so the freed inodes are written back and age
 *  from now (see SETTLE_SECONDS). */
function remove(path: string): void {
  if (!existsSync(path)) return
  rmSync(path, { recursive: true, force: true })
  sync()
  lastDeletionSynced = performance.now()
}

/** Sleeps (untimed) until SETTLE_SECONDS have passed since the last deletion's sync. */
function settle(): void {
  const waitMs = SETTLE_SECONDS * 1000 - (performance.now() - lastDeletionSynced)
  if (waitMs <= 0) return
  console.log(`  (waiting ${(waitMs / 1000).toFixed(1)} s, untimed, for the last deletion's inodes to age)`)
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, waitMs)
}

/** The measured figures of a command, as an OpResult carries them. */
function timing(m: Measurement): Pick<OpResult, 'seconds' | 'cpuSeconds' | 'sysSeconds' | 'peakRssBytes' | 'load1'> {
  return { seconds: m.seconds, cpuSeconds: m.cpuSeconds, sysSeconds: m.sysSeconds, peakRssBytes: m.peakRssBytes, load1: m.load1 }
}

function describeFailure(m: Measurement): string {
  return `exit ${m.exitCode}: ${tail(m.stderrPath, 400) || tail(m.stdoutPath, 400)}`
}

const MB = 1e6

function progress(r: OpResult): void {
  const what = `[${r.scenario}] ${r.tool} ${r.op}`
  if (!r.ok) {
    console.log(`${what}: n/a (${r.error ?? 'failed'})`)
    return
  }
  const rss = r.peakRssBytes === null ? 'n/a' : `${(r.peakRssBytes / MB).toFixed(0)} MB`
  const speed = r.seconds ? `${(r.bytes / MB / r.seconds).toFixed(1)} MB/s` : ''
  const check = r.verified === undefined ? '' : r.verified ? ', verified' : ', MISMATCH'
  console.log(`${what}: ${r.seconds?.toFixed(2)} s, ${speed}, peak RSS ${rss}${check}`)
}

/** Starts bench/gen-tar.ts writing into a FIFO in `dir`: the tar source of a `--tar` backup,
 *  generated while it is read, so 10M entries take no disk. */
function startTar(tar: NonNullable<Scenario['tar']>, dir: string): { fifo: string; stop: () => void } {
  const fifo = join(dir, 'tar.fifo')
  rmSync(fifo, { force: true })
  if (spawnSync('mkfifo', [fifo]).status !== 0) throw new Error(`mkfifo ${fifo} failed`)
  const gen = join(PROJECT_ROOT, 'bench', 'gen-tar.ts')
  const child: ChildProcess = spawn('sh', ['-c', 'exec "$0" --import tsx "$1" "$2" "$3" > "$4"', process.execPath, gen, String(tar.entries), String(tar.perDir), fifo], {
    cwd: PROJECT_ROOT, stdio: ['ignore', 'ignore', 'inherit'],
  })
  return {
    fifo,
    stop: () => {
      if (child.exitCode === null) child.kill()
      rmSync(fifo, { force: true })
    },
  }
}

/** Runs one tool through init, backup, restore and incremental backup on one scenario. */
function benchTool(s: Scenario, tree: TreeStats, tool: Tool, logDir: string, record: (r: OpResult) => void): void {
  const runDir = join(BENCH_DIR, 'runs', s.name, tool.name)
  remove(runDir)
  mkdirSync(runDir, { recursive: true })
  const run: ToolRun = newRun(tool.name, runDir)
  const log = (op: string): string => logPath(logDir, s.name, tool.name, op)
  const base = { scenario: s.name, tool: tool.name, files: tree.files, bytes: tree.bytes }
  const failed = (op: Op, error: string): void =>
    record({ ...base, op, ok: false, error, seconds: null, cpuSeconds: null, peakRssBytes: null })

  const init = measure(tool.init(run), log('init'))
  if (init.exitCode !== 0) {
    const why = `init ${describeFailure(init)}`
    for (const op of ['backup', 'restore', 'incremental'] as const) failed(op, why)
    return
  }

  const ids: string[] = []
  const backup = (op: Op): boolean => {
    const feed = s.tar === undefined ? undefined : startTar(s.tar, runDir)
    const spec: CommandSpec = feed !== undefined
      ? { argv: [SLUICE_CLI, 'backup', '--tar', '--stdin-filename', 'tar', '--json'], env: run.env, stdinPath: feed.fifo }
      : s.stdinName === undefined
        ? tool.backup(run, s.data)
        : { ...tool.backupStdin(run, s.stdinName), stdinPath: s.data }
    const m = measure(spec, log(op))
    feed?.stop()
    sync()
    if (m.exitCode !== 0) {
      failed(op, describeFailure(m))
      return false
    }
    run.snapshots++
    const r: OpResult = {
      ...base, op, ok: true,
      ...timing(m),
      repoBytes: treeBytes(run.repo),
    }
    if (tool.name === 'sluice') r.toolReport = lastJsonLine(readFileSync(m.stdoutPath, 'utf8')) ?? undefined
    if (typeof r.toolReport?.snapshot_id === 'string') ids.push(r.toolReport.snapshot_id)
    record(r)
    return true
  }

  const restoreTree = (): void => {
    const target = join(runDir, 'restore')
    mkdirSync(target, { recursive: true })
    settle()
    const m = measure(tool.restore(run, target), log('restore'))
    sync()
    if (m.exitCode !== 0) failed('restore', describeFailure(m))
    else {
      const v = verifyRestore(s.data, target, tree.files)
      if (!v.ok) console.warn(`WARNING: [${s.name}] ${tool.name} restore differs from the source: ${v.problems.join('; ')}`)
      record({
        ...base, op: 'restore', ok: true, files: v.files, bytes: v.bytes,
        ...timing(m),
        verified: v.ok, ...(v.ok ? {} : { verifyProblems: v.problems }),
      })
    }
  }

  const restoreStream = (name: string): void => {
    settle()
    const m = measure(tool.cat(run, name), log('restore'))
    sync()
    if (m.exitCode !== 0) failed('restore', describeFailure(m))
    else {
      // The restored stream is the command's stdout file.
      const got = statSync(m.stdoutPath).size
      const ok = got === tree.bytes && fileHash(m.stdoutPath) === fileHash(s.data)
      if (!ok) console.warn(`WARNING: [${s.name}] ${tool.name} cat output differs from the source`)
      record({
        ...base, op: 'restore', ok: true, bytes: got,
        ...timing(m),
        verified: ok, ...(ok ? {} : { verifyProblems: [`stdout differs from ${s.data} (${got} bytes)`] }),
      })
    }
    if (!KEEP) remove(m.stdoutPath)
  }

  /** Sluice's read-side commands on the two snapshots, stdout discarded. */
  const moreOps = (): void => {
    const timed = (op: Op, args: string[]): void => {
      const m = measure({ argv: [SLUICE_CLI, ...args], env: run.env, discardStdout: true }, log(op))
      sync()
      if (m.exitCode !== 0) failed(op, describeFailure(m))
      else record({ ...base, op, ok: true, ...timing(m) })
    }
    settle()
    timed('restore-tar', ['restore', '--tar', 'latest'])
    timed('ls', ['ls', 'latest'])
    if (ids.length === 2) timed('diff', ['diff', ids[0]!, ids[1]!])
    timed('check', ['check'])
    // prune walks every snapshot left (deleting nothing younger than GC_MIN_CHUNK_AGE_MS).
    if (ids.length === 2) quiet([SLUICE_CLI, 'forget', ids[0]!], run.env)
    timed('prune', ['prune'])
  }

  if (!backup('backup')) {
    failed('restore', 'no snapshot (backup failed)')
    failed('incremental', 'no snapshot (backup failed)')
  } else {
    // A tar scenario has no tree to restore into: its restore is `restore --tar` below.
    if (s.tar !== undefined || NO_TREE_RESTORE) { /* nothing */ }
    else if (s.stdinName === undefined) restoreTree()
    else restoreStream(s.stdinName)
    backup('incremental')
    if (s.moreOps && tool.name === 'sluice') moreOps()
  }
  if (!KEEP) deferred.push(runDir)
}

function main(): void {
  const scenarios = selectScenarios(process.argv.slice(2))
  mkdirSync(BENCH_DIR, { recursive: true })
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const logDir = join(BENCH_DIR, 'logs', stamp)
  mkdirSync(logDir, { recursive: true })
  const { tools, versions } = selectTools()
  const info = { startedAt: new Date().toISOString(), machine: machine(), tools: versions }
  console.log(`machine: ${JSON.stringify(info.machine)}`)
  console.log(`tools: ${JSON.stringify(versions)}`)
  if (tools.length === 0) console.log('no tool available: nothing to measure')

  const results: OpResult[] = []
  const scenarioInfo: Record<string, unknown>[] = []
  const resultsPath = join(BENCH_DIR, `results-${stamp}.json`)
  const save = (): void =>
    writeFileSync(resultsPath, JSON.stringify({ ...info, scenarios: scenarioInfo, results }, null, 2) + '\n')
  const record = (r: OpResult): void => {
    results.push(r)
    progress(r)
    save() // after every operation, so an interrupted run keeps what it measured
  }

  for (const s of scenarios) {
    generate(s)
    let tree: TreeStats | undefined
    for (const tool of tools) {
      // `restic backup --stdin` of a tar stores one file, not its members: not the same thing.
      if (s.tar !== undefined && tool.name !== 'sluice') continue
      // Re-read the source before each tool: the previous tool's restore and cleanup may have
      // pushed some of it out of the page cache.
      tree = s.tar !== undefined ? { files: s.tar.entries, dirs: Math.ceil(s.tar.entries / s.tar.perDir), bytes: 0 } : warmAndCount(s.data)
      benchTool(s, tree, tool, logDir, record)
    }
    tree ??= s.tar !== undefined ? { files: s.tar.entries, dirs: 0, bytes: 0 } : warmAndCount(s.data)
    scenarioInfo.push({ name: s.name, description: s.description, data: s.data, ...tree })
  }
  save()
  for (const d of deferred) remove(d)

  const names = scenarios.map((s) => s.name)
  // Peak RSS growth: 1M files, and 1M / 5M in one directory, over 100k files; 10M tar entries
  // over 100k.
  const pairs = [
    [SCENARIOS.small, SCENARIOS.many], [SCENARIOS.small, SCENARIOS.dir1m], [SCENARIOS.small, SCENARIOS.dir5m],
    [SCENARIOS.tar100k, SCENARIOS.tar10m],
  ] as const
  const flat = pairs.filter(([a, b]) => names.includes(a.name) && names.includes(b.name)).map(([a, b]) => ({ small: a.name, large: b.name }))
  console.log('\n' + render(results, 'text', flat) + '\n')
  writeFileSync(resultsPath.replace(/\.json$/, '.md'), render(results, 'markdown', flat) + '\n')
  for (const p of problems(results)) console.warn(`WARNING: ${p}`)
  console.log(`results: ${resultsPath} (and .md); logs: ${logDir}`)
}

main()
