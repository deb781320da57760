/**
 * Repository locations as the user writes them, and the Storage each one opens:
 *
 *   /abs/path, relative/path, ./x:y     a local directory
 *   local:PATH                          a local directory (any PATH, colons included)
 *   s3:BUCKET[/PREFIX]                  AWS S3 (also s3://BUCKET[/PREFIX])
 *   s3:http(s)://HOST[:PORT]/BUCKET[/PREFIX]
 *                                       an S3-compatible service (path-style addressing unless
 *                                       told otherwise: most such services have no wildcard DNS)
 *
 * S3 storages are wrapped in the retry wrapper (retry.ts) with S3's policy from lib/limits.ts;
 * any storage in the rate limiter (limit.ts) when a limit is given.
 */
import { resolve } from 'node:path'
import { SluiceError } from '../errors.js'
import type { Storage } from './storage.js'
import { createLocalStorage } from './local.js'
import type { S3Options } from './s3.js'
import { lazyStorage } from './lazy.js'
import { withRetry, type RetryOptions } from './retry.js'
import { withLimit } from './limit.js'
import {
  S3_BACKOFF_BASE_MS,
  S3_BACKOFF_CAP_MS,
  S3_MAX_ATTEMPTS,
  S3_CLIENT_RESERVE,
  S3_READ_AHEAD,
  S3_UNREACHABLE_ATTEMPTS,
  S3_UNREACHABLE_BACKOFF_CAP_MS,
} from '../limits.js'

/** A parsed location: what openStorage would open. */
export type Location = { kind: 'local'; dir: string } | { kind: 's3'; options: S3Options }

/** Options that are not part of the location string. */
export interface LocationOptions {
  /** Force (true) or forbid (false) path-style S3 addressing; default: on for custom endpoints,
   *  off for AWS. */
  s3PathStyle?: boolean
  /** --limit-upload / --limit-download, in bytes per second (limit.ts). */
  uploadBytesPerSecond?: number
  downloadBytesPerSecond?: number
}

const USAGE = 'use a path, local:PATH, s3:BUCKET/PREFIX or s3:http(s)://HOST:PORT/BUCKET/PREFIX'

/** Bucket names as S3-compatible services accept them (AWS is stricter; it will say so). */
const BUCKET = /^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$/

function splitBucket(rest: string, location: string): { bucket: string; prefix: string } {
  const trimmed = rest.replace(/^\/+/, '')
  const slash = trimmed.indexOf('/')
  const bucket = slash < 0 ? trimmed : trimmed.slice(0, slash)
  const prefix = slash < 0 ? '' : trimmed.slice(slash + 1).replace(/^\/+|\/+$/g, '')
  if (!BUCKET.test(bucket)) {
    throw new SluiceError('ERR_ARGS', `repository location ${JSON.stringify(location)} has no valid bucket name (${USAGE})`)
  }
  if (prefix.split('/').some((p) => p === '.' || p === '..' || (p === '' && prefix !== ''))) {
    throw new SluiceError('ERR_ARGS', `repository location ${JSON.stringify(location)} has a prefix with empty, '.' or '..' parts`)
  }
  return { bucket, prefix }
}

/** Parses a repository location. Throws ERR_ARGS for an empty location, an unknown scheme or a
 *  malformed S3 location. Relative paths are resolved against the current directory. */
export function parseLocation(location: string, opts: LocationOptions = {}): Location {
  if (typeof location !== 'string' || location.trim() === '') {
    throw new SluiceError('ERR_ARGS', `no repository location given (${USAGE})`)
  }
  if (location.startsWith('local:')) {
    const path = location.slice('local:'.length)
    if (path === '') throw new SluiceError('ERR_ARGS', `local: needs a path (${USAGE})`)
    return { kind: 'local', dir: resolve(path) }
  }
  if (location.startsWith('s3:')) {
    const rest = location.slice('s3:'.length)
    const url = /^(https?):\/\/([^/]+)(\/.*)?$/i.exec(rest)
    if (url) {
      const endpoint = `${url[1]!.toLowerCase()}://${url[2]}`
      try {
        new URL(endpoint)
      } catch (cause) {
        throw new SluiceError('ERR_ARGS', `repository location ${JSON.stringify(location)} has a malformed endpoint`, { cause })
      }
      const { bucket, prefix } = splitBucket(url[3] ?? '', location)
      return { kind: 's3', options: { bucket, prefix, endpoint, forcePathStyle: opts.s3PathStyle ?? true } }
    }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(rest)) {
      throw new SluiceError('ERR_ARGS', `repository location ${JSON.stringify(location)}: S3 endpoints must be http:// or https://`)
    }
    // "s3:bucket/prefix" and the aws-cli spelling "s3://bucket/prefix".
    const { bucket, prefix } = splitBucket(rest, location)
    const options: S3Options = { bucket, prefix }
    if (opts.s3PathStyle !== undefined) options.forcePathStyle = opts.s3PathStyle
    return { kind: 's3', options }
  }
  // Anything else before a colon looks like a scheme we do not know ("sftp:host:/x"); a path
  // with a colon in it can be written ./a:b or local:a:b.
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(location)
  if (scheme && !location.startsWith('/') && !location.startsWith('.')) {
    throw new SluiceError(
      'ERR_ARGS',
      `unknown repository scheme "${scheme[1]}:" in ${JSON.stringify(location)} (${USAGE}; write ./${location} for a local path with a colon)`,
    )
  }
  return { kind: 'local', dir: resolve(location) }
}

/** Opens the Storage a location names. Nothing is contacted or created until the first call. */
export function openStorage(location: string, opts: LocationOptions = {}): Storage {
  const loc = parseLocation(location, opts)
  const storage = loc.kind === 'local' ? createLocalStorage(loc.dir) : openS3Storage(loc.options)
  return withLimit(storage, { uploadBytesPerSecond: opts.uploadBytesPerSecond, downloadBytesPerSecond: opts.downloadBytesPerSecond })
}

/** An S3 storage with retries: S3's policy, any part of it overridden by `retry`. The AWS SDK
 *  is loaded on the first call (lazy.ts). */
export function openS3Storage(options: S3Options, retry: Partial<RetryOptions> = {}): Storage {
  const policy: RetryOptions = {
    maxAttempts: S3_MAX_ATTEMPTS,
    unreachableAttempts: S3_UNREACHABLE_ATTEMPTS,
    backoff: { baseMs: S3_BACKOFF_BASE_MS, capMs: S3_BACKOFF_CAP_MS },
    unreachableCapMs: S3_UNREACHABLE_BACKOFF_CAP_MS,
    ...retry,
  }
  const storage = withRetry(lazyStorage(describeS3(options), async () => (await import('./s3.js')).createS3Storage(options)), policy)
  // Every GET waits on a round trip: a restore keeps more of them in flight (limits.ts).
  storage.readAhead = S3_READ_AHEAD
  // ...and the SDK's own memory comes out of the budget the restore sizes them by.
  storage.reserveBytes = S3_CLIENT_RESERVE
  return storage
}

/** How messages name an S3 location: `s3:[ENDPOINT/]BUCKET[/PREFIX]`. */
export function describeS3(o: Pick<S3Options, 'endpoint' | 'bucket' | 'prefix'>): string {
  const base = o.prefix.replace(/^\/+|\/+$/g, '')
  return `s3:${o.endpoint ? `${o.endpoint.replace(/\/+$/, '')}/` : ''}${o.bucket}${base ? `/${base}` : ''}`
}
