import type { CommandModule } from 'yargs'
import { backup, newStats, parseSize, displayPath, SluiceError, type BackupResult } from '../index.js'
import { PROGRESS_PLAIN_INTERVAL_MS } from '../lib/limits.js'
import { formatBytes, globalOptions, openRepo, out, peakRss, startProgress, warn, type GlobalArgs } from './common.js'

interface BackupArgs extends GlobalArgs {
  paths?: string[]
  tag?: string[]
  host?: string
  exclude?: string[]
  include?: string[]
  'exclude-file'?: string[]
  'exclude-if-present'?: string[]
  'exclude-larger-than'?: string
  'one-file-system'?: boolean
}

export const backupCommand: CommandModule<object, BackupArgs> = {
  command: 'backup [paths..]',
  describe: 'back up files and directories into a new snapshot',
  builder: y =>
    globalOptions(y)
      .positional('paths', { type: 'string', array: true, describe: 'files and directories to back up' })
      .option('tag', { type: 'string', array: true, describe: 'tag the snapshot (repeatable)' })
      .option('host', { type: 'string', describe: 'host name to record (default: this host)' })
      .option('exclude', { alias: 'e', type: 'string', array: true, describe: 'exclude paths matching this glob (repeatable)' })
      .option('include', { type: 'string', array: true, describe: 'back up only paths matching this glob (repeatable)' })
      .option('exclude-file', { type: 'string', array: true, describe: 'read exclude patterns from this file' })
      .option('exclude-if-present', { type: 'string', array: true, describe: 'exclude directories that contain a file of this name' })
      .option('exclude-larger-than', { type: 'string', describe: 'exclude files larger than SIZE (e.g. 100M, 2G)' })
      .option('one-file-system', { alias: 'x', type: 'boolean', describe: 'do not cross file system boundaries' }),
  handler: async args => {
    const paths = args.paths ?? []
    if (paths.length === 0) throw new SluiceError('ERR_ARGS', 'nothing to back up: give at least one path')
    const repo = await openRepo(args)
    const stats = newStats()
    const started = Date.now()
    let current = ''
    const stop = startProgress(() => {
      const s = (Date.now() - started) / 1000
      return `${stats.files} files, ${formatBytes(stats.bytesRead)} read (${formatBytes(stats.bytesRead / Math.max(s, 0.001))}/s), ${formatBytes(stats.bytesStored)} stored ${current}`
    }, { quiet: !!args.quiet || !!args.json, plainMs: PROGRESS_PLAIN_INTERVAL_MS })
    let result: BackupResult
    try {
      result = await backup({
        repo,
        paths,
        stats,
        onWarning: warn,
        filter: {
          ...(args.exclude ? { exclude: args.exclude } : {}),
          ...(args.include ? { include: args.include } : {}),
          ...(args['exclude-file'] ? { excludeFile: args['exclude-file'] } : {}),
          ...(args['exclude-larger-than'] ? { excludeLargerThan: parseSize(args['exclude-larger-than']) } : {}),
        },
        ...(args['exclude-if-present'] ? { excludeIfPresent: args['exclude-if-present'] } : {}),
        ...(args['one-file-system'] ? { oneFileSystem: true } : {}),
        ...(args.tag ? { tags: args.tag } : {}),
        ...(args.host ? { host: args.host } : {}),
      })
    } finally {
      stop()
      await repo.close()
    }
    reportBackup(result, started, !!args.json)
  },
}

/** Prints the summary; exit code 3 when some entries could not be read. */
export function reportBackup(result: BackupResult, started: number, json: boolean): void {
  const s = result.stats
  const durationMs = Date.now() - started
  if (json) {
    out(JSON.stringify({
      snapshot: result.snapshotId,
      files: s.files, dirs: s.dirs, others: s.others,
      filesNew: s.filesNew, filesChanged: s.filesChanged, filesUnchanged: s.filesUnchanged,
      bytesRead: s.bytesRead, bytesTotal: s.bytesTotal, chunksNew: s.chunksNew, bytesStored: s.bytesStored,
      warnings: s.warnings, durationMs, peakRss: peakRss(),
    }))
  } else {
    out(`snapshot ${result.snapshotId.slice(0, 8)} saved`)
    out(`files: ${s.files} (${s.filesNew} new, ${s.filesChanged} changed, ${s.filesUnchanged} unchanged), dirs: ${s.dirs}, other: ${s.others}`)
    out(`read ${formatBytes(s.bytesRead)} of ${formatBytes(s.bytesTotal)}, stored ${formatBytes(s.bytesStored)} in ${s.chunksNew} new chunks`)
    out(`took ${(durationMs / 1000).toFixed(2)} s, peak memory ${formatBytes(peakRss())}`)
  }
  if (s.warnings > 0) {
    process.stderr.write(`sluice: ${s.warnings} entries could not be read completely (see the warnings above); the snapshot holds the rest\n`)
    process.exitCode = 3
  }
}

export { displayPath }
