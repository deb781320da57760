/**
 * Runs the built CLI (dist/cli/main.js) as a user would: a child process with a scrubbed
 * environment (PATH, HOME set to a temporary directory, and only the SLUICE_* and AWS_*
 * variables the test passes), capturing stdout, stderr and the exit code. Build first (`npm run build`).
 */
import { spawn } from 'node:child_process'
import { Readable } from 'node:stream'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

/** The compiled entry point of the `sluice` command. */
export const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../dist/cli/main.js')

export interface CliResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
  /** stdout as bytes, for names that are not UTF-8. */
  stdoutBytes: Buffer
}

export interface CliOptions {
  /** SLUICE_* and AWS_* variables and TZ (and nothing else) for the child. */
  env?: Record<string, string>
  /** HOME of the child (a temporary directory). */
  home: string
  cwd?: string
  /** Options for node itself, before the script (e.g. `--import` of a test hook). */
  nodeArgs?: string[]
  /** Bytes for stdin, or a stream piped into it (with backpressure); stdin is /dev/null-like
   *  (closed) when not given. */
  input?: Buffer | string | Readable
  /** Read at most this many bytes of stdout, then close our end of the pipe (as `| head -c N`
   *  does): the child meets EPIPE on its next write. */
  stdoutLimit?: number
  /** Receives stdout piece by piece instead of keeping it (for outputs too big to hold);
   *  `stdout` is then empty. */
  onStdout?: (piece: Buffer) => void
  timeoutMs?: number
}

/** Runs `sluice ...args` and resolves when it exits (never rejects on a non-zero exit). */
export function runCli(args: string[], opts: CliOptions): Promise<CliResult> {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first`)
  for (const k of Object.keys(opts.env ?? {})) {
    if (!k.startsWith('SLUICE_') && !k.startsWith('AWS_') && k !== 'TZ') throw new Error(`runCli passes only SLUICE_*, AWS_* and TZ variables, not ${k}`)
  }
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: opts.home, ...opts.env }
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...(opts.nodeArgs ?? []), CLI, ...args], {
      env,
      cwd: opts.cwd ?? opts.home,
      // A new session: no controlling terminal, so /dev/tty cannot be opened and a password
      // prompt fails the way it does under cron.
      detached: true,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    let got = 0
    const limit = opts.stdoutLimit ?? Infinity
    child.stdout.on('data', (b: Buffer) => {
      if (opts.onStdout) return opts.onStdout(b)
      if (got >= limit) return
      const piece = b.subarray(0, limit - got)
      out.push(piece)
      got += piece.length
      if (got >= limit) child.stdout.destroy()
    })
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.stdin.on('error', () => {})
    if (opts.input instanceof Readable) {
      opts.input.on('error', () => child.stdin.destroy())
      opts.input.pipe(child.stdin)
    } else child.stdin.end(opts.input ?? '')
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (opts.input instanceof Readable) opts.input.destroy()
      const stdoutBytes = Buffer.concat(out)
      resolve({ code, signal, stdout: stdoutBytes.toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), stdoutBytes })
    })
  })
}

/** A runner bound to one repository and password (through the environment). */
export function cliFor(home: string, repo: string, password = 'correct horse') {
  return (args: string[], extra: Partial<CliOptions> = {}) =>
    runCli(args, { home, ...extra, env: { SLUICE_REPOSITORY: repo, SLUICE_PASSWORD: password, ...extra.env } })
}

/** The summary line of `backup --json` (restic's line-delimited shape: status lines, then one
 *  `{"message_type":"summary",...}`); throws unless there is exactly one. */
export function backupSummary<T = Record<string, any>>(stdout: string): T {
  const summaries = stdout.split('\n').filter(l => l !== '').map(l => JSON.parse(l) as { message_type?: string }).filter(m => m.message_type === 'summary')
  if (summaries.length !== 1) throw new Error(`expected one summary line, got ${summaries.length}:\n${stdout}`)
  return summaries[0] as T
}
