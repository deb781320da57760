/**
 * backup(): the backup pipeline assembled from its stages, in the order of docs/DESIGN.md:
 * source → filter → [parent-join] → xattr-read → [prefetch] → chunk → metadata → dedup → seal
 * → upload → commit. Memory is the sum of the stages' bounds (each stated in its doc comment).
 */
import os from 'node:os'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { Readable } from 'node:stream'
import type { TreeItem } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { hex } from '../../lib/bytes.js'
import { budgetOf, type BackupBudget } from '../../lib/budget.js'
import { ZSTD_LEVEL } from '../../lib/limits.js'
import { fuse, Lru } from '../../lib/flow.js'
import { ChunkArena } from '../../lib/chunk-arena.js'
import { paceMemory } from '../../lib/memory.js'
import { checkCompressionLevel } from '../../lib/repo/objects.js'
import { compileFilter, type FilterOptions } from '../../lib/filter-rules.js'
import { PROGRAM, FORMAT_VERSION, type Repository, type SnapshotInfo, type SnapshotRoot } from '../../lib/repo/repository.js'
import { newStats, type BackupStats } from '../../lib/stats.js'
import { snapshotRecords, treeOf } from '../restore/read-snapshot.js'
import { createWalk, type WalkOptions } from './sources/walk.js'
import { createFilter } from './filter.js'
import { createParentJoin } from './parent-join.js'
import { createXattrReader } from './xattr.js'
import { createPrefetch } from './prefetch.js'
import { createChunker, type FileStatus } from './chunk.js'
import { createMetadataPacker } from './metadata.js'
import { createDedup } from './dedup.js'
import { createSealer } from './seal.js'
import { createUploader } from './upload.js'
import { createCommit } from './commit.js'
import { BackupLease, type LeaseTiming } from '../../lib/repo/lease.js'
import { stopPoint } from '../../lib/test-point.js'
import { commitGuard } from '../gc/mark.js'

export interface BackupOptions {
  repo: Repository
  /** Paths to walk: the snapshot lists them absolute; a relative one is stored as given, as
   *  restic stores it (sources/walk.ts). A Buffer is a path's raw bytes (a name that is not
   *  UTF-8); the snapshot's list of paths shows it decoded. Exactly one of `paths` and `source`
   *  is given. */
  paths?: (string | Buffer)[]
  /** Any stream of SourceEntry objects (tar, stdin, a script's own source). */
  source?: Readable
  /** What the snapshot lists as its paths when `source` is used. */
  sourcePaths?: string[]
  filter?: FilterOptions
  excludeIfPresent?: string[]
  oneFileSystem?: boolean
  /** The walk's listing sort and hardlink map (sources/walk.ts): where huge directories are
   *  sorted (`tmpDir`, default os.tmpdir()) and, for tests, lowered thresholds. */
  walk?: Pick<WalkOptions, 'listingBytes' | 'sortRunBytes' | 'tmpDir' | 'hardlinkGroups'>
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
  /** The peak RSS, in bytes, the pipeline is sized for (lib/budget.ts; default MEMORY_DEFAULT,
   *  just under 100 MB): the arena, prefetch, lookups and uploads in flight, whether the seal
   *  worker may start, the zstd window of high levels. Less is slower, never wrong. */
  memory?: number
  /** The arena content chunks are assembled, sealed and stored in; default a fresh one of the
   *  memory budget's size (CHUNK_ARENA_BYTES by default). A smaller one costs speed (chunks that
   *  find no room take buffers of their own), never correctness. */
  arena?: ChunkArena
  /** zstd level for this backup's chunks: 1 (fastest) to ZSTD_MAX_LEVEL, or 0 to store every
   *  chunk as is (still encrypted). Default ZSTD_LEVEL. Readers need not know it. */
  compressionLevel?: number
  /** The backup's lease timing (lib/repo/lease.ts); default LEASE_REFRESH_MS / LEASE_LIFETIME_MS. */
  lease?: LeaseTiming
  /** For copy: the root's time, user and restic's `original` as in the snapshot copied
   *  (default: now, this user, none). */
  time?: string
  username?: string
  original?: string
  /** Each file as the chunker takes it (for `backup -v` and the progress line's current file). */
  onFile?: (path: Buffer, status: FileStatus) => void
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
 * source → filter → [parent-join] → xattr-read → [prefetch] → chunk → metadata → dedup → seal
 * (compress + encrypt, inline or on the seal worker) → upload → commit. Bracketed stages run
 * only when needed: parent-join with a parent snapshot, prefetch for a walk.
 * The snapshot root is written only after every chunk it needs is stored. Applies the memory
 * policy for backups to the process first (lib/memory.ts).
 */
export async function backup(opts: BackupOptions): Promise<BackupResult> {
  const { repo } = opts
  const level = checkCompressionLevel(opts.compressionLevel)
  const budget = budgetOf(opts.memory).backup
  paceMemory('backup')
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
    // The snapshot records absolute paths; the walk takes them as given, so that a relative one
    // is stored relative, as restic stores it (sources/walk.ts).
    paths = opts.paths.map(p => path.resolve(typeof p === 'string' ? p : p.toString()))
    source = createWalk(opts.paths, {
      onWarning,
      descend: e => rules.canDescend(e),
      ...(opts.excludeIfPresent ? { excludeIfPresent: opts.excludeIfPresent } : {}),
      ...(opts.oneFileSystem ? { oneFileSystem: true } : {}),
      ...opts.walk,
    })
  } else if (opts.source) {
    source = opts.source
    paths = opts.sourcePaths ?? []
  } else {
    throw new SluiceError('ERR_ARGS', 'nothing to back up: give paths or a source')
  }
  const keys = chunkerKeys(repo)
  // Temp files of killed backups (older than any live write) go before this one writes its own.
  await repo.leftovers(true)
  const host = opts.host ?? os.hostname()
  // --- prune lease (docs/DESIGN-prune.md): announced before anything of the repository is read,
  // removed after the root is written or the backup failed.
  const lease = await BackupLease.start(repo, host, opts.lease)
  try {
    return await leasedBackup(opts, lease, { stats, onWarning, rules, source, paths, keys, host, level, budget })
  } finally {
    await lease.release().catch(() => {})
  }
}

