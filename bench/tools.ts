/**
 * The backup tools under comparison and how to drive each one: Sluice (this project's CLI),
 * restic and borg. Each tool gets a fresh repository and its own cache/config directory inside
 * the run directory, so no run sees another's cache and nothing lands in $HOME.
 * Compression is each tool's default: restic 0.14 repository v2 "auto" (zstd), borg lz4,
 * Sluice zstd at its default level.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { quiet, type CommandSpec } from './measure.js'

/** Name of a compared tool. */
export type ToolName = 'sluice' | 'restic' | 'borg'

/** One tool's repository for one scenario. */
export interface ToolRun {
  /** Repository directory (created by init). */
  repo: string
  /** Directory for the tool's cache and config (restic cache, borg base dir). */
  home: string
  /** Environment for every command of this run. */
  env: NodeJS.ProcessEnv
  /** Snapshots made so far (borg needs a fresh archive name per backup and a name to extract). */
  snapshots: number
  /** BENCH_COMPRESSION=max: every tool's backups at its highest compression level. */
  compressionMax: boolean
}

/** How to drive one backup tool. */
export interface Tool {
  name: ToolName
  /** Version string, or a reason it cannot run here prefixed by "unavailable: ". */
  probe(): string
  /** Creates the repository (not timed). */
  init(run: ToolRun): CommandSpec
  /** Backs up `source` (an absolute path). */
  backup(run: ToolRun, source: string): CommandSpec
  /** Restores the latest snapshot into `target`, an existing empty directory. */
  restore(run: ToolRun, target: string): CommandSpec
  /** Backs up stdin as one file called `name` (the caller sets stdinPath). */
  backupStdin(run: ToolRun, name: string): CommandSpec
  /** Writes file `name` of the latest snapshot to stdout. */
  cat(run: ToolRun, name: string): CommandSpec
}

const PASSWORD = 'bench-password-not-secret'

/** The repository root of this project (bench/ is one level below it). */
export const PROJECT_ROOT = dirname(dirname(fileURLToPath(import.meta.url)))

/** The Sluice CLI entry point; SLUICE_CLI overrides it. Run as an executable, as a user's
 *  `sluice` is, so the V8 flags of its shebang apply. */
export const SLUICE_CLI = process.env.SLUICE_CLI ?? join(PROJECT_ROOT, 'dist', 'cli', 'main.js')

/** A copy of the environment without any tool's repository or password variables. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(SLUICE|RESTIC|BORG)_/.test(k)) continue
    env[k] = v
  }
  return env
}

/** Prepares the per-run repository path and environment for `tool` under `dir`. */
export function newRun(tool: ToolName, dir: string): ToolRun {
  const repo = join(dir, 'repo')
  const home = join(dir, 'home')
  mkdirSync(home, { recursive: true })
  const env = cleanEnv()
  if (tool === 'sluice') {
    env.SLUICE_REPOSITORY = repo
    env.SLUICE_PASSWORD = PASSWORD
    env.XDG_CACHE_HOME = join(home, 'cache')
    // BENCH_SLUICE_MEMORY=64M runs Sluice under that memory budget (--memory).
    if (process.env.BENCH_SLUICE_MEMORY) env.SLUICE_MEMORY = process.env.BENCH_SLUICE_MEMORY
  } else if (tool === 'restic') {
    env.RESTIC_REPOSITORY = repo
    env.RESTIC_PASSWORD = PASSWORD
    env.RESTIC_CACHE_DIR = join(home, 'cache')
  } else {
    env.BORG_PASSPHRASE = PASSWORD
    env.BORG_BASE_DIR = home
  }
  return { repo, home, env, snapshots: 0, compressionMax: process.env.BENCH_COMPRESSION === 'max' }
}

/** The compression flag and value for a run with BENCH_COMPRESSION=max, else nothing. */
function maxFlag(run: ToolRun, flag: string, value: string): string[] {
  return run.compressionMax ? [flag, value] : []
}

