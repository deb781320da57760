/**
 * Runs one command and measures it the way the OS sees it: wall time, CPU time and the peak
 * resident set size of the child process.
 *
 * Node cannot read a child's max RSS (it has no wait4), so the command runs under a tiny
 * wrapper that waits for it and reads getrusage(RUSAGE_CHILDREN): python3 when present, else
 * GNU `/usr/bin/time -f`, else no wrapper at all (time only, RSS unknown).
 * RUSAGE_CHILDREN's ru_maxrss is the largest RSS of any single waited-for descendant, not a sum.
 */
import { spawnSync } from 'node:child_process'
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'

/** How the peak RSS of a child is obtained on this machine. */
export type RssMethod = 'python3' | 'gnu-time' | 'none'

/** What one measured command did. */
export interface Measurement {
  /** Exit code; a signal is reported as 128 + its number. */
  exitCode: number
  /** Wall-clock seconds of the command alone (the wrapper's own start-up is outside). */
  seconds: number
  /** User + system CPU seconds of the command and its waited-for children. */
  cpuSeconds: number | null
  /** The system (kernel) part of cpuSeconds, or null when unknown. */
  sysSeconds: number | null
  /** Peak resident set size in bytes, or null when no wrapper is available. */
  peakRssBytes: number | null
  /** 1-minute load average just before the command started. */
  load1: number
  /** Files holding the command's stdout and stderr. */
  stdoutPath: string
  stderrPath: string
}

/** Everything needed to run one command. */
export interface CommandSpec {
  argv: readonly string[]
  cwd?: string
  env: NodeJS.ProcessEnv
  /** A file to feed on stdin; stdin is /dev/null otherwise. */
  stdinPath?: string
  /** Send stdout to /dev/null instead of the log (a restored tar stream of gigabytes). */
  discardStdout?: boolean
}

// Times the command itself, waits for it, and writes one JSON line with its rusage to argv[1].
// subprocess.call leaves stdin/stdout/stderr inherited, so the command sees the files we gave.
const PY_WRAPPER = `
import json, resource, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t = time.monotonic()
rc = subprocess.call(cmd)
s = time.monotonic() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, 'w') as f:
    json.dump({'rc': rc if rc >= 0 else 128 - rc, 'seconds': s,
               'cpu': ru.ru_utime + ru.ru_stime, 'sys': ru.ru_stime, 'maxrssKiB': ru.ru_maxrss}, f)
sys.exit(0)
`

let detected: RssMethod | undefined

/** Picks the best available way to measure RSS (cached after the first call). */
export function rssMethod(): RssMethod {
  if (detected !== undefined) return detected
  const forced = process.env.BENCH_RSS_METHOD
  if (forced === 'python3' || forced === 'gnu-time' || forced === 'none') return (detected = forced)
  const py = spawnSync('python3', ['-c', 'import resource, subprocess'], { stdio: 'ignore' })
  if (py.status === 0) return (detected = 'python3')
  const gt = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, '-e', '0'], { stdio: 'ignore' })
  if (gt.status === 0) return (detected = 'gnu-time')
  return (detected = 'none')
}

/**
 * Runs `spec` to completion (synchronously: the harness has nothing else to do meanwhile) with
 * stdout and stderr going to `logBase.stdout` / `logBase.stderr`.
 */
export function measure(spec: CommandSpec, logBase: string): Measurement {
  const stdoutPath = `${logBase}.stdout`
  const stderrPath = `${logBase}.stderr`
  const rusagePath = `${logBase}.rusage`
  rmSync(rusagePath, { force: true })
  const method = rssMethod()
  const [cmd, ...args] = spec.argv
  if (cmd === undefined) throw new Error('measure: empty argv')

  let argv: string[]
  if (method === 'python3') argv = ['python3', '-c', PY_WRAPPER, rusagePath, cmd, ...args]
  else if (method === 'gnu-time') argv = ['/usr/bin/time', '-f', '%e %U %S %M', '-o', rusagePath, cmd, ...args]
  else argv = [cmd, ...args]

  const stdin = spec.stdinPath === undefined ? 'ignore' : openSync(spec.stdinPath, 'r')
  const out = openSync(spec.discardStdout ? '/dev/null' : stdoutPath, 'w')
  const err = openSync(stderrPath, 'w')
  const load1 = loadavg()[0] ?? 0
  const t0 = process.hrtime.bigint()
  const res = spawnSync(argv[0] as string, argv.slice(1), {
    cwd: spec.cwd,
    env: spec.env,
    stdio: [stdin, out, err],
  })
  const wallSeconds = Number(process.hrtime.bigint() - t0) / 1e9
  closeSync(out)
  closeSync(err)
  if (typeof stdin === 'number') closeSync(stdin)
  if (res.error) throw res.error

  const fallbackExit = res.status ?? 128
  const base = { stdoutPath, stderrPath, load1 }
  if (method === 'python3' && existsSync(rusagePath)) {
    const r = JSON.parse(readFileSync(rusagePath, 'utf8')) as {
      rc: number; seconds: number; cpu: number; sys: number; maxrssKiB: number
    }
    return { ...base, exitCode: r.rc, seconds: r.seconds, cpuSeconds: r.cpu, sysSeconds: r.sys, peakRssBytes: r.maxrssKiB * 1024 }
  }
  if (method === 'gnu-time' && existsSync(rusagePath)) {
    // GNU time writes "Command exited with non-zero status N" before the format line on failure.
    const lines = readFileSync(rusagePath, 'utf8').trim().split('\n')
    const [e, u, s, m] = (lines[lines.length - 1] ?? '').split(' ').map(Number)
    if (e !== undefined && u !== undefined && s !== undefined && m !== undefined) {
      return { ...base, exitCode: fallbackExit, seconds: e, cpuSeconds: u + s, sysSeconds: s, peakRssBytes: m * 1024 }
    }
  }
  return { ...base, exitCode: fallbackExit, seconds: wallSeconds, cpuSeconds: null, sysSeconds: null, peakRssBytes: null }
}

/** Runs a helper command without measuring it; returns its stdout, or undefined if it failed. */
export function quiet(argv: readonly string[], env: NodeJS.ProcessEnv = process.env, cwd?: string): string | undefined {
  const [cmd, ...args] = argv
  if (cmd === undefined) return undefined
  const res = spawnSync(cmd, args, { env, cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  if (res.error || res.status !== 0) return undefined
  return res.stdout
}

/** The last `maxChars` characters of a log file, for error messages. */
export function tail(path: string, maxChars = 600): string {
  try {
    const s = readFileSync(path, 'utf8').trim()
    return s.length > maxChars ? '…' + s.slice(-maxChars) : s
  } catch {
    return ''
  }
}

/** Joins a directory and a file stem for log files. */
export function logPath(dir: string, ...parts: string[]): string {
  return join(dir, parts.join('-'))
}
