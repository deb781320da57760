/**
 * restore(): read-snapshot → select → download → sink (a directory by default, or any sink of
 * RestoreItems: tar, stdout, a script's own); a whole snapshot into an empty directory has its
 * directories made first (make-dirs.ts, a metadata-only pass). Also the snapshot reference syntax and
 * listSnapshot() that ls and cat share.
 */
import { pipeline } from 'node:stream/promises'
import type { Writable } from 'node:stream'
import type { EntryMeta, ExtentsItem, RecordItem } from '../../lib/entry.js'
import fs from 'node:fs/promises'
import { SluiceError, asSluiceError, isErrno } from '../../lib/errors.js'
import { displayPath, isUnder } from '../../lib/bytes.js'
import { compileFilter } from '../../lib/filter-rules.js'
import { collectEvery, paceMemory } from '../../lib/memory.js'
import { budgetOf } from '../../lib/budget.js'
import { DOWNLOAD_CONCURRENCY, MEMORY_DEFAULT, MEMORY_MIN, RESTORE_POOL_BYTES } from '../../lib/limits.js'
import type { Repository, SnapshotRoot } from '../../lib/repo/repository.js'
import { snapshotRecords, treeOf, type ChunkLoader } from './read-snapshot.js'
import { createSelect, select } from './select.js'
import { createDownloader } from './download.js'
import { findRepeats } from './repeats.js'
import { createSpillCache, type SpillCache } from './spill-cache.js'
import { createFsWriter } from './sinks/fs.js'
import { createOverwrite, looksRestored, type OverwriteMode, type SkippedItem } from './overwrite.js'
import { checkCanonical, createDelete } from './delete.js'
import { makeDirs } from './make-dirs.js'
import { createVerifier } from './verify.js'
import { createDryRun } from './sinks/dry-run.js'

