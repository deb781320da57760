/**
 * Damages the objects of a real repository through its Storage, so the same fixtures run on a
 * local directory and on s3rver: truncated, bit-flipped, random, empty, swapped (another
 * object's bytes), foreign (the same object of another repository), planted (new bytes under a
 * new name). Storage writes are put-if-absent, so each replaces by delete then put.
 */
import { createHash } from 'node:crypto'
import type { Storage } from '../../lib/storage/storage.js'

export type Damage = 'truncated' | 'flipped' | 'random' | 'empty' | 'swapped' | 'foreign'

/** Seeded bytes (sha256 in counter mode): the same fixture on every run. */
export function seeded(seed: string, n: number): Buffer {
  const out = Buffer.alloc(n)
  for (let i = 0, off = 0; off < n; i++) {
    const h = createHash('sha256').update(`${seed}:${i}`).digest()
    off += h.copy(out, off)
  }
  return out
}

export async function replace(storage: Storage, key: string, data: Uint8Array): Promise<void> {
  await storage.delete(key)
  if (!(await storage.put(key, data))) throw new Error(`could not replace ${key}`)
}

/**
 * Damages `key` in `storage` one way. `other` is the key of another object of the same kind
 * (swapped); `foreign` the bytes of the same kind of object from another repository.
 */
export async function damage(storage: Storage, key: string, how: Damage, opts: { other?: string; foreign?: Buffer } = {}): Promise<void> {
  const bytes = await storage.get(key)
  let out: Buffer
  switch (how) {
    case 'truncated':
      out = bytes.subarray(0, Math.floor(bytes.length / 2))
      break
    case 'flipped':
      out = Buffer.from(bytes)
      out[Math.floor(out.length / 2)]! ^= 0x10
      break
    case 'random':
      out = seeded(`random:${key}`, 300)
      break
    case 'empty':
      out = Buffer.alloc(0)
      break
    case 'swapped':
      if (!opts.other) throw new Error('swapped needs another key')
      out = await storage.get(opts.other)
      break
    case 'foreign':
      if (!opts.foreign) throw new Error('foreign needs bytes')
      out = opts.foreign
      break
  }
  await replace(storage, key, out)
}

export const DAMAGES: Damage[] = ['truncated', 'flipped', 'random', 'empty', 'swapped', 'foreign']
