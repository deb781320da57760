/**
 * Key files (docs/FORMAT.md "Key files"): the master keys sealed with a key derived from one
 * password. Pure codec: no I/O. A key file is stored as keys/<sha256 of its bytes>, so damage
 * is told apart from a wrong password before any KDF runs.
 */
import { createHash } from 'node:crypto'
import os from 'node:os'
import { SluiceError } from '../errors.js'
import { releaseMemory } from '../memory.js'
import { KDF_MEMLIMIT_MAX, KDF_MEMLIMIT_MIN, KDF_RELEASE_MIN, KDF_OPSLIMIT_MAX, KDF_OPSLIMIT_MIN } from '../limits.js'
import { deriveKey, open, randomBytes, seal, KEY_BYTES, NONCE_BYTES, SALT_BYTES, TAG_BYTES, type MasterKeys } from './crypto.js'

/** Version of key files and snapshot roots. */
export const FORMAT_VERSION = 1

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

export const KEY_AD = Buffer.from('sluice key v1')

export interface KdfParams {
  opslimit: number
  memlimit: number
}

export function password(pw: string | Uint8Array): Buffer {
  return typeof pw === 'string' ? Buffer.from(pw, 'utf8') : Buffer.from(pw)
}

/** Throws `code` unless both parameters are integers within the bounds of lib/limits.ts. */
export function assertKdfParams(kdf: KdfParams, what: string, code: 'ERR_ARGS' | 'ERR_CORRUPT' = 'ERR_ARGS'): void {
  const { opslimit, memlimit } = kdf
  if (!Number.isSafeInteger(memlimit) || memlimit < KDF_MEMLIMIT_MIN || memlimit > KDF_MEMLIMIT_MAX) {
    throw new SluiceError(code, `${what} asks for Argon2id memlimit ${String(memlimit)}, outside ${KDF_MEMLIMIT_MIN}..${KDF_MEMLIMIT_MAX} bytes: refused`)
  }
  if (!Number.isSafeInteger(opslimit) || opslimit < KDF_OPSLIMIT_MIN || opslimit > KDF_OPSLIMIT_MAX) {
    throw new SluiceError(code, `${what} asks for Argon2id opslimit ${String(opslimit)}, outside ${KDF_OPSLIMIT_MIN}..${KDF_OPSLIMIT_MAX}: refused`)
  }
}

/** The storage key of a key file: keys/<sha256 hex of its bytes>. */
export function keyFileKey(file: Uint8Array): string {
  return `keys/${createHash('sha256').update(file).digest('hex')}`
}

