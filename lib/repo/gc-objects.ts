/**
 * Keys and byte layouts of the objects prune and backup leases add to a repository
 * (docs/FORMAT.md "Leases, the prune lock, collections and fossils"). Pure functions.
 *
 * record object: 0x01 || nonce(24) || XChaCha20-Poly1305(encKey, JSON, ad = 0x04 || key)
 * The storage key in the associated data binds a record to where it is stored: a lease cannot be
 * replayed under another id, nor a collection under another generation.
 */
import { open, seal } from './crypto.js'
import { SluiceError } from '../errors.js'
import { hex } from '../bytes.js'
import { OBJECT_VERSION } from './objects.js'

const AD_RECORD = 4

function recordAd(key: string): Buffer {
  return Buffer.concat([Buffer.of(AD_RECORD), Buffer.from(key, 'utf8')])
}

export function sealRecord(encKey: Uint8Array, key: string, value: unknown): Buffer {
  return seal(encKey, Buffer.from(JSON.stringify(value)), recordAd(key), Buffer.of(OBJECT_VERSION))
}

/** Opens a record; ERR_CORRUPT when it was altered, moved to another key, or is not JSON. */
export function openRecord<T>(encKey: Uint8Array, key: string, obj: Uint8Array): T {
  if (obj.length < 1 || obj[0] !== OBJECT_VERSION) throw new SluiceError('ERR_CORRUPT', `${key} has an unknown format`)
  const plain = open(encKey, obj.subarray(1), recordAd(key), key)
  try {
    return JSON.parse(plain.toString('utf8')) as T
  } catch (cause) {
    throw new SluiceError('ERR_CORRUPT', `${key} is not valid JSON`, { cause })
  }
}

/** Where prune moves an unreferenced chunk aside: fossils/<first two hex digits>/<64 hex>. */
export function fossilKey(id: Uint8Array): string {
  const h = hex(id)
  return `fossils/${h.slice(0, 2)}/${h}`
}

export function idFromFossilKey(key: string): Buffer | null {
  const m = /^fossils\/[0-9a-f]{2}\/([0-9a-f]{64})$/.exec(key)
  return m ? Buffer.from(m[1]!, 'hex') : null
}

/** Fixed-width decimal, so that byte order is numeric order in listings. */
export function pad(n: number, width: number): string {
  return String(n).padStart(width, '0')
}
