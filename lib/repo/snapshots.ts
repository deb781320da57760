/**
 * Snapshot roots (docs/FORMAT.md "Snapshot roots"). Pure codec: no I/O.
 */
import { SluiceError } from '../errors.js'
import type { BackupStats } from '../stats.js'

export type SnapshotStats = BackupStats

export interface SnapshotRoot {
  version: number
  time: string
  host: string
  username: string
  paths: string[]
  tags: string[]
  parent?: string
  /** The id this snapshot had before `tag` first rewrote it, or that it was first copied from
   *  (restic's `original`), kept through rewrites and copies of copies. */
  original?: string
  /** Root of the metadata id tree: a node of `depth` levels above the metadata chunks. */
  tree: { root: string; depth: number }
  stats: SnapshotStats
  program: string
}

export const PROGRAM = 'sluice 0.1.0'

const HEX64 = /^[0-9a-f]{64}$/

/** True for a snapshot id: 64 lowercase hex digits (other names under snapshots/ are not
 *  snapshots and are ignored). */
export function isSnapshotId(s: string): boolean {
  return HEX64.test(s)
}

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every(s => typeof s === 'string')
}

/**
 * Decodes a snapshot root's JSON (already authenticated) and checks every field a reader uses:
 * ERR_CORRUPT naming the snapshot for anything missing or of the wrong type, ERR_FORMAT for a
 * version this sluice does not know.
 */
export function parseSnapshotRoot(json: Buffer, id: string, version: number): SnapshotRoot {
  const what = `snapshot ${id.slice(0, 8)}`
  let s: Partial<SnapshotRoot> | null
  try {
    s = JSON.parse(json.toString('utf8')) as Partial<SnapshotRoot> | null
  } catch (cause) {
    throw new SluiceError('ERR_CORRUPT', `${what} is not valid JSON`, { cause })
  }
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new SluiceError('ERR_CORRUPT', `${what} is not a JSON object`)
  if (!Number.isSafeInteger(s.version)) throw new SluiceError('ERR_CORRUPT', `${what} has no valid version`)
  if (s.version !== version) throw new SluiceError('ERR_FORMAT', `${what} has format ${String(s.version)} (this sluice reads ${version})`)
  const bad = (field: string): never => {
    throw new SluiceError('ERR_CORRUPT', `${what} has no valid ${field}`)
  }
  if (typeof s.time !== 'string' || Number.isNaN(Date.parse(s.time))) bad('time')
  if (typeof s.host !== 'string') bad('host')
  if (typeof s.username !== 'string') bad('username')
  if (!isStringArray(s.paths)) bad('paths')
  if (!isStringArray(s.tags)) bad('tags')
  if (s.parent !== undefined && (typeof s.parent !== 'string' || !HEX64.test(s.parent))) bad('parent')
  if (s.original !== undefined && (typeof s.original !== 'string' || !HEX64.test(s.original))) bad('original')
  const tree = s.tree as Partial<SnapshotRoot['tree']> | null | undefined
  if (typeof tree !== 'object' || tree === null || typeof tree.root !== 'string' || !HEX64.test(tree.root)) bad('tree root')
  if (!Number.isSafeInteger(tree!.depth) || tree!.depth! < 1) bad('tree depth')
  const stats = s.stats as Record<string, unknown> | null | undefined
  if (typeof stats !== 'object' || stats === null || Object.values(stats).some(v => typeof v !== 'number' || !Number.isFinite(v))) bad('stats')
  if (typeof s.program !== 'string') bad('program')
  return s as SnapshotRoot
}
