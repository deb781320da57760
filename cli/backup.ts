import type { CommandModule } from 'yargs'
import type { Readable } from 'node:stream'
import {
  backup, compileFilter, createCommandSource, createStdinSource, createTarSource, newStats, parseCompression, parseSize, displayPath, SluiceError,
  type BackupResult, type FilterOptions,
} from '../index.js'
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
  parent?: string
  force?: boolean
  stdin?: boolean
  'stdin-filename'?: string
  'stdin-from-command'?: boolean
  tar?: boolean
  compression?: string
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
      .option('one-file-system', { alias: 'x', type: 'boolean', describe: 'do not cross file system boundaries' })
      .option('parent', { type: 'string', describe: 'snapshot to compare with (default: latest of this host and these paths)' })
      .option('force', { type: 'boolean', describe: 'read every file, even when the parent has it unchanged' })
      .option('stdin', { type: 'boolean', describe: 'back up standard input as one file' })
      .option('stdin-filename', { type: 'string', describe: 'name of the file (--stdin, --stdin-from-command) or directory (--tar) in the snapshot', default: undefined })
      .option('stdin-from-command', { type: 'boolean', describe: 'run the command given after -- and back up its standard output; no snapshot if it fails' })
      .option('tar', { type: 'boolean', describe: 'read a tar stream on standard input; its entries become the snapshot' })
      .option('compression', { type: 'string', describe: 'auto (zstd level 3), off, max (level 19), or a zstd level 1-19' }),
  handler: async args => {
    const paths = args.paths ?? []
    const modes = [args.stdin, args['stdin-from-command'], args.tar].filter(Boolean).length
    if (modes > 1) throw new SluiceError('ERR_ARGS', 'give only one of --stdin, --stdin-from-command and --tar')
    if (modes === 0 && paths.length === 0) throw new SluiceError('ERR_ARGS', 'nothing to back up: give at least one path')
    if ((args.stdin || args.tar) && paths.length > 0) throw new SluiceError('ERR_ARGS', '--stdin and --tar read standard input: give no paths')
    const compressionLevel = args.compression === undefined ? undefined : parseCompression(args.compression)
    const filter: FilterOptions = {
      ...(args.exclude ? { exclude: args.exclude } : {}),
      ...(args.include ? { include: args.include } : {}),
      ...(args['exclude-file'] ? { excludeFile: args['exclude-file'] } : {}),
      ...(args['exclude-larger-than'] ? { excludeLargerThan: parseSize(args['exclude-larger-than']) } : {}),
    }
    let source: { source: Readable; sourcePaths: string[] } | undefined
    let commandDone: Promise<void> | undefined
    if (modes > 0) {
      const defaultName = args.tar ? 'tar' : 'stdin'
      const name = Buffer.from(args['stdin-filename'] ?? defaultName)
      const shown = '/' + (args['stdin-filename'] ?? defaultName).replace(/^\/+/, '')
      if (args.tar) {
        const rules = compileFilter(filter)
        source = { source: createTarSource(process.stdin, { prefix: name, onWarning: warn, descend: e => rules.canDescend(e) }), sourcePaths: [shown] }
      } else if (args.stdin) {
        // Its descriptor, not process.stdin: read into one reused buffer (transforms/backup/sources/stdin.ts).
        source = { source: createStdinSource(0, { name }), sourcePaths: [shown] }
      } else {
        // yargs leaves what follows `--` in `_` (after the command name), not in the positionals.
        const cmd = createCommandSource([...paths, ...args._.slice(1).map(String)], { name })
        commandDone = cmd.done
        source = { source: cmd.source, sourcePaths: [shown] }
      }
    }
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
        ...(source ?? { paths }),
        stats,
        // Once a pipe source has failed (broken tar, failed command), the backup fails with that
        // one error; what the later stages say about the cut-off file is only its echo.
        onWarning: e => {
          if (!source?.source.errored) warn(e)
        },
        filter,
        ...(args['exclude-if-present'] ? { excludeIfPresent: args['exclude-if-present'] } : {}),
        ...(args['one-file-system'] ? { oneFileSystem: true } : {}),
        ...(args.tag ? { tags: args.tag } : {}),
        ...(args.host ? { host: args.host } : {}),
        ...(compressionLevel !== undefined ? { compressionLevel } : {}),
        ...(args.force ? { parent: false as const } : args.parent ? { parent: args.parent } : {}),
      })
      if (commandDone) await commandDone
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
      parent: result.parent ?? null,
      files: s.files, dirs: s.dirs, others: s.others,
      filesNew: s.filesNew, filesChanged: s.filesChanged, filesUnchanged: s.filesUnchanged,
      bytesRead: s.bytesRead, bytesTotal: s.bytesTotal, chunksNew: s.chunksNew, bytesStored: s.bytesStored,
      warnings: s.warnings, durationMs, peakRss: peakRss(),
    }))
  } else {
    out(`snapshot ${result.snapshotId.slice(0, 8)} saved${result.parent ? ` (parent ${result.parent.slice(0, 8)})` : ''}`)
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
