/** What every command shares: opening the repository, the password, progress and messages. */
import { execFile } from 'node:child_process'
import fs from 'node:fs'
import type { Argv } from 'yargs'
import { SluiceError, displayPath, openRepository, openStorage, parseMemory, parseRateLimit, type LocationOptions, type Repository, type Storage } from '../index.js'
import { PASSWORD_MAX } from '../lib/limits.js'

export interface GlobalArgs {
  repo?: string
  'password-file'?: string
  'password-command'?: string
  's3-path-style'?: boolean
  json?: boolean
  quiet?: boolean
  verbose?: boolean
  'limit-upload'?: number
  'limit-download'?: number
  memory?: string
}

export function globalOptions<T>(y: Argv<T>) {
  return y
    .option('repo', { alias: 'r', type: 'string', describe: 'repository: a directory, or s3:BUCKET/PREFIX, or s3:https://HOST/BUCKET/PREFIX (default: $SLUICE_REPOSITORY)' })
    .option('password-file', { alias: 'p', type: 'string', describe: 'read the password from this file (default: $SLUICE_PASSWORD_FILE)' })
    .option('password-command', { type: 'string', describe: 'run this command (split into words, no shell) and read the password from its output (default: $SLUICE_PASSWORD_COMMAND); without either, $SLUICE_PASSWORD, else a prompt on a terminal' })
    .option('s3-path-style', { type: 'boolean', describe: 'address S3 buckets by path (ENDPOINT/BUCKET, the default for s3:http(s)://ENDPOINT/...); --no-s3-path-style for BUCKET.ENDPOINT' })
    .option('json', { type: 'boolean', describe: 'print machine-readable JSON on stdout' })
    .option('quiet', { alias: 'q', type: 'boolean', describe: 'print nothing but errors (no progress, no summary)' })
    .option('verbose', { alias: 'v', type: 'boolean', describe: 'more output (backup: one line per file: new, changed, unchanged)' })
    .option('limit-upload', { type: 'number', describe: 'limits uploads to a maximum rate in KiB/s' })
    .option('limit-download', { type: 'number', describe: 'limits downloads to a maximum rate in KiB/s' })
}

/** `--memory` for the commands whose pipeline holds sizable buffers (lib/budget.ts). */
export function memoryOptions<T>(y: Argv<T>) {
  return y.option('memory', { type: 'string', describe: 'the peak memory to size buffers for, e.g. 64M (default 95M, or $SLUICE_MEMORY); less is slower' })
}

/** The budget's bytes from --memory, else $SLUICE_MEMORY, else undefined (the default). */
export function memoryOf(args: { memory?: string }): { memory?: number } {
  const text = args.memory ?? process.env.SLUICE_MEMORY
  return text === undefined || text === '' ? {} : { memory: parseMemory(text) }
}

/** The environment variables the commands read, for every command's help. */
const ENVIRONMENT: [string, string][] = [
  ['SLUICE_REPOSITORY', 'the repository, when --repo is not given'],
  ['SLUICE_PASSWORD_COMMAND', 'a command that prints the password, when --password-command is not given'],
  ['SLUICE_PASSWORD_FILE', 'a file holding the password, when --password-file is not given'],
  ['SLUICE_PASSWORD', 'the password, when neither of the above is set (else a prompt on a terminal)'],
  ['SLUICE_FROM_REPOSITORY, SLUICE_FROM_PASSWORD', 'copy and init --from-repo: the source repository and its password'],
  ['SLUICE_MEMORY', 'the memory budget, when --memory is not given (backup, restore, cat, check, prune, copy)'],
  ['SLUICE_DEBUG', 'when set, an internal error prints its stack after its one line'],
  ['AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_PROFILE, AWS_REGION', 'credentials and region of s3: repositories (docs/S3.md)'],
]

/** restic's exit codes, as far as Sluice has them. */
const EXIT_CODES: [string, string][] = [
  ['0', 'success'],
  ['1', 'failure: one line on stderr, sluice: ERR_CODE: message'],
  ['3', 'done, but something was left out (backup: files that could not be read; a damaged snapshot skipped)'],
]

