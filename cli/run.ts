/** The sluice command: yargs commands over the public API. Errors end as one line with a code.
 *  Loaded by cli/main.ts once V8's heap policy is in place. */
import type { CommandModule } from 'yargs'
import { SluiceError } from '../index.js'
import yargs, { hideBin, loadHelp } from './yargs.js'
import { init } from './init.js'
import { backupCommand } from './backup.js'
import { snapshotsCommand } from './snapshots.js'
import { lsCommand } from './ls.js'
import { restoreCommand } from './restore.js'
import { checkCommand } from './check.js'
import { catCommand } from './cat.js'
import { diffCommand } from './diff.js'
import { forgetCommand } from './forget.js'
import { statsCommand } from './stats.js'
import { keyCommand } from './key.js'
import { tagCommand } from './tag.js'
import { completionCommand } from './completion.js'
import { pruneCommand } from './prune.js'
import { copyCommand } from './copy.js'
import { findCommand } from './find.js'
import { suggestCommand } from './suggest.js'

const COMMANDS: CommandModule<any, any>[] = [
  init, backupCommand, snapshotsCommand, lsCommand, restoreCommand, checkCommand, catCommand, diffCommand, forgetCommand, statsCommand,
  pruneCommand, copyCommand, findCommand, keyCommand, tagCommand, completionCommand,
]
const NAMES = COMMANDS.map(c => String(c.command).split(' ')[0]!)

/** Ends the process with one line `sluice: ERR_CODE: message`. An error that reached here
 *  without a SluiceError's code (a bare errno from a library) is ERR_INTERNAL, its errno kept
 *  in the message with the path Node names, if any. */
function fail(err: unknown): never {
  const oneLine = (m: string) => m.replace(/\s*\n\s*/g, ' ')
  if (err instanceof SluiceError) {
    process.stderr.write(`sluice: ${err.code}: ${oneLine(err.message)}\n`)
  } else {
    const e = err as { message?: string; path?: string }
    const message = e?.message ?? String(err)
    const path = e?.path && !message.includes(e.path) ? ` (${e.path})` : ''
    process.stderr.write(`sluice: ERR_INTERNAL: ${oneLine(message)}${path}\n`)
    if (process.env.SLUICE_DEBUG) console.error(err)
  }
  process.exit(1)
}

// A closed pipe on stdout (`sluice ls latest | head`) ends us quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0)
  fail(err)
})

/** `sluice help [COMMAND]` is `sluice [COMMAND] --help`; an unknown command is named, with the
 *  nearest known one (restic's "did you mean"), before yargs sees it. */
function commandLine(given: string[]): string[] {
  const argv = given[0] === 'help' ? [...given.slice(1, 2), '--help'] : given
  const word = argv[0]
  if (word !== undefined && !word.startsWith('-') && !NAMES.includes(word)) {
    const near = suggestCommand(word, NAMES)
    throw new SluiceError('ERR_ARGS', `unknown command "${word}"${near ? `: did you mean ${near}?` : ' (see sluice --help)'}`)
  }
  return argv
}

try {
  const argv = commandLine(hideBin(process.argv))
  // Help, usage and shell completions (`sluice` alone, --help, -h also inside a group of short
  // flags, --get-yargs-completions) need yargs' help renderer, loaded only then (cli/yargs.ts).
  if (argv.length === 0 || argv.some(a => a === '--help' || a === '--get-yargs-completions' || /^-[^-]*h/.test(a))) await loadHelp()
  const cli = yargs(argv)
    .scriptName('sluice')
    .usage('$0 <command> [options]\n\nA backup tool whose memory is set by the pipeline, not by the data.\nsluice help COMMAND (or sluice COMMAND --help) shows its options and examples.')
  for (const c of COMMANDS) cli.command(c)
  await cli
    .demandCommand(1, 'give a command (see the usage above)')
    .strict()
    // `--tag x /path` must not swallow the path: list options take one value per flag and are
    // repeated (`--exclude a --exclude b`), as in restic.
    .parserConfiguration({ 'greedy-arrays': false })
    .env(false)
    .fail((msg, err, y) => {
      if (err) throw err
      // `sluice` alone: the usage, then the one error line.
      if (argv.length === 0) y.showHelp(s => process.stderr.write(s + '\n\n'))
      throw new SluiceError('ERR_ARGS', msg)
    })
    .help()
    .alias('help', 'h')
    .version('0.1.0')
    .parseAsync()
} catch (err) {
  fail(err)
}
