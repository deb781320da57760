import type { CommandModule } from 'yargs'
import { createTarWriter, displayPath, paceMemory, parseSnapshotRef, restore, SluiceError, type EntryMeta } from '../index.js'
import { latestFilter, latestOptions, type FilterArgs } from './forget.js'
import { progressLine } from './progress.js'
import { documented, globalOptions, memoryOf, memoryOptions, openRepo, out, peakRss, formatBytes, startProgress, warn, type GlobalArgs } from './common.js'
import { PROGRESS_PLAIN_INTERVAL_MS } from '../lib/limits.js'

interface RestoreArgs extends GlobalArgs, FilterArgs {
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
    latestOptions(documented(memoryOptions(globalOptions(y)), [["sluice restore latest --target /tmp/restore", "restore the newest snapshot into a directory"], ["sluice restore latest:/home/me --include '*.pdf' -t out", "only the PDFs under one path (only the directories on their way are created)"], ["sluice restore latest --tar > backup.tar", "write a tar stream instead"]]))
      .positional('snapshot', { type: 'string', demandOption: true, describe: 'latest or an id prefix, optionally :PATH' })
      .option('target', { alias: 't', type: 'string', describe: 'directory to restore into' })
      .option('include', { type: 'string', array: true, describe: 'restore only paths matching this glob' })
      .option('exclude', { alias: 'e', type: 'string', array: true, describe: 'do not restore paths matching this glob' })
      .option('tar', { type: 'boolean', describe: 'write a tar stream (pax) to stdout instead of files' }),
  handler: async args => {
    if (args.target && args.tar) throw new SluiceError('ERR_ARGS', 'give one of --target or --tar, not both')
    if (!args.target && !args.tar) throw new SluiceError('ERR_ARGS', 'restore needs either --target DIR or --tar')
    if (args.tar && process.stdout.isTTY) throw new SluiceError('ERR_ARGS', 'refusing to write a tar stream to a terminal: redirect stdout')
    // restore() paces memory for reading too; first, as the snapshot is looked up here.
    paceMemory('read')
    const repo = await openRepo(args)
    const started = Date.now()
    const ref = parseSnapshotRef(args.snapshot)
    let found
    try {
      found = await repo.findSnapshot(ref.snapshot, latestFilter(args))
    } catch (err) {
      await repo.close()
      throw err
    }
    // The snapshot's own counts are the totals when all of it is restored.
    const whole = ref.path.length === 0 && !args.include && !args.exclude
    const total = whole ? { files: found.snap.stats.files, bytes: found.snap.stats.bytesTotal, done: true } : undefined
    let files = 0
    let bytes = 0
    let current: string | undefined
    const counted = (e: EntryMeta) => {
      entries++
      if (e.type !== 'file') return
      files++
      bytes += e.size
      current = '/' + displayPath(e.path)
    }
    let entries = 0
    // The tar writer's own warnings (an entry a tar cannot hold, content of the wrong length)
    // are not counted by restore(): count them here, for the exit code.
    let sinkWarnings = 0
    let warnings = 0
    const stop = startProgress(() => progressLine({ elapsed: (Date.now() - started) / 1000, files, bytes, ...(total ? { total } : {}), errors: warnings, ...(current ? { current } : {}) }), {
      quiet: !!args.quiet || !!args.json,
      plainMs: PROGRESS_PLAIN_INTERVAL_MS,
    })
    let result
    let finished = false
    try {
      result = await restore({ ...memoryOf(args),
        repo,
        snapshot: found.id,
        path: ref.path,
        ...(args.tar
          ? {
              sink: createTarWriter(process.stdout, {
                onWarning: e => {
                  sinkWarnings++
                  warn(e)
                },
                onEntry: counted,
                onOutputClosed: () => process.exit(process.exitCode ?? 0),
              }),
            }
          : { target: args.target! }),
        onWarning: e => {
          warnings++
          warn(e)
        },
        onEntry: counted,
        ...(args.include ? { include: args.include } : {}),
        ...(args.exclude ? { exclude: args.exclude } : {}),
      })
      finished = true
    } finally {
      // On a terminal the finished state is drawn once before the line is cleared (a log keeps
      // only the warnings and the summary; a tar's stderr its one line).
      stop(finished && !args.tar && !!process.stderr.isTTY)
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