/** Examples, the environment variables and the exit codes, at the end of a command's help
 *  (`environment`: another table, for a command that opens no repository). */
export function documented<T>(y: Argv<T>, examples: [string, string][], exitCodes: [string, string][] = EXIT_CODES, environment: [string, string][] = ENVIRONMENT): Argv<T> {
  for (const [cmd, what] of examples) y = y.example(cmd, what)
  const table = (rows: string[][]) => rows.map(([k, v]) => (k!.length < 4 ? `  ${k}  ${v}` : `  ${k}\n      ${v}`)).join('\n')
  return y.epilog(`Environment:\n${table(environment)}\n\nExit codes:\n${table(exitCodes)}`)
}

/** The storage options every command shares: S3 addressing and the rate limits. */
export function storageOptions(args: GlobalArgs): LocationOptions {
  const style = args['s3-path-style']
  return {
    // Passed when given either way: --no-s3-path-style must reach a custom endpoint, where
    // path-style is the default, for services that only take virtual-hosted names.
    ...(style === undefined ? {} : { s3PathStyle: style }),
    ...(args['limit-upload'] === undefined ? {} : { uploadBytesPerSecond: parseRateLimit(args['limit-upload'], 'limit-upload') }),
    ...(args['limit-download'] === undefined ? {} : { downloadBytesPerSecond: parseRateLimit(args['limit-download'], 'limit-download') }),
  }
}

export function repoLocation(args: GlobalArgs): string {
  const loc = args.repo ?? process.env.SLUICE_REPOSITORY
  if (!loc) throw new SluiceError('ERR_ARGS', 'no repository given: use --repo or set SLUICE_REPOSITORY')
  return loc
}

/** Reads a password from the terminal without echo. */
async function prompt(question: string, how: string): Promise<string> {
  let fd: number
  try {
    fd = fs.openSync('/dev/tty', 'r+')
  } catch {
    throw new SluiceError('ERR_ARGS', `no password: ${how} (no terminal to ask on)`)
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

/**
 * Splits a command line into words as restic does for --password-command: no shell runs, so
 * there are no variables, globs, pipes or redirections; whitespace separates words, and '…' or
 * "…" keep whitespace inside one. A backslash escapes the next character outside quotes, and
 * `"` or `\` inside "…" (restic's splitter knows quotes; these escapes are POSIX's).
 */
export function splitCommand(text: string): string[] {
  const words: string[] = []
  let word: string | null = null
  let quote = ''
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!
    if (quote === "'") {
      if (c === "'") quote = ''
      else word += c
    } else if (quote === '"') {
      if (c === '"') quote = ''
      else if (c === '\\' && (text[i + 1] === '"' || text[i + 1] === '\\')) word += text[++i]
      else word += c
    } else if (c === "'" || c === '"') {
      quote = c
      word ??= ''
    } else if (c === '\\' && i + 1 < text.length) {
      word = (word ?? '') + text[++i]
    } else if (/\s/.test(c)) {
      if (word !== null) words.push(word)
      word = null
    } else word = (word ?? '') + c
  }
  if (quote) throw new SluiceError('ERR_ARGS', `${quote === "'" ? 'single' : 'double'}-quoted string not terminated in password command`)
  if (word !== null) words.push(word)
  if (words.length === 0) throw new SluiceError('ERR_ARGS', 'password command is empty')
  return words
}

/** Runs a password command: its stdout (at most PASSWORD_MAX bytes) is the password, its
 *  stderr passes through (a secret manager may ask there), a failure is ERR_ARGS naming it. */
function runPasswordCommand(command: string): Promise<string> {
  const [file, ...argv] = splitCommand(command)
  return new Promise((resolve, reject) => {
    const child = execFile(file!, argv, { encoding: 'utf8', maxBuffer: PASSWORD_MAX }, (err, stdout) => {
      if (!err) return resolve(stdout)
      const e = err as NodeJS.ErrnoException & { code?: unknown }
      const why = e.code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER' ? `printed more than ${PASSWORD_MAX} bytes`
        : typeof e.code === 'number' ? `exited with code ${e.code}`
        : typeof e.code === 'string' ? e.code
        : `was killed by ${String((err as { signal?: string }).signal)}`
      reject(new SluiceError('ERR_ARGS', `password command ${JSON.stringify(command)} failed: ${why}`, { cause: err }))
    })
    child.stderr?.pipe(process.stderr)
    child.stdin?.end()
  })
}

/** Reads a password file (one trailing newline dropped). */
export function readPasswordFile(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8').replace(/\r?\n$/, '')
  } catch (cause) {
    throw new SluiceError('ERR_ARGS', `cannot read password file ${file}: ${(cause as Error).message}`, { cause })
  }
}

