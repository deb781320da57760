/**
 * A repository over a Storage: config, key files, chunk objects and snapshot roots
 * (docs/FORMAT.md). Knows the format, not the pipeline: stages receive the small interfaces
 * they need (ChunkIndex, ChunkStore, ChunkLoader) from here.
 */
import type { Leftovers, Storage } from '../storage/storage.js'
import { SluiceError } from '../errors.js'
import { chunkId, idHasher, newMasterKeys, randomBytes, type IdHasher, type MasterKeys } from './crypto.js'
import { assertKdfParams, FORMAT_VERSION, isKeyFileKey, keyFileKey, makeKeyFile, openKeyFile, parseKeyFile, password, type KdfParams, type KeyOwner } from './keys.js'
import { CONFIG_VERSION, encodeConfig, peekConfig, verifyConfig, type RepoConfig } from './config.js'
import { isSnapshotId, parseSnapshotRoot, type SnapshotRoot } from './snapshots.js'
import { chunkKey, idMismatch, openChunk, openChunkPooled, openSnapshot, sealSnapshot, CHUNK_OBJECT_OVERHEAD } from './objects.js'
import { PoolDecoder } from '../native.js'
import { ByteGate } from '../flow.js'
import { readFossil } from './fossils.js'
import { gearTable, type ChunkerParams } from '../fastcdc.js'
import { hex } from '../bytes.js'
import {
  CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, DECODE_INFLIGHT_BYTES, KDF_MEMLIMIT, KDF_OPSLIMIT, META_CHUNK_AVG, META_CHUNK_MAX, META_CHUNK_MIN, KEY_FILES_MAX, SMALL_OBJECT_MAX, SNAPSHOT_WARNED_CAP, TEMP_LEFTOVER_AGE_MS,
} from '../limits.js'

export { FORMAT_VERSION, type KdfParams, type KeyFile } from './keys.js'
export { CONFIG_VERSION, type RepoConfig } from './config.js'
export { PROGRAM, type SnapshotRoot, type SnapshotStats } from './snapshots.js'

/** What opening a repository may report without failing (a damaged key file, an unreadable
 *  snapshot): one SluiceError per problem, named. */
export type RepoWarning = (err: SluiceError) => void

export interface OpenOptions {
  /** Called for each damaged key file skipped and each unreadable snapshot skipped (default:
   *  process.emitWarning). */
  onWarning?: RepoWarning
}

function defaultWarning(err: SluiceError): void {
  process.emitWarning(`${err.code}: ${err.message}`)
}

/**
 * Creates a repository in an empty storage. Atomic: everything is computed first, then the
 * config is stored with put-if-absent (the one step two racing inits can both try: exactly one
 * wins, the other gets ERR_REPO_EXISTS having written nothing), then the key file. A kill
 * between the two leaves a config without a key, which open reports as an interrupted init.
 */
