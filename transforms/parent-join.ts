/**
 * parent-join: the merge-join of an incremental backup. The walk's entries and the parent
 * snapshot's records come in the same canonical order, so one pass over both finds, for each
 * walked file, the parent's record of the same path. A file whose type, size, mtime, ctime and
 * inode all match keeps the parent's extents (`reuse`) and is never opened; the parent's
 * further extents of that file follow it as ExtentsItems. A file the parent has with other
 * metadata is marked `changed`.
 *
 * Memory: one parent record of look-ahead (the parent is read chunk by chunk from storage by
 * its own reader) — nothing proportional to either side's length.
 */
import type { Duplex } from 'node:stream'
import type { EntryMeta, ExtentsItem, RecordItem, SourceEntry } from '../lib/entry.js'
import { comparePaths } from '../lib/bytes.js'
import { stage } from '../lib/flow.js'

/** True when a file's content can be taken from the parent without reading it. */
export function unchanged(now: EntryMeta, before: EntryMeta): boolean {
  return (
    now.type === 'file' && before.type === 'file' && !now.hardlinkTo && !before.hardlinkTo && !before.incomplete &&
    now.size === before.size && now.mtimeSec === before.mtimeSec && now.mtimeNsec === before.mtimeNsec &&
    now.ctimeSec === before.ctimeSec && now.ctimeNsec === before.ctimeNsec && now.ino === before.ino
  )
}

export function createParentJoin(parent: AsyncIterable<RecordItem | ExtentsItem>): Duplex {
  return stage<SourceEntry, SourceEntry | ExtentsItem>(source => join(source, parent))
}

async function* join(source: AsyncIterable<SourceEntry>, parent: AsyncIterable<RecordItem | ExtentsItem>): AsyncIterable<SourceEntry | ExtentsItem> {
  const it = parent[Symbol.asyncIterator]()
  let head: RecordItem | ExtentsItem | undefined
  let done = false
  const advance = async (): Promise<void> => {
    const r = await it.next()
    if (r.done) {
      done = true
      head = undefined
    } else head = r.value
  }
  /** Moves to the next record, skipping extents of the current one. */
  const nextRecord = async (): Promise<void> => {
    do await advance()
    while (!done && head!.kind === 'extents')
  }
  await nextRecord()
  try {
    for await (const entry of source) {
      while (!done && comparePaths((head as RecordItem).entry.path, entry.path) < 0) await nextRecord()
      if (done || entry.type !== 'file' || !(head as RecordItem).entry.path.equals(entry.path)) {
        yield entry
        continue
      }
      const before = head as RecordItem
      if (!entry.hardlinkTo && unchanged(entry, before.entry)) {
        entry.reuse = before.extents
        // Unchanged ctime means unchanged xattrs too (setxattr updates ctime): the xattr-read
        // stage after this one skips reused entries.
        if (before.entry.xattrs) entry.xattrs = before.entry.xattrs
        entry.content = undefined // not `delete`: that would turn the object into a slow dictionary
        yield entry
        // The parent's further extents of this file follow it, as they come.
        for (;;) {
          await advance()
          if (done || head!.kind !== 'extents') break
          yield head as ExtentsItem
        }
        continue
      }
      if (before.entry.type === 'file') entry.changed = true
      yield entry
      await nextRecord()
    }
  } finally {
    await it.return?.()
  }
}
