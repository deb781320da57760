import type { CommandModule } from 'yargs'
import { countSelected, createTarWriter, displayPath, paceMemory, parseOverwriteMode, parseSnapshotRef, restore, SluiceError, OVERWRITE_MODES, type EntryMeta } from '../index.js'
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
  sparse?: boolean
  overwrite?: string
  delete?: boolean
  verify?: boolean
  'dry-run'?: boolean
  'numeric-owner'?: boolean
}

export const restoreCommand: CommandModule<object, RestoreArgs> = {
  command: 'restore <snapshot>',
  describe: 'restore a snapshot (SNAP or SNAP:PATH) into a directory',
  builder: y =>
    latestOptions(documented(memoryOptions(globalOptions(y)), [["sluice restore latest --target /tmp/restore", "restore the newest snapshot into a directory"], ["sluice restore latest:/home/me --include '*.pdf' -t out", "only the PDFs under one path (only the directories on their way are created)"], ["sluice restore latest -t /srv --overwrite if-changed --delete", "resume a restore cut short, and make /srv the snapshot (rsync --delete)"]]))
      .positional('snapshot', { type: 'string', demandOption: true, describe: 'latest or an id prefix, optionally :PATH' })
      .option('target', { alias: 't', type: 'string', describe: 'directory to restore into' })
      .option('include', { type: 'string', array: true, describe: 'restore only paths matching this glob' })
      .option('exclude', { alias: 'e', type: 'string', array: true, describe: 'do not restore paths matching this glob' })
      .option('tar', { type: 'boolean', describe: 'write a tar stream (pax) to stdout instead of files' })
      .option('sparse', { type: 'boolean', default: true, describe: 'leave holes of sparse files (and runs of zeros) as holes; --no-sparse writes every byte' })
      .option('overwrite', { type: 'string', choices: OVERWRITE_MODES as string[], default: 'always', describe: 'existing files: always rewrite; if-changed: skip those with the snapshot\'s size and mtime (resumes a restore); if-newer: keep those not older; never: keep them' })
      .option('delete', { type: 'boolean', describe: 'remove what the target holds that the snapshot does not (not with --include/--exclude)' })
      .option('verify', { type: 'boolean', describe: 'read restored files back and check them against the snapshot (exit 3 on a mismatch); with --overwrite if-changed, compare unchanged-looking files too' })
      .option('dry-run', { alias: 'n', type: 'boolean', describe: 'write nothing: list what would be restored (and removed, with --delete)' })
      .option('numeric-owner', { type: 'boolean', describe: 'as root, restore owners by number even where the recorded user and group names exist here' }),
  handler: async args => {
    if (args.target && args.tar) throw new SluiceError('ERR_ARGS', 'give one of --target or --tar, not both')
    if (!args.target && !args.tar) throw new SluiceError('ERR_ARGS', 'restore needs either --target DIR or --tar')
    const dirOnly = ['overwrite', 'delete', 'verify', 'dry-run'].filter(f => f === 'overwrite' ? args.overwrite !== 'always' && args.overwrite !== undefined : !!args[f as keyof RestoreArgs])
    if (args.tar && dirOnly.length > 0) throw new SluiceError('ERR_ARGS', `--${dirOnly[0]} applies to a restore into a directory (--target), not to --tar`)
    const overwrite = parseOverwriteMode(args.overwrite ?? 'always')
    const dry = !!args['dry-run']
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
    const quiet = !!args.quiet || !!args.json
    // Otherwise counted beside the restore from the metadata (`(counting)` until done), as
    // restic counts before it restores.
    const total = whole ? { files: found.snap.stats.files, bytes: found.snap.stats.bytesTotal, done: true } : { files: 0, bytes: 0, done: false }
    const counting = new AbortController()
    if (!whole && !quiet) {
      countSelected(repo, found.snap, { path: ref.path, signal: counting.signal, ...(args.include ? { include: args.include } : {}), ...(args.exclude ? { exclude: args.exclude } : {}) }, total).catch(() => {})
    }
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
    // --dry-run lists what it would do on stdout, a line each (restic's -vv words).
    const listed = (what: string, p: Buffer) => out(`${what} /${displayPath(p)}`)
    // The tar writer's own warnings (an entry a tar cannot hold, content of the wrong length)
    // are not counted by restore(): count them here, for the exit code.
    let sinkWarnings = 0
    let warnings = 0
    const stop = startProgress(() => progressLine({ elapsed: (Date.now() - started) / 1000, files, bytes, total, errors: warnings, ...(current ? { current } : {}) }), {
      quiet,
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
        onEntry: dry ? (e: EntryMeta) => (counted(e), listed('would restore', e.path)) : counted,
        onSkipped: counted,
        ...(dry ? { onRemove: (p: Buffer) => listed('would remove', p) } : {}),
        ...(args.tar ? {} : { overwrite }),
        ...(args.delete ? { delete: true } : {}),
        ...(args.verify ? { verify: true } : {}),
        ...(dry ? { dryRun: true } : {}),
        ...(args['numeric-owner'] ? { numericOwner: true } : {}),
        ...(args.include ? { include: args.include } : {}),
        ...(args.exclude ? { exclude: args.exclude } : {}),
        sparse: args.sparse !== false,
      })
      finished = true
      // A count still going when the restore is done: what was restored is the whole.
      if (!total.done) Object.assign(total, { files, bytes, done: true })
    } finally {
      // On a terminal the finished state is drawn once before the line is cleared (a log keeps
      // only the warnings and the summary; a tar's stderr its one line).
      stop(finished && !args.tar && !!process.stderr.isTTY)
      counting.abort()
      await repo.close()
    }
    const durationMs = Date.now() - started
    if (args.tar) {
      if (!args.quiet) process.stderr.write(`restored ${entries} entries of snapshot ${result.snapshotId.slice(0, 8)} as tar\n`)
    } else if (args.json) {
      out(JSON.stringify({
        snapshot: result.snapshotId, entries, warnings: result.warnings, durationMs, peakRss: peakRss(),
        // restic 0.17's restore summary names
        files_restored: result.filesRestored, bytes_restored: result.bytesRestored,
        files_skipped: result.filesSkipped, bytes_skipped: result.bytesSkipped, files_deleted: result.filesDeleted,
        ...(args.verify ? { files_verified: result.filesVerified, verify_errors: result.verifyErrors } : {}),
        ...(dry ? { dry_run: true } : {}),
      }))
    } else if (!args.quiet) {
      const warned = result.warnings > 0 ? `; ${result.warnings} warnings (see above): what they name is not restored or not as recorded` : ''
      const skipped = result.filesSkipped > 0 ? `, ${result.filesSkipped} files (${formatBytes(result.bytesSkipped)}) skipped by --overwrite ${overwrite}` : ''
      const removed = args.delete ? `, ${result.filesDeleted} entries ${dry ? 'to remove' : 'removed'}` : ''
      const verified = args.verify && !dry ? `, ${result.filesVerified} files verified` : ''
      const head = dry ? `dry run: would restore ${entries} entries` : `restored ${entries} entries`
      out(`${head} of snapshot ${result.snapshotId.slice(0, 8)} to ${args.target}: ${result.filesRestored} files (${formatBytes(result.bytesRestored)}) ${dry ? 'to write' : 'written'}${skipped}${removed}${verified} in ${(durationMs / 1000).toFixed(2)} s, peak memory ${formatBytes(peakRss())}${warned}`)
    }
    if (result.warnings + sinkWarnings > 0) process.exitCode = 3
  },
}
