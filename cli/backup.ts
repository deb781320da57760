import type { CommandModule } from 'yargs'
import fs from 'node:fs'
import type { Readable } from 'node:stream'
import {
  backup, compileFilter, createCommandSource, createStdinSource, createTarSource, newStats, parseCompression, parseSize, displayPath, SluiceError,
  type BackupResult, type FileStatus, type FilterOptions, type Storage,
} from '../index.js'
import { PROGRESS_JSON_INTERVAL_MS, PROGRESS_PLAIN_INTERVAL_MS } from '../lib/limits.js'
import { estimate, progressLine, startScanner, type Position } from './progress.js'
import { formatBytes, documented, globalOptions, memoryOf, memoryOptions, openRepo, out, peakRss, startProgress, warn, type GlobalArgs } from './common.js'

interface BackupArgs extends GlobalArgs {
  paths?: string[]
  tag?: string[]
  host?: string
  exclude?: string[]
  include?: string[]
  iexclude?: string[]
  iinclude?: string[]
  'exclude-file'?: string[]
  'exclude-if-present'?: string[]
  'exclude-caches'?: boolean
  'exclude-larger-than'?: string
  'files-from'?: string[]
  'files-from-raw'?: string[]
  'one-file-system'?: boolean
  parent?: string
  force?: boolean
  stdin?: boolean
  'stdin-filename'?: string
  'stdin-from-command'?: boolean
  tar?: boolean
  compression?: string
  time?: string
  'dry-run'?: boolean
}

/** Paths listed in files: one a line ('#' comments and blank lines skipped), or NUL-separated
 *  raw bytes with `raw` (restic's --files-from and --files-from-raw: a name that is not UTF-8
 *  stays as it is on disk). Held as a list, like paths given as arguments. */
function filesFrom(files: string[], raw: boolean): (string | Buffer)[] {
  return files.flatMap((f): (string | Buffer)[] => {
    let bytes: Buffer
    try {
      bytes = fs.readFileSync(f === '-' ? 0 : f)
    } catch (cause) {
      throw new SluiceError('ERR_ARGS', `cannot read ${raw ? '--files-from-raw' : '--files-from'} file ${f}: ${(cause as Error).message}`, { cause })
    }
    if (!raw) return bytes.toString('utf8').split(/\r?\n/).map(l => l.trim()).filter(l => l !== '' && !l.startsWith('#'))
    const out: Buffer[] = []
    for (let start = 0; start < bytes.length;) {
      let end = bytes.indexOf(0, start)
      if (end < 0) end = bytes.length
      if (end > start) out.push(bytes.subarray(start, end))
      start = end + 1
    }
    return out
  })
}

/** restic's --time: "2006-01-02 15:04:05" in local time (or any ISO 8601 time). */
function parseTime(text: string): Date {
  const t = new Date(/^\d{4}-\d\d-\d\d \d\d:\d\d(:\d\d)?$/.test(text) ? text.replace(' ', 'T') : text)
  if (Number.isNaN(t.getTime())) throw new SluiceError('ERR_ARGS', `--time: not a time: "${text}" (use YYYY-MM-DD HH:MM:SS)`)
  return t
}

/** backup --dry-run's storage: reads go through; writes and deletes report success and do
 *  nothing (the pipeline's own counters say what would have been stored). */
function dryRun(s: Storage): Storage {
  return {
    put: async () => true,
    get: (k, max) => s.get(k, max),
    has: k => s.has(k),
    list: p => s.list(p),
    delete: async () => {},
    ...(s.leftovers ? { leftovers: (age: number) => s.leftovers!(age, false) } : {}),
    describe: () => s.describe(),
    close: () => s.close(),
  }
}

/** restic's backup status and summary lines (docs/JSON.md). */
function jsonStatus(p: Position) {
  const { fraction, remaining } = estimate(p)
  return {
    message_type: 'status',
    seconds_elapsed: Math.floor(p.elapsed),
    ...(remaining !== undefined ? { seconds_remaining: Math.ceil(remaining) } : {}),
    percent_done: fraction ?? 0,
    total_files: p.total?.files ?? 0,
    files_done: p.files,
    total_bytes: p.total?.bytes ?? 0,
    bytes_done: p.bytes,
    error_count: p.errors,
    ...(p.current ? { current_files: [p.current] } : {}),
  }
}

