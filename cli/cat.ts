import type { CommandModule } from 'yargs'
import { createContentWriter, listSnapshot, parseSnapshotRef, restore, SluiceError, displayPath } from '../index.js'
import { latestFilter, latestOptions, type FilterArgs } from './forget.js'
import { documented, globalOptions, memoryOf, memoryOptions, openRepo, warn, type GlobalArgs } from './common.js'

export const catCommand: CommandModule<object, GlobalArgs & FilterArgs & { snapshot: string; file?: string }> = {
  command: 'cat <snapshot> [file]',
  describe: "write one file's content to stdout (SNAP PATH or SNAP:PATH)",
  builder: y =>
    latestOptions(documented(memoryOptions(globalOptions(y)), [["sluice cat latest /etc/hosts", "print a file of the newest snapshot"], ["sluice cat 40dc1520:/home/me/notes.txt > notes.txt", "the same with SNAP:PATH"]]))
      .positional('snapshot', { type: 'string', demandOption: true, describe: 'latest or an id prefix' })
      .positional('file', { type: 'string', describe: 'the file inside the snapshot' }),
  handler: async args => {
    const ref = parseSnapshotRef(args.file !== undefined ? `${args.snapshot.split(':')[0]}:${args.file}` : args.snapshot)
    if (ref.path.length === 0) throw new SluiceError('ERR_ARGS', 'cat needs a path: sluice cat SNAP PATH')
    const repo = await openRepo(args)
    try {
      const { id, snap } = await repo.findSnapshot(ref.snapshot, latestFilter(args))
      for await (const { entry } of listSnapshot(repo, snap, ref.path)) {
        if (entry.type !== 'file') throw new SluiceError('ERR_ARGS', `/${displayPath(ref.path)} is a ${entry.type}, not a file`)
        break
      }
      await restore({ ...memoryOf(args),
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
