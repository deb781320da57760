/**
 * restore(): read-snapshot → select → download → sink (a directory by default, or any sink of
 * RestoreItems: tar, stdout, a script's own). Also the snapshot reference syntax and
 * listSnapshot() that ls and cat share.
 */
import { pipeline } from 'node:stream/promises'
import type { Writable } from 'node:stream'
import type { EntryMeta, RecordItem } from '../../lib/entry.js'
import fs from 'node:fs/promises'
import { SluiceError, asSluiceError, isErrno } from '../../lib/errors.js'
import { displayPath, isUnder } from '../../lib/bytes.js'
import { compileFilter } from '../../lib/filter-rules.js'
import { paceMemory } from '../../lib/memory.js'
import { budgetOf } from '../../lib/budget.js'
import type { Repository, SnapshotRoot } from '../../lib/repo/repository.js'
import { snapshotRecords, treeOf } from './read-snapshot.js'
import { createSelect } from './select.js'
import { createDownloader } from './download.js'
import { createFsWriter } from './sinks/fs.js'

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
}

export interface RestoreResult {
  snapshotId: string
  warnings: number
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
  const budget = budgetOf(opts.memory).restore
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
  let sink = opts.sink
  if (!sink) {
    if (!opts.target) throw new SluiceError('ERR_ARGS', 'restore needs a target directory or a sink')
    await makeTarget(opts.target)
    sink = createFsWriter(opts.target, { onWarning, ...(opts.onEntry ? { onEntry: opts.onEntry } : {}) })
  }
  try {
    await pipeline(
      snapshotRecords(repo, treeOf(snap)),
      createSelect({
        ...(ref.path.length > 0 ? { subtree: ref.path } : {}),
        excludes: e => rules.excludes(e),
        onMatch: () => (matched = true),
      }),
      // Only the directory sink can leave a damaged file out and go on (see sinks/fs.ts).
      createDownloader(repo, { skipDamaged: !opts.sink, cacheBytes: budget.cacheBytes, concurrency: budget.downloadConcurrency }),
      sink,
    )
  } catch (err) {
    // pipeline() settles when the first stream fails; the sink may still be finishing its
    // writes (and removing a partial file). A caller that exits at once must find it done.
    const s = sink
    if (s.destroyed && !s.closed) await new Promise(resolve => s.once('close', resolve))
    throw err
  }
  if (!matched) throw new SluiceError('ERR_PATH_NOT_FOUND', `no path "${displayPath(ref.path)}" in snapshot ${id.slice(0, 8)}`)
  return { snapshotId: id, warnings }
}

