/** Counters a backup keeps while it runs; progress reads them, the snapshot root stores them. */
export interface BackupStats {
  files: number
  dirs: number
  others: number
  /** Files read because the parent snapshot has no such path / has it with other metadata. */
  filesNew: number
  filesChanged: number
  /** Files whose extents were taken from the parent snapshot without reading them. */
  filesUnchanged: number
  /** Bytes of file content read from the source. */
  bytesRead: number
  /** Bytes of file content the snapshot holds (read or reused). */
  bytesTotal: number
  /** Chunks (content and metadata) stored by this backup, and their stored size. */
  chunksNew: number
  bytesStored: number
  warnings: number
}

export function newStats(): BackupStats {
  return {
    files: 0, dirs: 0, others: 0, filesNew: 0, filesChanged: 0, filesUnchanged: 0,
    bytesRead: 0, bytesTotal: 0, chunksNew: 0, bytesStored: 0, warnings: 0,
  }
}
