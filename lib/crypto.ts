/**
 * Pure crypto codecs: chunk ids (keyed BLAKE2b-256), sealing with XChaCha20-Poly1305 (random
 * 192-bit nonce, so random nonces never collide in practice), and password key derivation with
 * Argon2id. No I/O, no state. See docs/FORMAT.md for the byte layouts.
 */
import sodium from 'sodium-native'
import { SluiceError } from './errors.js'

export const KEY_BYTES = 32
export const ID_BYTES = 32
export const NONCE_BYTES = 24
export const TAG_BYTES = 16

/** The three secrets of a repository, all random, sealed together in each key file. */
export interface MasterKeys {
  /** Seals chunk objects and snapshot roots. */
  encKey: Buffer
  /** Keys the BLAKE2b ids, so an id leaks nothing about content to someone without the key. */
  idKey: Buffer
  /** Seeds the chunker's gear table, so chunk boundaries leak nothing about content. */
  chunkerKey: Buffer
}

export function randomBytes(n: number): Buffer {
  const b = Buffer.alloc(n)
  sodium.randombytes_buf(b)
  return b
}

export function newMasterKeys(): MasterKeys {
  return { encKey: randomBytes(KEY_BYTES), idKey: randomBytes(KEY_BYTES), chunkerKey: randomBytes(KEY_BYTES) }
}

/** Keyed BLAKE2b-256 of `data`: the id of a chunk (and of snapshot roots). */
export function chunkId(idKey: Uint8Array, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(ID_BYTES)
  sodium.crypto_generichash(out, data, idKey)
  return out
}

/** Seals `plain` as nonce || ciphertext || tag, with `ad` authenticated but not stored. With
 *  `header`, the output starts with those bytes (no second copy to prepend them). */
export function seal(key: Uint8Array, plain: Uint8Array, ad: Uint8Array | null, header?: Uint8Array): Buffer {
  const h = header?.length ?? 0
  const out = Buffer.allocUnsafe(h + NONCE_BYTES + plain.length + TAG_BYTES)
  if (header) out.set(header, 0)
  const nonce = out.subarray(h, h + NONCE_BYTES)
  sodium.randombytes_buf(nonce)
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(out.subarray(h + NONCE_BYTES), plain, ad, null, nonce, key)
  return out
}

/** Opens what `seal` made; throws ERR_CORRUPT when it was altered, truncated, or the key or
 *  associated data differ. */
export function open(key: Uint8Array, sealed: Uint8Array, ad: Uint8Array | null, what: string): Buffer {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new SluiceError('ERR_CORRUPT', `${what} is truncated`)
  const nonce = sealed.subarray(0, NONCE_BYTES)
  const body = sealed.subarray(NONCE_BYTES)
  const out = Buffer.allocUnsafe(body.length - TAG_BYTES)
  try {
    sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(out, null, body, ad, nonce, key)
  } catch (cause) {
    throw new SluiceError('ERR_CORRUPT', `${what} failed authentication`, { cause })
  }
  return out
}

/** Argon2id (version 1.3) of the password; runs on libuv's thread pool, off the main thread. */
export async function deriveKey(password: Uint8Array, salt: Uint8Array, opslimit: number, memlimit: number): Promise<Buffer> {
  const out = Buffer.alloc(KEY_BYTES)
  await sodium.crypto_pwhash_async(out, password, salt, opslimit, memlimit, sodium.crypto_pwhash_ALG_ARGON2ID13)
  return out
}

export const SALT_BYTES = 16
