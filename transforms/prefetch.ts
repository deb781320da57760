/**
 * prefetch: reads the content of upcoming small files while the chunker works on earlier
 * ones. Opening and reading a small file costs tens of microseconds of waiting on the kernel;
 * with several reads in flight that wait overlaps instead of adding up, which is what makes a
 * tree of 100,000 small files fast. Entries keep their order.
 *
 * Files up to SMALL_FILE_SYNC are read synchronously while reads come from the page cache (a
 * third of the CPU of the thread pool's round trips); once one is slow (it went to the disk)
 * the next ones are read asynchronously, `concurrency` at a time, so disk waits overlap.
 *
 * Memory: at most `concurrency` files of at most `maxFileSize` bytes each, read ahead.
 */
import type { Duplex } from 'node:stream'
import type { ExtentsItem, SourceEntry } from '../lib/entry.js'
import { orderedMap, stage } from '../lib/flow.js'
import { PREFETCH_CONCURRENCY, READ_BLOCK, SMALL_FILE_SYNC } from '../lib/limits.js'
import { readSmallFileSync } from '../lib/read-small.js'

/** A synchronous small read slower than this hit the disk, not the page cache. */
const COLD_READ_MS = 2
/** Files read asynchronously after a cold read, before trying synchronous reads again. */
const COLD_STREAK = 256

export interface PrefetchOptions {
  concurrency?: number
  /** Only files up to this size are read ahead; larger ones stream when their turn comes. */
  maxFileSize?: number
}

export function createPrefetch(opts: PrefetchOptions = {}): Duplex {
  const max = opts.maxFileSize ?? READ_BLOCK
  // Synchronous reads win only on a warm page cache. A read that took long went to the disk:
  // then the next files are read asynchronously (overlapping their disk waits) for a while.
  let asyncFor = 0
  return stage<SourceEntry | ExtentsItem, SourceEntry | ExtentsItem>(source =>
    orderedMap(source, opts.concurrency ?? PREFETCH_CONCURRENCY, async item => {
      if (item.kind !== 'entry' || item.type !== 'file' || !item.content || item.reuse || item.size > max || item.size < 0) return item
      const pieces: Uint8Array[] = []
      let failure: unknown
      try {
        if (item.fsPath && item.size <= SMALL_FILE_SYNC && asyncFor === 0) {
          const t0 = performance.now()
          pieces.push(readSmallFileSync(item.fsPath, item.size))
          if (performance.now() - t0 > COLD_READ_MS) asyncFor = COLD_STREAK
        } else {
          if (asyncFor > 0) asyncFor--
          for await (const p of item.content()) pieces.push(p)
        }
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
