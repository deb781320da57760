/**
 * A Storage whose backend is created on first use. The S3 backend loads the AWS SDK, which
 * costs about 25 MB of RSS and a quarter second of start-up: local repositories never pay it.
 */
import type { Storage } from './storage.js'

export function lazyStorage(description: string, make: () => Promise<Storage>): Storage {
  let inner: Promise<Storage> | undefined
  const get = () => (inner ??= make())
  return {
    put: async (k, d) => (await get()).put(k, d),
    get: async (k, max) => (await get()).get(k, max),
    has: async k => (await get()).has(k),
    async *list(prefix) {
      yield* (await get()).list(prefix)
    },
    delete: async k => (await get()).delete(k),
    leftovers: async (maxAgeMs, remove) => {
      const s = await get()
      return s.leftovers ? s.leftovers(maxAgeMs, remove) : { files: 0, bytes: 0 }
    },
    describe: () => description,
    close: async () => {
      if (inner) await (await inner).close()
    },
  }
}