export const backupCommand: CommandModule<object, BackupArgs> = {
  command: 'backup [paths..]',
  describe: 'back up files and directories into a new snapshot',
  builder: y =>
    documented(memoryOptions(globalOptions(y)), [["sluice backup ~/work /etc", "back up two trees (unchanged files of the last snapshot of the same paths are not read again)"], ["sluice backup --exclude '*.tmp' --exclude-caches --tag daily,laptop ~", "leave out temporary files and cache directories, tag the snapshot daily and laptop"], ["pg_dump db | sluice backup --stdin --stdin-filename db.sql", "back up standard input as one file"]])
      .positional('paths', { type: 'string', array: true, describe: 'files and directories to back up' })
      .option('tag', { type: 'string', array: true, describe: 'tag the snapshot: --tag a,b gives two tags (repeatable)' })
      .option('host', { type: 'string', describe: 'host name to record', defaultDescription: 'this host' })
      .option('time', { type: 'string', describe: 'the snapshot\'s time, "YYYY-MM-DD HH:MM:SS" in local time', defaultDescription: 'now' })
      .option('dry-run', { alias: 'n', type: 'boolean', describe: 'do everything but write: report what would be stored' })
      .option('files-from', { type: 'string', array: true, describe: 'read the paths to back up from this file, one a line (- for stdin)' })
      .option('files-from-raw', { type: 'string', array: true, describe: 'read the paths to back up from this file, NUL-separated (find -print0)' })
      .option('exclude', { alias: 'e', type: 'string', array: true, describe: 'exclude paths matching this glob (repeatable)' })
      .option('iexclude', { type: 'string', array: true, describe: 'as --exclude, ignoring case' })
      .option('include', { type: 'string', array: true, describe: 'back up only paths matching this glob (repeatable)' })
      .option('iinclude', { type: 'string', array: true, describe: 'as --include, ignoring case' })
      .option('exclude-file', { type: 'string', array: true, describe: 'read exclude patterns from this file' })
      .option('exclude-if-present', { type: 'string', array: true, describe: 'exclude directories that contain a file of this name' })
      .option('exclude-caches', { type: 'boolean', describe: 'exclude directories holding a CACHEDIR.TAG with its signature' })
      .option('exclude-larger-than', { type: 'string', describe: 'exclude files larger than SIZE (e.g. 100M, 2G)' })
      .option('one-file-system', { alias: 'x', type: 'boolean', describe: 'do not cross file system boundaries' })
      .option('parent', { type: 'string', describe: 'snapshot to compare with', defaultDescription: 'latest of this host and these paths' })
      .option('force', { type: 'boolean', describe: 'read every file, even when the parent has it unchanged' })
      .option('stdin', { type: 'boolean', describe: 'back up standard input as one file' })
      .option('stdin-filename', { type: 'string', describe: 'name of the file (--stdin, --stdin-from-command) or directory (--tar) in the snapshot', defaultDescription: 'stdin, or tar for --tar' })
      .option('stdin-from-command', { type: 'boolean', describe: 'run the command given after -- and back up its standard output; no snapshot if it fails' })
      .option('tar', { type: 'boolean', describe: 'read a tar stream on standard input; its entries become the snapshot' })
      .option('compression', { type: 'string', describe: 'auto (zstd level 3), off, max (level 19), or a zstd level 1-19', defaultDescription: 'auto' }),
  handler: async args => {
    const paths = [...(args.paths ?? []), ...filesFrom(args['files-from'] ?? [], false), ...filesFrom(args['files-from-raw'] ?? [], true)]
    const modes = [args.stdin, args['stdin-from-command'], args.tar].filter(Boolean).length
    if (modes > 1) throw new SluiceError('ERR_ARGS', 'give only one of --stdin, --stdin-from-command and --tar')
    if (modes === 0 && paths.length === 0) throw new SluiceError('ERR_ARGS', 'nothing to back up: give at least one path')
    if ((args.stdin || args.tar) && paths.length > 0) throw new SluiceError('ERR_ARGS', '--stdin and --tar read standard input: give no paths')
    const compressionLevel = args.compression === undefined ? undefined : parseCompression(args.compression)
    const time = args.time === undefined ? undefined : parseTime(args.time)
    const tags = args.tag?.flatMap(t => t.split(',')).filter(t => t !== '')
    const filter: FilterOptions = {
      ...(args.exclude ? { exclude: args.exclude } : {}),
      ...(args.include ? { include: args.include } : {}),
      ...(args.iexclude ? { iexclude: args.iexclude } : {}),
      ...(args.iinclude ? { iinclude: args.iinclude } : {}),
      ...(args['exclude-caches'] ? { excludeCaches: true } : {}),
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
        const cmd = createCommandSource([...paths.map(String), ...args._.slice(1).map(String)], { name })
        commandDone = cmd.done
        source = { source: cmd.source, sourcePaths: [shown] }
      }
    }
    const dry = !!args['dry-run']
    const repo = await openRepo(args, dry ? dryRun : undefined)
    const stats = newStats()
    const started = Date.now()
    const json = !!args.json
    const quiet = !!args.quiet
    // The totals are only for progress and status lines: -q needs no scan.
    const scan = source || quiet ? undefined : startScanner(paths, {
      filter,
      ...(args['exclude-if-present'] ? { excludeIfPresent: args['exclude-if-present'] } : {}),
      ...(args['one-file-system'] ? { oneFileSystem: true } : {}),
    })
    // The file being read, as the chunker names it: a path for humans only when a line shows it
    // (decoding every path cost ~2 KB of garbage per file, a tenth of a small-file backup's).
    let currentPath: Buffer | undefined
    const current = (): string | undefined => (currentPath === undefined ? undefined : '/' + displayPath(currentPath))
    let finished = false
    const position = (): Position => ({
      elapsed: (Date.now() - started) / 1000,
      files: stats.files,
      bytes: stats.bytesTotal,
      // Once the backup is through, what it saw is the total, whether the scan is or not.
      ...(finished ? { total: { files: stats.files, bytes: stats.bytesTotal, done: true } } : scan ? { total: scan.totals } : {}),
      errors: stats.warnings,
      ...(currentPath !== undefined ? { current: current() } : {}),
    })
    const stopProgress = startProgress(() => progressLine(position()), { quiet: quiet || json, plainMs: PROGRESS_PLAIN_INTERVAL_MS })
    // --json: a status line at once (so even a short backup has one), then on the interval.
    const status = () => out(JSON.stringify(jsonStatus(position())))
    if (json && !quiet) status()
    const statusTimer = json && !quiet ? setInterval(status, PROGRESS_JSON_INTERVAL_MS) : undefined
    statusTimer?.unref()
    const onFile = (p: Buffer, what: FileStatus) => {
      currentPath = p
      if (!args.verbose || quiet) return
      if (json) out(JSON.stringify({ message_type: 'verbose_status', action: what === 'changed' ? 'modified' : what, item: current() }))
      else out(`${what.padEnd(9)} ${current()}`)
    }
    let result: BackupResult
    try {
      result = await backup({
        repo, ...memoryOf(args),
        ...(source ?? { paths }),
        stats,
        // Once a pipe source has failed (broken tar, failed command), the backup fails with that
        // one error; what the later stages say about the cut-off file is only its echo.
        onWarning: e => {
          if (!source?.source.errored) warn(e)
        },
        onFile,
        filter,
        ...(args['exclude-if-present'] ? { excludeIfPresent: args['exclude-if-present'] } : {}),
        ...(args['one-file-system'] ? { oneFileSystem: true } : {}),
        ...(tags ? { tags } : {}),
        ...(args.host ? { host: args.host } : {}),
        ...(time ? { time: time.toISOString() } : {}),
        ...(compressionLevel !== undefined ? { compressionLevel } : {}),
        ...(args.force ? { parent: false as const } : args.parent ? { parent: args.parent } : {}),
      })
      if (commandDone) await commandDone
      finished = true
    } finally {
      clearInterval(statusTimer)
      scan?.stop()
      stopProgress(finished)
      await repo.close()
    }
    reportBackup(result, started, { json, quiet, dryRun: dry })
  },
}

