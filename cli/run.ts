/** The sluice command: yargs commands over the public API. Errors end as one line with a code.
 *  Loaded by cli/main.ts once V8's heap policy is in place. */
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { SluiceError } from '../index.js'
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

try {
  await yargs(hideBin(process.argv))
    .scriptName('sluice')
    .usage('$0 <command> [options]\n\nA backup tool whose memory is set by the pipeline, not by the data.')
    .command(init)
    .command(backupCommand)
    .command(snapshotsCommand)
    .command(lsCommand)
    .command(restoreCommand)
    .command(checkCommand)
    .command(catCommand)
    .command(diffCommand)
    .command(forgetCommand)
    .command(statsCommand)
    .command(pruneCommand)
    .command(copyCommand)
    .command(findCommand)
    .command(keyCommand)
    .command(tagCommand)
    .command(completionCommand)
    .demandCommand(1, 'give a command (see --help)')
    .strict()
    // `--tag x /path` must not swallow the path: list options take one value per flag and are
    // repeated (`--exclude a --exclude b`), as in restic.
    .parserConfiguration({ 'greedy-arrays': false })
    .env(false)
    .fail((msg, err) => {
      if (err) throw err
      throw new SluiceError('ERR_ARGS', msg)
    })
    .help()
    .version('0.1.0')
    .parseAsync()
} catch (err) {
  fail(err)
}