export async function initRepository(
  storage: Storage,
  pw: string | Uint8Array,
  opts: { kdf?: KdfParams; chunker?: ChunkerParams; copyChunkerParams?: Repository } & OpenOptions = {},
): Promise<Repository> {
  if (password(pw).length === 0) throw new SluiceError('ERR_ARGS', 'empty password: a repository needs one')
  const kdf = opts.kdf ?? { opslimit: KDF_OPSLIMIT, memlimit: KDF_MEMLIMIT }
  assertKdfParams(kdf, 'the KDF parameters')
  const from = opts.copyChunkerParams
  const exists = () => new SluiceError('ERR_REPO_EXISTS', `a repository already exists at ${storage.describe()}`)
  // Cheap early answer; the put-if-absent below is the arbiter.
  if (await storage.has('config')) throw exists()
  const config: RepoConfig = {
    version: CONFIG_VERSION,
    id: randomBytes(16).toString('hex'),
    chunker: from?.config.chunker ?? opts.chunker ?? { min: CHUNK_MIN, avg: CHUNK_AVG, max: CHUNK_MAX },
    metaChunker: from?.config.metaChunker ?? { min: META_CHUNK_MIN, avg: META_CHUNK_AVG, max: META_CHUNK_MAX },
    compression: 'zstd',
    created: new Date().toISOString(),
  }
  // --copy-chunker-params: the source's chunker params, gear key and id key, so the same
  // content gets the same chunks and ids in both (copy then moves chunks as they are); a new
  // encryption key all the same.
  const keys = from ? { ...newMasterKeys(), idKey: from.keys.idKey, chunkerKey: from.keys.chunkerKey } : newMasterKeys()
  const encoded = encodeConfig(config, keys.encKey)
  // Validated as a reader will see it: init never writes a config that open would refuse.
  verifyConfig(peekConfig(encoded, storage.describe()), keys.encKey, storage.describe())
  const keyFile = await makeKeyFile(keys, pw, kdf)
  if (!(await storage.put('config', encoded))) throw exists()
  // On a service that ignores put-if-absent (If-None-Match) a racing init may have replaced our
  // config: read it back, so the loser stops here instead of adding a key to the winner's.
  if (!(await storage.get('config', SMALL_OBJECT_MAX)).equals(encoded)) throw exists()
  await storage.put(keyFileKey(keyFile), keyFile)
  return new Repository(storage, config, keys, { ...opts, keyId: keyFileKey(keyFile).slice('keys/'.length) })
}

/**
 * Opens a repository: reads the config's version, tries each key file with the password, then
 * checks the config's MAC with the master key. Names in keys/ that are not key ids are ignored;
 * a damaged key file (or one whose KDF parameters are out of bounds) is reported through
 * onWarning and skipped, and the others are tried.
 */
export async function openRepository(storage: Storage, pw: string | Uint8Array, opts: OpenOptions = {}): Promise<Repository> {
  const where = storage.describe()
  let raw: Buffer
  try {
    raw = await storage.get('config', SMALL_OBJECT_MAX)
  } catch (err) {
    if (err instanceof SluiceError && err.code === 'ERR_NOT_FOUND') {
      throw new SluiceError('ERR_REPO_NOT_FOUND', `no repository at ${where}`)
    }
    throw err
  }
  const stored = peekConfig(raw, where)
  const onWarning = opts.onWarning ?? defaultWarning
  let tried = 0
  let damaged = 0
  let firstDamage = ''
  let configError: SluiceError | undefined
  /** Key files that open but whose keys do not authenticate the config (few: each costs a KDF). */
  const foreign: string[] = []
  let examined = 0
  for await (const key of storage.list('keys/')) {
    if (!isKeyFileKey(key)) continue
    if (++examined > KEY_FILES_MAX) {
      throw configError ?? new SluiceError('ERR_WRONG_PASSWORD', `wrong password: none of the first ${KEY_FILES_MAX} key files opens with it (${damaged} of them damaged)`)
    }
    let file
    try {
      file = parseKeyFile(key, await storage.get(key, SMALL_OBJECT_MAX))
    } catch (err) {
      // Gone since the listing (another process removed it): not a key any more.
      if (err instanceof SluiceError && err.code === 'ERR_NOT_FOUND') continue
      if (!(err instanceof SluiceError) || (err.code !== 'ERR_CORRUPT' && err.code !== 'ERR_FORMAT')) throw err
      damaged++
      firstDamage ||= err.message
      onWarning(err)
      continue
    }
    tried++
    const keys = await openKeyFile(file, pw, key)
    if (!keys) continue
    let config: RepoConfig
    try {
      config = verifyConfig(stored, keys.encKey, where)
    } catch (err) {
      // Either the config was altered or this key file is another repository's (planted, or
      // copied in by mistake) and happens to open with the same password: try the others.
      if (!(err instanceof SluiceError) || err.code !== 'ERR_CORRUPT') throw err
      configError ??= err
      foreign.push(key)
      continue
    }
    for (const k of foreign) {
      onWarning(new SluiceError('ERR_CORRUPT', `key file ${k} opens with this password but belongs to another repository (its master key does not authenticate the config): skipped`))
    }
    return new Repository(storage, config, keys, { ...opts, keyId: key.slice('keys/'.length) })
  }
  // No key file authenticates the config, though one opened: the config is what was altered.
  if (configError) throw configError
  if (tried === 0 && damaged > 0) {
    throw new SluiceError('ERR_CORRUPT', `repository at ${where} has no usable key file: ${damaged} damaged (${firstDamage})`)
  }
  if (tried === 0) {
    throw new SluiceError('ERR_CORRUPT', `repository at ${where} has a config but no key file (an init killed before it wrote its key leaves this; such a repository holds nothing)`)
  }
  const skipped = damaged > 0 ? ` (${damaged} damaged key file${damaged > 1 ? 's' : ''} skipped)` : ''
  throw new SluiceError('ERR_WRONG_PASSWORD', `wrong password: no key file opens with it${skipped}`)
}

