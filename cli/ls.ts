import type { CommandModule } from 'yargs'
import { displayPath, listSnapshot, parseSnapshotRef, type EntryMeta } from '../index.js'
import { showTime } from './table.js'
import { latestFilter, latestOptions, type FilterArgs } from './forget.js'
import { documented, globalOptions, openRepo, out, type GlobalArgs } from './common.js'

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

/** An entry as ls --long (and find --long) print it: its time in local time (or UTC). */
export function longLine(e: EntryMeta, utc = false): string {
  const t = showTime(new Date(e.mtimeSec * 1000).toISOString(), utc)
  return `${modeString(e.type, e.mode)} ${String(e.uid).padStart(5)} ${String(e.gid).padStart(5)} ${String(e.size).padStart(12)} ${t} /${displayPath(e.path)}${e.linkTarget ? ` -> ${displayPath(e.linkTarget)}` : ''}`
}

export const lsCommand: CommandModule<object, GlobalArgs & FilterArgs & { snapshot: string; dir?: string; long?: boolean; utc?: boolean }> = {
  command: 'ls <snapshot> [dir]',
  describe: 'list the entries of a snapshot (SNAP, SNAP DIR or SNAP:DIR)',
  builder: y =>
    latestOptions(documented(globalOptions(y), [["sluice ls latest", "list every entry of the newest snapshot"], ["sluice ls -l latest /home/me/work", "one directory, with mode, owner, size and local time"]]))
      .positional('snapshot', { type: 'string', demandOption: true, describe: 'latest or an id prefix, optionally :PATH' })
      .positional('dir', { type: 'string', describe: 'list only this directory (or file) of the snapshot' })
      .option('long', { alias: 'l', type: 'boolean', describe: 'mode, owner, size and time (local time)' })
      .option('utc', { type: 'boolean', describe: 'with --long: times in UTC' }),
  handler: async args => {
    const repo = await openRepo(args)
    try {
      const ref = parseSnapshotRef(args.dir !== undefined ? `${args.snapshot.split(':')[0]}:${args.dir}` : args.snapshot)
      const { snap } = await repo.findSnapshot(ref.snapshot, latestFilter(args))
      for await (const { entry: e } of listSnapshot(repo, snap, ref.path)) {
        const p = '/' + displayPath(e.path)
        if (args.json) {
          out(JSON.stringify(entryJson(e)))
        } else if (args.long) {
          out(longLine(e, args.utc))
        } else {
          out(p)
        }
      }
    } finally {
      await repo.close()
    }
  },
}
