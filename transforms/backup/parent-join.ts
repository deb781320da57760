/**
 * parent-join: the merge-join of an incremental backup. The walk's entries and the parent
 * snapshot's records come in the same canonical order, so one pass over both finds, for each
 * walked file, the parent's record of the same path. A file whose type, size, mtime, ctime and
 * inode all match keeps the parent's extents (`reuse`) and is never opened; the parent's
 * further extents of that file follow it as ExtentsItems. A file the parent has with other
 * metadata is marked `changed`. A reused file whose every stored field is the parent's, and
 * whose parent record is stored exactly as the encoder writes it (the cursor's `raw`, asked for
 * with snapshotRecords' keepRaw), also carries that record's body (`reuseRecord`): the metadata
 * stage copies it instead of encoding the entry, the same bytes without the work.
 *
 * A file is never reused when its parent record, or any of the extents records after it, is
 * marked incomplete: a writer marks the last of those when a read error (or a shrink) shows up
 * after the file's record was already written. To see those marks before deciding, the join
 * forks the parent cursor and reads on over that one file's extents records, one at a time.
 *
 * Memory: one parent record of look-ahead (the parent is read chunk by chunk from storage by
 * its own reader), plus, while a reused file's extents records are scanned, one fork of that
 * reader (one metadata chunk and one record) — nothing proportional to either side's length.
 * The fork costs a second load of the metadata chunks that only a file's extents records reach
 * (more than the chunk being read and the one read ahead: files of several GiB). A
 * `reuseRecord` is a view of its parent metadata chunk (at most META_CHUNK_MAX), which stays
 * alive until the record leaves the metadata stage: the records in flight between the two
 * stages span one or two chunks.
 */
import type { Duplex } from 'node:stream'
import type { EntryMeta, ExtentsItem, RecordItem, SourceEntry } from '../../lib/entry.js'
import { comparePaths } from '../../lib/bytes.js'
import { stage } from '../../lib/flow.js'

/** The parent snapshot's records in stored order, as a cursor that can be forked: a fork reads
 *  on from the same place without moving the original. snapshotRecords() returns one. */
export interface ParentRecords {
  next(): Promise<IteratorResult<RecordItem | ExtentsItem, unknown>>
  /** The next record if it is at hand, without a promise; undefined means: ask next(). */
  take?(): RecordItem | ExtentsItem | undefined
  fork(): ParentRecords
  return?(): Promise<unknown>
}

/** True when a file's content can be taken from the parent without reading it. */
export function unchanged(now: EntryMeta, before: EntryMeta): boolean {
  return (
    now.type === 'file' && before.type === 'file' && !now.hardlinkTo && !before.hardlinkTo && !before.incomplete &&
    now.size === before.size && now.mtimeSec === before.mtimeSec && now.mtimeNsec === before.mtimeNsec &&
    now.ctimeSec === before.ctimeSec && now.ctimeNsec === before.ctimeNsec && now.ino === before.ino
  )
}

/** True when `now`, given `before`'s xattrs and extents, encodes to `before`'s record: every
 *  field the record stores is equal (unchanged() has compared size, times and inode). */
function sameRecord(now: EntryMeta, before: EntryMeta): boolean {
  return (
    now.mode === before.mode && now.uid === before.uid && now.gid === before.gid && now.user === before.user &&
    now.group === before.group && now.dev === before.dev && now.nlink === before.nlink && now.rdev === before.rdev &&
    now.linkTarget === undefined && before.linkTarget === undefined && now.xattrs === before.xattrs && !now.incomplete
  )
}

/** True when the walked non-file `now` with `before`'s xattrs encodes to `before`'s record. */
function sameEntry(now: EntryMeta, before: EntryMeta): boolean {
  return (
    now.type === before.type && now.hardlinkTo === undefined && before.hardlinkTo === undefined && !before.incomplete &&
    now.size === before.size && now.mtimeSec === before.mtimeSec && now.mtimeNsec === before.mtimeNsec &&
    now.ctimeSec === before.ctimeSec && now.ctimeNsec === before.ctimeNsec && now.ino === before.ino &&
    now.mode === before.mode && now.uid === before.uid && now.gid === before.gid && now.user === before.user &&
    now.group === before.group && now.dev === before.dev && now.nlink === before.nlink && now.rdev === before.rdev &&
    now.xattrs === undefined && !now.incomplete &&
    (now.linkTarget === undefined ? before.linkTarget === undefined : before.linkTarget !== undefined && now.linkTarget.equals(before.linkTarget))
  )
}

