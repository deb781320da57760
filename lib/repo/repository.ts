/**
 * A repository over a Storage: config, key files, chunk objects and snapshot roots
 * (docs/FORMAT.md). Knows the format, not the pipeline: stages receive the small interfaces
 * they need (ChunkIndex, ChunkStore, ChunkLoader) from here.
 */
import { createHash } from 'node:crypto'
import os from 'node:os'
import type { Storage } from '../storage/storage.js'
import { SluiceError } from '../errors.js'
import { chunkId, idHasher, deriveKey, newMasterKeys, open, randomBytes, seal, KEY_BYTES, SALT_BYTES, type IdHasher, type MasterKeys } from './crypto.js'
import { chunkKey, openChunk, openSnapshot, sealSnapshot } from './objects.js'
import { readFossil } from './fossils.js'
import { gearTable, type ChunkerParams } from '../fastcdc.js'
import { hex } from '../bytes.js'
import type { BackupStats } from '../stats.js'
import {
  CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, KDF_MEMLIMIT, KDF_OPSLIMIT, META_CHUNK_AVG, META_CHUNK_MAX, META_CHUNK_MIN,
} from '../limits.js'

/** Repository format version; bump only with a reader for the old one or a clear refusal. */
export const FORMAT_VERSION = 1

export interface RepoConfig {
  version: number
  /** Random repository id (hex). */
  id: string
  chunker: ChunkerParams
  metaChunker: ChunkerParams
  compression: 'zstd'
  created: string
}

/** A key file: the master keys sealed with a key derived from one password. */
export interface KeyFile {
  version: number
  kdf: { algorithm: 'argon2id'; version: 19; opslimit: number; memlimit: number; salt: string }
  /** base64 of nonce || XChaCha20-Poly1305(kek, encKey || idKey || chunkerKey, ad = "sluice key v1") */
  data: string
  created: string
  host: string
  username: string
}

export type SnapshotStats = BackupStats

export interface SnapshotRoot {
  version: number
  time: string
  host: string
  username: string
  paths: string[]
  tags: string[]
  parent?: string
  /** Root of the metadata id tree: a node of `depth` levels above the metadata chunks. */
  tree: { root: string; depth: number }
  stats: SnapshotStats
  program: string
}

export const PROGRAM = 'sluice 0.1.0'
const KEY_AD = Buffer.from('sluice key v1')

export interface KdfParams {
  opslimit: number
  memlimit: number
}

function password(pw: string | Uint8Array): Buffer {
  return typeof pw === 'string' ? Buffer.from(pw, 'utf8') : Buffer.from(pw)
}

async function makeKeyFile(keys: MasterKeys, pw: string | Uint8Array, kdf: KdfParams): Promise<Buffer> {
  const salt = randomBytes(SALT_BYTES)
  const kek = await deriveKey(password(pw), salt, kdf.opslimit, kdf.memlimit)
  const data = seal(kek, Buffer.concat([keys.encKey, keys.idKey, keys.chunkerKey]), KEY_AD)
  const file: KeyFile = {
    version: FORMAT_VERSION,
    kdf: { algorithm: 'argon2id', version: 19, opslimit: kdf.opslimit, memlimit: kdf.memlimit, salt: salt.toString('base64') },
    data: data.toString('base64'),
    created: new Date().toISOString(),
    host: os.hostname(),
    username: os.userInfo().username,
  }
  return Buffer.from(JSON.stringify(file, null, 2) + '\n')
}

function parseJson<T>(buf: Buffer, what: string): T {
  try {
    return JSON.parse(buf.toString('utf8')) as T
  } catch (cause) {
    throw new SluiceError('ERR_CORRUPT', `${what} is not valid JSON`, { cause })
  }
}

/** Creates a repository in an empty storage. */
export async function initRepository(
  storage: Storage,
  pw: string | Uint8Array,
  opts: { kdf?: KdfParams; chunker?: ChunkerParams } = {},
): Promise<Repository> {
  if (await storage.has('config')) throw new SluiceError('ERR_REPO_EXISTS', `a repository already exists at ${storage.describe()}`)
  const config: RepoConfig = {
    version: FORMAT_VERSION,
    id: randomBytes(16).toString('hex'),
    chunker: opts.chunker ?? { min: CHUNK_MIN, avg: CHUNK_AVG, max: CHUNK_MAX },
    metaChunker: { min: META_CHUNK_MIN, avg: META_CHUNK_AVG, max: META_CHUNK_MAX },
    compression: 'zstd',
    created: new Date().toISOString(),
  }
  const keys = newMasterKeys()
  const keyFile = await makeKeyFile(keys, pw, opts.kdf ?? { opslimit: KDF_OPSLIMIT, memlimit: KDF_MEMLIMIT })
  await storage.put(`keys/${createHash('sha256').update(keyFile).digest('hex')}`, keyFile)
  // config last: a storage with a config is a complete repository.
  await storage.put('config', Buffer.from(JSON.stringify(config, null, 2) + '\n'))
  return new Repository(storage, config, keys)
}