/** A snapshot as listed: its id and its root. */
export interface SnapshotInfo {
  id: string
  snap: SnapshotRoot
}

/** Reused memory to decode chunks into (transforms/restore/chunk-pool.ts is the one there is). */
export interface ChunkMemory {
  /** A buffer of exactly `length` bytes. */
  take(length: number): Buffer
  /** Hands `b` back: nothing uses it any more. Buffers the pool did not make are ignored. */
  give(b: Uint8Array): void
  owns(b: Uint8Array): boolean
  /** Counts bytes of a buffer that was not the pool's and now dies. */
  addGarbage(bytes: number): void
}

export class Repository {
  readonly gear: Int32Array
  /** Where damaged snapshots (and key files, while opening) are reported. */
  onWarning: RepoWarning
  /** Ids of unreadable snapshots already reported, so each is named once (capped). */
  private readonly warned = new Set<string>()
  /** The id of the key file this repository was opened with (its name under keys/). */
  readonly keyId: string

  constructor(readonly storage: Storage, readonly config: RepoConfig, readonly keys: MasterKeys, opts: OpenOptions & { keyId?: string } = {}) {
    this.gear = gearTable(keys.chunkerKey)
    this.onWarning = opts.onWarning ?? defaultWarning
    this.keyId = opts.keyId ?? ''
  }

  /** Adds a key file for another password; returns its id. */
  async addKey(pw: string | Uint8Array, kdf: KdfParams = { opslimit: KDF_OPSLIMIT, memlimit: KDF_MEMLIMIT }, owner: KeyOwner = {}): Promise<string> {
    if (password(pw).length === 0) throw new SluiceError('ERR_ARGS', 'empty password: a key needs one')
    const file = await makeKeyFile(this.keys, pw, kdf, owner)
    const key = keyFileKey(file)
    await this.storage.put(key, file)
    return key.slice('keys/'.length)
  }

  chunkId(data: Uint8Array): Buffer {
    return chunkId(this.keys.idKey, data)
  }

  /** chunkId fed piece by piece. */
  idHasher(): IdHasher {
    return idHasher(this.keys.idKey)
  }

  hasChunk(id: Uint8Array): Promise<boolean> {
    return this.storage.has(chunkKey(id))
  }

  putChunk(id: Uint8Array, obj: Uint8Array): Promise<boolean> {
    return this.storage.put(chunkKey(id), obj)
  }

  /** putChunk in two steps (Storage.putStaged): resolves once `obj` may be reused, with `stored`
   *  settling when the chunk is stored. A storage without putStaged stores it first. */
  async stageChunk(id: Uint8Array, obj: Uint8Array): Promise<{ stored: Promise<boolean> }> {
    if (this.storage.putStaged) return this.storage.putStaged(chunkKey(id), obj)
    return { stored: Promise.resolve(await this.storage.put(chunkKey(id), obj)) }
  }