const sluice: Tool = {
  name: 'sluice',
  probe() {
    if (!existsSync(SLUICE_CLI)) return `unavailable: ${SLUICE_CLI} not built (npm run build)`
    const help = quiet([SLUICE_CLI, '--help'])
    if (help === undefined) return `unavailable: ${SLUICE_CLI} --help failed`
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }
    return `sluice ${pkg.version} (node ${process.version})`
  },
  init: (run) => ({ argv: [SLUICE_CLI, 'init'], env: run.env }),
  // BENCH_COMPRESSION=max: zstd level 19 here, restic's "max" (klauspost/compress's best level), borg's zstd,19.
  backup: (run, source) => ({ argv: [SLUICE_CLI, 'backup', source, '--json', ...maxFlag(run, '--compression', 'max')], env: run.env }),
  restore: (run, target) => ({
    argv: [SLUICE_CLI, 'restore', 'latest', '--target', target],
    env: run.env,
  }),
  backupStdin: (run, name) => ({
    argv: [SLUICE_CLI, 'backup', '--stdin', '--stdin-filename', name, '--json'],
    env: run.env,
  }),
  cat: (run, name) => ({ argv: [SLUICE_CLI, 'cat', 'latest', name], env: run.env }),
}

const restic: Tool = {
  name: 'restic',
  probe() {
    const v = quiet(['restic', 'version'])
    return v === undefined ? 'unavailable: restic not on PATH' : v.trim().split(' compiled')[0] ?? v.trim()
  },
  // restic 0.14 creates repository version 2 (compression "auto") by default.
  init: (run) => ({ argv: ['restic', 'init'], env: run.env }),
  backup: (run, source) => ({ argv: ['restic', 'backup', source, ...maxFlag(run, '--compression', 'max')], env: run.env }),
  restore: (run, target) => ({ argv: ['restic', 'restore', 'latest', '--target', target], env: run.env }),
  backupStdin: (run, name) => ({ argv: ['restic', 'backup', '--stdin', '--stdin-filename', name], env: run.env }),
  cat: (run, name) => ({ argv: ['restic', 'dump', 'latest', `/${name}`], env: run.env }),
}

const borg: Tool = {
  name: 'borg',
  probe() {
    const v = quiet(['borg', '--version'])
    return v === undefined ? 'unavailable: borg not on PATH' : v.trim()
  },
  init: (run) => ({ argv: ['borg', 'init', '--encryption=repokey-blake2', run.repo], env: run.env }),
  backup: (run, source) => ({
    argv: ['borg', 'create', ...maxFlag(run, '--compression', 'zstd,19'), `${run.repo}::snap-${run.snapshots + 1}`, source],
    env: run.env,
  }),
  // borg extract writes into the current directory.
  restore: (run, target) => ({ argv: ['borg', 'extract', `${run.repo}::snap-${run.snapshots}`], env: run.env, cwd: target }),
  backupStdin: (run, name) => ({
    argv: ['borg', 'create', '--stdin-name', name, `${run.repo}::snap-${run.snapshots + 1}`, '-'],
    env: run.env,
  }),
  cat: (run, name) => ({ argv: ['borg', 'extract', '--stdout', `${run.repo}::snap-${run.snapshots}`, name], env: run.env }),
}

/** All tools, in the order they run. */
export const TOOLS: readonly Tool[] = [sluice, restic, borg]

/** Pulls the last JSON object line out of a command's stdout (Sluice's `--json` report). */
export function lastJsonLine(stdout: string): Record<string, unknown> | null {
  const lines = stdout.trim().split('\n')
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = (lines[i] ?? '').trim()
    if (!line.startsWith('{')) continue
    try {
      const v: unknown = JSON.parse(line)
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>
    } catch { /* not JSON: keep looking */ }
  }
  // A pretty-printed object spans lines: try the whole output.
  try {
    const v: unknown = JSON.parse(stdout)
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>
  } catch { /* no report */ }
  return null
}