/** Marks the walked files the parent snapshot has unchanged (`reuse`) or with other metadata
 *  (`changed`). `parent` is consumed (and closed) by the stage. */
export function createParentJoin(parent: ParentRecords): Duplex {
  return stage<SourceEntry, SourceEntry | ExtentsItem>(source => join(source, parent))
}

/** True when one of the extents records that `it` has still to yield before the next entry
 *  record is marked incomplete; reads ahead on a fork, so `it` does not move. */
async function continuationIncomplete(it: ParentRecords): Promise<boolean> {
  const scout = it.fork()
  try {
    for (;;) {
      const r = await scout.next()
      if (r.done || r.value.kind !== 'extents') return false
      if (r.value.incomplete) return true
    }
  } finally {
    await scout.return?.()
  }
}

async function* join(source: AsyncIterable<SourceEntry>, it: ParentRecords): AsyncIterable<SourceEntry | ExtentsItem> {
  let head: RecordItem | ExtentsItem | undefined
  let done = false
  const slowly = async (): Promise<void> => {
    const r = await it.next()
    if (r.done) {
      done = true
      head = undefined
    } else head = r.value
  }
  /** Moves to the next record at once when it is decoded already (most of them: no promise per
   *  record), or returns the promise to await. */
  const step = (): Promise<void> | undefined => {
    const v = it.take?.()
    if (v === undefined) return slowly()
    head = v
    return undefined
  }
  const advance = async (): Promise<void> => {
    await step()
  }
  /** Moves to the next record, skipping extents of the current one. */
  const nextRecord = async (): Promise<void> => {
    do {
      const p = step()
      if (p) await p
    } while (!done && head!.kind === 'extents')
  }
  await nextRecord()
  try {
    for await (const entry of source) {
      while (!done && comparePaths((head as RecordItem).entry.path, entry.path) < 0) {
        const p = step()
        if (p) await p
        while (!done && head!.kind === 'extents') {
          const q = step()
          if (q) await q
        }
      }
      if (done || !(head as RecordItem).entry.path.equals(entry.path)) {
        yield entry
        continue
      }
      if (entry.type !== 'file') {
        // A directory, symlink or device the parent has with every field the same (ctime too,
        // so its xattrs too, which the xattr-read stage then leaves): the parent's record.
        const before = head as RecordItem
        if (before.raw && before.extents.length === 0 && sameEntry(entry, before.entry)) {
          if (before.entry.xattrs) entry.xattrs = before.entry.xattrs
          entry.reuseRecord = before.raw
        }
        yield entry
        continue
      }
      const before = head as RecordItem
      if (!entry.hardlinkTo && unchanged(entry, before.entry)) {
        const p = step() // past the record: the file's extents records, if any, come next
        if (p) await p
        const more = !done && head!.kind === 'extents'
        if (!more || !((head as ExtentsItem).incomplete || (await continuationIncomplete(it)))) {
          entry.reuse = before.extents
          // Unchanged ctime means unchanged xattrs too (setxattr updates ctime): the xattr-read
          // stage after this one skips reused entries.
          if (before.entry.xattrs) entry.xattrs = before.entry.xattrs
          entry.content = undefined // not `delete`: that would turn the object into a slow dictionary
          // The parent's record as stored, when this entry would encode to it (a canonical
          // record, no field changed: not after an owner's rename or a new device number).
          if (before.raw && sameRecord(entry, before.entry)) entry.reuseRecord = before.raw
          yield entry
          // The parent's further extents of this file follow it, as they come.
          while (!done && head!.kind === 'extents') {
            yield head as ExtentsItem
            const q = step()
            if (q) await q
          }
          continue
        }
        // Marked incomplete after its record was written: read it again.
        entry.changed = true
        yield entry
        while (!done && head!.kind === 'extents') await advance()
        continue
      }
      if (before.entry.type === 'file') entry.changed = true
      yield entry
      const p = step()
      if (p) await p
      while (!done && head!.kind === 'extents') {
        const q = step()
        if (q) await q
      }
    }
  } finally {
    await it.return?.()
  }
}
