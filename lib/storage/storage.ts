/**
 * The storage contract. A backend moves opaque bytes under string keys and knows nothing of
 * chunks, crypto or snapshots; a new backend is one small file that passes
 * test/storage/conformance.ts.
 *
 * Keys are ASCII, '/'-separated ("config", "keys/<hex>", "chunks/ab/<hex>", "snapshots/<hex>").
 */
export interface Storage {
  /** Stores `data` under `key` unless the key exists. Atomic: a reader sees the whole object or
   *  none. Idempotent: returns true if it wrote, false if the key was already there. */
  put(key: string, data: Uint8Array): Promise<boolean>
  /** put in two steps, for a backend whose put waits on a slow durability step (local: fsync):
   *  resolves once `data` has been taken (the caller may reuse its memory), with `stored`, which
   *  settles as put's promise would, once the object is stored. Until then the key may still
   *  read as absent. Optional: callers fall back to put. */
  putStaged?(key: string, data: Uint8Array): Promise<{ stored: Promise<boolean> }>
  /** The whole object. Throws SluiceError ERR_NOT_FOUND if absent. Objects are small (a chunk of
   *  at most CHUNK_MAX plus overhead), so a Buffer is the right shape. With `maxBytes`, an object
   *  larger than that is refused (ERR_CORRUPT) before it is read: a planted huge file must not
   *  drive memory. With `into`, a backend that can reads the object into `into(size)` (restore's
   *  reused chunk memory) instead of a buffer of its own; callers must accept either. The
   *  buffer is the caller's: readers decrypt chunk objects in it (Repository.loadChunk). */
  get(key: string, maxBytes?: number, into?: (length: number) => Buffer): Promise<Buffer>
  has(key: string): Promise<boolean>
  /** Keys starting with `prefix`, in byte order, fetched page by page: memory does not grow
   *  with the number of keys. */
  list(prefix: string): AsyncIterable<string>
  /** Removes the key; no error if it is absent. */
  delete(key: string): Promise<void>
  /** Temporary files a killed writer left behind, older than `maxAgeMs` by mtime: counted, and
   *  removed when `remove`. Younger ones are never touched (a live writer may hold them).
   *  Backends without temporary files leave it out. */
  leftovers?(maxAgeMs: number, remove: boolean): Promise<Leftovers>
  /** Size and last-modified time of an object (the service's clock), null if absent. Optional:
   *  prune reads the age of a chunk from it and treats a storage without it as all new. */
  stat?(key: string): Promise<{ size: number; mtimeMs: number } | null>
  /** Moves `from` to `to` unless `to` exists (then `from` is just removed); false if `from` is
   *  absent. Optional: lib/storage/move.ts falls back to get, put and delete. */
  move?(from: string, to: string): Promise<boolean>
  /** Gets worth having in flight at once to keep a reader busy (restore's download), for a
   *  backend whose every request waits on a round trip (S3: S3_READ_AHEAD); absent, the
   *  reader's own default. The reader still bounds the bytes in flight. */
  readAhead?: number
  /** Bytes of RSS the backend itself takes while reading (S3: its SDK, S3_CLIENT_RESERVE), which
   *  a reader sizing its buffers to --memory leaves out; absent, none. */
  reserveBytes?: number
  /** Where this storage is, for messages. */
  describe(): string
  close(): Promise<void>
}

/** What Storage.leftovers found (and removed, when asked). */
export interface Leftovers {
  files: number
  bytes: number
}