/** Prints the summary (restic's JSON summary line with --json); exit code 3 when some entries
 *  could not be read. */
export function reportBackup(result: BackupResult, started: number, opts: { json: boolean; quiet: boolean; dryRun: boolean }): void {
  const s = result.stats
  const durationMs = Date.now() - started
  if (opts.json) {
    // restic's summary fields first, then Sluice's own counters under the snapshot's stats names.
    out(JSON.stringify({
      message_type: 'summary',
      dry_run: opts.dryRun,
      files_new: s.filesNew, files_changed: s.filesChanged, files_unmodified: s.filesUnchanged,
      dirs_new: result.parent ? 0 : s.dirs, dirs_changed: 0, dirs_unmodified: result.parent ? s.dirs : 0,
      data_blobs: s.chunksNew, data_added: s.bytesStored, data_added_packed: s.bytesStored,
      total_files_processed: s.files, total_bytes_processed: s.bytesTotal,
      total_duration: durationMs / 1000,
      backup_start: new Date(started).toISOString(), backup_end: new Date(started + durationMs).toISOString(),
      ...(opts.dryRun ? {} : { snapshot_id: result.snapshotId }),
      snapshot: result.snapshotId,
      parent: result.parent ?? null,
      files: s.files, dirs: s.dirs, others: s.others,
      filesNew: s.filesNew, filesChanged: s.filesChanged, filesUnchanged: s.filesUnchanged,
      bytesRead: s.bytesRead, bytesTotal: s.bytesTotal, chunksNew: s.chunksNew, bytesStored: s.bytesStored,
      warnings: s.warnings, durationMs, peakRss: peakRss(),
    }))
  } else if (!opts.quiet) {
    if (opts.dryRun) out(`would save snapshot (dry run: nothing was written)${result.parent ? ` (parent ${result.parent.slice(0, 8)})` : ''}`)
    else out(`snapshot ${result.snapshotId.slice(0, 8)} saved${result.parent ? ` (parent ${result.parent.slice(0, 8)})` : ''}`)
    out(`files: ${s.files} (${s.filesNew} new, ${s.filesChanged} changed, ${s.filesUnchanged} unchanged), dirs: ${s.dirs}, other: ${s.others}`)
    out(`read ${formatBytes(s.bytesRead)} of ${formatBytes(s.bytesTotal)}, ${opts.dryRun ? 'would store' : 'stored'} ${formatBytes(s.bytesStored)} in ${s.chunksNew} new chunks`)
    out(`took ${(durationMs / 1000).toFixed(2)} s, peak memory ${formatBytes(peakRss())}`)
  }
  if (s.warnings > 0) {
    process.stderr.write(`sluice: ${s.warnings} entries could not be read completely (see the warnings above); the snapshot holds the rest\n`)
    process.exitCode = 3
  }
}

export { displayPath }
