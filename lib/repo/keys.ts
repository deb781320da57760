/**
 * Key files (docs/FORMAT.md "Key files"): the master keys sealed with a key derived from one
 * password. Pure codec: no I/O.
 */
import os from 'node:os'
import { deriveKey, randomBytes, seal, SALT_BYTES, type MasterKeys } from './crypto.js'

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

export async function makeKeyFile(keys: MasterKeys, pw: string | Uint8Array, kdf: KdfParams): Promise<Buffer> {
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
