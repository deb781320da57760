import type { CommandModule } from 'yargs'
import { prune, SluiceError, type PruneResult } from '../index.js'
import { PROGRESS_JSON_INTERVAL_MS, PROGRESS_PLAIN_INTERVAL_MS } from '../lib/limits.js'
import { PhaseClock } from './progress.js'
import { formatBytes, documented, globalOptions, memoryOf, memoryOptions, openRepo, out, peakRss, startProgress, type GlobalArgs } from './common.js'

interface PruneArgs extends GlobalArgs {
  'dry-run'?: boolean
  'min-age'?: string
  'lease-lifetime'?: string
  'sweep-gap'?: string
  'max-unused'?: string
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** A duration as `90s`, `30m`, `1h30m`, `2d` or `0`, in ms. */
export function parseDuration(text: string, flag: string): number {
  const t = text.trim()
  if (t === '0') return 0
  if (!/^(\d+(ms|s|m|h|d))+$/.test(t)) throw new SluiceError('ERR_ARGS', `${flag} takes a duration such as 30m, 1h30m or 0, not '${text}'`)
  let ms = 0
  for (const [, n, unit] of t.matchAll(/(\d+)(ms|s|m|h|d)/g)) ms += Number(n) * UNITS[unit!]!
  return ms
}

const iso = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')

/** The lines prune prints about what it did and what waits (forget --prune prints them too). */
export function pruneSummary(r: PruneResult): string[] {
  const lines: string[] = []
  const verb = (done: string, plan: string) => (r.dryRun ? `would ${plan}` : done)
  const s = r.sweep
  if (s?.swept) {
    lines.push(`swept collection ${s.generation}: ${verb('deleted', 'delete')} ${s.deleted} chunks${r.dryRun ? '' : ` (${formatBytes(s.deletedBytes)})`} and ${s.forgottenDeleted} forgotten snapshot roots`)
    if (s.movedBack > 0) lines.push(`  ${s.movedBack} chunks referenced by ${s.newSnapshots} snapshots written since the collection ${verb('were moved back', 'move back')}`)
    if (s.tombstoned > 0) lines.push(`  ${s.tombstoned} lapsed backup leases tombstoned: those backups prove their chunks before they commit`)
  } else if (s) {
    lines.push(`collection ${s.generation} cannot be swept yet, nothing was deleted:`)
    for (const w of s.waiting) {
      if (w.reason === 'gap') lines.push(`  the collect-to-sweep gap ends at ${iso(w.until)}`)
      else lines.push(`  waiting for the backup on host ${w.host} (pid ${w.pid}, running since ${iso(w.since!)}) to finish; its lease lapses at ${iso(w.until)} unless refreshed`)
    }
  }
  const c = r.collect
  if (c) {
    lines.push(`collection ${c.generation}: ${c.snapshots} snapshots reference ${c.referenced} of ${c.chunks} stored chunks; ${c.candidates} unreferenced chunks (${formatBytes(c.candidateBytes)}) ${verb('were moved aside', 'be moved aside')}`)
    if (c.young > 0) lines.push(`  ${c.young} unreferenced chunks are kept for now: younger than the minimum age or than a running backup (${c.leases.map(l => `host ${l.host} since ${iso(l.started)}`).join(', ') || 'none running'})`)
    if (c.resurrected > 0) lines.push(`  ${c.resurrected} moved-aside chunks are referenced again and ${verb('were moved back', 'move back')}`)
    if (c.missing > 0) lines.push(`  warning: snapshots reference ${c.missing} chunks that are stored nowhere; run check`)
    if (c.forgotten > 0) lines.push(`  ${c.forgotten} forgotten snapshot roots are deleted by the next sweep`)
  }
  if (r.nextFreeAt !== undefined) lines.push(`the next prune run can free this space from ${iso(r.nextFreeAt)}`)
  return lines
}

export const pruneCommand: CommandModule<object, PruneArgs> = {
  command: 'prune',
  describe: 'delete chunks no snapshot references (two runs: collect, then sweep), beside running backups',
  builder: y =>
    documented(memoryOptions(globalOptions(y)), [
      ['sluice prune', 'collect unreferenced chunks (moved aside); the next run, an hour or more later, deletes them'],
      ['sluice forget --keep-daily 7 --prune', 'forget by policy, then prune'],
      ['sluice prune --min-age 0 --lease-lifetime 0 --sweep-gap 0', 'no backup can be running: collect, and on a second run sweep, at once'],
    ], [['0', 'success (also when a collection waits for a later run; the summary says until when)'], ['1', 'failure: nothing was deleted (another prune holds the lock, a snapshot or listing could not be read, ...)']])
      .option('dry-run', { alias: 'n', type: 'boolean', describe: 'only say what would be moved and deleted' })
      .option('min-age', { type: 'string', describe: 'keep unreferenced chunks younger than this', defaultDescription: '24h' })
      .option('lease-lifetime', { type: 'string', describe: 'a backup lease or prune lock not refreshed for this long has lapsed', defaultDescription: '30m' })
      .option('sweep-gap', { type: 'string', describe: 'least time between a collection and its sweep', defaultDescription: '1h' })
      .option('max-unused', { type: 'string', hidden: true }),
  handler: async args => {
    if (args['max-unused'] !== undefined) {
      throw new SluiceError('ERR_ARGS', '--max-unused has no meaning in sluice: every chunk is its own object, so prune deletes each unused one and never repacks')
    }
    const opts = {
      ...(args['min-age'] !== undefined ? { minChunkAgeMs: parseDuration(args['min-age'], '--min-age') } : {}),
      ...(args['lease-lifetime'] !== undefined ? { leaseLifetimeMs: parseDuration(args['lease-lifetime'], '--lease-lifetime') } : {}),
      ...(args['sweep-gap'] !== undefined ? { sweepGapMs: parseDuration(args['sweep-gap'], '--sweep-gap') } : {}),
    }
    const repo = await openRepo(args)
    const started = Date.now()
    // Progress: the phase (mark, collect, sweep), its step, counts against known totals.
    const phases = new PhaseClock(started)
    const stop = startProgress(() => phases.line(phases.p?.phase ?? 'prune'), { quiet: !!args.quiet || !!args.json, plainMs: PROGRESS_PLAIN_INTERVAL_MS })
    // --json: status lines as backup's, one at once and then on the interval.
    const status = () => out(JSON.stringify(phases.status()))
    if (args.json && !args.quiet) status()
    const statusTimer = args.json && !args.quiet ? setInterval(status, PROGRESS_JSON_INTERVAL_MS) : undefined
    statusTimer?.unref()
    let result: PruneResult
    try {
      result = await prune({ repo, ...memoryOf(args), dryRun: !!args['dry-run'], ...opts, onProgress: phases.update })
      clearInterval(statusTimer)
      // The last state once more: a log's closing line, and on a terminal the finished line.
      stop(true)
    } finally {
      clearInterval(statusTimer)
      stop()
      await repo.close()
    }
    const durationMs = Date.now() - started
    if (args.json) {
      out(JSON.stringify({ message_type: 'summary', ...result, nextFreeAt: result.nextFreeAt === undefined ? null : iso(result.nextFreeAt), durationMs, peakRss: peakRss() }))
    } else if (!args.quiet) {
      for (const line of pruneSummary(result)) out(line)
      out(`took ${(durationMs / 1000).toFixed(2)} s, peak memory ${formatBytes(peakRss())}`)
    }
  },
}
