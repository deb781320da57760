/**
 * forget(): applies a retention policy (lib/repo/retention.ts) to a repository's snapshots, group
 * by group, and moves each removed root to `forgotten/<id>` (recoverable until prune's sweep);
 * undoForget() moves forgotten roots back. docs/FORMAT.md "Forgotten snapshot roots".
 *
 * Memory: one group's summaries (id, time, host, username, paths, tags). Roots are read one at
 * a time and their summaries appended to a temporary spill directory, one file per group; each
 * group is then read back, decided and reported on its own. The directory is walked as a
 * stream, so nothing is held per group or per snapshot beyond the group at hand.
 */
import { createHash } from 'node:crypto'
import fs from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { SluiceError } from '../../lib/errors.js'
import { SMALL_OBJECT_MAX } from '../../lib/limits.js'
import { treeOf } from '../restore/read-snapshot.js'
import { proveSnapshot } from './mark.js'
import { openSnapshot } from '../../lib/repo/objects.js'
import { FORMAT_VERSION, type Repository, type SnapshotRoot } from '../../lib/repo/repository.js'
import {
  applyPolicy, describeGroup, filterEmpty, groupKeyOf, matchesFilter, policyEmpty, timeOf,
  type GroupBy, type GroupKey, type KeepReason, type RetentionPolicy, type SnapshotFilter, type SnapshotSummary, type Zone,
} from '../../lib/repo/retention.js'

/** What forget keeps of a snapshot root while it decides (and reports). */
export interface ForgetSummary extends SnapshotSummary {
  username: string
  parent?: string
}

/** One group's decision, in restic's shape: kept and removed newest first, a reason per kept. */
export interface ForgetGroup {
  key: GroupKey
  keep: ForgetSummary[]
  remove: ForgetSummary[]
  reasons: KeepReason<ForgetSummary>[]
}

export interface ForgetOptions {
  repo: Repository
  /** The rules (--keep-*). Ignored when `snapshots` are given. */
  policy?: RetentionPolicy
  /** Snapshots to remove by id prefix (or `latest` among those the filter matches). */
  snapshots?: string[]
  /** Default: host and paths, as restic. */
  groupBy?: GroupBy
  filter?: SnapshotFilter
  /** Decide and report, change nothing. */
  dryRun?: boolean
  /** restic's --unsafe-allow-remove-all: an empty policy removes every snapshot the filter
   *  (which must not be empty) matches. */
  unsafeAllowRemoveAll?: boolean
  /** For tests: the time that decides what is in the future (default: now). */
  now?: number
  zone?: Zone
  /** Where the spill directory goes (default: the system's temporary directory). */
  tmpDir?: string
  /** Each group's decision, before its snapshots are moved. */
  onGroup?: (group: ForgetGroup) => void
  /** Each snapshot once its root is moved (or would be, with dryRun). */
  onRemoved?: (id: string) => void
  /** A snapshot that could not be moved: the rest go on, and the result counts it. */
  onWarning?: (err: SluiceError) => void
}

export interface ForgetResult {
  groups: number
  kept: number
  removed: number
  failed: number
}

/** The key of a forgotten root. */
export function forgottenKey(id: string): string {
  return `forgotten/${id}`
}

const ID = /^[0-9a-f]{64}$/

/** Opens a sealed root read from anywhere (snapshots/ or forgotten/): authenticated against its
 *  id, then parsed; ERR_CORRUPT or ERR_FORMAT when it is not one. */
function openRoot(repo: Repository, id: string, obj: Buffer): SnapshotRoot {
  const plain = openSnapshot(repo.keys.encKey, Buffer.from(id, 'hex'), obj)
  let snap: SnapshotRoot
  try {
    snap = JSON.parse(plain.toString('utf8')) as SnapshotRoot
  } catch (cause) {
    throw new SluiceError('ERR_CORRUPT', `snapshot ${id.slice(0, 8)} is not valid JSON`, { cause })
  }
  if (snap?.version !== FORMAT_VERSION) throw new SluiceError('ERR_FORMAT', `snapshot ${id.slice(0, 8)} has format ${snap?.version}`)
  return snap
}

/**
 * Moves `snapshots/<id>` to `forgotten/<id>`: the same sealed bytes are written first
 * (put-if-absent), then the root is deleted. A kill between the two leaves both (readers ignore
 * forgotten/); running this again completes it. An id already gone from snapshots/ is done.
 */
