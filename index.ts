/**
 * Sluice's public API: every stage factory, the repository, the storages, and backup() /
 * restore() / check() assembled from them. The CLI is a thin client of this file.
 */
import os from 'node:os'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { Readable, Writable } from 'node:stream'
import type { EntryMeta, ExtentsItem, RecordItem, TreeItem } from './lib/entry.js'
import { SluiceError } from './lib/errors.js'
import { hex, displayPath, isUnder } from './lib/bytes.js'
import { Lru } from './lib/flow.js'
import { CHUNK_ARENA_BYTES, KNOWN_IDS_CACHE } from './lib/limits.js'
import { ChunkArena } from './lib/chunk-arena.js'
import { checkCompressionLevel, idFromChunkKey } from './lib/objects.js'
import { compileFilter, type FilterOptions } from './lib/filter-rules.js'
import { PROGRAM, FORMAT_VERSION, type Repository, type SnapshotInfo, type SnapshotRoot } from './lib/repository.js'
import { newStats, type BackupStats } from './lib/stats.js'
import { createWalk } from './transforms/walk.js'
import { createFilter } from './transforms/filter.js'
import { createXattrReader } from './transforms/xattr.js'
import { createChunker } from './transforms/chunk.js'
import { createMetadataPacker } from './transforms/metadata.js'
import { createDedup } from './transforms/dedup.js'
import { createSealer } from './transforms/seal.js'
import { createUploader } from './transforms/upload.js'
import { createCommit } from './transforms/commit.js'
import { createParentJoin } from './transforms/parent-join.js'
import { createPrefetch } from './transforms/prefetch.js'
import { snapshotRecords, type TreeRef } from './transforms/read-snapshot.js'
import { createSelect } from './transforms/select.js'
import { createDownloader } from './transforms/download.js'
import { createFsWriter } from './transforms/write-fs.js'

export * from './lib/errors.js'
export * from './lib/entry.js'
export * from './lib/storage.js'
export * from './lib/stats.js'
export { comparePaths, displayPath, hex } from './lib/bytes.js'
export { tuneMalloc } from './lib/native.js'
export { ChunkArena, type ChunkSlot } from './lib/chunk-arena.js'
export { createLocalStorage } from './lib/storage-local.js'
export type { S3Options } from './lib/storage-s3.js'
/** Loads the AWS SDK on demand and creates an S3 storage (see lib/storage-s3.ts). */
export async function createS3Storage(opts: import('./lib/storage-s3.js').S3Options): Promise<import('./lib/storage.js').Storage> {
  return (await import('./lib/storage-s3.js')).createS3Storage(opts)
}
export { openStorage, parseLocation } from './lib/location.js'
export { initRepository, openRepository, Repository, type SnapshotRoot, type SnapshotInfo, type RepoConfig } from './lib/repository.js'
export { compileFilter, parseSize, type FilterOptions, type FilterRules } from './lib/filter-rules.js'
export { parseCompression, COMPRESSION_OFF } from './lib/objects.js'
export { createWalk, type WalkOptions } from './transforms/walk.js'
export { createFilter } from './transforms/filter.js'
export { createXattrReader } from './transforms/xattr.js'
export { createChunker, type ChunkerKeys } from './transforms/chunk.js'
export { createMetadataPacker } from './transforms/metadata.js'
export { createDedup, type ChunkIndex } from './transforms/dedup.js'
export { createCompressor } from './transforms/compress.js'
export { createEncryptor } from './transforms/encrypt.js'
export { createSealer } from './transforms/seal.js'
export { createUploader, type ChunkStore } from './transforms/upload.js'
export { createCommit } from './transforms/commit.js'
export { createParentJoin } from './transforms/parent-join.js'
export { createPrefetch } from './transforms/prefetch.js'
export { createSnapshotReader, snapshotRecords, type ChunkLoader } from './transforms/read-snapshot.js'
export { createSelect } from './transforms/select.js'
export { createDownloader } from './transforms/download.js'
export { createFsWriter, checkSafePath } from './transforms/write-fs.js'
export { createTarSource, type TarSourceOptions } from './transforms/tar-source.js'
export { createStdinSource, createCommandSource } from './transforms/stdin-source.js'
export { createTarWriter } from './transforms/write-tar.js'
export { createContentWriter } from './transforms/write-stdout.js'
export { createDiff, diffRecords, type DiffItem, type DiffOptions, type DiffChunkLoader } from './transforms/diff.js'

