/** restic's snapshot table and snapshot JSON, shared by snapshots and forget. */
import type { SnapshotRoot } from '../index.js'
import { formatBytes } from './common.js'

/** What a table row or a JSON object needs of a snapshot. */
export interface SnapshotRow {
  id: string
  time: string
  host: string
  username?: string
  paths: string[]
  tags: string[]
  parent?: string
  tree?: SnapshotRoot['tree']
  program?: string
  stats?: SnapshotRoot['stats']
  /** For a copied snapshot: the id of the one it was copied from (restic's `original`). */
  original?: string
}

const pad = (n: number) => String(n).padStart(2, '0')

/** A snapshot time as restic shows it: local time (the calendar forget's policy uses), or UTC. */
export function showTime(iso: string, utc = false): string {
  const t = new Date(iso)
  if (utc) return t.toISOString().replace('T', ' ').slice(0, 19)
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`
}

export interface TableOptions {
  /** Why each snapshot is kept (forget). */
  reasons?: Map<string, string[]>
  utc?: boolean
  /** A Size column: the bytes a restore writes (restic 0.17's snapshots). */
  size?: boolean
}

/** restic's snapshot table, rows in the order given: columns padded to their widest cell, a
 *  reason or path per line where there are several, a rule above and below, a count at the end. */
export function snapshotTable(list: SnapshotRow[], opts: TableOptions = {}): string[] {
  const { reasons, utc, size } = opts
  const head = ['ID', `Time${utc ? ' (UTC)' : ''}`, 'Host', 'Tags', ...(reasons ? ['Reasons'] : []), 'Paths', ...(size ? ['Size'] : [])]
  const rows = list.map(s => [
    [s.id.slice(0, 8)], [showTime(s.time, utc)], [s.host], [s.tags.join(',')],
    ...(reasons ? [reasons.get(s.id) ?? []] : []), s.paths,
    ...(size ? [[s.stats ? formatBytes(s.stats.bytesTotal) : '']] : []),
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...rows.flatMap(r => r[i]!.map(c => c.length))))
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()
  const rule = '-'.repeat(widths.reduce((a, b) => a + b + 2, -2))
  const lines = [line(head), rule]
  for (const r of rows) {
    const height = Math.max(1, ...r.map(c => c.length))
    for (let k = 0; k < height; k++) lines.push(line(r.map(c => c[k] ?? '')))
  }
  lines.push(rule, `${list.length} snapshots`)
  return lines
}

/** A snapshot in restic's JSON shape (docs/JSON.md): restic's field names, Sluice's values;
 *  `summary` carries the backup's counters under restic's names. */
export function jsonSnapshot(s: SnapshotRow) {
  return {
    time: s.time,
    ...(s.parent ? { parent: s.parent } : {}),
    ...(s.tree ? { tree: s.tree.root } : {}),
    paths: s.paths,
    hostname: s.host,
    ...(s.username !== undefined ? { username: s.username } : {}),
    tags: s.tags,
    ...(s.original ? { original: s.original } : {}),
    ...(s.program ? { program_version: s.program } : {}),
    ...(s.stats ? { summary: {
      files_new: s.stats.filesNew, files_changed: s.stats.filesChanged, files_unmodified: s.stats.filesUnchanged,
      data_added: s.stats.bytesStored, total_files_processed: s.stats.files, total_bytes_processed: s.stats.bytesTotal,
    } } : {}),
    id: s.id,
    short_id: s.id.slice(0, 8),
  }
}
