/** What every command shares: opening the repository, the password, progress and messages. */
import fs from 'node:fs'
import type { Argv } from 'yargs'
import { SluiceError, displayPath, openRepository, openStorage, type Repository, type Storage } from '../index.js'

export interface GlobalArgs {
  repo?: string
  'password-file'?: string
  's3-path-style'?: boolean
  json?: boolean
  quiet?: boolean
  verbose?: boolean
}

export function globalOptions<T>(y: Argv<T>) {
  return y
    .option('repo', { alias: 'r', type: 'string', describe: 'repository: a directory, or s3:BUCKET/PREFIX, or s3:https://HOST/BUCKET/PREFIX (default: $SLUICE_REPOSITORY)' })
    .option('password-file', { type: 'string', describe: 'read the password from this file (default: $SLUICE_PASSWORD, else a prompt on a terminal)' })
    .option('s3-path-style', { type: 'boolean', describe: 'address S3 buckets by path (ENDPOINT/BUCKET, the default for s3:http(s)://ENDPOINT/...); --no-s3-path-style for BUCKET.ENDPOINT' })
    .option('json', { type: 'boolean', describe: 'print machine-readable JSON on stdout' })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'print nothing but errors (no progress, no summary)' })
    .option('verbose', { alias: 'v', type: 'boolean', describe: 'more output (backup: one line per file: new, changed, unchanged)' })
}

/** The environment variables the commands read, for every command's help. */
const ENVIRONMENT: [string, string][] = [
  ['SLUICE_REPOSITORY', 'the repository, when --repo is not given'],
  ['SLUICE_PASSWORD', 'the password, when --password-file is not given (else a prompt on a terminal)'],
  ['SLUICE_DEBUG', 'when set, an internal error prints its stack after its one line'],
  ['AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, AWS_REGION', 'credentials and region of s3: repositories (docs/S3.md)'],
]

/** restic's exit codes, as far as Sluice has them. */
const EXIT_CODES: [string, string][] = [
  ['0', 'success'],
  ['1', 'failure: one line on stderr, sluice: ERR_CODE: message'],
  ['3', 'done, but something was left out (backup: files that could not be read; a damaged snapshot skipped)'],
]

/** Examples, the environment variables and the exit codes, at the end of a command's help. */
export function documented<T>(y: Argv<T>, examples: [string, string][], exitCodes: [string, string][] = EXIT_CODES): Argv<T> {
  for (const [cmd, what] of examples) y = y.example(cmd, what)
  const table = (rows: string[][]) => rows.map(([k, v]) => (k!.length < 4 ? `  ${k}  ${v}` : `  ${k}\n      ${v}`)).join('\n')
  return y.epilog(`Environment:\n${table(ENVIRONMENT)}\n\nExit codes:\n${table(exitCodes)}`)
}

export function repoLocation(args: GlobalArgs): string {
  const loc = args.repo ?? process.env.SLUICE_REPOSITORY
  if (!loc) throw new SluiceError('ERR_ARGS', 'no repository given: use --repo or set SLUICE_REPOSITORY')
  return loc
}

/** Reads a password from the terminal without echo. */
async function prompt(question: string): Promise<string> {
  let fd: number
  try {
    fd = fs.openSync('/dev/tty', 'r+')
  } catch {
    throw new SluiceError('ERR_ARGS', 'no password: set SLUICE_PASSWORD or use --password-file (no terminal to ask on)')
  }
  const tty = await import('node:tty')
  const input = new tty.ReadStream(fd)
  const output = new tty.WriteStream(fd)
  output.write(question)
  input.setRawMode(true)
  return new Promise((resolve, reject) => {
    let pw = ''
    input.on('data', (buf: Buffer) => {
      for (const ch of buf.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          input.setRawMode(false)
          output.write('\n')
          input.destroy()
          return resolve(pw)
        }
        if (ch === '\u0003') {
          input.setRawMode(false)
          output.write('\n')
          input.destroy()
          return reject(new SluiceError('ERR_ABORTED', 'interrupted'))
        }
        if (ch === '\u007f') pw = pw.slice(0, -1)
        else pw += ch
      }
    })
  })
}