/** A snapshot reference: `latest` or an id prefix, optionally with `:PATH` inside it. */
export function parseSnapshotRef(ref: string): { snapshot: string; path: Buffer } {
  const i = ref.indexOf(':')
  const snapshot = i < 0 ? ref : ref.slice(0, i)
  const p = i < 0 ? '' : ref.slice(i + 1)
  return { snapshot, path: Buffer.from(p.replace(/^\/+/, '').replace(/\/+$/, '')) }
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

/** Files and bytes a restore of part of a snapshot will write; `done` once counted. */
export interface RestoreTotals {
  files: number
  bytes: number
  done: boolean
}

/**
 * Counts what a restore of `SNAP:PATH` with include/exclude rules selects (files, and their bytes
 * once per hardlink group), updating `totals` as it goes: the progress line's totals when the
 * snapshot's own counts do not apply; stops early when `signal` is aborted. Reads the metadata only. Memory: a second snapshot reader
 * and select (one metadata chunk, one node per tree level, held-back directories).
 */
export async function countSelected(repo: Repository, snap: SnapshotRoot, opts: { path?: Buffer; include?: string[]; exclude?: string[]; signal?: AbortSignal }, totals: RestoreTotals): Promise<RestoreTotals> {
  const rules = compileFilter({ ...(opts.include ? { include: opts.include } : {}), ...(opts.exclude ? { exclude: opts.exclude } : {}) })
  const sub = opts.path && opts.path.length > 0 ? opts.path : undefined
  for await (const item of select(snapshotRecords(repo, treeOf(snap)), {
    ...(sub ? { subtree: sub } : {}),
    excludes: e => rules.excludes(e),
  })) {
    if (opts.signal?.aborted) return totals
    if (item.kind !== 'record' || item.entry.type !== 'file') continue
    totals.files++
    if (!item.entry.hardlinkTo) totals.bytes += item.entry.size
  }
  totals.done = true
  return totals
}

export interface RestoreOptions {
  /** The peak RSS, in bytes, to size the downloads and the chunk cache for (lib/budget.ts,
   *  `budget.restore`; default MEMORY_DEFAULT). */
  memory?: number
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
  /** Into a directory: leave holes (and all-zero runs) as holes, as restic's --sparse (default
   *  true; false writes every byte). A given sink decides for itself. */
  sparse?: boolean
  // Into a directory only (`target`):
  /** What to do with an entry already in the target (restic's --overwrite; default `always`). */
  overwrite?: OverwriteMode
  /** Remove what the target holds that the (selected) snapshot does not (restic's --delete). */
  delete?: boolean
  /** Read every restored file back and check it against the snapshot's chunk ids; with
   *  `overwrite: 'if-changed'`, also compare the content of files that look unchanged. */
  verify?: boolean
  /** Decide and report (onEntry, onSkipped, onRemove), write and remove nothing, download nothing. */
  dryRun?: boolean
  /** Restore owners by number even where the recorded names exist here (GNU tar's flag). */
  numericOwner?: boolean
  /** An entry not written by --overwrite: already the snapshot's, or left alone. */
  onSkipped?: (entry: EntryMeta, reason: SkippedItem['reason']) => void
  /** An entry removed by --delete (path relative to the target). */
  onRemove?: (path: Buffer, isDir: boolean) => void
}

export interface RestoreResult {
  snapshotId: string
  warnings: number
  /** Files written (or, dry, that would be) and their bytes (restic's files_restored, bytes_restored). */
  filesRestored: number
  bytesRestored: number
  /** Files not written by --overwrite, and their bytes (restic's files_skipped, bytes_skipped). */
  filesSkipped: number
  bytesSkipped: number
  /** Entries removed by --delete (restic's files_deleted). */
  filesDeleted: number
  /** Files --verify checked, and how many of them differ (each also a warning, ERR_VERIFY). */
  filesVerified: number
  verifyErrors: number
}

/** How many gets the download keeps in flight, and the memory it may use: its chunk pool holds
 *  RESTORE_POOL_BYTES (at most the cache's and fetch-ahead's budget; download.ts `poolBytes`); a
 *  storage with a readAhead of its own (S3) gets that many at the full budget (scaled down with
 *  it as DOWNLOAD_CONCURRENCY is), within the budget's bytes, and the pool holds those bytes
 *  besides, for the deeper swings. The budget is --memory less what the
 *  storage takes itself (its `reserveBytes`: S3's SDK), so an S3 restore peaks where a local one
 *  does; the floor is MEMORY_MIN's. */
function downloads(repo: Repository, memory: number | undefined): { cacheBytes: number; aheadBytes: number; concurrency: number; poolBytes: number } {
  const { readAhead, reserveBytes = 0 } = repo.storage
  const budget = budgetOf(Math.max(MEMORY_MIN, (memory ?? MEMORY_DEFAULT) - reserveBytes)).restore
  const sizes = { cacheBytes: budget.cacheBytes, aheadBytes: budget.aheadBytes }
  const poolBytes = Math.min(RESTORE_POOL_BYTES, budget.cacheBytes + budget.aheadBytes)
  if (!readAhead) return { ...sizes, concurrency: budget.downloadConcurrency, poolBytes }
  return {
    ...sizes,
    concurrency: Math.max(1, Math.round((readAhead * budget.downloadConcurrency) / DOWNLOAD_CONCURRENCY)),
    poolBytes: poolBytes + budget.aheadBytes,
  }
}

/** The spill cache for the chunks `items` read more than once, or undefined when none is. */
async function spillRepeats(repo: Repository, items: AsyncIterable<RecordItem | ExtentsItem | { kind: string }>): Promise<SpillCache | undefined> {
  const repeats = await findRepeats(items)
  return repeats.repeats > 0 ? createSpillCache(repo.storage, repeats) : undefined
}

/** Creates the restore target (and its parents); ERR_WRITE naming it if it cannot be. */
async function makeTarget(target: string): Promise<void> {
  try {
    await fs.mkdir(target, { recursive: true })
  } catch (err) {
    if (isErrno(err, 'EEXIST', 'ENOTDIR')) throw new SluiceError('ERR_WRITE', `restore target ${target} is not a directory`, { cause: err })
    throw asSluiceError(err, 'ERR_WRITE', `cannot create the restore target ${target}`)
  }
}

/**
 * Restores a snapshot (or the subtree `SNAP:PATH`):
 * read-snapshot → select → download → write-fs (or the given sink). Applies the memory policy
 * for reading to the process first (lib/memory.ts).
 *
 * Into a directory, a file whose content is damaged is left out with a warning naming it and
 * its chunk (counted in `warnings`; the CLI exits 3) and the rest is restored. A given sink
 * (tar, stdout) cannot leave out what it has begun to emit: the restore stops with the error.
 */
export async function restore(opts: RestoreOptions): Promise<RestoreResult> {
  budgetOf(opts.memory) // refuses a --memory below MEMORY_MIN before anything is read
  paceMemory('read')
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
  const counts = { filesRestored: 0, bytesRestored: 0, filesSkipped: 0, bytesSkipped: 0, filesDeleted: 0, filesVerified: 0, verifyErrors: 0 }
  const onEntry = (e: EntryMeta) => {
    if (e.type === 'file') {
      counts.filesRestored++
      if (!e.hardlinkTo) counts.bytesRestored += e.size
    }
    opts.onEntry?.(e)
  }
  const onSkipped = (e: EntryMeta, reason: SkippedItem['reason']) => {
    if (e.type === 'file') {
      counts.filesSkipped++
      if (!e.hardlinkTo) counts.bytesSkipped += e.size
    }
    opts.onSkipped?.(e, reason)
  }
  const onRemove = (p: Buffer, isDir: boolean) => {
    counts.filesDeleted++
    opts.onRemove?.(p, isDir)
  }
  const mode = opts.overwrite ?? 'always'
  const intoDir = !opts.sink
  if (!intoDir && (opts.delete || opts.verify || opts.dryRun || mode !== 'always')) {
    throw new SluiceError('ERR_ARGS', '--overwrite, --delete, --verify and --dry-run apply to a restore into a directory (--target)')
  }
  if (opts.delete && (opts.include || opts.exclude)) {
    throw new SluiceError('ERR_ARGS', '--delete cannot be combined with --include or --exclude (it would remove what they leave out)')
  }
  let sink = opts.sink
  if (!sink) {
    if (!opts.target) throw new SluiceError('ERR_ARGS', 'restore needs a target directory or a sink')
    if (!opts.dryRun) await makeTarget(opts.target)
    sink = opts.dryRun
      ? createDryRun({ onEntry, onSkipped })
      : createFsWriter(opts.target, { onWarning, onEntry, onSkipped, ...(opts.numericOwner ? { numericOwner: true } : {}), ...(opts.sparse !== undefined ? { sparse: opts.sparse } : {}) })
  }
  // A path in the snapshot reference restores that subtree only.
  const subtree = ref.path.length > 0 ? { subtree: ref.path } : {}
  const selection = () =>
    createSelect({
      ...subtree,
      excludes: e => rules.excludes(e),
      onTheWay: e => rules.onTheWay?.(e) ?? false,
      onMatch: () => (matched = true),
    })
  const key = { loadChunk: (id: Uint8Array) => repo.loadChunk(id), chunkId: (d: Uint8Array) => repo.chunkId(d) }
  // --delete merges in canonical order: a snapshot out of it is refused before anything goes.
  if (opts.delete) await checkCanonical(select(snapshotRecords(repo, treeOf(snap)), subtree))
  // The stages present depend on the options (a spread pipeline() has no typed overload).
  const run = pipeline as unknown as (...streams: unknown[]) => Promise<void>
  // The snapshot's metadata chunks are fresh buffers each, outside the download's chunk pool:
  // their garbage counts towards the forced collections.
  const collect = collectEvery('restore')
  const metadata: ChunkLoader = {
    loadChunk: async id => {
      const b = await repo.loadChunk(id)
      collect(b.length)
      return b
    },
  }
  // A storage of round trips (S3) reads a chunk needed again later once, and keeps its object on
  // local disk for the next time (repeats.ts, spill-cache.ts): a second pass over the metadata.
  const spill = repo.storage.readAhead && !opts.dryRun ? await spillRepeats(repo, select(snapshotRecords(metadata, treeOf(snap)), { ...subtree, excludes: e => rules.excludes(e) })) : undefined
  const chunks: ChunkLoader = spill ? { loadChunk: (id, pool) => repo.loadChunk(id, pool, { get: spill.get }) } : repo
  // A whole snapshot into an empty target: its directories first, as restic does (make-dirs.ts).
  const whole = ref.path.length === 0 && !opts.include && !opts.exclude
  if (intoDir && whole && !opts.dryRun && !opts.delete && mode === 'always' && (await isEmptyDir(opts.target!))) {
    await makeDirs(opts.target!, snapshotRecords(metadata, treeOf(snap)))
  }
  try {
    await run(
      snapshotRecords(metadata, treeOf(snap)),
      selection(),
      ...(opts.delete ? [createDelete({ target: opts.target!, dryRun: !!opts.dryRun, onRemove })] : []),
      ...(intoDir ? [createOverwrite({ target: opts.target!, mode, ...(opts.verify && mode === 'if-changed' ? { check: key } : {}) })] : []),
      // Only the directory sink can leave a damaged file out and go on (see sinks/fs.ts).
      ...(opts.dryRun ? [] : [createDownloader(chunks, { skipDamaged: !opts.sink, ...downloads(repo, opts.memory) })]),
      sink,
    )
  } catch (err) {
    // pipeline() settles when the first stream fails; the sink may still be finishing its
    // writes (and removing a partial file). A caller that exits at once must find it done.
    const s = sink
    if (s.destroyed && !s.closed) await new Promise(resolve => s.once('close', resolve))
    throw err
  } finally {
    await spill?.close()
  }
  if (!matched) throw new SluiceError('ERR_PATH_NOT_FOUND', `no path "${displayPath(ref.path)}" in snapshot ${id.slice(0, 8)}`)
  if (opts.verify && !opts.dryRun) {
    // A second pass over the selected snapshot, reading each restored file back. Files that
    // --overwrite never / if-newer left alone (not the snapshot's size and mtime) are not checked.
    const leftAlone = mode === 'never' || mode === 'if-newer'
    await pipeline(
      snapshotRecords(repo, treeOf(snap)),
      selection(),
      createVerifier({
        target: opts.target!,
        key,
        onMismatch: err => {
          counts.verifyErrors++
          onWarning(err)
        },
        onChecked: () => counts.filesVerified++,
        ...(leftAlone ? { skip: (e, st) => !!st && !looksRestored(e, st) } : {}),
      }),
    )
  }
  return { snapshotId: id, warnings, ...counts }
}

/** Whether `dir` holds no entry: reads at most one (a target of millions of names is not listed). */
async function isEmptyDir(dir: string): Promise<boolean> {
  const d = await fs.opendir(dir, { bufferSize: 1 })
  try {
    return (await d.read()) === null
  } finally {
    await d.close()
  }
}
