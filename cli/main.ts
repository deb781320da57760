#!/usr/bin/env -S node --max-semi-space-size=2 --max-old-space-size=256
// V8 flags in the shebang: with its default young generation (16 MB semispaces) and a heap
// limit sized from the machine's RAM, V8 lets garbage pile up for seconds, and RSS grows with
// the length of the run (100k files: 142 MB). A 2 MB young generation and a 256 MB cap make it
// collect as it goes: 79 MB, flat. Running `node dist/cli/main.js` directly skips them.
/** The sluice command: yargs commands over the public API. Errors end as one line with a code. */
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { SluiceError } from '../index.js'
import { MALLOC_MMAP_THRESHOLD } from '../lib/limits.js'
import { setMallocThreshold } from './common.js'
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
import { copyCommand } from './copy.js'
import { findCommand } from './find.js'

function fail(err: unknown): never {
  if (err instanceof SluiceError) {
    process.stderr.write(`sluice: ${err.code}: ${err.message}\n`)
  } else {
    const e = err as { code?: string; message?: string }
    process.stderr.write(`sluice: ${e?.code ?? 'ERR_INTERNAL'}: ${e?.message ?? String(err)}\n`)
    if (process.env.SLUICE_DEBUG) console.error(err)
  }
  process.exit(1)
}

setMallocThreshold(MALLOC_MMAP_THRESHOLD)

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
    .command(copyCommand)
    .command(findCommand)
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
