import type { CommandModule } from 'yargs'
import { displayPath, find, paceMemory, parseFindTime } from '../index.js'
import { filterOf, filterOptions, type FilterArgs } from './forget.js'
import { documented, globalOptions, openRepo, out, type GlobalArgs } from './common.js'
import { entryJson, longLine } from './ls.js'

interface FindArgs extends GlobalArgs, FilterArgs {
  patterns: string[]
  snapshot?: string[]
  'ignore-case'?: boolean
  long?: boolean
  oldest?: string
  newest?: string
}

const pad = (n: number) => String(n).padStart(2, '0')
/** restic's time format, local time. */
function localTime(iso: string): string {
  const t = new Date(iso)
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`
}

export const findCommand: CommandModule<object, FindArgs> = {
  command: 'find <patterns..>',
  describe: 'find files and directories in snapshots by name or path pattern',
  builder: y =>
    filterOptions(documented(globalOptions(y), [
      ["sluice find '*.pdf'", 'every PDF in every snapshot, grouped by snapshot'],
      ["sluice find -i '/home/*/notes.txt' --host laptop", "a path from the root, any case, in one host's snapshots"],
      ["sluice find --json --newest 2024-01-01 'report*'", 'matches changed before 2024, as JSON'],
    ]))
      .positional('patterns', { type: 'string', array: true, demandOption: true, describe: 'glob on the name (no /), or on the path (with /; from the root with a leading /)' })
      .option('snapshot', { alias: 's', type: 'string', array: true, describe: 'only this snapshot (repeat for several; default: all)' })
      .option('ignore-case', { alias: 'i', type: 'boolean', describe: 'ignore case in patterns' })
      .option('long', { alias: 'l', type: 'boolean', describe: 'mode, owner, size and time' })
      .option('oldest', { alias: 'O', type: 'string', describe: 'oldest modification date/time (YYYY-MM-DD[ HH:MM[:SS]])' })
      .option('newest', { alias: 'N', type: 'string', describe: 'newest modification date/time (YYYY-MM-DD[ HH:MM[:SS]])' }),
  handler: async args => {
    paceMemory('read')
    const opts = {
      patterns: args.patterns.map(String),
      snapshots: (args.snapshot ?? []).map(String),
      filter: filterOf(args),
      ignoreCase: !!args['ignore-case'],
      ...(args.oldest !== undefined ? { oldest: parseFindTime(args.oldest, 'oldest') } : {}),
      ...(args.newest !== undefined ? { newest: parseFindTime(args.newest, 'newest') } : {}),
    }
    const repo = await openRepo(args)
    try {
      // restic's shapes: text groups matches under "Found matching entries in snapshot ...";
      // --json one array with an object per snapshot: {"matches":[...],"hits":N,"snapshot":ID}.
      let current: string | undefined
      let hits = 0
      const close = () => process.stdout.write(`],"hits":${hits},"snapshot":${JSON.stringify(current)}}`)
      if (args.json) process.stdout.write('[')
      for await (const m of find({ repo, ...opts })) {
        if (m.snapshotId !== current) {
          if (args.json) {
            if (current !== undefined) {
              close()
              process.stdout.write(',')
            }
            process.stdout.write('{"matches":[')
          } else {
            if (current !== undefined) out('')
            out(`Found matching entries in snapshot ${m.snapshotId.slice(0, 8)} from ${localTime(m.snap.time)}`)
          }
          current = m.snapshotId
          hits = 0
        }
        if (args.json) process.stdout.write((hits > 0 ? ',' : '') + JSON.stringify(entryJson(m.entry)))
        else out(args.long ? longLine(m.entry) : '/' + displayPath(m.entry.path))
        hits++
      }
      if (args.json) {
        if (current !== undefined) close()
        out(']')
      }
    } finally {
      await repo.close()
    }
  },
}
