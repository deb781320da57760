/**
 * The repository config (docs/FORMAT.md "config"). Pure codec: no I/O.
 *
 * The config is read before any key (its version says how to read the rest) but it is trusted
 * only after a key file has opened: its body is authenticated with the master encryption key,
 * so an edited or nulled chunker (which would undo the secret chunking, or drive memory) is
 * refused as ERR_CORRUPT naming the config.
 */
import { SluiceError } from '../errors.js'
import type { ChunkerParams } from '../fastcdc.js'
import { CHUNK_MAX, CHUNKER_MIN_BOUND } from '../limits.js'
import { open, seal, NONCE_BYTES, TAG_BYTES } from './crypto.js'

/** Version of the config, and so of the repository format. Version 1 had an unauthenticated
 *  config and is refused (see peekConfig). */
export const CONFIG_VERSION = 2

export interface RepoConfig {
  version: number
  /** Random repository id (hex). */
  id: string
  chunker: ChunkerParams
  metaChunker: ChunkerParams
  compression: 'zstd'
  created: string
}

/** The config as stored, before its MAC is checked. */
export interface StoredConfig {
  version: number
  /** The config body: the exact JSON text the MAC covers. */
  body: string
  mac: Buffer
}

const AD_CONFIG = 3
const MAC_BYTES = NONCE_BYTES + TAG_BYTES

function macAd(body: string): Buffer {
  return Buffer.concat([Buffer.of(AD_CONFIG), Buffer.from(body, 'utf8')])
}

/** The bytes stored under `config`: the body as a JSON string beside its MAC, keyed by encKey. */
export function encodeConfig(config: RepoConfig, encKey: Uint8Array): Buffer {
  const body = JSON.stringify(config)
  const mac = seal(encKey, Buffer.alloc(0), macAd(body))
  return Buffer.from(JSON.stringify({ version: config.version, config: body, mac: mac.toString('base64') }, null, 2) + '\n')
}

/**
 * Reads the stored config's outer layer: its version and the body with its MAC, unverified.
 * ERR_FORMAT for a version other than CONFIG_VERSION (version 1 with a message of its own),
 * ERR_CORRUPT naming the config for anything malformed.
 */
export function peekConfig(raw: Buffer, where: string): StoredConfig {
  let outer: { version?: unknown; config?: unknown; mac?: unknown } | null
  try {
    outer = JSON.parse(raw.toString('utf8')) as typeof outer
  } catch (cause) {
    throw new SluiceError('ERR_CORRUPT', `the config of ${where} is not valid JSON`, { cause })
  }
  if (typeof outer !== 'object' || outer === null || Array.isArray(outer)) {
    throw new SluiceError('ERR_CORRUPT', `the config of ${where} is not a JSON object`)
  }
  if (!Number.isSafeInteger(outer.version)) throw new SluiceError('ERR_CORRUPT', `the config of ${where} has no valid version`)
  if (outer.version === 1) {
    throw new SluiceError(
      'ERR_FORMAT',
      `repository ${where} has format 1, whose config is not authenticated; this sluice reads format ${CONFIG_VERSION} only: restore its snapshots with the sluice that made it`,
    )
  }
  if (outer.version !== CONFIG_VERSION) {
    throw new SluiceError('ERR_FORMAT', `repository format ${String(outer.version)} of ${where} is not supported (this sluice reads format ${CONFIG_VERSION})`)
  }
  const mac = typeof outer.mac === 'string' ? Buffer.from(outer.mac, 'base64') : undefined
  if (typeof outer.config !== 'string' || !mac || mac.length !== MAC_BYTES) {
    throw new SluiceError('ERR_CORRUPT', `the config of ${where} lacks its body or its MAC`)
  }
  return { version: outer.version, body: outer.config, mac }
}

function chunkerOf(v: unknown, name: string, where: string): ChunkerParams {
  const c = v as Partial<ChunkerParams> | null
  const ok =
    typeof c === 'object' && c !== null &&
    Number.isSafeInteger(c.min) && Number.isSafeInteger(c.avg) && Number.isSafeInteger(c.max) &&
    c.min! >= CHUNKER_MIN_BOUND && c.min! <= c.avg! && c.avg! <= c.max! && c.max! <= CHUNK_MAX
  if (!ok) {
    throw new SluiceError('ERR_CORRUPT', `the config of ${where} has invalid ${name} parameters ${JSON.stringify(v)} (need integers ${CHUNKER_MIN_BOUND} <= min <= avg <= max <= ${CHUNK_MAX})`)
  }
  return { min: c.min!, avg: c.avg!, max: c.max! }
}

/** Checks the MAC with the master encryption key, then the body's fields. */
export function verifyConfig(stored: StoredConfig, encKey: Uint8Array, where: string): RepoConfig {
  open(encKey, stored.mac, macAd(stored.body), `the config of ${where}`)
  let c: Partial<RepoConfig> | null
  try {
    c = JSON.parse(stored.body) as Partial<RepoConfig> | null
  } catch (cause) {
    throw new SluiceError('ERR_CORRUPT', `the config body of ${where} is not valid JSON`, { cause })
  }
  if (typeof c !== 'object' || c === null) throw new SluiceError('ERR_CORRUPT', `the config body of ${where} is not a JSON object`)
  // The outer version is not under the MAC; the body's copy is, and they must agree.
  if (c.version !== stored.version) throw new SluiceError('ERR_CORRUPT', `the config of ${where} has version ${stored.version} outside its MAC and ${String(c.version)} inside`)
  if (typeof c.id !== 'string' || !/^[0-9a-f]{32}$/.test(c.id)) throw new SluiceError('ERR_CORRUPT', `the config of ${where} has no valid id`)
  if (c.compression !== 'zstd') throw new SluiceError('ERR_FORMAT', `the config of ${where} names compression ${JSON.stringify(c.compression)} (this sluice knows "zstd")`)
  return {
    version: c.version,
    id: c.id,
    chunker: chunkerOf(c.chunker, 'chunker', where),
    metaChunker: chunkerOf(c.metaChunker, 'metaChunker', where),
    compression: c.compression,
    created: typeof c.created === 'string' ? c.created : '',
  }
}
