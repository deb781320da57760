/**
 * find(): the entries of every snapshot (or the chosen ones) whose path matches one of the
 * patterns, as restic's `find`. A pattern is a glob matched as restic's filter patterns are
 * (lib/filter-rules.ts): one without '/' matches the name at any depth, one with '/' a run of
 * trailing path components, one starting with '/' the whole path from the snapshot root; '*'
 * does not cross '/', '**' does; a trailing '/' matches directories only. --oldest/--newest
 * keep entries whose mtime lies within.
 *
 * Streams: one snapshot's reader at a time (read-snapshot.ts) and one snapshot root; matches
 * are yielded as found. Memory is flat in the number of snapshots and of files.
 */
import type { EntryMeta } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { compilePattern, type Pattern } from '../../lib/filter-rules.js'
import { matchesFilter, type SnapshotFilter } from '../../lib/repo/retention.js'
import type { Repository, SnapshotInfo, SnapshotRoot } from '../../lib/repo/repository.js'
import { snapshotRecords, treeOf } from '../restore/read-snapshot.js'

export interface FindOptions {
  repo: Repository
  patterns: string[]
  /** restic's --ignore-case. */
  ignoreCase?: boolean
  /** Snapshot references (`latest`, id prefixes); none: every snapshot the filter keeps. */
  snapshots?: string[]
  /** restic's --host/--tag/--path. */
  filter?: SnapshotFilter
  /** Only entries modified at or after `oldest` and at or before `newest`. */
  oldest?: Date
  newest?: Date
}

export interface FindMatch {
  snapshotId: string
  snap: SnapshotRoot
  entry: EntryMeta
}

/** restic's --oldest/--newest formats, in local time: `2006-01-02`, `2006-01-02 15:04`,
 *  `2006-01-02 15:04:05`. ERR_ARGS for anything else. */
export function parseFindTime(text: string, flag: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(text.trim())
  const d = m ? new Date(+m[1]!, +m[2]! - 1, +m[3]!, +(m[4] ?? 0), +(m[5] ?? 0), +(m[6] ?? 0)) : undefined
  if (!m || !d || Number.isNaN(d.getTime()) || d.getMonth() !== +m[2]! - 1 || d.getDate() !== +m[3]!) {
    throw new SluiceError('ERR_ARGS', `--${flag} "${text}": give a time as YYYY-MM-DD, YYYY-MM-DD HH:MM or YYYY-MM-DD HH:MM:SS`)
  }
  return d
}

export async function* find(opts: FindOptions): AsyncIterable<FindMatch> {
  const { repo } = opts
  if (opts.patterns.length === 0) throw new SluiceError('ERR_ARGS', 'find needs at least one pattern')
  const patterns = opts.patterns.map(p => {
    const c = compilePattern(p, { nocase: !!opts.ignoreCase })
    if (!c) throw new SluiceError('ERR_ARGS', `empty pattern "${p}"`)
    return c
  })
  const oldest = opts.oldest ? opts.oldest.getTime() / 1000 : -Infinity
  const newest = opts.newest ? opts.newest.getTime() / 1000 : Infinity
  const filter = opts.filter

  async function* inSnapshot({ id, snap }: SnapshotInfo): AsyncIterable<FindMatch> {
    for await (const item of snapshotRecords(repo, treeOf(snap))) {
      if (item.kind !== 'record') continue
      const e = item.entry
      const mtime = e.mtimeSec + e.mtimeNsec / 1e9
      if (mtime < oldest || mtime > newest) continue
      if (matchesAny(patterns, e)) yield { snapshotId: id, snap, entry: e }
    }
  }

  if (opts.snapshots && opts.snapshots.length > 0) {
    for (const ref of opts.snapshots) yield* inSnapshot(await repo.findSnapshot(ref, filter ? s => matchesFilter(s, filter) : undefined))
  } else {
    for await (const s of repo.snapshots()) if (!filter || matchesFilter(s.snap, filter)) yield* inSnapshot(s)
  }
}

function matchesAny(patterns: Pattern[], e: EntryMeta): boolean {
  const rel = e.path.toString('utf8')
  return patterns.some(p => p.self.match(rel) && (e.type === 'dir' || !p.dirOnly))
}