export async function forgetSnapshot(repo: Repository, id: string): Promise<void> {
  if (!ID.test(id)) throw new SluiceError('ERR_ARGS', `"${id}" is not a snapshot id`)
  let obj: Buffer
  try {
    obj = await repo.storage.get(`snapshots/${id}`, SMALL_OBJECT_MAX)
  } catch (err) {
    if (err instanceof SluiceError && err.code === 'ERR_NOT_FOUND') return
    throw err
  }
  openRoot(repo, id, obj)
  if (!(await repo.storage.put(forgottenKey(id), obj))) {
    // A copy from an earlier, interrupted run: it must open before the root may go.
    openRoot(repo, id, await repo.storage.get(forgottenKey(id), SMALL_OBJECT_MAX))
  }
  await repo.storage.delete(`snapshots/${id}`)
}

function summaryOf(id: string, snap: SnapshotRoot): ForgetSummary {
  const s: ForgetSummary = { id, time: snap.time, host: snap.host, username: snap.username, paths: snap.paths, tags: snap.tags }
  if (snap.parent) s.parent = snap.parent
  if (typeof s.host !== 'string' || !Array.isArray(s.paths) || !Array.isArray(s.tags) || ![...s.paths, ...s.tags].every(x => typeof x === 'string')) {
    throw new SluiceError('ERR_CORRUPT', `snapshot ${id.slice(0, 8)} has a malformed host, paths or tags`)
  }
  timeOf(s)
  return s
}

/** Reads one group's spill file: its summaries, newest first, equal times by id. */
async function readGroup(file: string): Promise<ForgetSummary[]> {
  const list = (await fs.readFile(file, 'utf8')).split('\n').filter(l => l !== '').map(l => JSON.parse(l) as ForgetSummary)
  return list.sort((a, b) => timeOf(b) - timeOf(a) || (a.id < b.id ? -1 : 1))
}

/** Every group file of the spill directory, streamed (the directory is not read whole). */
async function* groupFiles(dir: string): AsyncIterable<string> {
  for await (const e of await fs.opendir(dir)) if (e.isFile()) yield path.join(dir, e.name)
}

/**
 * Removes snapshots by id, or by policy group by group (restic's `forget`): refuses an empty
 * policy (unless unsafeAllowRemoveAll with a filter) and a policy that would remove every
 * snapshot of a group, before anything is changed. Per-snapshot failures to move go to
 * onWarning and are counted; a root that cannot be read aborts before anything is changed.
 */
export async function forget(opts: ForgetOptions): Promise<ForgetResult> {
  const { repo } = opts
  const filter = opts.filter ?? {}
  const result: ForgetResult = { groups: 0, kept: 0, removed: 0, failed: 0 }
  const remove = async (id: string) => {
    try {
      if (!opts.dryRun) await forgetSnapshot(repo, id)
      result.removed++
      opts.onRemoved?.(id)
    } catch (err) {
      if (!(err instanceof SluiceError)) throw err
      result.failed++
      opts.onWarning?.(new SluiceError(err.code, `snapshot ${id.slice(0, 8)} was not removed: ${err.message}`, { cause: err }))
    }
  }

  if (opts.snapshots && opts.snapshots.length > 0) {
    const ids = new Set<string>()
    for (const ref of opts.snapshots) ids.add((await repo.findSnapshot(ref, s => matchesFilter(s, filter))).id)
    for (const id of ids) await remove(id)
    return result
  }

  const policy = opts.policy ?? {}
  const empty = policyEmpty(policy)
  if (empty && !opts.unsafeAllowRemoveAll) throw new SluiceError('ERR_ARGS', 'no policy was specified, no snapshots will be removed')
  if (empty && filterEmpty(filter)) throw new SluiceError('ERR_ARGS', '--unsafe-allow-remove-all is not allowed unless a snapshot filter option is specified')
  const by = opts.groupBy ?? { host: true, paths: true, tags: false }
  const now = opts.now ?? Date.now()
  const decide = async (file: string): Promise<ForgetGroup> => {
    const list = await readGroup(file)
    return { key: groupKeyOf(list[0]!, by), ...applyPolicy(list, policy, { now, zone: opts.zone ?? 'local' }) }
  }

  const spill = await fs.mkdtemp(path.join(opts.tmpDir ?? os.tmpdir(), 'sluice-forget-'))
  try {
    // An unreadable root stops forget before anything moves, as restic's forget does: a policy
    // decided without it could keep or remove the wrong ones.
    const stop = (_id: string, err: SluiceError): never => {
      throw err
    }
    for await (const { id, snap } of repo.snapshots(stop)) {
      const s = summaryOf(id, snap)
      if (!matchesFilter(s, filter)) continue
      const name = createHash('sha256').update(JSON.stringify(groupKeyOf(s, by))).digest('hex')
      await fs.appendFile(path.join(spill, name), JSON.stringify(s) + '\n')
    }
    // Every group is decided before any is changed: a refusal leaves the repository as it was.
    if (!empty) {
      for await (const file of groupFiles(spill)) {
        const g = await decide(file)
        if (g.keep.length === 0) throw new SluiceError('ERR_ARGS', `refusing to delete last snapshot of snapshot group "${describeGroup(g.key)}"`)
      }
    }
    for await (const file of groupFiles(spill)) {
      const g = await decide(file)
      result.groups++
      result.kept += g.keep.length
      opts.onGroup?.(g)
      for (const s of g.remove) await remove(s.id)
    }
  } finally {
    await fs.rm(spill, { recursive: true, force: true })
  }
  return result
}