  /** Opens chunks on the thread pool (lib/native.ts PoolDecoder); undefined when the addon
   *  cannot be loaded (then openChunk on this thread: the same bytes); null until first asked. */
  private decoder: PoolDecoder | undefined | null = null
  /** The compressed chunks' plaintext decoding on the pool at once (DECODE_INFLIGHT_BYTES). */
  private readonly decodeGate = new ByteGate(DECODE_INFLIGHT_BYTES)

  /**
   * The plaintext of a chunk; ERR_MISSING when it is not stored, ERR_CORRUPT when altered (and,
   * with `verify`, when it does not hash to its id). Decrypted, decompressed and checked on the
   * thread pool when the addon is built (lib/repo/objects.ts openChunkPooled), this thread free
   * meanwhile. With `pool` (restore's download), the object is read into and the plaintext
   * decoded into the pool's reused memory, and the object's buffer goes back to it (unless the
   * plaintext lies in it: a stored chunk decrypted in place). With `get`, the object is read
   * through it instead of the storage (restore's spill-cache.ts); it is opened all the same.
   */
  async loadChunk(id: Uint8Array, pool?: ChunkMemory, opts: { verify?: boolean; get?: Storage['get'] } = {}): Promise<Buffer> {
    let obj: Buffer
    try {
      // No honest chunk object is larger (content and metadata chunks, tree nodes alike).
      const key = chunkKey(id)
      const max = CHUNK_MAX + CHUNK_OBJECT_OVERHEAD
      obj = await (opts.get ? opts.get(key, max, pool?.take) : this.storage.get(key, max, pool?.take))
    } catch (err) {
      if (!(err instanceof SluiceError && err.code === 'ERR_NOT_FOUND')) throw err
      // Moved aside by a prune's collection (lib/repo/fossils.ts): readers still find it.
      const fossil = await readFossil(this.storage, id)
      if (!fossil) throw new SluiceError('ERR_MISSING', `chunk ${hex(id)} is missing from the repository`, { cause: err })
      obj = fossil
    }
    if (this.decoder === null) this.decoder = PoolDecoder.of(this.keys.encKey, this.keys.idKey)
    const decoder = this.decoder
    const verifyWith = opts.verify ? this.keys.idKey : undefined
    if (pool && !pool.owns(obj)) pool.addGarbage(obj.length)
    if (decoder) {
      let plain: Buffer
      try {
        plain = await openChunkPooled(decoder, id, obj, { gate: this.decodeGate, ...(pool ? { alloc: pool.take } : {}), ...(verifyWith ? { verifyWith } : {}) })
      } catch (err) {
        pool?.give(obj)
        throw err
      }
      if (pool && plain.buffer !== obj.buffer) pool.give(obj)
      return plain
    }
    let plain: Buffer
    try {
      plain = openChunk(this.keys.encKey, id, obj, pool?.take)
    } finally {
      pool?.give(obj)
    }
    if (verifyWith && !this.chunkId(plain).equals(id)) throw idMismatch(id)
    return plain
  }

  async saveSnapshot(snap: SnapshotRoot): Promise<string> {
    const json = Buffer.from(JSON.stringify(snap))
    const id = this.chunkId(json)
    await this.storage.put(`snapshots/${hex(id)}`, sealSnapshot(this.keys.encKey, id, json))
    return hex(id)
  }

  /** A snapshot root: ERR_SNAPSHOT_NOT_FOUND when absent, ERR_CORRUPT naming it when it does
   *  not authenticate or decode, ERR_FORMAT for an unknown version. */
  async loadSnapshot(id: string): Promise<SnapshotRoot> {
    if (!isSnapshotId(id)) throw new SluiceError('ERR_ARGS', `"${id}" is not a snapshot id`)
    let obj: Buffer
    try {
      obj = await this.storage.get(`snapshots/${id}`, SMALL_OBJECT_MAX)
    } catch (err) {
      if (err instanceof SluiceError && err.code === 'ERR_NOT_FOUND') {
        throw new SluiceError('ERR_SNAPSHOT_NOT_FOUND', `no snapshot ${id}`)
      }
      throw err
    }
    return parseSnapshotRoot(openSnapshot(this.keys.encKey, Buffer.from(id, 'hex'), obj), id, FORMAT_VERSION)
  }

