/**
 * snapshot-source: a stored snapshot as a backup source (SourceEntry objects), for copy
 * between repositories whose chunks differ: each entry with its metadata as recorded (path,
 * mode, owners, times, xattrs, link targets, hardlinks), and for a file a content() that
 * loads its extents' chunks in order, so the backup pipeline cuts it again with the
 * destination's chunker.
 *
 * Memory: the snapshot reader's (read-snapshot.ts); a file's content() reads its further
 * extents through a fork of the reader taken at its record (shared until they part); decoded
 * chunks in an LRU of `cacheBytes` (RESTORE_CHUNK_CACHE_BYTES by default; copy passes its
 * memory budget's, lib/budget.ts).
 */
import { Readable } from 'node:stream'
import { Hole, isHole, type Extent, type SourceEntry } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { hex } from '../../lib/bytes.js'
import { Lru } from '../../lib/flow.js'
import { CHUNK_MAX, RESTORE_CHUNK_CACHE_BYTES } from '../../lib/limits.js'
import { snapshotRecords, type ChunkLoader, type SnapshotCursor, type TreeRef } from '../restore/read-snapshot.js'

export function createSnapshotSource(source: ChunkLoader, tree: TreeRef, cacheBytes = RESTORE_CHUNK_CACHE_BYTES): Readable {
  const cursor = snapshotRecords(source, tree)
  // Small files share chunks, one after another: a few decoded chunks kept (as restore's
  // downloader keeps them) spare loading a chunk once per file.
  const cache = new Lru<string, Promise<Buffer>>(Math.max(2, Math.floor(cacheBytes / CHUNK_MAX)))
  const loader: ChunkLoader = {
    loadChunk: id => {
      const key = hex(id)
      let p = cache.get(key)
      if (!p) {
        p = source.loadChunk(id)
        p.catch(() => {})
        cache.set(key, p)
      }
      return p
    },
  }
  async function* entries(): AsyncIterable<SourceEntry> {
    for (;;) {
      const r = await cursor.next()
      if (r.done) return
      // Extents items belong to the file before them: its content() reads them on a fork.
      if (r.value.kind !== 'record') continue
      const { entry, extents } = r.value
      const e: SourceEntry = { kind: 'entry', ...entry }
      if (entry.type === 'file' && !entry.hardlinkTo) {
        const ahead = cursor.fork()
        e.content = () => fileContent(loader, extents, ahead)
      }
      yield e
    }
  }
  return Readable.from(entries(), { objectMode: true, highWaterMark: 1 })
}

async function* fileContent(loader: ChunkLoader, first: Extent[], ahead: SnapshotCursor): AsyncIterable<Uint8Array> {
  try {
    for (const x of first) yield await extent(loader, x)
    for (;;) {
      const r = await ahead.next()
      if (r.done || r.value.kind !== 'extents') return
      for (const x of r.value.extents) yield await extent(loader, x)
    }
  } finally {
    await ahead.return()
  }
}

/** An extent's bytes, or for a hole extent a Hole (the new snapshot keeps it a hole). */
async function extent(loader: ChunkLoader, x: Extent): Promise<Uint8Array> {
  if (isHole(x)) return new Hole(x.length)
  const chunk = await loader.loadChunk(x.id)
  if (x.offset + x.length > chunk.length) {
    throw new SluiceError('ERR_CORRUPT', `extent ${x.offset}+${x.length} lies outside chunk ${hex(x.id)} of ${chunk.length} bytes`)
  }
  return chunk.subarray(x.offset, x.offset + x.length)
}
