import type { CommandModule } from 'yargs'
import { globalOptions, openRepo, out, type GlobalArgs } from './common.js'

export const snapshotsCommand: CommandModule<object, GlobalArgs & { host?: string; tag?: string[] }> = {
  command: 'snapshots',
  describe: 'list snapshots',
  builder: y =>
    globalOptions(y)
      .option('host', { type: 'string', describe: 'only snapshots of this host' })
      .option('tag', { type: 'string', array: true, describe: 'only snapshots with this tag' }),
  handler: async args => {
    const repo = await openRepo(args)
    try {
      // --json: one JSON array, streamed an element at a time (as restic prints it).
      if (args.json) process.stdout.write('[')
      else out(['ID      ', 'Time                ', 'Host', 'Tags', 'Paths'].join('  '))
      let n = 0
      for await (const { id, snap } of repo.snapshots()) {
        if (args.host && snap.host !== args.host) continue
        if (args.tag && !args.tag.every(t => snap.tags.includes(t))) continue
        if (args.json) process.stdout.write((n++ > 0 ? ',\n' : '\n') + JSON.stringify({ id, ...snap }))
        else out([id.slice(0, 8), snap.time.replace('T', ' ').slice(0, 19), snap.host, snap.tags.join(',') || '-', snap.paths.join(' ')].join('  '))
      }
      if (args.json) out(n > 0 ? '\n]' : ']')
    } finally {
      await repo.close()
    }
  },
}
