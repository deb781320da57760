// The few sodium-native 5 functions Sluice uses (@types/sodium-native is stale).
declare module 'sodium-native' {
  export const crypto_aead_xchacha20poly1305_ietf_ABYTES: number
  export const crypto_aead_xchacha20poly1305_ietf_KEYBYTES: number
  export const crypto_aead_xchacha20poly1305_ietf_NPUBBYTES: number
  export const crypto_pwhash_SALTBYTES: number
  export const crypto_pwhash_ALG_ARGON2ID13: number
  export function randombytes_buf(buf: Uint8Array): void
  export function crypto_generichash(out: Uint8Array, input: Uint8Array, key?: Uint8Array): void
  export const crypto_generichash_STATEBYTES: number
  export function crypto_generichash_init(state: Uint8Array, key: Uint8Array | null, outlen: number): void
  export function crypto_generichash_update(state: Uint8Array, input: Uint8Array): void
  export function crypto_generichash_final(state: Uint8Array, out: Uint8Array): void
  export function crypto_aead_xchacha20poly1305_ietf_encrypt(
    c: Uint8Array, m: Uint8Array, ad: Uint8Array | null, nsec: null, npub: Uint8Array, k: Uint8Array,
  ): number
  export function crypto_aead_xchacha20poly1305_ietf_decrypt(
    m: Uint8Array, nsec: null, c: Uint8Array, ad: Uint8Array | null, npub: Uint8Array, k: Uint8Array,
  ): number
  export function crypto_pwhash_async(
    out: Uint8Array, passwd: Uint8Array, salt: Uint8Array, opslimit: number, memlimit: number, alg: number,
  ): Promise<void>
  export function sodium_memzero(buf: Uint8Array): void
}
