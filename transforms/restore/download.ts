/**
 * download: turns the extents of each file into its content, in order. Fetches (and decrypts
 * and decompresses, through the ChunkLoader) up to `concurrency` chunks ahead, and keeps a
 * byte-capped LRU of decoded chunks because packed small files share chunks. Emits each
 * record followed by DataItems of its content. Memory: `concurrency` chunks in flight plus the
 * cache (RESTORE_CHUNK_CACHE_BYTES), and dead chunk buffers until the collection forced every
 * RESTORE_GC_EVERY_BYTES of content. A hole extent becomes a HoleItem (nothing fetched): each
 * sink decides how to make its zeros (a hole, zeros written, a tar sparse map).
 *
 * A chunk that cannot be had (missing, or it fails authentication or decoding, or an extent lies
 * outside it) stops the stream with that error, naming the file and the chunk: a tar or stdout
 * sink cannot skip inside what it has begun to emit. With `skipDamaged` (the directory sink, which
 * can drop a file) it becomes a DamagedItem in the content's place instead, and the rest goes on.
 */
import type { Duplex } from 'node:stream'
import { isHole, type DataItem, type Extent, type ExtentsItem, type HoleItem, type RecordItem } from '../../lib/entry.js'
import { Lru, orderedMap, stage } from '../../lib/flow.js'
import { CHUNK_MAX, DOWNLOAD_CONCURRENCY, RESTORE_CHUNK_CACHE_BYTES } from '../../lib/limits.js'
import { collectEvery } from '../../lib/memory.js'
import { SluiceError } from '../../lib/errors.js'
import { displayPath, hex } from '../../lib/bytes.js'
import type { ChunkLoader } from './read-snapshot.js'
import type { SkippedItem } from './overwrite.js'

export interface DownloadOptions {
  concurrency?: number
  cacheBytes?: number
  /** Emit a DamagedItem for a chunk that cannot be had, instead of failing. */
  skipDamaged?: boolean
}

/** In place of content that could not be had: the file it belongs to cannot be restored. */
export interface DamagedItem {
  kind: 'damaged'
  error: SluiceError
}

/** Codes of a chunk that cannot be had while the repository itself works; any other failure
 *  (the storage is down) stops the restore. */
const DAMAGE = new Set(['ERR_CORRUPT', 'ERR_MISSING'])

type Task = RecordItem | HoleItem | SkippedItem | { kind: 'fetch'; id: Buffer; offset: number; length: number; path: Buffer }

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
  return stage<RecordItem | ExtentsItem | SkippedItem, RecordItem | DataItem | HoleItem | DamagedItem | SkippedItem>(async function* (source) {
    async function* tasks(): AsyncIterable<Task> {
      let path: Buffer = Buffer.alloc(0)
      // A hole extent is passed on as a HoleItem: nothing to fetch.
      const task = (e: Extent): Task => (isHole(e) ? { kind: 'hole', length: e.length } : { kind: 'fetch', ...e, path })
      for await (const item of source) {
        // restore --overwrite: a file not written passes on, with nothing to fetch (overwrite.ts).
        if (item.kind === 'skipped') {
          yield item
          continue
        }
        if (item.kind === 'record') {
          yield item
          path = item.entry.path
          if (item.entry.type === 'file' && !item.entry.hardlinkTo) for (const e of item.extents) yield task(e)
        } else {
          for (const e of item.extents) yield task(e)
        }
      }
    }
    const fetchData = async (t: Exclude<Task, RecordItem | HoleItem | SkippedItem>): Promise<DataItem> => {
      const chunk = await load(t.id)
      collect(t.length)
      if (t.offset + t.length > chunk.length) {
        throw new SluiceError('ERR_CORRUPT', `extent ${t.offset}+${t.length} lies outside chunk ${hex(t.id)} of ${chunk.length} bytes`)
      }
      return { kind: 'data', data: chunk.subarray(t.offset, t.offset + t.length) }
    }
    const mapped = orderedMap(tasks(), opts.concurrency ?? DOWNLOAD_CONCURRENCY, async (t): Promise<RecordItem | DataItem | HoleItem | DamagedItem | SkippedItem> => {
      if (t.kind === 'record' || t.kind === 'hole' || t.kind === 'skipped') return t
      try {
        return await fetchData(t)
      } catch (err) {
        if (!(err instanceof SluiceError) || !DAMAGE.has(err.code)) throw err
        // The chunk's error names the chunk; this one names the file as well.
        const error = new SluiceError(err.code, `${displayPath(t.path)}: ${err.message}`, { cause: err, path: t.path })
        if (!opts.skipDamaged) throw error
        return { kind: 'damaged', error }
      }
    })
    yield* mapped
  })
}
