import type { CommandModule } from 'yargs'
import { displayPath, listSnapshot, parseSnapshotRef, type EntryMeta } from '../index.js'
import { globalOptions, openRepo, out, type GlobalArgs } from './common.js'

const TYPE_CHAR: Record<string, string> = { file: '-', dir: 'd', symlink: 'l', fifo: 'p', char: 'c', block: 'b', socket: 's' }

function modeString(type: string, mode: number): string {
  const rwx = (m: number, s: boolean, sc: string) =>
    (m & 4 ? 'r' : '-') + (m & 2 ? 'w' : '-') + (s ? (m & 1 ? sc : sc.toUpperCase()) : m & 1 ? 'x' : '-')
  return (TYPE_CHAR[type] ?? '?') + rwx(mode >> 6, !!(mode & 0o4000), 's') + rwx(mode >> 3, !!(mode & 0o2000), 's') + rwx(mode, !!(mode & 0o1000), 't')
}

/** An entry as ls --json (and find --json) print it. */
export function entryJson(e: EntryMeta) {
  return {
    path: '/' + displayPath(e.path), ...(e.path.toString('utf8').includes('\ufffd') ? { pathBase64: e.path.toString('base64') } : {}),
    type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, size: e.size,
    mtime: new Date(e.mtimeSec * 1000).toISOString().replace(/\.\d+Z$/, `.${String(e.mtimeNsec).padStart(9, '0')}Z`),
    ...(e.linkTarget ? { linkTarget: displayPath(e.linkTarget) } : {}),
    ...(e.hardlinkTo ? { hardlinkTo: '/' + displayPath(e.hardlinkTo) } : {}),
  }
}

/** An entry as ls --long (and find --long) print it. */
export function longLine(e: EntryMeta): string {
  const t = new Date(e.mtimeSec * 1000).toISOString().replace('T', ' ').slice(0, 19)
  return `${modeString(e.type, e.mode)} ${String(e.uid).padStart(5)} ${String(e.gid).padStart(5)} ${String(e.size).padStart(12)} ${t} /${displayPath(e.path)}${e.linkTarget ? ` -> ${displayPath(e.linkTarget)}` : ''}`
}

export const lsCommand: CommandModule<object, GlobalArgs & { snapshot: string; long?: boolean }> = {
  command: 'ls <snapshot>',
  describe: 'list the entries of a snapshot (SNAP or SNAP:PATH)',
  builder: y =>
    globalOptions(y)
      .positional('snapshot', { type: 'string', demandOption: true, describe: 'latest or an id prefix, optionally :PATH' })
      .option('long', { alias: 'l', type: 'boolean', describe: 'mode, owner, size and time' }),
  handler: async args => {
    const repo = await openRepo(args)
    try {
      const ref = parseSnapshotRef(args.snapshot)
      const { snap } = await repo.findSnapshot(ref.snapshot)
      for await (const { entry: e } of listSnapshot(repo, snap, ref.path)) {
        const p = '/' + displayPath(e.path)
        if (args.json) {
          out(JSON.stringify(entryJson(e)))
        } else if (args.long) {
          out(longLine(e))
        } else {
          out(p)
        }
      }
    } finally {
      await repo.close()
    }
  },
}
