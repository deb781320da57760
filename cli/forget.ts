import path from 'node:path'
import type { Argv, CommandModule } from 'yargs'
import {
  SluiceError, describeGroup, describePolicy, forget, prune, parseDuration, parseGroupBy, parseKeepCount, parseTagList, undoForget,
  matchesFilter, type SnapshotRoot,
  type ForgetGroup, type ForgetSummary, type KeepReason, type RetentionPolicy, type SnapshotFilter,
} from '../index.js'
import { jsonSnapshot, showTime, snapshotTable } from './table.js'
import { documented, globalOptions, openRepo, out, startProgress, warn, type GlobalArgs } from './common.js'
import { pruneSummary } from './prune.js'
import { PhaseClock } from './progress.js'
import { PROGRESS_PLAIN_INTERVAL_MS } from '../lib/limits.js'

/** restic's snapshot filter flags, shared with stats. */
export interface FilterArgs {
  host?: string[]
  tag?: string[]
  path?: string[]
}

export function filterOptions<T>(y: Argv<T>): Argv<T & FilterArgs> {
  return y
    .option('host', { type: 'string', array: true, describe: 'only snapshots of this host (repeat for any of several)' })
    .option('tag', { type: 'string', array: true, describe: 'only snapshots with all these tags (a,b); repeat for OR' })
    .option('path', { type: 'string', array: true, describe: 'only snapshots that include this path (repeat: all of them)' }) as Argv<T & FilterArgs>
}

/** restic's --host / --path / --tag for commands that take `latest`: which snapshots it means. */
export function latestOptions<T>(y: Argv<T>): Argv<T & FilterArgs> {
  return y
    .option('host', { type: 'string', array: true, describe: 'latest means the newest snapshot of this host' })
    .option('path', { type: 'string', array: true, describe: 'latest means the newest snapshot that includes this path' })
    .option('tag', { type: 'string', array: true, describe: 'latest means the newest snapshot with these tags (a,b)' }) as Argv<T & FilterArgs>
}

/** The snapshot filter of a command's --host / --path / --tag, as a predicate for findSnapshot. */
export function latestFilter(args: FilterArgs): (s: SnapshotRoot) => boolean {
  const f = filterOf(args)
  return s => matchesFilter(s, f)
}

/** --path is made absolute, as backup records paths (and as restic does). */
export function filterOf(args: FilterArgs): SnapshotFilter {
  return {
    ...(args.host ? { hosts: args.host } : {}),
    ...(args.tag ? { tags: args.tag.map(parseTagList) } : {}),
    ...(args.path ? { paths: args.path.map(p => path.resolve(p)) } : {}),
  }
}

interface ForgetArgs extends GlobalArgs, FilterArgs {
  snapshots?: string[]
  prune?: boolean
  'keep-last'?: string
  'keep-hourly'?: string
  'keep-daily'?: string
  'keep-weekly'?: string
  'keep-monthly'?: string
  'keep-yearly'?: string
  'keep-within'?: string
  'keep-within-hourly'?: string
  'keep-within-daily'?: string
  'keep-within-weekly'?: string
  'keep-within-monthly'?: string
  'keep-within-yearly'?: string
  'keep-tag'?: string[]
  'group-by': string
  'dry-run'?: boolean
  'unsafe-allow-remove-all'?: boolean
  undo?: boolean
}

const COUNTS = [['last', 'l', 'last'], ['hourly', 'H', 'hourly'], ['daily', 'd', 'daily'], ['weekly', 'w', 'weekly'], ['monthly', 'm', 'monthly'], ['yearly', 'y', 'yearly']] as const
const WITHINS = [['', 'within'], ['-hourly', 'withinHourly'], ['-daily', 'withinDaily'], ['-weekly', 'withinWeekly'], ['-monthly', 'withinMonthly'], ['-yearly', 'withinYearly']] as const

function policyOptions<T>(y: Argv<T>): Argv<T> {
  for (const [name, alias] of COUNTS) {
    y = y.option(`keep-${name}`, { alias, type: 'string', describe: name === 'last' ? 'keep the last N snapshots (N or unlimited)' : `keep the newest snapshot of each of the last N ${name.replace('ly', '').replace('dai', 'day')}s that have snapshots (N or unlimited)` })
  }
  for (const [suffix] of WITHINS) {
    y = y.option(`keep-within${suffix}`, { type: 'string', describe: `keep ${suffix ? `${suffix.slice(1)} snapshots` : 'snapshots'} newer than DURATION (e.g. 1y5m7d2h) before the newest snapshot` })
  }
  return y.option('keep-tag', { type: 'string', array: true, describe: 'keep snapshots with all these tags (a,b); repeat for OR' })
}

function policyOf(args: ForgetArgs): RetentionPolicy {
  const p: RetentionPolicy = {}
  for (const [name, , key] of COUNTS) {
    const v = args[`keep-${name}`]
    if (v !== undefined) p[key] = parseKeepCount(v, `keep-${name}`)
  }
  for (const [suffix, key] of WITHINS) {
    const v = args[`keep-within${suffix}`]
    if (v !== undefined) p[key] = parseDuration(v, `keep-within${suffix}`)
  }
  if (args['keep-tag']) p.tags = args['keep-tag'].map(parseTagList)
  return p
}

/** restic's tables of a forget group: oldest first, a reason per line where there are several. */
function table(list: ForgetSummary[], reasons?: KeepReason<ForgetSummary>[]): string[] {
  return snapshotTable([...list].reverse(), reasons ? { reasons: new Map(reasons.map(r => [r.snapshot.id, r.matches])) } : {})
}

