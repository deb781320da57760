/**
 * download: turns the extents of each file into its content, in order. Fetches (and decrypts
 * and decompresses, through the ChunkLoader) up to `concurrency` chunks ahead, and keeps a
 * byte-capped LRU of decoded chunks because packed small files share chunks. Emits each
 * record followed by DataItems of its content. Chunk objects are read, and chunks decoded, into
 * reused memory (chunk-pool.ts): a DataItem's `done()` (the directory sink calls it once the
 * bytes are written or copied) and the cache letting go of a chunk hand its memory back.
 * Memory: `concurrency` chunks in flight, within `aheadBytes` of their extents plus one chunk
 * (an extent smaller than its chunk, as packed small files' are, holds more: at most
 * `concurrency` × CHUNK_MAX), plus the cache (RESTORE_CHUNK_CACHE_BYTES) plus the
 * chunks behind DataItems not yet done (the sink's writes in flight), all of it in the pool's
 * memory, which holds at most `poolBytes` in use and free while that is enough, and the garbage
 * the pool could not avoid (buffers it dropped, objects a backend read on its own, chunks of a
 * sink that never calls done) until the collection forced every RESTORE_GC_EVERY_BYTES of it.
 * Nothing else is counted: what else a restored file leaves behind outside V8's heap is small
 * (paths, batch results), and malloc's holes are trimmed every RESTORE_TRIM_EVERY_BYTES. A hole extent becomes a HoleItem (nothing fetched): each
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
import { CHUNK_MAX, DOWNLOAD_CONCURRENCY, RESTORE_AHEAD_BYTES, RESTORE_CHUNK_CACHE_BYTES, RESTORE_POOL_BYTES } from '../../lib/limits.js'
import { ChunkPool } from './chunk-pool.js'
import { collectEvery, trimEvery } from '../../lib/memory.js'
import { SluiceError } from '../../lib/errors.js'
import { displayPath, hex } from '../../lib/bytes.js'
import type { ChunkLoader } from './read-snapshot.js'
import type { SkippedItem } from './overwrite.js'

export interface DownloadOptions {
  /** Chunks fetched ahead at once (default DOWNLOAD_CONCURRENCY; S3 gives more, S3_READ_AHEAD)... */
  concurrency?: number
  /** ...within this many bytes of their extents (default RESTORE_AHEAD_BYTES). */
  aheadBytes?: number
  /** Chunk memory the pool holds, in use and free (default RESTORE_POOL_BYTES). A deep
   *  fetch-ahead swings the chunk memory in use by up to its bytes, twice over (object and
   *  plaintext): with less held each swing drops buffers as garbage and allocates anew. */
  poolBytes?: number
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
  const cacheBytes = opts.cacheBytes ?? RESTORE_CHUNK_CACHE_BYTES
  // Counted in chunks of the largest size: a pending promise has no size yet.
  const slots = Math.max(2, Math.floor(cacheBytes / CHUNK_MAX))
  const pool = new ChunkPool(opts.poolBytes ?? RESTORE_POOL_BYTES)
  // A chunk's memory goes back to the pool when the cache has let it go and every DataItem cut
  // from it is done (refs counts both, taken synchronously so none is missed).
  interface Loaded {
    refs: number
    chunk: Promise<Buffer>
  }
  const release = (l: Loaded): void => {
    if (--l.refs === 0) l.chunk.then(pool.give, () => {})
  }
  const cache = new Lru<string, Loaded>(slots, undefined, release)
  /** The chunk, with one reference the caller must release. */
  const load = (id: Buffer): Loaded => {
    const key = hex(id)
    let l = cache.get(key)
    if (!l) {
      l = { refs: 1, chunk: loader.loadChunk(id, pool) }
      l.chunk.catch(() => {})
      cache.set(key, l)
    }
    l.refs++
    return l
  }
  const collect = collectEvery('restore')
  const trim = trimEvery()
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
      const l = load(t.id)
      let chunk: Buffer
      try {
        chunk = await l.chunk
      } catch (err) {
        release(l)
        throw err
      } finally {
        collect(pool.garbage())
        trim(t.length)
      }
      if (t.offset + t.length > chunk.length) {
        release(l)
        throw new SluiceError('ERR_CORRUPT', `extent ${t.offset}+${t.length} lies outside chunk ${hex(t.id)} of ${chunk.length} bytes`)
      }
      let released = false
      const done = (): void => {
        if (released) return
        released = true
        release(l)
      }
      return { kind: 'data', data: chunk.subarray(t.offset, t.offset + t.length), done }
    }
    // Fetch-ahead: up to `concurrency` chunks in flight or waiting for the writer, within
    // `aheadBytes` of their extents (what they hold when an extent is its whole chunk, as a large
    // file's are).
    const within = { bytes: opts.aheadBytes ?? RESTORE_AHEAD_BYTES, weigh: (t: Task) => (t.kind === 'fetch' ? t.length : 0) }
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
    }, within)
    yield* mapped
  })
}