export interface BackupOptions {
  repo: Repository
  /** Paths to walk. Exactly one of `paths` and `source` is given. */
  paths?: string[]
  /** Any stream of SourceEntry objects (tar, stdin, a script's own source). */
  source?: Readable
  /** What the snapshot lists as its paths when `source` is used. */
  sourcePaths?: string[]
  filter?: FilterOptions
  excludeIfPresent?: string[]
  oneFileSystem?: boolean
  tags?: string[]
  host?: string
  /** The snapshot whose unchanged files are not read again: an id (prefix), or false to read
   *  everything. Default: the newest snapshot of the same host and the same paths. Only walked
   *  sources (paths) use a parent: the merge-join needs the canonical order. */
  parent?: string | false
  /** Per-entry trouble; the backup goes on and the result counts it. */
  onWarning?: (err: SluiceError) => void
  /** Counters to update while running (for progress); a fresh set if not given. */
  stats?: BackupStats
  /** The arena content chunks are assembled, sealed and stored in; default a fresh one of
   *  CHUNK_ARENA_BYTES. A smaller one costs speed (chunks that find no room take buffers of their
   *  own), never correctness. */
  arena?: ChunkArena
  /** zstd level for this backup's chunks: 1 (fastest) to ZSTD_MAX_LEVEL, or 0 to store every
   *  chunk as is (still encrypted). Default ZSTD_LEVEL. Readers need not know it. */
  compressionLevel?: number
}

export interface BackupResult {
  snapshotId: string
  /** The snapshot whose unchanged files were reused. */
  parent?: string
  snapshot: SnapshotRoot
  stats: BackupStats
}

/** The keys a repository hands to the chunking stages. */
function chunkerKeys(repo: Repository) {
  return { gear: repo.gear, chunkId: (d: Uint8Array) => repo.chunkId(d), idHasher: () => repo.idHasher() }
}

/**
 * Backs up `paths` (or `source`) into `repo` as one new snapshot:
 * source → filter → [parent-join] → xattr-read → prefetch → chunk → metadata → dedup → seal (compress + encrypt, on a worker
 * thread) → upload → commit.
 * The snapshot root is written only after every chunk it needs is stored.
 */
