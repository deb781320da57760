import type { CommandModule } from 'yargs'
import { checkTagOptions, parseTagList, tag } from '../index.js'
import { documented, globalOptions, openRepo, out, warn, type GlobalArgs } from './common.js'
import { filterOf, filterOptions, type FilterArgs } from './forget.js'

interface TagArgs extends GlobalArgs, FilterArgs {
  snapshots?: string[]
  add?: string[]
  remove?: string[]
  set?: string[]
}

/** restic's tag lists: `a,b`, repeatable, flattened. */
const flat = (l?: string[]) => l?.flatMap(parseTagList)

export const tagCommand: CommandModule<object, TagArgs> = {
  command: 'tag [snapshots..]',
  describe: 'modify tags on snapshots (all those the filters match when no snapshot is given)',
  builder: y =>
    filterOptions(documented(globalOptions(y), [
      ['sluice tag --add keep latest', 'add a tag to the newest snapshot'],
      ['sluice tag --set daily,laptop --host laptop', "replace the tags of every snapshot of one host"],
      ['sluice tag --remove old 40dc1520 79766175', 'remove a tag from two snapshots'],
    ]))
      .positional('snapshots', { type: 'string', array: true, describe: 'snapshot ids (unique prefixes) or latest' })
      .option('add', { type: 'string', array: true, describe: 'tags to add, tag[,tag...] (repeatable)' })
      .option('remove', { type: 'string', array: true, describe: 'tags to remove, tag[,tag...] (repeatable)' })
      .option('set', { type: 'string', array: true, describe: "tags to replace the existing ones, tag[,tag...] (repeatable; '' for none)" }),
  handler: async args => {
    const lists = { add: flat(args.add), remove: flat(args.remove), set: flat(args.set) }
    checkTagOptions(lists)
    const repo = await openRepo(args)
    let r
    try {
      r = await tag({
        repo, ...lists, snapshots: args.snapshots, filter: filterOf(args),
        // restic's --json lines: one per changed snapshot, then a summary.
        onChanged: (from, to) => {
          if (args.json) out(JSON.stringify({ message_type: 'changed', old_snapshot_id: from, new_snapshot_id: to }))
          else if (!args.quiet) out(`old snapshot ID: ${from.slice(0, 8)} -> new snapshot ID: ${to.slice(0, 8)}`)
        },
        onWarning: err => {
          warn(err)
          process.exitCode = 3
        },
      })
    } finally {
      await repo.close()
    }
    if (args.json) out(JSON.stringify({ message_type: 'summary', changed_snapshots: r.changed }))
    else out(r.changed === 0 ? 'no snapshots were modified' : `modified ${r.changed} snapshots`)
  },
}
