/**
 * The readers' fallback to chunks that prune moved aside (fossils/, docs/DESIGN-prune.md):
 * restore, ls, diff and check read a snapshot that a collection raced with; backups never come
 * here (dedup asks chunks/ only, so a backup stores a fossilized chunk again).
 */
import type { Storage } from '../storage/storage.js'
import { SluiceError } from '../errors.js'
import { chunkKey, CHUNK_OBJECT_OVERHEAD } from './objects.js'
import { CHUNK_MAX } from '../limits.js'
import { fossilKey } from './gc-objects.js'

function absent(err: unknown): boolean {
  return err instanceof SluiceError && err.code === 'ERR_NOT_FOUND'
}

/** The chunk object from fossils/, or from chunks/ again (a sweep may have moved it back
 *  between the two reads); null when it is in neither. */
export async function readFossil(storage: Storage, id: Uint8Array): Promise<Buffer | null> {
  for (const key of [fossilKey(id), chunkKey(id)]) {
    try {
      return await storage.get(key, CHUNK_MAX + CHUNK_OBJECT_OVERHEAD)
    } catch (err) {
      if (!absent(err)) throw err
    }
  }
  return null
}

/** True when the chunk is stored, in place or moved aside (check's question). */
export async function hasChunkOrFossil(storage: Storage, id: Uint8Array): Promise<boolean> {
  return (await storage.has(chunkKey(id))) || (await storage.has(fossilKey(id)))
}
