/**
 * prefetch: reads the content of upcoming small files while the chunker works on earlier
 * ones. Opening and reading a small file costs tens of microseconds of waiting on the kernel;
 * with several reads in flight that wait overlaps instead of adding up, which is what makes a
 * tree of 100,000 small files fast. Entries keep their order.
 *
 * Memory: at most `concurrency` files of at most `maxFileSize` bytes each, read ahead.
 */
import type { Duplex } from 'node:stream'
import type { ExtentsItem, SourceEntry } from '../lib/entry.js'
import { orderedMap, stage } from '../lib/flow.js'
import { PREFETCH_CONCURRENCY, READ_BLOCK, SMALL_FILE_SYNC } from '../lib/limits.js'
import { readSmallFileSync } from '../lib/read-small.js'

export interface PrefetchOptions {
  concurrency?: number
  /** Only files up to this size are read ahead; larger ones stream when their turn comes. */
  maxFileSize?: number
}

export function createPrefetch(opts: PrefetchOptions = {}): Duplex {
  const max = opts.maxFileSize ?? READ_BLOCK
  return stage<SourceEntry | ExtentsItem, SourceEntry | ExtentsItem>(source =>
    orderedMap(source, opts.concurrency ?? PREFETCH_CONCURRENCY, async item => {
      if (item.kind !== 'entry' || item.type !== 'file' || !item.content || item.reuse || item.size > max || item.size < 0) return item
      const pieces: Uint8Array[] = []
      let failure: unknown
      try {
        if (item.fsPath && item.size <= SMALL_FILE_SYNC) pieces.push(readSmallFileSync(item.fsPath, item.size))
        else for await (const p of item.content()) pieces.push(p)
      } catch (err) {
        failure = err
      }
      // The chunker sees the same pieces, or the same error after the same pieces.
      item.content = async function* () {
        yield* pieces
        if (failure !== undefined) throw failure
      }
      return item
    }),
  )
}
