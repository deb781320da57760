import type { CommandModule } from 'yargs'
import { stats, type StatsMode } from '../index.js'
import { filterOf, filterOptions, type FilterArgs } from './forget.js'
import { formatBytes, documented, globalOptions, openRepo, out, startProgress, type GlobalArgs } from './common.js'
import { PROGRESS_PLAIN_INTERVAL_MS } from '../lib/limits.js'

interface StatsArgs extends GlobalArgs, FilterArgs {
  snapshots?: string[]
  mode: string
}

export const statsCommand: CommandModule<object, StatsArgs> = {
  command: 'stats [snapshots..]',
  describe: 'count files and bytes of snapshots: as restored (restore-size) or as stored (raw-data)',
  builder: y =>
    filterOptions(documented(globalOptions(y), [["sluice stats latest", "files and bytes a restore of the newest snapshot writes"], ["sluice stats --mode raw-data", "what all snapshots take in the repository"]]))
      .positional('snapshots', { type: 'string', array: true, describe: 'snapshots to count (latest or id prefixes; default all)' })
      .option('mode', { type: 'string', default: 'restore-size', describe: 'restore-size: what a restore writes; raw-data: the distinct chunks referenced, read once each' }),
  handler: async args => {
    const repo = await openRepo(args)
    let done = 0
    const stop = startProgress(() => `${done} snapshots counted`, { quiet: !!args.quiet || !!args.json, plainMs: PROGRESS_PLAIN_INTERVAL_MS })
    let r
    try {
      r = await stats({
        repo,
        mode: args.mode as StatsMode,
        snapshots: (args.snapshots ?? []).map(String),
        filter: filterOf(args),
        onSnapshot: () => done++,
      })
    } finally {
      stop()
      await repo.close()
    }
    if (args.json) return out(JSON.stringify(r))
    // restic's layout, and Sluice's three lines after it.
    const bound = r.upper_bound ? ' (upper bound: more distinct chunks than the cache holds)' : ''
    const lines = [`Stats in ${r.mode} mode:`, `     Snapshots processed:  ${r.snapshots_count}`]
    if (r.total_blob_count) lines.push(`        Total Blob Count:  ${r.total_blob_count}${bound}`)
    lines.push(`        Total File Count:  ${r.total_file_count}`)
    if (r.total_uncompressed_size) lines.push(` Total Uncompressed Size:  ${formatBytes(r.total_uncompressed_size)}`)
    lines.push(`              Total Size:  ${formatBytes(r.total_size)}${bound}`)
    if (r.compression_progress) lines.push(`    Compression Progress:  ${r.compression_progress.toFixed(2)}%`)
    if (r.compression_ratio) lines.push(`       Compression Ratio:  ${r.compression_ratio.toFixed(2)}x`)
    if (r.compression_space_saving) lines.push(`Compression Space Saving:  ${r.compression_space_saving.toFixed(2)}%`)
    if (r.restore_size !== undefined) lines.push(`            Restore Size:  ${formatBytes(r.restore_size)}`)
    if (r.dedup_ratio) lines.push(`     Deduplication Ratio:  ${r.dedup_ratio.toFixed(2)}x`)
    out(lines.join('\n'))
  },
}
