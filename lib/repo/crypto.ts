/**
 * Pure crypto codecs: chunk ids (keyed BLAKE2b-256), sealing with XChaCha20-Poly1305 (random
 * 192-bit nonce, so random nonces never collide in practice), and password key derivation with
 * Argon2id. No I/O, no state. See docs/FORMAT.md for the byte layouts.
 */
import sodium from 'sodium-native'
import { SluiceError } from '../errors.js'

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

/** Keyed BLAKE2b-256 fed piece by piece: `digest()` equals chunkId of the concatenation. The
 *  chunker hashes each piece as it copies it into a chunk's region, so the region itself (shared
 *  memory, which sodium-native's hash functions do not take) is never hashed. */
export interface IdHasher {
  update(piece: Uint8Array): void
  digest(): Buffer
}

export function idHasher(idKey: Uint8Array): IdHasher {
  const state = Buffer.alloc(sodium.crypto_generichash_STATEBYTES)
  sodium.crypto_generichash_init(state, idKey, ID_BYTES)
  return {
    update: piece => sodium.crypto_generichash_update(state, piece),
    digest: () => {
      const out = Buffer.allocUnsafe(ID_BYTES)
      sodium.crypto_generichash_final(state, out)
      return out
    },
  }
}

/** Seals `payload` into `dest` as nonce || ciphertext || tag (`dest` must be NONCE_BYTES +
 *  payload.length + TAG_BYTES long): the same bytes `seal` makes. `payload` may already sit at
 *  dest[NONCE_BYTES..] (sealed in place), and `dest` may be shared memory. */
export function sealInto(key: Uint8Array, dest: Uint8Array, payload: Uint8Array, ad: Uint8Array | null): void {
  if (dest.length !== NONCE_BYTES + payload.length + TAG_BYTES) throw new RangeError('sealInto: wrong destination size')
  // randombytes_buf does not take shared memory: draw the nonce into a buffer of its own.
  const nonce = Buffer.allocUnsafe(NONCE_BYTES)
  sodium.randombytes_buf(nonce)
  dest.set(nonce, 0)
  sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(dest.subarray(NONCE_BYTES), payload, ad, null, nonce, key)
}

/** Seals `plain` as nonce || ciphertext || tag, with `ad` authenticated but not stored. With
 *  `header`, the output starts with those bytes (no second copy to prepend them). */
export function seal(key: Uint8Array, plain: Uint8Array, ad: Uint8Array | null, header?: Uint8Array): Buffer {
  const h = header?.length ?? 0
  const out = Buffer.allocUnsafe(h + NONCE_BYTES + plain.length + TAG_BYTES)
  if (header) out.set(header, 0)
  sealInto(key, out.subarray(h), plain, ad)
  return out
}

/** Opens what `seal` made; throws ERR_CORRUPT when it was altered, truncated, or the key or
 *  associated data differ. */
export function open(key: Uint8Array, sealed: Uint8Array, ad: Uint8Array | null, what: string, into?: (length: number) => Buffer): Buffer {
  if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new SluiceError('ERR_CORRUPT', `${what} is truncated`)
  const nonce = sealed.subarray(0, NONCE_BYTES)
  const body = sealed.subarray(NONCE_BYTES)
  const out = into ? into(body.length - TAG_BYTES) : Buffer.allocUnsafe(body.length - TAG_BYTES)
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
