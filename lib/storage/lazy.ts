/**
 * A Storage whose backend is created on first use. The S3 backend loads the AWS SDK, which
 * costs about 25 MB of RSS and a quarter second of start-up: local repositories never pay it.
 * Once it is loaded, what parsing it left free but resident is given back (releaseMemory: a
 * collection and a malloc_trim), as the process's start does for its own modules.
 */
import type { Storage } from './storage.js'
import { SluiceError } from '../errors.js'
import { moveObject } from './move.js'
import { releaseMemory } from '../memory.js'

export function lazyStorage(description: string, make: () => Promise<Storage>): Storage {
  let inner: Promise<Storage> | undefined
  const get = () =>
    (inner ??= make().then(s => {
      releaseMemory()
      return s
    }))
  return {
    put: async (k, d) => (await get()).put(k, d),
    get: async (k, max, into) => (await get()).get(k, max, into),
    has: async k => (await get()).has(k),
    async *list(prefix) {
      yield* (await get()).list(prefix)
    },
    delete: async k => (await get()).delete(k),
    leftovers: async (maxAgeMs, remove) => {
      const s = await get()
      return s.leftovers ? s.leftovers(maxAgeMs, remove) : { files: 0, bytes: 0 }
    },
    stat: async k => {
      const inner = await get()
      if (!inner.stat) throw new SluiceError('ERR_STORAGE', `${description} cannot tell an object's age`)
      return inner.stat(k)
    },
    move: async (from, to) => moveObject(await get(), from, to),
    describe: () => description,
    close: async () => {
      if (inner) await (await inner).close()
    },
  }
}