export const forgetCommand: CommandModule<object, ForgetArgs> = {
  command: 'forget [snapshots..]',
  describe: 'remove snapshots by id or by policy (recoverable with --undo until prune)',
  builder: y =>
    filterOptions(policyOptions(documented(globalOptions(y), [["sluice forget --keep-daily 7 --keep-weekly 5 --dry-run", "show what the policy would remove"], ["sluice forget 40dc1520", "remove one snapshot (sluice forget --undo brings it back until prune)"]])))
      .positional('snapshots', { type: 'string', array: true, describe: 'snapshot ids to remove (or, with --undo, to bring back)' })
      .option('group-by', { alias: 'g', type: 'string', default: 'host,paths', describe: "group snapshots by host, paths and/or tags ('' for one group)" })
      .option('dry-run', { alias: 'n', type: 'boolean', describe: 'print what would be removed, remove nothing' })
      .option('unsafe-allow-remove-all', { type: 'boolean', describe: 'with a filter and no policy, remove every snapshot the filter matches' })
      .option('undo', { type: 'boolean', describe: 'bring forgotten snapshots back (all of them when no ids are given)' })
      .option('prune', { type: 'boolean', describe: 'run prune after removing snapshots (with its default margins)' }),
  handler: async args => {
    const snapshots = (args.snapshots ?? []).map(String)
    const policy = policyOf(args)
    const groupBy = parseGroupBy(args['group-by'])
    const filter = filterOf(args)
    if (args.undo && (Object.keys(policy).length > 0 || Object.keys(filter).length > 0)) {
      throw new SluiceError('ERR_ARGS', '--undo takes snapshot ids, not --keep-* or filter options')
    }
    const quiet = !!args.quiet
    const repo = await openRepo(args)
    try {
      if (args.undo) {
        if (args.json) process.stdout.write('[')
        let n = 0
        const r = await undoForget({
          repo, snapshots, dryRun: !!args['dry-run'],
          onRestored: (id, s) => {
            if (args.json) process.stdout.write((n++ > 0 ? ',\n' : '\n') + JSON.stringify({ id, short_id: id.slice(0, 8), time: s.time, host: s.host, paths: s.paths, tags: s.tags }))
            else if (!quiet) out(`${args['dry-run'] ? 'would restore' : 'restored'} snapshot ${id.slice(0, 8)} of ${showTime(s.time)} (${s.host}: ${s.paths.join(' ')})`)
          },
        })
        if (args.json) out(n > 0 ? '\n]' : ']')
        else if (!quiet) out(r.restored === 0 ? 'no forgotten snapshots to bring back' : `${args['dry-run'] ? 'would bring back' : 'brought back'} ${r.restored} snapshots`)
        return
      }
      if (snapshots.length === 0 && !args.json && !quiet) out(`Applying Policy: ${describePolicy(policy)}`)
      let groups = 0
      const onGroup = (g: ForgetGroup) => {
        if (args.json) {
          const list = (l: ForgetSummary[]) => (l.length > 0 ? l.map(jsonSnapshot) : null)
          const reasons = g.reasons.length > 0 ? g.reasons.map(r => ({ snapshot: jsonSnapshot(r.snapshot), matches: r.matches })) : null
          process.stdout.write((groups++ > 0 ? ',\n' : '[\n') + JSON.stringify({ tags: g.key.tags, host: g.key.host, paths: g.key.paths, keep: list(g.keep), remove: list(g.remove), reasons }))
          return
        }
        groups++
        if (quiet) return
        const name = describeGroup(g.key)
        if (name) out(`snapshots for (${name}):`)
        if (g.keep.length > 0) out([`keep ${g.keep.length} snapshots:`, ...table(g.keep, g.reasons), ''].join('\n'))
        if (g.remove.length > 0) out([`remove ${g.remove.length} snapshots:`, ...table(g.remove), ''].join('\n'))
      }
      const r = await forget({
        repo, policy, snapshots, groupBy, filter, onGroup,
        dryRun: !!args['dry-run'],
        unsafeAllowRemoveAll: !!args['unsafe-allow-remove-all'],
        onWarning: warn,
        onRemoved: id => {
          if (snapshots.length > 0 && !args.json && !quiet) out(`${args['dry-run'] ? 'would remove' : 'removed'} snapshot ${id.slice(0, 8)}`)
        },
      })
      if (args.json) {
        if (groups > 0) out('\n]')
      } else if (!quiet) {
        if (r.removed === 0) out('no snapshots were removed')
        else if (args['dry-run']) out(`would remove ${r.removed} snapshots (dry run: nothing changed)`)
        else out(`removed ${r.removed} snapshots; \`sluice forget --undo\` brings them back until prune sweeps them`)
      }
      // Each failure was one warning line; exit 3 as restic 0.19 does.
      if (r.failed > 0) process.exitCode = 3
      if (args.prune && r.removed > 0 && !args['dry-run']) {
        // The same progress line as `sluice prune` (on stderr; --json keeps stdout to forget's groups).
        const phases = new PhaseClock(Date.now())
        const stop = startProgress(() => phases.line(phases.p?.phase ?? 'prune'), { quiet: quiet || !!args.json, plainMs: PROGRESS_PLAIN_INTERVAL_MS })
        let p
        try {
          p = await prune({ repo, onProgress: phases.update })
          stop(true)
        } finally {
          stop()
        }
        if (!args.json && !quiet) for (const line of pruneSummary(p)) out(line)
      }
    } finally {
      await repo.close()
    }
  },
}
