/**
 * upload: stores sealed chunks with at most `concurrency` writes in flight. Content addressing
 * makes every write idempotent, so a crashed backup can simply run again. Chunks end here;
 * other items (the final TreeItem) pass on in order, so the TreeItem leaves only after every
 * chunk before it is stored; a chunk's arena region (lib/chunk-arena.ts) is released once it is.
 * Memory: `concurrency` sealed chunks.
 */
import type { Duplex } from 'node:stream'
import type { BackupItem } from '../../lib/entry.js'
import { orderedMap, stage } from '../../lib/flow.js'
import { UPLOAD_CONCURRENCY } from '../../lib/limits.js'
import type { BackupStats } from '../../lib/stats.js'

/** What upload needs of a repository. `putChunk` is idempotent. */
export interface ChunkStore {
  putChunk(id: Uint8Array, obj: Uint8Array): Promise<boolean>
}

const STORED = Symbol('stored')

export function createUploader(store: ChunkStore, opts: { concurrency?: number; stats?: BackupStats } = {}): Duplex {
  return stage<BackupItem, BackupItem>(async function* (source) {
    const mapped = orderedMap(source, opts.concurrency ?? UPLOAD_CONCURRENCY, async item => {
      if (item.kind !== 'chunk') return item
      const wrote = await store.putChunk(item.id, item.data)
      item.slot?.release()
      if (wrote && opts.stats) {
        opts.stats.chunksNew++
        opts.stats.bytesStored += item.data.length
      }
      return STORED
    })
    for await (const item of mapped) if (item !== STORED) yield item
  })
}