/** Opens a repository, trying each key file with the password. */
export async function openRepository(storage: Storage, pw: string | Uint8Array): Promise<Repository> {
  let raw: Buffer
  try {
    raw = await storage.get('config')
  } catch (err) {
    if (err instanceof SluiceError && err.code === 'ERR_NOT_FOUND') {
      throw new SluiceError('ERR_REPO_NOT_FOUND', `no repository at ${storage.describe()}`)
    }
    throw err
  }
  const config = parseJson<RepoConfig>(raw, 'config')
  if (config.version !== FORMAT_VERSION) {
    throw new SluiceError('ERR_FORMAT', `repository format ${config.version} is not supported (this sluice reads format ${FORMAT_VERSION})`)
  }
  let tried = 0
  for await (const key of storage.list('keys/')) {
    const file = parseJson<KeyFile>(await storage.get(key), key)
    if (file.version !== FORMAT_VERSION || file.kdf?.algorithm !== 'argon2id') continue
    tried++
    const kek = await deriveKey(password(pw), Buffer.from(file.kdf.salt, 'base64'), file.kdf.opslimit, file.kdf.memlimit)
    let plain: Buffer
    try {
      plain = open(kek, Buffer.from(file.data, 'base64'), KEY_AD, key)
    } catch {
      continue
    }
    const keys: MasterKeys = {
      encKey: plain.subarray(0, KEY_BYTES),
      idKey: plain.subarray(KEY_BYTES, 2 * KEY_BYTES),
      chunkerKey: plain.subarray(2 * KEY_BYTES, 3 * KEY_BYTES),
    }
    return new Repository(storage, config, keys)
  }
  if (tried === 0) throw new SluiceError('ERR_CORRUPT', `repository at ${storage.describe()} has no key files`)
  throw new SluiceError('ERR_WRONG_PASSWORD', 'wrong password: no key file opens with it')
}

/** A snapshot as listed: its id and its root. */
export interface SnapshotInfo {
  id: string
  snap: SnapshotRoot
}

export class Repository {
  readonly gear: Int32Array

  constructor(readonly storage: Storage, readonly config: RepoConfig, readonly keys: MasterKeys) {
    this.gear = gearTable(keys.chunkerKey)
  }

  /** Adds a key file for another password. */
  async addKey(pw: string | Uint8Array, kdf: KdfParams = { opslimit: KDF_OPSLIMIT, memlimit: KDF_MEMLIMIT }): Promise<string> {
    const file = await makeKeyFile(this.keys, pw, kdf)
    const id = createHash('sha256').update(file).digest('hex')
    await this.storage.put(`keys/${id}`, file)
    return id
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

  /** The plaintext of a chunk; ERR_MISSING when it is not stored, ERR_CORRUPT when altered. */
  async loadChunk(id: Uint8Array): Promise<Buffer> {
    let obj: Buffer
    try {
      obj = await this.storage.get(chunkKey(id))
    } catch (err) {
      if (!(err instanceof SluiceError && err.code === 'ERR_NOT_FOUND')) throw err
      // Moved aside by a prune's collection (lib/repo/fossils.ts): readers still find it.
      const fossil = await readFossil(this.storage, id)
      if (!fossil) throw new SluiceError('ERR_MISSING', `chunk ${hex(id)} is missing from the repository`, { cause: err })
      obj = fossil
    }
    return openChunk(this.keys.encKey, id, obj)
  }

  async saveSnapshot(snap: SnapshotRoot): Promise<string> {
    const json = Buffer.from(JSON.stringify(snap))
    const id = this.chunkId(json)
    await this.storage.put(`snapshots/${hex(id)}`, sealSnapshot(this.keys.encKey, id, json))
    return hex(id)
  }

  async loadSnapshot(id: string): Promise<SnapshotRoot> {
    let obj: Buffer
    try {
      obj = await this.storage.get(`snapshots/${id}`)
    } catch (err) {
      if (err instanceof SluiceError && err.code === 'ERR_NOT_FOUND') {
        throw new SluiceError('ERR_SNAPSHOT_NOT_FOUND', `no snapshot ${id}`)
      }
      throw err
    }
    const snap = parseJson<SnapshotRoot>(openSnapshot(this.keys.encKey, Buffer.from(id, 'hex'), obj), `snapshot ${id}`)
    if (snap.version !== FORMAT_VERSION) throw new SluiceError('ERR_FORMAT', `snapshot ${id.slice(0, 8)} has format ${snap.version}`)
    return snap
  }

  /** Every snapshot, one at a time, in id order. */
  async *snapshots(): AsyncIterable<SnapshotInfo> {
    for await (const key of this.storage.list('snapshots/')) {
      const id = key.slice('snapshots/'.length)
      if (!/^[0-9a-f]{64}$/.test(id)) continue
      yield { id, snap: await this.loadSnapshot(id) }
    }
  }

  /**
   * Resolves `latest` (newest by time, optionally among those matching `filter`) or an id prefix
   * of at least 4 hex digits. Scans snapshot roots one at a time.
   */
  async findSnapshot(ref: string, filter?: (s: SnapshotRoot) => boolean): Promise<SnapshotInfo> {
    if (ref === 'latest') {
      let best: SnapshotInfo | undefined
      for await (const s of this.snapshots()) {
        if (filter && !filter(s.snap)) continue
        if (!best || s.snap.time > best.snap.time) best = s
      }
      if (!best) throw new SluiceError('ERR_SNAPSHOT_NOT_FOUND', 'the repository has no snapshots yet')
      return best
    }
    if (!/^[0-9a-f]{1,64}$/.test(ref)) throw new SluiceError('ERR_ARGS', `"${ref}" is not a snapshot id or "latest"`)
    let found: string | undefined
    for await (const key of this.storage.list(`snapshots/${ref}`)) {
      if (found) throw new SluiceError('ERR_AMBIGUOUS', `snapshot id prefix ${ref} matches more than one snapshot`)
      found = key.slice('snapshots/'.length)
    }
    if (!found) throw new SluiceError('ERR_SNAPSHOT_NOT_FOUND', `no snapshot matches ${ref}`)
    return { id: found, snap: await this.loadSnapshot(found) }
  }

  async close(): Promise<void> {
    await this.storage.close()
  }
}