/** True for a storage key that names a key file (others in keys/ are ignored). */
export function isKeyFileKey(key: string): boolean {
  return /^keys\/[0-9a-f]{64}$/.test(key)
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

function base64Field(v: unknown, bytes: number, what: string): Buffer {
  if (typeof v !== 'string' || !BASE64.test(v)) throw new SluiceError('ERR_CORRUPT', `${what} is not base64`)
  const b = Buffer.from(v, 'base64')
  if (b.length !== bytes) throw new SluiceError('ERR_CORRUPT', `${what} has ${b.length} bytes, not ${bytes}`)
  return b
}

/** A key file checked field by field, ready for its KDF. */
export interface ParsedKeyFile {
  kdf: KdfParams
  salt: Buffer
  data: Buffer
  /** Who made it, for `key list` ('' when absent). */
  created: string
  host: string
  username: string
}

/** Who a new key file says made it (default: this host and user, as restic's --host/--user). */
export interface KeyOwner {
  host?: string
  username?: string
}

/**
 * Decodes and validates the key file stored under `key`: its bytes hash to its name, its
 * fields are present and well-formed, its KDF parameters within bounds. Throws ERR_CORRUPT
 * naming the key file (ERR_FORMAT for a version this sluice does not know).
 */
export function parseKeyFile(key: string, buf: Buffer): ParsedKeyFile {
  if (keyFileKey(buf) !== key) throw new SluiceError('ERR_CORRUPT', `key file ${key} is damaged: its bytes do not hash to its name`)
  let file: Partial<KeyFile> | null
  try {
    file = JSON.parse(buf.toString('utf8')) as Partial<KeyFile> | null
  } catch (cause) {
    throw new SluiceError('ERR_CORRUPT', `key file ${key} is not valid JSON`, { cause })
  }
  if (typeof file !== 'object' || file === null || Array.isArray(file)) throw new SluiceError('ERR_CORRUPT', `key file ${key} is not a JSON object`)
  if (!Number.isSafeInteger(file.version)) throw new SluiceError('ERR_CORRUPT', `key file ${key} has no valid version`)
  if (file.version !== FORMAT_VERSION) throw new SluiceError('ERR_FORMAT', `key file ${key} has format ${String(file.version)} (this sluice reads ${FORMAT_VERSION})`)
  const kdf = file.kdf as Partial<KeyFile['kdf']> | null | undefined
  if (typeof kdf !== 'object' || kdf === null) throw new SluiceError('ERR_CORRUPT', `key file ${key} has no kdf`)
  if (typeof kdf.algorithm !== 'string' || !Number.isSafeInteger(kdf.version)) throw new SluiceError('ERR_CORRUPT', `key file ${key} has no valid kdf algorithm and version`)
  if (kdf.algorithm !== 'argon2id' || kdf.version !== 19) {
    throw new SluiceError('ERR_FORMAT', `key file ${key} uses KDF ${String(kdf.algorithm)} version ${String(kdf.version)} (this sluice knows argon2id 19)`)
  }
  const params = { opslimit: kdf.opslimit as number, memlimit: kdf.memlimit as number }
  assertKdfParams(params, `key file ${key}`, 'ERR_CORRUPT')
  const text = (field: 'created' | 'host' | 'username'): string => {
    const v = file![field]
    if (v === undefined) return ''
    if (typeof v !== 'string') throw new SluiceError('ERR_CORRUPT', `key file ${key} has a ${field} that is not a string`)
    return v
  }
  return {
    created: text('created'),
    host: text('host'),
    username: text('username'),
    kdf: params,
    salt: base64Field(kdf.salt, SALT_BYTES, `key file ${key}: kdf.salt`),
    data: base64Field(file.data, NONCE_BYTES + 3 * KEY_BYTES + TAG_BYTES, `key file ${key}: data`),
  }
}

/** Argon2id's memory comes on top of what the process holds: when it is large enough to set the
 *  peak (opening a repository), what the process holds free is given back first. */
function derive(pw: Uint8Array, salt: Uint8Array, kdf: KdfParams): Promise<Buffer> {
  if (kdf.memlimit >= KDF_RELEASE_MIN) releaseMemory()
  return deriveKey(pw, salt, kdf.opslimit, kdf.memlimit)
}

/** The master keys in `file` when `pw` opens it, else null. */
export async function openKeyFile(file: ParsedKeyFile, pw: string | Uint8Array, key: string): Promise<MasterKeys | null> {
  const kek = await derive(password(pw), file.salt, file.kdf)
  let plain: Buffer
  try {
    plain = open(kek, file.data, KEY_AD, key)
  } catch {
    return null
  }
  return {
    encKey: plain.subarray(0, KEY_BYTES),
    idKey: plain.subarray(KEY_BYTES, 2 * KEY_BYTES),
    chunkerKey: plain.subarray(2 * KEY_BYTES, 3 * KEY_BYTES),
  }
}

export async function makeKeyFile(keys: MasterKeys, pw: string | Uint8Array, kdf: KdfParams, owner: KeyOwner = {}): Promise<Buffer> {
  assertKdfParams(kdf, 'the KDF parameters')
  const salt = randomBytes(SALT_BYTES)
  const kek = await derive(password(pw), salt, kdf)
  const data = seal(kek, Buffer.concat([keys.encKey, keys.idKey, keys.chunkerKey]), KEY_AD)
  const file: KeyFile = {
    version: FORMAT_VERSION,
    kdf: { algorithm: 'argon2id', version: 19, opslimit: kdf.opslimit, memlimit: kdf.memlimit, salt: salt.toString('base64') },
    data: data.toString('base64'),
    created: new Date().toISOString(),
    host: owner.host ?? os.hostname(),
    username: owner.username ?? os.userInfo().username,
  }
  return Buffer.from(JSON.stringify(file, null, 2) + '\n')
}