/** The rest of backup(), under its lease. */
async function leasedBackup(
  opts: BackupOptions,
  lease: BackupLease,
  ctx: { stats: BackupStats; onWarning: (err: SluiceError) => void; rules: ReturnType<typeof compileFilter>; source: Readable; paths: string[]; keys: ReturnType<typeof chunkerKeys>; host: string; level: number; budget: BackupBudget },
): Promise<BackupResult> {
  const { repo } = opts
  const { stats, onWarning, rules, source, paths, keys, host, level, budget } = ctx
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
      time: opts.time ?? new Date().toISOString(),
      host,
      username: opts.username ?? os.userInfo().username,
      paths,
      tags: opts.tags ?? [],
      ...(parent ? { parent: parent.id } : {}),
      ...(opts.original ? { original: opts.original } : {}),
      tree: { root: hex(tree.root), depth: tree.depth },
      stats: { ...stats },
      program: PROGRAM,
    }
    // --- prune lease: prove reused chunks if the lease lapsed; again if a sweep tombstoned it.
    const ref = { root: tree.root, depth: tree.depth }
    await commitGuard.before(repo, lease, ref)
    stopPoint('backup-before-commit')
    const id = await repo.saveSnapshot(snapshot)
    await commitGuard.after(repo, lease, id, ref)
    return id
  }
  const arena = opts.arena ?? new ChunkArena(level > ZSTD_LEVEL ? budget.zstdHighArenaBytes : budget.arenaBytes)
  await pipeline([
    source,
    // Without rules the filter would pass every entry on: leave it out, one hop less per entry.
    ...(rules.empty ? [] : [createFilter(rules)]),
    // The stages every entry passes run as one Duplex (lib/flow.ts fuse: one hop, not five).
    fuse(
      ...(parent ? [createParentJoin(snapshotRecords(repo, treeOf(parent.snap), undefined, true))] : []),
      createXattrReader({ onWarning }),
      ...(opts.paths ? [createPrefetch({ onWarning, batches: budget.prefetchBatches, batchBytes: budget.prefetchBatchBytes })] : []),
      createChunker(keys, { params: repo.config.chunker, onWarning, stats, arena, ...(opts.onFile ? { onFile: opts.onFile } : {}) }),
      createMetadataPacker(keys, repo.config.metaChunker, { arena }),
    ),
    createDedup(repo, { concurrency: budget.dedupConcurrency, known: new Lru<string, true>(budget.knownIds) }),
    // A stream source (stdin, tar, a script's) is all content: seal on the worker from the first
    // chunk, so a short stream runs the same pipeline (and memory) as a long one. A walk decides
    // by what it finds (seal.ts). A budget without room for the worker seals inline.
    createSealer(repo.keys.encKey, { mode: !budget.sealWorker ? 'inline' : opts.paths ? 'auto' : 'worker', stats, level, windowLog: budget.zstdHighWindowLog, poolJobs: budget.zstdPoolJobs }),
    createUploader(repo, { stats, concurrency: budget.uploadConcurrency }),
    createCommit(writeSnapshot, id => (snapshotId = id)),
  ])
  return { snapshotId, snapshot: snapshot!, stats, ...(parent ? { parent: parent.id } : {}) }
}

