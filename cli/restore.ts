import type { CommandModule } from 'yargs'
import { createTarWriter, restore, SluiceError } from '../index.js'
import { globalOptions, openRepo, out, peakRss, formatBytes, startProgress, warn, type GlobalArgs } from './common.js'
import { PROGRESS_PLAIN_INTERVAL_MS } from '../lib/limits.js'

interface RestoreArgs extends GlobalArgs {
  snapshot: string
  target?: string
  include?: string[]
  exclude?: string[]
  tar?: boolean
}

export const restoreCommand: CommandModule<object, RestoreArgs> = {
  command: 'restore <snapshot>',
  describe: 'restore a snapshot (SNAP or SNAP:PATH) into a directory',
  builder: y =>
    globalOptions(y)
      .positional('snapshot', { type: 'string', demandOption: true, describe: 'latest or an id prefix, optionally :PATH' })
      .option('target', { alias: 't', type: 'string', describe: 'directory to restore into' })
      .option('include', { type: 'string', array: true, describe: 'restore only paths matching this glob' })
      .option('exclude', { alias: 'e', type: 'string', array: true, describe: 'do not restore paths matching this glob' })
      .option('tar', { type: 'boolean', describe: 'write a tar stream (pax) to stdout instead of files' }),
  handler: async args => {
    if (!args.target === !args.tar) throw new SluiceError('ERR_ARGS', 'restore needs either --target DIR or --tar')
    if (args.tar && process.stdout.isTTY) throw new SluiceError('ERR_ARGS', 'refusing to write a tar stream to a terminal: redirect stdout')
    const repo = await openRepo(args)
    const started = Date.now()
    let entries = 0
    // The tar writer's own warnings (an entry a tar cannot hold, content of the wrong length)
    // are not counted by restore(): count them here, for the exit code.
    let sinkWarnings = 0
    const stop = startProgress(() => `${entries} entries restored`, { quiet: !!args.quiet || !!args.json, plainMs: PROGRESS_PLAIN_INTERVAL_MS })
    let result
    try {
      result = await restore({
        repo,
        snapshot: args.snapshot,
        ...(args.tar
          ? {
              sink: createTarWriter(process.stdout, {
                onWarning: e => {
                  sinkWarnings++
                  warn(e)
                },
                onEntry: () => entries++,
                onOutputClosed: () => process.exit(process.exitCode ?? 0),
              }),
            }
          : { target: args.target! }),
        onWarning: warn,
        onEntry: () => entries++,
        ...(args.include ? { include: args.include } : {}),
        ...(args.exclude ? { exclude: args.exclude } : {}),
      })
    } finally {
      stop()
      await repo.close()
    }
    const durationMs = Date.now() - started
    if (args.tar) {
      if (!args.quiet) process.stderr.write(`restored ${entries} entries of snapshot ${result.snapshotId.slice(0, 8)} as tar\n`)
    } else if (args.json) out(JSON.stringify({ snapshot: result.snapshotId, entries, warnings: result.warnings, durationMs, peakRss: peakRss() }))
    else if (!args.quiet) {
      const warned = result.warnings > 0 ? `; ${result.warnings} warnings (see above): what they name is not restored or not as recorded` : ''
      out(`restored ${entries} entries of snapshot ${result.snapshotId.slice(0, 8)} to ${args.target} in ${(durationMs / 1000).toFixed(2)} s, peak memory ${formatBytes(peakRss())}${warned}`)
    }
    if (result.warnings + sinkWarnings > 0) process.exitCode = 3
  },
}
