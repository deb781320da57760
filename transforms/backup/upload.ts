/**
 * upload: stores sealed chunks with at most `concurrency` writes in flight. Content addressing
 * makes every write idempotent, so a crashed backup can simply run again. Chunks end here;
 * other items (the final TreeItem) pass on in order, so the TreeItem leaves only after every
 * chunk before it is stored; a chunk's arena region (lib/chunk-arena.ts) is released once it is,
 * or, where the store stages writes (local: stageChunk), once its bytes are written: the store's
 * sync and link then run behind the pipeline, at most UPLOAD_STAGED_PENDING of them waited on.
 * Memory: `concurrency` sealed chunks, and UPLOAD_STAGED_PENDING staged writes (an open temp
 * file and a promise each, no chunk memory).
 */
import type { Duplex } from 'node:stream'
import type { BackupItem } from '../../lib/entry.js'
import { orderedMap, stage } from '../../lib/flow.js'
import { UPLOAD_CONCURRENCY, UPLOAD_STAGED_PENDING } from '../../lib/limits.js'
import type { BackupStats } from '../../lib/stats.js'

/** What upload needs of a repository. `putChunk` is idempotent; `stageChunk` (optional) is
 *  putChunk in two steps (Repository.stageChunk). */
export interface ChunkStore {
  putChunk(id: Uint8Array, obj: Uint8Array): Promise<boolean>
  stageChunk?(id: Uint8Array, obj: Uint8Array): Promise<{ stored: Promise<boolean> }>
}

const STORED = Symbol('stored')

/** A chunk whose bytes are written and whose store is still settling. */
class Staged {
  constructor(readonly stored: Promise<boolean>, readonly bytes: number) {}
}

export function createUploader(store: ChunkStore, opts: { concurrency?: number; stats?: BackupStats } = {}): Duplex {
  const counted = (wrote: boolean, bytes: number): void => {
    if (wrote && opts.stats) {
      opts.stats.chunksNew++
      opts.stats.bytesStored += bytes
    }
  }
  return stage<BackupItem, BackupItem>(async function* (source) {
    const mapped = orderedMap(source, opts.concurrency ?? UPLOAD_CONCURRENCY, async (item): Promise<BackupItem | Staged | typeof STORED> => {
      if (item.kind !== 'chunk') return item
      const bytes = item.data.length
      if (store.stageChunk) {
        const { stored } = await store.stageChunk(item.id, item.data)
        item.slot?.release()
        return new Staged(stored, bytes)
      }
      const wrote = await store.putChunk(item.id, item.data)
      item.slot?.release()
      counted(wrote, bytes)
      return STORED
    })
    const pending: Staged[] = []
    const settle = async (s: Staged): Promise<void> => counted(await s.stored, s.bytes)
    for await (const out of mapped) {
      if (out === STORED) continue
      if (out instanceof Staged) {
        pending.push(out)
        if (pending.length > UPLOAD_STAGED_PENDING) await settle(pending.shift()!)
        continue
      }
      // Whatever follows a chunk (the TreeItem) leaves only once every chunk before it is stored.
      while (pending.length > 0) await settle(pending.shift()!)
      yield out
    }
    while (pending.length > 0) await settle(pending.shift()!)
  })
}