export async function backup(opts: BackupOptions): Promise<BackupResult> {
  const { repo } = opts
  const level = checkCompressionLevel(opts.compressionLevel)
  const stats = opts.stats ?? newStats()
  const onWarning = (err: SluiceError) => {
    stats.warnings++
    opts.onWarning?.(err)
  }
  const rules = compileFilter(opts.filter ?? {})
  let source: Readable
  let paths: string[]
  if (opts.paths) {
    if (opts.source) throw new SluiceError('ERR_ARGS', 'give either paths or a source, not both')
    if (opts.paths.length === 0) throw new SluiceError('ERR_ARGS', 'nothing to back up: give at least one path')
    paths = opts.paths.map(p => path.resolve(p))
    source = createWalk(paths, {
      onWarning,
      descend: e => rules.canDescend(e),
      ...(opts.excludeIfPresent ? { excludeIfPresent: opts.excludeIfPresent } : {}),
      ...(opts.oneFileSystem ? { oneFileSystem: true } : {}),
    })
  } else if (opts.source) {
    source = opts.source
    paths = opts.sourcePaths ?? []
  } else {
    throw new SluiceError('ERR_ARGS', 'nothing to back up: give paths or a source')
  }
  const keys = chunkerKeys(repo)
  const host = opts.host ?? os.hostname()
  let parent: SnapshotInfo | undefined
  if (opts.paths && opts.parent !== false) {
    const samePaths = (s: SnapshotRoot) => s.host === host && s.paths.length === paths.length && [...s.paths].sort().every((p, i) => p === [...paths].sort()[i])
    if (opts.parent) parent = await repo.findSnapshot(opts.parent)
    else parent = await repo.findSnapshot('latest', samePaths).catch(err => {
      if (err instanceof SluiceError && err.code === 'ERR_SNAPSHOT_NOT_FOUND') return undefined
      throw err
    })
  }
  let snapshotId = ''
  let snapshot: SnapshotRoot | undefined
  const writeSnapshot = async (tree: TreeItem): Promise<string> => {
    snapshot = {
      version: FORMAT_VERSION,
      time: new Date().toISOString(),
      host,
      username: os.userInfo().username,
      paths,
      tags: opts.tags ?? [],
      ...(parent ? { parent: parent.id } : {}),
      tree: { root: hex(tree.root), depth: tree.depth },
      stats: { ...stats },
      program: PROGRAM,
    }
    return repo.saveSnapshot(snapshot)
  }
  const arena = opts.arena ?? new ChunkArena(CHUNK_ARENA_BYTES)
  await pipeline([
    source,
    // Without rules the filter would pass every entry on: leave it out, one hop less per entry.
    ...(rules.empty ? [] : [createFilter(rules)]),
    ...(parent ? [createParentJoin(snapshotRecords(repo, treeOf(parent.snap)))] : []),
    createXattrReader({ onWarning }),
    ...(opts.paths ? [createPrefetch()] : []),
    createChunker(keys, { params: repo.config.chunker, onWarning, stats, arena }),
    createMetadataPacker(keys, repo.config.metaChunker),
    createDedup(repo),
    // A stream source (stdin, tar, a script's) is all content: seal on the worker from the first
    // chunk, so a short stream runs the same pipeline (and memory) as a long one. A walk decides
    // by what it finds (transforms/seal.ts).
    createSealer(repo.keys.encKey, { mode: opts.paths ? 'auto' : 'worker', stats, level }),
    createUploader(repo, { stats }),
    createCommit(writeSnapshot, id => (snapshotId = id)),
  ])
  return { snapshotId, snapshot: snapshot!, stats, ...(parent ? { parent: parent.id } : {}) }
}

/** A snapshot reference: `latest` or an id prefix, optionally with `:PATH` inside it. */
export function parseSnapshotRef(ref: string): { snapshot: string; path: Buffer } {
  const i = ref.indexOf(':')
  const snapshot = i < 0 ? ref : ref.slice(0, i)
  const p = i < 0 ? '' : ref.slice(i + 1)
  return { snapshot, path: Buffer.from(p.replace(/^\/+/, '').replace(/\/+$/, '')) }
}

function treeOf(snap: SnapshotRoot): TreeRef {
  return { root: Buffer.from(snap.tree.root, 'hex'), depth: snap.tree.depth }
}

/** The records of a snapshot (optionally below `subpath`, paths kept as stored). */
export async function* listSnapshot(repo: Repository, snap: SnapshotRoot, subpath?: Buffer): AsyncIterable<RecordItem> {
  const sub = subpath && subpath.length > 0 ? subpath : undefined
  let found = !sub
  for await (const item of snapshotRecords(repo, treeOf(snap))) {
    if (item.kind !== 'record' || (sub && !isUnder(item.entry.path, sub))) continue
    found = true
    yield item
  }
  if (!found) throw new SluiceError('ERR_PATH_NOT_FOUND', `no path "${displayPath(subpath!)}" in the snapshot`)
}

export interface RestoreOptions {
  repo: Repository
  /** `latest`, an id prefix, optionally `:PATH`. */
  snapshot: string
  /** The path inside the snapshot as raw bytes (instead of `:PATH`, for names that are not UTF-8). */
  path?: Buffer
  /** Restore into this directory... */
  target?: string
  /** ...or into this sink of RestoreItems (tar, stdout, a script's own). */
  sink?: Writable
  include?: string[]
  exclude?: string[]
  onWarning?: (err: SluiceError) => void
  onEntry?: (entry: EntryMeta) => void
}

export interface RestoreResult {
  snapshotId: string
  warnings: number
}

/**
 * Restores a snapshot (or the subtree `SNAP:PATH`):
 * read-snapshot → select → download → write-fs (or the given sink).
 */
