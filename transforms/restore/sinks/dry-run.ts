/**
 * dry-run: the sink of `restore --dry-run`. Takes the records (and SkippedItems) that a restore
 * into a directory would write, after overwrite.ts has decided, and only reports them: nothing
 * is downloaded, nothing written. Memory: none beyond one item.
 */
import { Writable } from 'node:stream'
import type { EntryMeta, ExtentsItem, RecordItem } from '../../../lib/entry.js'
import type { SkippedItem } from '../overwrite.js'

export interface DryRunOptions {
  /** An entry that would be written. */
  onEntry?: (entry: EntryMeta) => void
  /** An entry that would not be written (already restored, or left alone). */
  onSkipped?: (entry: EntryMeta, reason: SkippedItem['reason']) => void
}

export function createDryRun(opts: DryRunOptions): Writable {
  return new Writable({
    objectMode: true,
    write(item: RecordItem | ExtentsItem | SkippedItem, _enc, cb) {
      if (item.kind === 'record') opts.onEntry?.(item.entry)
      else if (item.kind === 'skipped') opts.onSkipped?.(item.entry, item.reason)
      cb()
    },
  })
}
