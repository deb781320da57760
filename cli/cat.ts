import type { CommandModule } from 'yargs'
import { createContentWriter, listSnapshot, parseSnapshotRef, restore, SluiceError, displayPath } from '../index.js'
import { globalOptions, openRepo, warn, type GlobalArgs } from './common.js'

export const catCommand: CommandModule<object, GlobalArgs & { snapshot: string; path?: string }> = {
  command: 'cat <snapshot> [path]',
  describe: "write one file's content to stdout (SNAP PATH or SNAP:PATH)",
  builder: y =>
    globalOptions(y)
      .positional('snapshot', { type: 'string', demandOption: true, describe: 'latest or an id prefix' })
      .positional('path', { type: 'string', describe: 'the file inside the snapshot' }),
  handler: async args => {
    const ref = parseSnapshotRef(args.path !== undefined ? `${args.snapshot.split(':')[0]}:${args.path}` : args.snapshot)
    if (ref.path.length === 0) throw new SluiceError('ERR_ARGS', 'cat needs a path: sluice cat SNAP PATH')
    const repo = await openRepo(args)
    try {
      const { id, snap } = await repo.findSnapshot(ref.snapshot)
      for await (const { entry } of listSnapshot(repo, snap, ref.path)) {
        if (entry.type !== 'file') throw new SluiceError('ERR_ARGS', `/${displayPath(ref.path)} is a ${entry.type}, not a file`)
        break
      }
      await restore({
        repo,
        snapshot: id,
        path: ref.path,
        sink: createContentWriter(process.stdout, { onOutputClosed: () => process.exit(process.exitCode ?? 0) }),
        onWarning: warn,
      })
    } finally {
      await repo.close()
    }
  },
}
