/**
 * Snapshot roots (docs/FORMAT.md "Snapshot roots"). Pure codec: no I/O.
 */
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
  /** Root of the metadata id tree: a node of `depth` levels above the metadata chunks. */
  tree: { root: string; depth: number }
  stats: SnapshotStats
  program: string
}

export const PROGRAM = 'sluice 0.1.0'
