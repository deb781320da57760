/**
 * The repository config (docs/FORMAT.md "config"). Pure codec: no I/O.
 */
import type { ChunkerParams } from '../fastcdc.js'

export interface RepoConfig {
  version: number
  /** Random repository id (hex). */
  id: string
  chunker: ChunkerParams
  metaChunker: ChunkerParams
  compression: 'zstd'
  created: string
}