export interface UndoOptions {
  repo: Repository
  /** Id prefixes of forgotten snapshots; all of them when none. */
  snapshots?: string[]
  dryRun?: boolean
  /** Each snapshot once it is back (or would be, with dryRun). */
  onRestored?: (id: string, snap: SnapshotRoot) => void
}

/** The forgotten snapshot an id prefix names (1 to 64 hex digits). */
async function findForgotten(repo: Repository, ref: string): Promise<string> {
  if (!/^[0-9a-f]{1,64}$/.test(ref)) throw new SluiceError('ERR_ARGS', `"${ref}" is not a snapshot id`)
  let found: string | undefined
  for await (const key of repo.storage.list(forgottenKey(ref))) {
    const id = key.slice('forgotten/'.length)
    if (!ID.test(id)) continue
    if (found) throw new SluiceError('ERR_AMBIGUOUS', `snapshot id prefix ${ref} matches more than one forgotten snapshot`)
    found = id
  }
  if (!found) throw new SluiceError('ERR_SNAPSHOT_NOT_FOUND', `no forgotten snapshot matches ${ref} (prune may have swept it)`)
  return found
}

/**
 * `forget --undo`: puts `forgotten/<id>` back to `snapshots/<id>` (validated first, put-if-absent),
 * then deletes the forgotten copy. A kill between the two leaves both; a rerun completes it.
 * Memory: one root at a time.
 */
export async function undoForget(opts: UndoOptions): Promise<{ restored: number }> {
  const { repo } = opts
  const back = async (id: string) => {
    const obj = await repo.storage.get(forgottenKey(id), SMALL_OBJECT_MAX)
    const snap = openRoot(repo, id, obj)
    if (!opts.dryRun) {
      await repo.storage.put(`snapshots/${id}`, obj)
      // A sweep that listed snapshots/ before this put may be deleting what the snapshot needs:
      // prove every chunk is in chunks/ (moving fossils back), as a backup whose lease lapsed
      // does, and take the root away again if one is gone (docs/DESIGN-prune.md).
      const missing = await proveSnapshot(repo, treeOf(snap))
      if (missing) {
        await repo.storage.delete(`snapshots/${id}`)
        throw new SluiceError('ERR_MISSING', `snapshot ${id.slice(0, 8)} cannot be brought back: prune has deleted chunk ${missing} it needs`)
      }
      await repo.storage.delete(forgottenKey(id))
    }
    opts.onRestored?.(id, snap)
  }
  let restored = 0
  if (opts.snapshots && opts.snapshots.length > 0) {
    const ids = new Set<string>()
    for (const ref of opts.snapshots) ids.add(await findForgotten(repo, ref))
    for (const id of ids) {
      await back(id)
      restored++
    }
  } else {
    for await (const key of repo.storage.list('forgotten/')) {
      const id = key.slice('forgotten/'.length)
      if (!ID.test(id)) continue
      await back(id)
      restored++
    }
  }
  return { restored }
}
