/**
 * `sluice snapshots`: restic's table (oldest first, local time, a count at the end), one table per
 * group with --group-by, or restic's JSON.
 *
 * Memory: one group's rows. Roots are read one at a time and their rows appended to a temporary
 * spill file per group (as forget does); each group is read back, sorted by time and printed on
 * its own, so nothing is held across groups.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { CommandModule } from 'yargs'
import { describeGroup, groupKeyOf, matchesFilter, parseGroupBy, type GroupKey } from '../index.js'
import { filterOf, filterOptions, type FilterArgs } from './forget.js'
import { documented, globalOptions, openRepo, out, type GlobalArgs } from './common.js'
import { jsonSnapshot, snapshotTable, type SnapshotRow } from './table.js'

interface SnapshotsArgs extends GlobalArgs, FilterArgs {
  'group-by': string
  utc?: boolean
}

/** restic's group key in snapshots --json: `hostname`, and null for what is not grouped by. */
function jsonGroupKey(k: GroupKey) {
  return { hostname: k.host === '' ? null : k.host, paths: k.paths, tags: k.tags }
}

export const snapshotsCommand: CommandModule<object, SnapshotsArgs> = {
  command: 'snapshots',
  describe: 'list snapshots, oldest first',
  builder: y =>
    filterOptions(documented(globalOptions(y), [["sluice snapshots", "every snapshot, oldest first, in local time"], ["sluice snapshots --group-by host --utc", "one table per host, times in UTC"], ["sluice snapshots --json | jq -r '.[].short_id'", "the ids, for a script"]]))
      .option('group-by', { alias: 'g', type: 'string', default: '', describe: "one table per host, paths and/or tags (e.g. host,paths); '' for one table" })
      .option('utc', { type: 'boolean', describe: 'show times in UTC instead of local time' }),
  handler: async args => {
    const by = parseGroupBy(args['group-by'])
    const grouped = by.host || by.paths || by.tags
    const filter = filterOf(args)
    const repo = await openRepo(args)
    const spill = await fs.mkdtemp(path.join(os.tmpdir(), 'sluice-snapshots-'))
    try {
      for await (const { id, snap } of repo.snapshots()) {
        const row: SnapshotRow = { id, ...snap }
        if (!matchesFilter(row, filter)) continue
        const file = path.join(spill, createHash('sha256').update(JSON.stringify(groupKeyOf(row, by))).digest('hex'))
        await fs.appendFile(file, JSON.stringify(row) + '\n')
      }
      // Each group sorted by time (then id); groups in the spill directory's order.
      let n = 0
      if (args.json) process.stdout.write('[')
      for await (const e of await fs.opendir(spill)) {
        const rows = (await fs.readFile(path.join(spill, e.name), 'utf8')).split('\n').filter(l => l !== '').map(l => JSON.parse(l) as SnapshotRow)
        rows.sort((a, b) => Date.parse(a.time) - Date.parse(b.time) || (a.id < b.id ? -1 : 1))
        const key = groupKeyOf(rows[0]!, by)
        const sep = n++ > 0 ? ',\n' : '\n'
        if (args.json) {
          // Without --group-by a flat array of snapshots (restic's shape), else one object per group.
          if (grouped) process.stdout.write(sep + JSON.stringify({ group_key: jsonGroupKey(key), snapshots: rows.map(jsonSnapshot) }))
          else process.stdout.write(rows.map((r, i) => (i > 0 ? ',\n' : sep) + JSON.stringify(jsonSnapshot(r))).join(''))
        } else {
          if (grouped) out(`snapshots for (${describeGroup(key)}):`)
          out(snapshotTable(rows, { utc: !!args.utc, size: true }).join('\n'))
          if (grouped) out('')
        }
      }
      if (args.json) out(n > 0 ? '\n]' : ']')
      else if (n === 0) out(snapshotTable([], { utc: !!args.utc, size: true }).join('\n'))
    } finally {
      await fs.rm(spill, { recursive: true, force: true })
      await repo.close()
    }
  },
}
