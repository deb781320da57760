/**
 * select: the restore-side filter. Keeps the records under a subtree (`SNAP:PATH`) and rewrites
 * their paths relative to it, then drops what the include/exclude rules exclude (matched
 * against the paths as stored). Extents items follow the fate of their entry.
 *
 * Hardlinks: only the first link of a group carries the content. When that first link is left
 * out (outside the subtree, or excluded) and a later link is kept, the first kept link gets the
 * content (the dropped first link's extents) and the later kept ones link to it, as restic does.
 * Directories on the way to an include (`onTheWay`) are held back until a kept entry below them
 * comes (then emitted first, parents before children), and dropped when the walk leaves them
 * with nothing kept: restore creates only the directories on the way to what matched.
 * Memory: one record, the held-back directories on the current path, plus the extents of dropped first links whose group may still have a kept
 * link (bounded by the hardlink map of docs/DESIGN.md; a group is forgotten once all its links
 * have passed).
 */
import type { Duplex } from 'node:stream'
import type { EntryMeta, Extent, ExtentsItem, RecordItem } from '../../lib/entry.js'
import { hex, isUnder } from '../../lib/bytes.js'
import { stage } from '../../lib/flow.js'

export interface SelectOptions {
  /** Keep only this path and what lies below it; paths become relative to its parent when it
   *  is a file, to itself when it is a directory (whose own record is dropped). */
  subtree?: Buffer
  /** True for entries to drop (FilterRules.excludes). */
  excludes?: (entry: EntryMeta) => boolean
  /** Called once for every record kept (before rewriting): lets `ls` and `cat` count matches. */
  onMatch?: (entry: EntryMeta) => void
  /** True for a directory kept only because something below it may be (FilterRules.onTheWay):
   *  its record is held back until a kept entry below it comes, and dropped if none does. */
  onTheWay?: (entry: EntryMeta) => boolean
}

export function createSelect(opts: SelectOptions): Duplex {
  return stage<RecordItem | ExtentsItem, RecordItem | ExtentsItem>(source => select(source, opts))
}

export async function* select(source: AsyncIterable<RecordItem | ExtentsItem>, opts: SelectOptions): AsyncIterable<RecordItem | ExtentsItem> {
  const sub = opts.subtree && opts.subtree.length > 0 ? opts.subtree : undefined
  let keeping = false
  // Paths are rewritten by cutting this many leading bytes.
  let strip = -1
  const rewrite = (p: Buffer): Buffer | undefined => {
    if (strip < 0) return p
    if (!isUnder(p, sub!)) return undefined
    return p.subarray(strip)
  }
  // Hardlink groups whose first link (by its stored path, hex) was dropped: its extents until a
  // later link is kept, then the path that link was restored under.
  const groups = new Map<string, { left: number; batches: Extent[][]; keptAs?: Buffer }>()
  const filtering = !!sub || !!opts.excludes
  let capturing: Extent[][] | null = null
  // Held-back directories on the current path (stored path, rewritten record), outermost first.
  const pending: { stored: Buffer; item: RecordItem }[] = []
  for await (const item of source) {
    if (item.kind === 'extents') {
      if (keeping) yield item
      else capturing?.push(item.extents)
      continue
    }
    const e = item.entry
    keeping = false
    capturing = null
    while (pending.length > 0 && !isUnder(e.path, pending[pending.length - 1]!.stored)) pending.pop()
    const group = e.hardlinkTo ? groups.get(hex(e.hardlinkTo)) : undefined
    if (group && --group.left <= 0) groups.delete(hex(e.hardlinkTo!))
    // A dropped first link: keep its extents (and those that follow) for a later kept link.
    const dropped = (): Extent[][] | null => {
      if (!filtering || e.type !== 'file' || e.nlink < 2 || e.hardlinkTo) return null
      const batches = [item.extents]
      groups.set(hex(e.path), { left: e.nlink - 1, batches })
      return batches
    }
    if (sub) {
      if (!isUnder(e.path, sub)) {
        capturing = dropped()
        continue
      }
      if (e.path.length === sub.length) {
        // The subtree root: a directory's content lands in the target; a file keeps its name.
        if (e.type === 'dir') {
          strip = sub.length + 1
          opts.onMatch?.(e)
          continue
        }
        strip = sub.lastIndexOf(0x2f) + 1
      }
    }
    if (opts.excludes?.(e)) {
      capturing = dropped()
      continue
    }
    opts.onMatch?.(e)
    const path = rewrite(e.path)
    if (!path || path.length === 0) continue
    const entry: EntryMeta = { ...e, path }
    if (opts.onTheWay?.(e)) {
      pending.push({ stored: e.path, item: { kind: 'record', entry, extents: item.extents } })
      continue
    }
    keeping = true
    for (const d of pending) yield d.item
    pending.length = 0
    if (group) {
      if (group.keptAs) {
        entry.hardlinkTo = group.keptAs
      } else {
        // The first kept link of a group whose first link was dropped: it carries the content.
        delete entry.hardlinkTo
        group.keptAs = path
        yield { kind: 'record', entry, extents: group.batches[0]! }
        for (const extents of group.batches.slice(1)) yield { kind: 'extents', extents }
        group.batches = []
        continue
      }
    } else if (e.hardlinkTo) {
      const to = rewrite(e.hardlinkTo)
      if (to && to.length > 0) entry.hardlinkTo = to
      else delete entry.hardlinkTo
    }
    yield { kind: 'record', entry, extents: item.extents }
  }
}
