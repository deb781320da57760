import type { CommandModule } from 'yargs'
import { createDiff, displayPath, paceMemory, snapshotRecords, treeOf, type DiffItem } from '../index.js'
import { latestFilter, latestOptions, type FilterArgs } from './forget.js'
import { documented, globalOptions, openRepo, out, type GlobalArgs } from './common.js'

const MARK = { added: '+', removed: '-', modified: 'M' } as const

export const diffCommand: CommandModule<object, GlobalArgs & FilterArgs & { a: string; b: string }> = {
  command: 'diff <a> <b>',
  describe: 'show what was added, removed and modified between two snapshots',
  builder: y =>
    latestOptions(documented(globalOptions(y), [["sluice diff 40dc1520 latest", "what changed between a snapshot and the newest"], ["sluice diff --json 40dc1520 79766175 | jq -r .path", "only the changed paths"]]))
      .positional('a', { type: 'string', demandOption: true, describe: 'the older snapshot (latest or an id prefix)' })
      .positional('b', { type: 'string', demandOption: true, describe: 'the newer snapshot' }),
  handler: async args => {
    paceMemory('read') // diff reads chunks to compare content
    const repo = await openRepo(args)
    try {
      const a = await repo.findSnapshot(args.a, latestFilter(args))
      const b = await repo.findSnapshot(args.b, latestFilter(args))
      const counts = { added: 0, removed: 0, modified: 0 }
      for await (const d of createDiff(() => snapshotRecords(repo, treeOf(a.snap)), () => snapshotRecords(repo, treeOf(b.snap)), { loader: repo }) as AsyncIterable<DiffItem>) {
        counts[d.change]++
        const p = '/' + displayPath(d.path) + (d.type === 'dir' ? '/' : '')
        if (args.json) out(JSON.stringify({ change: d.change, path: p, type: d.type, ...(d.what.length ? { what: d.what } : {}) }))
        else out(`${MARK[d.change]}    ${p}${d.what.length ? `  (${d.what.join(', ')})` : ''}`)
      }
      if (!args.json) out(`${counts.added} added, ${counts.removed} removed, ${counts.modified} modified`)
    } finally {
      await repo.close()
    }
  },
}