export async function restore(opts: RestoreOptions): Promise<RestoreResult> {
  const { repo } = opts
  const ref = parseSnapshotRef(opts.snapshot)
  if (opts.path) ref.path = opts.path
  const { id, snap } = await repo.findSnapshot(ref.snapshot)
  let warnings = 0
  const onWarning = (err: SluiceError) => {
    warnings++
    opts.onWarning?.(err)
  }
  const rules = compileFilter({ ...(opts.include ? { include: opts.include } : {}), ...(opts.exclude ? { exclude: opts.exclude } : {}) })
  let matched = ref.path.length === 0
  let sink = opts.sink
  if (!sink) {
    if (!opts.target) throw new SluiceError('ERR_ARGS', 'restore needs a target directory or a sink')
    await import('node:fs/promises').then(f => f.mkdir(opts.target!, { recursive: true }))
    sink = createFsWriter(opts.target, { onWarning, ...(opts.onEntry ? { onEntry: opts.onEntry } : {}) })
  }
  await pipeline(
    snapshotRecords(repo, treeOf(snap)),
    createSelect({
      ...(ref.path.length > 0 ? { subtree: ref.path } : {}),
      excludes: e => rules.excludes(e),
      onMatch: () => (matched = true),
    }),
    createDownloader(repo),
    sink,
  )
  if (!matched) throw new SluiceError('ERR_PATH_NOT_FOUND', `no path "${displayPath(ref.path)}" in snapshot ${id.slice(0, 8)}`)
  return { snapshotId: id, warnings }
}

export interface CheckOptions {
  repo: Repository
  /** Also decrypt every chunk and verify its id. */
  readData?: boolean
  /** Each problem found, as it is found. */
  onProblem: (message: string) => void
  onProgress?: (what: string) => void
}

/**
 * Checks that every snapshot's metadata decodes and every chunk it names exists; with
 * `readData`, that every stored chunk decrypts and hashes to its id. Streams: memory is one
 * snapshot's reader plus a capped cache of ids already seen.
 */
export async function check(opts: CheckOptions): Promise<{ problems: number; snapshots: number; chunks: number }> {
  const { repo } = opts
  let problems = 0
  const problem = (m: string) => {
    problems++
    opts.onProblem(m)
  }
  const seen = new Lru<string, boolean>(KNOWN_IDS_CACHE)
  const exists = async (id: Buffer): Promise<boolean> => {
    const k = hex(id)
    const cached = seen.get(k)
    if (cached !== undefined) return cached
    const ok = await repo.hasChunk(id)
    seen.set(k, ok)
    if (!ok) problem(`chunk ${k} is missing`)
    return ok
  }
  let snapshots = 0
  for await (const { id, snap } of repo.snapshots()) {
    snapshots++
    opts.onProgress?.(`snapshot ${id.slice(0, 8)}`)
    try {
      let current: EntryMeta | undefined
      for await (const item of snapshotRecords(repo, treeOf(snap)) as AsyncIterable<RecordItem | ExtentsItem>) {
        if (item.kind === 'record') current = item.entry
        for (const e of item.extents) {
          if (!(await exists(e.id)) && current) problem(`snapshot ${id.slice(0, 8)}: ${displayPath(current.path)} needs missing chunk ${hex(e.id)}`)
        }
      }
    } catch (err) {
      problem(`snapshot ${id.slice(0, 8)}: metadata cannot be read: ${err instanceof SluiceError ? `${err.code}: ${err.message}` : String(err)}`)
    }
  }
  let chunks = 0
  if (opts.readData) {
    for await (const key of repo.storage.list('chunks/')) {
      const id = idFromChunkKey(key)
      if (!id) continue
      chunks++
      try {
        const plain = await repo.loadChunk(id)
        if (!repo.chunkId(plain).equals(id)) problem(`chunk ${hex(id)} does not hash to its id`)
      } catch (err) {
        problem(`chunk ${hex(id)}: ${err instanceof SluiceError ? err.message : String(err)}`)
      }
    }
  }
  return { problems, snapshots, chunks }
}

export type { SnapshotInfo as SnapshotListing }
