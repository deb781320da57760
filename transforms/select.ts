/**
 * select: the restore-side filter. Keeps the records under a subtree (`SNAP:PATH`) and rewrites
 * their paths relative to it, then drops what the include/exclude rules exclude (matched
 * against the paths as stored). Extents items follow the fate of their entry. Memory: one
 * record.
 */
import type { Duplex } from 'node:stream'
import type { EntryMeta, ExtentsItem, RecordItem } from '../lib/entry.js'
import { isUnder } from '../lib/bytes.js'
import { stage } from '../lib/flow.js'

export interface SelectOptions {
  /** Keep only this path and what lies below it; paths become relative to its parent when it
   *  is a file, to itself when it is a directory (whose own record is dropped). */
  subtree?: Buffer
  /** True for entries to drop (FilterRules.excludes). */
  excludes?: (entry: EntryMeta) => boolean
  /** Called once for every record kept (before rewriting): lets `ls` and `cat` count matches. */
  onMatch?: (entry: EntryMeta) => void
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
  for await (const item of source) {
    if (item.kind === 'extents') {
      if (keeping) yield item
      continue
    }
    const e = item.entry
    keeping = false
    if (sub) {
      if (!isUnder(e.path, sub)) continue
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
    if (opts.excludes?.(e)) continue
    opts.onMatch?.(e)
    const path = rewrite(e.path)
    if (!path || path.length === 0) continue
    const entry: EntryMeta = { ...e, path }
    if (e.hardlinkTo) {
      const to = rewrite(e.hardlinkTo)
      if (to && to.length > 0) entry.hardlinkTo = to
      else delete entry.hardlinkTo
    }
    keeping = true
    yield { kind: 'record', entry, extents: item.extents }
  }
}
