/**
 * Moving an object between keys on any Storage: the backend's own `move` (a rename on local
 * disk) or, without one, copy-then-delete (S3 has no rename). Either way `to` is never
 * replaced, and a crash leaves the object under one name or both, never under none.
 */
import type { Storage } from './storage.js'
import { SluiceError } from '../errors.js'

/** Moves `from` to `to`; false when `from` is absent (moved already, or never there). */
export async function moveObject(storage: Storage, from: string, to: string): Promise<boolean> {
  if (storage.move) return storage.move(from, to)
  let data: Buffer
  try {
    data = await storage.get(from)
  } catch (err) {
    if (err instanceof SluiceError && err.code === 'ERR_NOT_FOUND') return false
    throw err
  }
  await storage.put(to, data)
  await storage.delete(from)
  return true
}
