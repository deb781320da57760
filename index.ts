/**
 * Sluice's public API: every stage factory, the repository, the storages, and backup() /
 * restore() / check() assembled from them. Exports only; the CLI is a thin client of this file.
 */

export * from './lib/errors.js'
export * from './lib/entry.js'
export * from './lib/storage/storage.js'
export * from './lib/stats.js'
export { comparePaths, displayPath, hex } from './lib/bytes.js'
export { paceMemory, paceHeap, collectEvery, type Workload, type Garbage } from './lib/memory.js'
export { ChunkArena, type ChunkSlot } from './lib/chunk-arena.js'
export { createLocalStorage } from './lib/storage/local.js'
export type { S3Options } from './lib/storage/s3.js'
/** Loads the AWS SDK on demand and creates an S3 storage (see lib/storage-s3.ts). */
export async function createS3Storage(opts: import('./lib/storage/s3.js').S3Options): Promise<import('./lib/storage/storage.js').Storage> {
  return (await import('./lib/storage/s3.js')).createS3Storage(opts)
}
export { openStorage, parseLocation } from './lib/storage/location.js'
export { initRepository, openRepository, Repository, type SnapshotRoot, type SnapshotInfo, type RepoConfig } from './lib/repo/repository.js'
export { compileFilter, parseSize, type FilterOptions, type FilterRules } from './lib/filter-rules.js'
export { parseCompression, COMPRESSION_OFF } from './lib/repo/objects.js'
export { createWalk, type WalkOptions } from './transforms/backup/sources/walk.js'
export { createFilter } from './transforms/backup/filter.js'
export { createXattrReader } from './transforms/backup/xattr.js'
export { createChunker, type ChunkerKeys } from './transforms/backup/chunk.js'
export { createMetadataPacker } from './transforms/backup/metadata.js'
export { createDedup, type ChunkIndex } from './transforms/backup/dedup.js'
export { createCompressor } from './transforms/backup/compress.js'
export { createEncryptor } from './transforms/backup/encrypt.js'
export { createSealer } from './transforms/backup/seal.js'
export { createUploader, type ChunkStore } from './transforms/backup/upload.js'
export { createCommit } from './transforms/backup/commit.js'
export { createParentJoin } from './transforms/backup/parent-join.js'
export { createPrefetch } from './transforms/backup/prefetch.js'
export { createSnapshotReader, snapshotRecords, treeOf, type ChunkLoader, type TreeRef } from './transforms/restore/read-snapshot.js'
export { createSelect } from './transforms/restore/select.js'
export { createDownloader } from './transforms/restore/download.js'
export { createFsWriter, checkSafePath } from './transforms/restore/sinks/fs.js'
export { createTarSource, type TarSourceOptions } from './transforms/backup/sources/tar.js'
export { createStdinSource, createCommandSource } from './transforms/backup/sources/stdin.js'
export { createTarWriter } from './transforms/restore/sinks/tar.js'
export { createContentWriter } from './transforms/restore/sinks/stdout.js'
export { createDiff, diffRecords, type DiffItem, type DiffOptions, type DiffChunkLoader } from './transforms/inspect/diff.js'
export { backup, type BackupOptions, type BackupResult } from './transforms/backup/backup.js'
export { restore, listSnapshot, parseSnapshotRef, type RestoreOptions, type RestoreResult } from './transforms/restore/restore.js'
export { check, type CheckOptions } from './transforms/inspect/check.js'
export type { SnapshotInfo as SnapshotListing } from './lib/repo/repository.js'