  /**
   * Every readable snapshot, one at a time, in id order. A snapshot that does not authenticate
   * or decode (ERR_CORRUPT, ERR_FORMAT) is skipped and handed to `onUnreadable` (default: named
   * once through onWarning), as restic's check does (its snapshots and latest stop there); one
   * removed since the listing is skipped quietly;
   * storage failures end the listing. Names under snapshots/ that are not ids are ignored.
   */
  async *snapshots(onUnreadable?: (id: string, err: SluiceError) => void): AsyncIterable<SnapshotInfo> {
    for await (const key of this.storage.list('snapshots/')) {
      const id = key.slice('snapshots/'.length)
      if (!isSnapshotId(id)) continue
      let snap: SnapshotRoot
      try {
        snap = await this.loadSnapshot(id)
      } catch (err) {
        if (err instanceof SluiceError && err.code === 'ERR_SNAPSHOT_NOT_FOUND') continue
        if (!(err instanceof SluiceError) || (err.code !== 'ERR_CORRUPT' && err.code !== 'ERR_FORMAT')) throw err
        if (onUnreadable) onUnreadable(id, err)
        else this.warnUnreadable(id, err)
        continue
      }
      yield { id, snap }
    }
  }

  private warnUnreadable(id: string, err: SluiceError): void {
    if (this.warned.has(id)) return
    if (this.warned.size < SNAPSHOT_WARNED_CAP) this.warned.add(id)
    this.onWarning(new SluiceError(err.code, `skipped unreadable snapshot ${id}: ${err.message}`, { cause: err }))
  }

  /**
   * Resolves `latest` (newest by time, optionally among those matching `filter`) or an id prefix
   * (1 to 64 hex digits). Scans snapshot roots one at a time.
   */
  async findSnapshot(ref: string, filter?: (s: SnapshotRoot) => boolean): Promise<SnapshotInfo> {
    if (ref === 'latest') {
      let best: SnapshotInfo | undefined
      let skipped = 0
      const unreadable = (id: string, err: SluiceError) => {
        skipped++
        this.warnUnreadable(id, err)
      }
      for await (const s of this.snapshots(unreadable)) {
        if (filter && !filter(s.snap)) continue
        if (!best || s.snap.time > best.snap.time) best = s
      }
      if (!best && skipped > 0) throw new SluiceError('ERR_SNAPSHOT_NOT_FOUND', `no readable snapshot${filter ? ' matches' : ''}: ${skipped} unreadable skipped`)
      if (!best) throw new SluiceError('ERR_SNAPSHOT_NOT_FOUND', 'the repository has no snapshots yet')
      return best
    }
    if (!/^[0-9a-f]{1,64}$/.test(ref)) throw new SluiceError('ERR_ARGS', `"${ref}" is not a snapshot id or "latest"`)
    let found: string | undefined
    for await (const key of this.storage.list(`snapshots/${ref}`)) {
      if (!isSnapshotId(key.slice('snapshots/'.length))) continue
      if (found) throw new SluiceError('ERR_AMBIGUOUS', `snapshot id prefix ${ref} matches more than one snapshot`)
      found = key.slice('snapshots/'.length)
    }
    if (!found) throw new SluiceError('ERR_SNAPSHOT_NOT_FOUND', `no snapshot matches ${ref}`)
    return { id: found, snap: await this.loadSnapshot(found) }
  }

  /** Temporary files of killed writers older than `maxAgeMs` (default TEMP_LEFTOVER_AGE_MS):
   *  counted, and removed when `remove` (backup does, before it writes). */
  async leftovers(remove: boolean, maxAgeMs = TEMP_LEFTOVER_AGE_MS): Promise<Leftovers> {
    return this.storage.leftovers ? this.storage.leftovers(maxAgeMs, remove) : { files: 0, bytes: 0 }
  }

  async close(): Promise<void> {
    await this.storage.close()
  }
}

