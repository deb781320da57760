/**
 * tag(): restic's `tag --add/--remove/--set`. Tags are in the snapshot root, which is named by
 * the hash of its bytes, so a change is a new root: written first (with `original`, the id
 * before the first change, as restic records it), then the old root is deleted. A kill between
 * the two leaves both (the same snapshot twice, old and new tags); rerunning completes it, as
 * the old one still matches. Only `snapshots/` is read: forgotten roots (forget's
 * `forgotten/<id>`) are never touched. docs/FORMAT.md "Snapshot roots".
 *
 * Memory: one root at a time (the listing is streamed) and the ids given on the command line.
 */
import { SluiceError } from '../../lib/errors.js'
import type { Repository, SnapshotRoot } from '../../lib/repo/repository.js'
import { matchesFilter, type SnapshotFilter } from '../../lib/repo/retention.js'

export interface TagOptions {
  repo: Repository
  /** Tags to add (kept in order, those already there skipped). */
  add?: string[]
  /** Tags to remove. */
  remove?: string[]
  /** The tags to set instead of the current ones ([''] means none, as in restic). */
  set?: string[]
  /** Snapshots by id prefix or `latest` (among those the filter matches); every snapshot the
   *  filter matches when none. */
  snapshots?: string[]
  filter?: SnapshotFilter
  /** Each snapshot rewritten: its old and new ids. */
  onChanged?: (oldId: string, newId: string) => void
  /** A snapshot that could not be rewritten (the others go on, as restic does). */
  onWarning?: (err: SluiceError) => void
}

/** The tags `snap` should have, or null when they do not change (restic's AddTags/RemoveTags). */
export function newTags(tags: readonly string[], opts: Pick<TagOptions, 'add' | 'remove' | 'set'>): string[] | null {
  let next: string[]
  if (opts.set && opts.set.length > 0) {
    next = opts.set.length === 1 && opts.set[0] === '' ? [] : [...new Set(opts.set)]
    return next.length === tags.length && next.every((t, i) => t === tags[i]) ? null : next
  }
  next = [...tags]
  for (const t of opts.add ?? []) if (!next.includes(t)) next.push(t)
  const gone = new Set(opts.remove ?? [])
  next = next.filter(t => !gone.has(t))
  return next.length === tags.length && next.every((t, i) => t === tags[i]) ? null : next
}

/** Checks the options as restic does before opening anything. */
export function checkTagOptions(opts: Pick<TagOptions, 'add' | 'remove' | 'set'>): void {
  const given = (l?: string[]) => (l?.length ?? 0) > 0
  if (!given(opts.set) && !given(opts.add) && !given(opts.remove)) throw new SluiceError('ERR_ARGS', 'nothing to do!')
  if (given(opts.set) && (given(opts.add) || given(opts.remove))) throw new SluiceError('ERR_ARGS', '--set and --add/--remove cannot be given at the same time')
  for (const t of [...(opts.add ?? []), ...(opts.remove ?? [])]) if (t === '') throw new SluiceError('ERR_ARGS', 'an empty tag cannot be added or removed')
}

/** Rewrites one root with new tags: the new root first, then the old one goes. */
export async function retagSnapshot(repo: Repository, id: string, snap: SnapshotRoot, tags: string[]): Promise<string> {
  const next: SnapshotRoot = { ...snap, tags, original: snap.original ?? id }
  const newId = await repo.saveSnapshot(next)
  // Written and readable before the old root may go.
  await repo.loadSnapshot(newId)
  if (newId !== id) await repo.storage.delete(`snapshots/${id}`)
  return newId
}

/** Changes tags; returns how many snapshots were rewritten (restic's `changed_snapshots`). */
export async function tag(opts: TagOptions): Promise<{ changed: number; failed: number }> {
  checkTagOptions(opts)
  const { repo } = opts
  const filter = opts.filter ?? {}
  const result = { changed: 0, failed: 0 }
  const one = async (id: string, snap: SnapshotRoot) => {
    const tags = newTags(snap.tags, opts)
    if (!tags) return
    try {
      const newId = await retagSnapshot(repo, id, snap, tags)
      result.changed++
      opts.onChanged?.(id, newId)
    } catch (err) {
      if (!(err instanceof SluiceError)) throw err
      result.failed++
      opts.onWarning?.(new SluiceError(err.code, `unable to modify the tags for snapshot ID ${id.slice(0, 8)}, ignoring: ${err.message}`, { cause: err }))
    }
  }
  if (opts.snapshots && opts.snapshots.length > 0) {
    const ids = new Set<string>()
    const found = []
    for (const ref of opts.snapshots) {
      const s = await repo.findSnapshot(ref, ref === 'latest' ? s => matchesFilter(s, filter) : undefined)
      if (!ids.has(s.id)) found.push(s)
      ids.add(s.id)
    }
    for (const s of found) await one(s.id, s.snap)
    return result
  }
  // A root written here may turn up later in the same listing: its tags are already the new
  // ones, so it is left alone (every change is idempotent).
  for await (const { id, snap } of repo.snapshots()) {
    if (matchesFilter(snap, filter)) await one(id, snap)
  }
  return result
}
