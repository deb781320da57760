/**
 * dedup: drops a chunk the repository already has right after it is cut, before seal spends
 * time compressing and encrypting it. A size-capped LRU of ids known to be stored sits in front of the
 * storage's `has`. Memory: the cache (KNOWN_IDS_CACHE ids) plus `concurrency` lookups in flight.
 *
 * A dropped chunk ends here: its arena region (lib/chunk-arena.ts) is released. Chunks that are
 * buffers of their own (tree nodes, spilled regions, a script's stages without an arena) count
 * towards the forced collections (lib/memory.ts); every chunk passes here, new or already stored,
 * so none is missed.
 */
import type { Duplex } from 'node:stream'
import type { BackupItem } from '../../lib/entry.js'
import { Lru, orderedMap, stage } from '../../lib/flow.js'
import { DEDUP_CONCURRENCY, KNOWN_IDS_CACHE } from '../../lib/limits.js'
import { collectEvery } from '../../lib/memory.js'

/** What dedup needs of a repository. `has` may be answered by a slow network call. */
export interface ChunkIndex {
  hasChunk(id: Uint8Array): Promise<boolean>
}

export interface DedupOptions {
  concurrency?: number
  /** A cache shared between stages or runs (ids as hex). */
  known?: Lru<string, true>
}

const DROPPED = Symbol('dropped')

export function createDedup(index: ChunkIndex, opts: DedupOptions = {}): Duplex {
  const known = opts.known ?? new Lru<string, true>(KNOWN_IDS_CACHE)
  const collect = collectEvery('chunks')
  return stage<BackupItem, BackupItem>(async function* (source) {
    const mapped = orderedMap(source, opts.concurrency ?? DEDUP_CONCURRENCY, async item => {
      if (item.kind !== 'chunk') return item
      if (!item.slot || item.slot.spilled) collect(item.size)
      const key = item.id.toString('hex')
      // Marked known before it is stored: a second copy in this run is dropped too; if the
      // first fails to store, the backup fails and no snapshot refers to either.
      let stored = known.has(key)
      if (!stored) {
        known.set(key, true)
        stored = await index.hasChunk(item.id)
      }
      if (!stored) return item
      item.slot?.release()
      return DROPPED
    })
    for await (const item of mapped) if (item !== DROPPED) yield item
  })
}
