/**
 * download: turns the extents of each file into its content, in order. Fetches (and decrypts
 * and decompresses, through the ChunkLoader) up to `concurrency` chunks ahead, and keeps a
 * byte-capped LRU of decoded chunks because packed small files share chunks. Emits each
 * record followed by DataItems of its content. Memory: `concurrency` chunks in flight plus the
 * cache (RESTORE_CHUNK_CACHE_BYTES), and dead chunk buffers until the collection forced every
 * RESTORE_GC_EVERY_BYTES of content.
 */
import type { Duplex } from 'node:stream'
import type { DataItem, ExtentsItem, RecordItem } from '../../lib/entry.js'
import { Lru, orderedMap, stage } from '../../lib/flow.js'
import { CHUNK_MAX, DOWNLOAD_CONCURRENCY, RESTORE_CHUNK_CACHE_BYTES } from '../../lib/limits.js'
import { collectEvery } from '../../lib/memory.js'
import { SluiceError } from '../../lib/errors.js'
import { hex } from '../../lib/bytes.js'
import type { ChunkLoader } from './read-snapshot.js'

export interface DownloadOptions {
  concurrency?: number
  cacheBytes?: number
}

type Task = RecordItem | { kind: 'fetch'; id: Buffer; offset: number; length: number }

export function createDownloader(loader: ChunkLoader, opts: DownloadOptions = {}): Duplex {
  // Counted in chunks of the largest size: a pending promise has no size yet.
  const slots = Math.max(2, Math.floor((opts.cacheBytes ?? RESTORE_CHUNK_CACHE_BYTES) / CHUNK_MAX))
  const cache = new Lru<string, Promise<Buffer>>(slots)
  const load = (id: Buffer): Promise<Buffer> => {
    const key = hex(id)
    let p = cache.get(key)
    if (!p) {
      p = loader.loadChunk(id)
      p.catch(() => {})
      cache.set(key, p)
    }
    return p
  }
  const collect = collectEvery('restore')
  return stage<RecordItem | ExtentsItem, RecordItem | DataItem>(async function* (source) {
    async function* tasks(): AsyncIterable<Task> {
      for await (const item of source) {
        if (item.kind === 'record') {
          yield item
          if (item.entry.type === 'file' && !item.entry.hardlinkTo) for (const e of item.extents) yield { kind: 'fetch', ...e }
        } else {
          for (const e of item.extents) yield { kind: 'fetch', ...e }
        }
      }
    }
    const mapped = orderedMap(tasks(), opts.concurrency ?? DOWNLOAD_CONCURRENCY, async (t): Promise<RecordItem | DataItem> => {
      if (t.kind === 'record') return t
      const chunk = await load(t.id)
      collect(t.length)
      if (t.offset + t.length > chunk.length) {
        throw new SluiceError('ERR_CORRUPT', `extent ${t.offset}+${t.length} lies outside chunk ${hex(t.id)} of ${chunk.length} bytes`)
      }
      return { kind: 'data', data: chunk.subarray(t.offset, t.offset + t.length) }
    })
    yield* mapped
  })
}