/** The password from --password-file (one trailing newline dropped), $SLUICE_PASSWORD, or a
 *  prompt; an empty one is refused from every source. */
export async function password(args: GlobalArgs, confirm = false): Promise<string> {
  let pw: string
  let source: string
  if (args['password-file']) {
    try {
      pw = fs.readFileSync(args['password-file'], 'utf8').replace(/\r?\n$/, '')
    } catch (cause) {
      throw new SluiceError('ERR_ARGS', `cannot read password file ${args['password-file']}: ${(cause as Error).message}`, { cause })
    }
    source = ` in password file ${args['password-file']}`
  } else if (process.env.SLUICE_PASSWORD !== undefined) {
    pw = process.env.SLUICE_PASSWORD
    source = ' in SLUICE_PASSWORD'
  } else {
    pw = await prompt('enter password for repository: ')
    if (confirm && (await prompt('enter password again: ')) !== pw) throw new SluiceError('ERR_ARGS', 'passwords do not match')
    source = ''
  }
  if (pw.length === 0) throw new SluiceError('ERR_ARGS', `empty password${source}`)
  return pw
}

export function storageOf(args: GlobalArgs) {
  // Passed when given either way: --no-s3-path-style must reach a custom endpoint, where
  // path-style is the default, for services that only take virtual-hosted names.
  const style = args['s3-path-style']
  return openStorage(repoLocation(args), style === undefined ? {} : { s3PathStyle: style })
}

/** Opens the repository; `wrap` puts a layer over its storage (backup --dry-run's). */
export async function openRepo(args: GlobalArgs, wrap?: (s: Storage) => Storage): Promise<Repository> {
  const storage = wrap ? wrap(storageOf(args)) : storageOf(args)
  const pw = await password(args)
  return openRepository(storage, pw, { onWarning: repoWarning })
}

/** A damaged key file or snapshot skipped: a warning, and exit code 3 (something was left out),
 *  as for a file a backup could not read. */
export function repoWarning(err: SluiceError): void {
  warn(err)
  process.exitCode = 3
}

/** One line on stderr per warning, named by code. */
export function warn(err: SluiceError): void {
  warnLine(`sluice: warning: ${err.code}: ${err.message}`)
}

/** A line on stderr, below (not through) a progress line. */
export function warnLine(line: string): void {
  clearProgress()
  process.stderr.write(line + '\n')
}

let progressShown = false
function clearProgress(): void {
  if (progressShown && process.stderr.isTTY) process.stderr.write('\r\x1b[K')
  progressShown = false
}

/**
 * Progress on stderr: redrawn in place on a terminal (4 times a second), a plain line every
 * `plainMs` otherwise. Returns a stop function.
 */
export function startProgress(render: () => string, opts: { quiet?: boolean; plainMs: number }): (final?: boolean) => void {
  if (opts.quiet) return () => {}
  const tty = process.stderr.isTTY
  const draw = () => {
    const line = render()
    if (tty) {
      const cols = process.stderr.columns || 80
      process.stderr.write(`\r\x1b[K${line.slice(0, cols - 1)}`)
      progressShown = true
    } else {
      process.stderr.write(`${line}\n`)
    }
  }
  // On a terminal the line is there from the start; in a log, every plainMs.
  if (tty) draw()
  const timer = setInterval(draw, tty ? 250 : opts.plainMs)
  timer.unref()
  /** `final`: the job finished: its last state once more (a log's closing line). */
  return (final = false) => {
    clearInterval(timer)
    if (final) draw()
    clearProgress()
  }
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`
}

export function peakRss(): number {
  return process.resourceUsage().maxRSS * 1024
}

/** One line on stdout; a progress line on the same terminal is cleared first (and redrawn by
 *  its next tick). */
export function out(line: string): void {
  clearProgress()
  process.stdout.write(line + '\n')
}

export { displayPath }
