/**
 * spill-cache: a restore from a storage whose every read is a round trip (S3) fetches a chunk
 * the snapshot needs again later (repeats.ts) once, and keeps its object, as fetched (sealed:
 * it is authenticated again when it is opened), in a temporary file, where the next read finds
 * it: a file and its copy cost one GET per chunk, not two. `get` has Storage.get's shape, for
 * Repository.loadChunk.
 *
 * The file is made on the first object kept (`sluice-restore-*` in `tmpDir`, default
 * os.tmpdir()) and removed by `close`; an object that cannot be written there is simply not
 * kept (the restore goes on reading the storage). Objects read back are read into the caller's
 * memory (`into`), as the storage's are.
 *
 * Memory: the index, at most RESTORE_SPILL_ENTRIES keys and offsets (about 200 bytes each); the
 * file at most RESTORE_SPILL_BYTES on disk. Past either, objects are no longer kept.
 */
import fs from 'node:fs/promises'
import os from 'node:os'
import nodePath from 'node:path'
import type { Storage } from '../../lib/storage/storage.js'
import { RESTORE_SPILL_BYTES, RESTORE_SPILL_ENTRIES } from '../../lib/limits.js'
import type { RepeatedChunks } from './repeats.js'

export interface SpillCacheOptions {
  maxBytes?: number
  maxEntries?: number
  tmpDir?: string
}

export interface SpillCache {
  get(key: string, maxBytes?: number, into?: (length: number) => Buffer): Promise<Buffer>
  /** Objects read from the file instead of the storage, and objects kept. */
  readonly stats: { hits: number; kept: number; keptBytes: number }
  /** Removes the file. */
  close(): Promise<void>
}

export function createSpillCache(storage: Pick<Storage, 'get'>, repeats: RepeatedChunks, opts: SpillCacheOptions = {}): SpillCache {
  const maxBytes = opts.maxBytes ?? RESTORE_SPILL_BYTES
  const maxEntries = opts.maxEntries ?? RESTORE_SPILL_ENTRIES
  const index = new Map<string, { offset: number; length: number }>()
  const stats = { hits: 0, kept: 0, keptBytes: 0 }
  let file: Promise<{ dir: string; fh: fs.FileHandle } | null> | undefined
  /** Bytes given out in the file (written or being written). */
  let end = 0
  let broken = false

  const open = () =>
    (file ??= (async () => {
      const dir = await fs.mkdtemp(nodePath.join(opts.tmpDir ?? os.tmpdir(), 'sluice-restore-'))
      try {
        return { dir, fh: await fs.open(nodePath.join(dir, 'objects'), 'w+', 0o600) }
      } catch (err) {
        await fs.rm(dir, { recursive: true, force: true })
        throw err
      }
    })().catch(() => {
      broken = true
      return null
    }))

  /** Keeps `obj` under `key` if there is room; never throws. */
  async function keep(key: string, obj: Buffer): Promise<void> {
    if (broken || index.size >= maxEntries || end + obj.length > maxBytes) return
    const offset = end
    end += obj.length
    const f = await open()
    if (!f) return
    try {
      let done = 0
      while (done < obj.length) done += (await f.fh.write(obj, done, obj.length - done, offset + done)).bytesWritten
    } catch {
      // A full disk, say: keep nothing more; what is kept stays readable.
      broken = true
      return
    }
    index.set(key, { offset, length: obj.length })
    stats.kept++
    stats.keptBytes += obj.length
  }

  async function get(key: string, max?: number, into?: (length: number) => Buffer): Promise<Buffer> {
    const at = index.get(key)
    if (at) {
      const f = (await file)!
      const buf = into ? into(at.length) : Buffer.allocUnsafe(at.length)
      let done = 0
      while (done < at.length) {
        const { bytesRead } = await f.fh.read(buf, done, at.length - done, at.offset + done)
        if (bytesRead === 0) break
        done += bytesRead
      }
      // Our own file shorter than we wrote it: read the storage instead.
      if (done === at.length) {
        stats.hits++
        return buf
      }
      index.delete(key)
    }
    const obj = await storage.get(key, max, into)
    // Written before the caller opens the object (it is decrypted in place).
    if (repeats.repeated(Buffer.from(key.slice(-64), 'hex'))) await keep(key, obj)
    return obj
  }

  return {
    get,
    stats,
    async close() {
      const f = await file
      file = undefined
      index.clear()
      if (!f) return
      await f.fh.close().catch(() => {})
      await fs.rm(f.dir, { recursive: true, force: true })
    },
  }
}