/**
 * The password, from restic's sources in restic's order: --password-command or
 * $SLUICE_PASSWORD_COMMAND (output, one trailing newline dropped), --password-file or
 * $SLUICE_PASSWORD_FILE (one trailing newline dropped), $SLUICE_PASSWORD, else a prompt on the
 * terminal. A file and a command together are refused; an empty password from any source too.
 */
export async function password(args: GlobalArgs, confirm = false): Promise<string> {
  const file = args['password-file'] || process.env.SLUICE_PASSWORD_FILE
  const command = args['password-command'] || process.env.SLUICE_PASSWORD_COMMAND
  if (file && command) throw new SluiceError('ERR_ARGS', 'password file and command are mutually exclusive options')
  let pw: string
  let source: string
  if (command) {
    pw = (await runPasswordCommand(command)).replace(/\r?\n$/, '')
    source = ` from password command ${JSON.stringify(command)}`
  } else if (file) {
    pw = readPasswordFile(file)
    source = ` in password file ${file}`
  } else if (process.env.SLUICE_PASSWORD !== undefined) {
    pw = process.env.SLUICE_PASSWORD
    source = ' in SLUICE_PASSWORD'
  } else {
    pw = await askTwice('enter password for repository: ', confirm, 'use --password-file or --password-command, or set SLUICE_PASSWORD')
    source = ''
  }
  if (pw.length === 0) throw new SluiceError('ERR_ARGS', `empty password${source}`)
  return pw
}

/** A password from the terminal, asked again to confirm when `confirm`; `how` says what to do
 *  instead when there is no terminal. */
async function askTwice(question: string, confirm: boolean, how: string): Promise<string> {
  const pw = await prompt(question, how)
  if (confirm && (await prompt('enter password again: ', how)) !== pw) throw new SluiceError('ERR_ARGS', 'passwords do not match')
  return pw
}

/** Where another repository's password comes from (copy's source): a file, else a variable,
 *  else a prompt; an empty one is refused. */
export interface PasswordSource {
  file: string | undefined
  env: string
  flag: string
  question: string
}

export async function readPassword(src: PasswordSource, confirm = false): Promise<string> {
  const envValue = process.env[src.env]
  const pw = src.file ? readPasswordFile(src.file)
    : envValue !== undefined ? envValue
    : await askTwice(src.question, confirm, `set ${src.env} or use ${src.flag}`)
  if (pw.length === 0) throw new SluiceError('ERR_ARGS', `empty password${src.file ? ` in password file ${src.file}` : envValue !== undefined ? ` in ${src.env}` : ''}`)
  return pw
}

/** A new password for `key add` / `key passwd`: from --new-password-file, else asked twice
 *  (restic's sources; the repository's own password sources are not used for it). */
export async function newPassword(file: string | undefined): Promise<string> {
  let pw: string
  try {
    pw = file ? readPasswordFile(file) : await askTwice('enter new password: ', true, 'use --new-password-file')
  } catch (err) {
    if (err instanceof SluiceError && err.message.startsWith('no password:')) throw new SluiceError('ERR_ARGS', 'no new password: use --new-password-file (no terminal to ask on)')
    throw err
  }
  if (pw.length === 0) throw new SluiceError('ERR_ARGS', `empty new password${file ? ` in password file ${file}` : ''}`)
  return pw
}

export function storageOf(args: GlobalArgs) {
  return openStorage(repoLocation(args), storageOptions(args))
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
