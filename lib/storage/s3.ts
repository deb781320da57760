/**
 * Storage in an S3 bucket (AWS or any S3-compatible service), keys under an optional prefix.
 *
 * put-if-absent: a HEAD first (cheap, and the only guard on services that ignore conditional
 * writes, such as s3rver), then PutObject with `If-None-Match: *`, which real S3 enforces (412 →
 * the key was there). Where the service ignores the header, two writers racing on one key both
 * write; keys are content-addressed, so the loser re-writes the same bytes, which is harmless —
 * except `config`, whose racing inits init itself tells apart (it reads the config back; see
 * docs/S3.md). A service that rejects the header (501 NotImplemented, as S3
 * itself did before 2024) gets plain PutObjects from then on, guarded by the HEAD alone. A put
 * whose first attempt reached the server but whose answer was lost may report false on its
 * retry: the object is stored either way.
 *
 * One attempt per call (the SDK's client runs with maxAttempts 1): every failure becomes one
 * SluiceError, and those another attempt may fix (throttling, 5xx, timeouts, reset sockets, an
 * endpoint that does not answer) are TransientErrors, which the retry wrapper (retry.ts, applied
 * by location.ts) retries; a missing bucket or refused credentials fail at once.
 *
 * Memory: get holds one object (read into the caller's memory when it gives some); put holds the caller's buffer (plus at most
 * S3_PART_SIZE × S3_PART_QUEUE for a multipart upload); list holds one page of keys.
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3'
import { Upload } from '@aws-sdk/lib-storage'
import { NodeHttpHandler } from '@smithy/node-http-handler'
import { SluiceError } from '../errors.js'
import {
  S3_CONNECT_TIMEOUT_MS,
  S3_LIST_PAGE,
  S3_MULTIPART_THRESHOLD,
  S3_PART_QUEUE,
  S3_PART_SIZE,
  S3_REQUEST_TIMEOUT_MS,
  S3_SOCKET_IDLE_TIMEOUT_MS,
} from '../limits.js'
import type { Storage } from './storage.js'
import { assertKey, assertPrefix, tooLarge } from './key.js'
import { TransientError } from './retry.js'
import { describeS3 } from './location.js'

/** Where and how to reach the bucket. */
export interface S3Options {
  bucket: string
  /** Key prefix inside the bucket ('' for the bucket's root); a trailing '/' is implied. */
  prefix: string
  /** An S3-compatible service's URL (`http://127.0.0.1:9000`); AWS when absent. */
  endpoint?: string
  /** AWS region; else the SDK's chain (AWS_REGION, the profile's config), else 'us-east-1'. */
  region?: string
  /** Address buckets as `endpoint/bucket` rather than `bucket.endpoint`. */
  forcePathStyle?: boolean
  /** Fixed credentials (tests); else the SDK's chain: env, shared files, AWS_PROFILE, SSO, IMDS. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }
  /** Objects above this many bytes go up as a multipart upload (default S3_MULTIPART_THRESHOLD). */
  multipartThreshold?: number
  /** Timeouts in ms (defaults S3_CONNECT_TIMEOUT_MS, S3_SOCKET_IDLE_TIMEOUT_MS,
   *  S3_REQUEST_TIMEOUT_MS). */
  timeouts?: { connectMs?: number; idleMs?: number; requestMs?: number }
}

type Verdict = 'retry' | 'unreachable' | 'fatal'

const RETRY_NAMES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'TooManyRequestsException',
  'RequestThrottled',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalError',
  'ServiceUnavailable',
  'TimeoutError',
  'ConditionalRequestConflict',
])
const RETRY_ERRNO = new Set([
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ECONNABORTED',
  'EAI_AGAIN',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
])
const UNREACHABLE_ERRNO = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL'])
const DENIED_NAMES = new Set([
  'AccessDenied',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'Forbidden',
  'InvalidToken',
  'ExpiredToken',
  'TokenRefreshRequired',
  'AllAccessDisabled',
  'AccountProblem',
])

interface AwsLikeError {
  name?: string
  code?: string
  message?: string
  errors?: unknown[]
  cause?: unknown
  $metadata?: { httpStatusCode?: number }
  $response?: { statusCode?: number }
}

function errnoOf(err: unknown): string | undefined {
  const e = err as AwsLikeError | undefined
  if (!e || typeof e !== 'object') return undefined
  if (typeof e.code === 'string' && /^E[A-Z_]+$|^ERR_|^UND_/.test(e.code)) return e.code
  // Node 20 connects to every address of a name and reports an AggregateError.
  if (Array.isArray(e.errors) && e.errors.length > 0) return errnoOf(e.errors[0])
  if (e.cause) return errnoOf(e.cause)
  return undefined
}

function statusOf(err: unknown): number | undefined {
  const e = err as AwsLikeError
  return e?.$metadata?.httpStatusCode ?? e?.$response?.statusCode
}

function classify(err: unknown): Verdict {
  const e = err as AwsLikeError
  const name = e?.name ?? ''
  const errno = errnoOf(err)
  if (errno && UNREACHABLE_ERRNO.has(errno)) return 'unreachable'
  if (name === 'TimeoutError' && /establishing a connection/i.test(e.message ?? '')) return 'unreachable'
  if (DENIED_NAMES.has(name) || name === 'NoSuchBucket' || name === 'CredentialsProviderError') return 'fatal'
  if (RETRY_NAMES.has(name)) return 'retry'
  if (errno && RETRY_ERRNO.has(errno)) return 'retry'
  if (/socket hang up|aborted|premature close/i.test(e?.message ?? '')) return 'retry'
  const status = statusOf(err)
  // 501 says a feature is missing: asking again cannot help.
  if (isNotImplemented(err)) return 'fatal'
  if (status === 429 || (status !== undefined && status >= 500)) return 'retry'
  return 'fatal'
}

function isNotImplemented(err: unknown): boolean {
  return (err as AwsLikeError)?.name === 'NotImplemented' || statusOf(err) === 501
}

function detail(err: unknown): string {
  const e = err as AwsLikeError
  const errno = errnoOf(err)
  const name = e?.name && e.name !== 'Error' ? e.name : errno ?? 'Error'
  const msg = e?.message && e.message !== name ? e.message : ''
  const status = statusOf(err)
  return `${name}${status ? ` (HTTP ${status})` : ''}${msg ? `: ${msg}` : ''}`
}

/** S3 may say "not there" for an object with NoSuchKey (GET) or a bare 404 (HEAD). */
function isMissingKey(err: unknown): boolean {
  const e = err as AwsLikeError
  return e?.name === 'NoSuchKey' || ((e?.name === 'NotFound' || e?.name === 'Unknown') && statusOf(err) === 404)
}

function isPreconditionFailed(err: unknown): boolean {
  const e = err as AwsLikeError
  return e?.name === 'PreconditionFailed' || statusOf(err) === 412
}

/** A Storage over `s3://bucket/prefix`, one attempt per call (wrap it in withRetry, as
 *  location.ts does). Nothing is contacted until the first call. */
export function createS3Storage(opts: S3Options): Storage {
  if (!opts.bucket) throw new SluiceError('ERR_ARGS', 'S3 location has no bucket')
  const bucket = opts.bucket
  const base = opts.prefix.replace(/^\/+|\/+$/g, '')
  const keyPrefix = base === '' ? '' : base + '/'
  const threshold = opts.multipartThreshold ?? S3_MULTIPART_THRESHOLD
  const where = describeS3(opts)

  // The SDK warns on every run under Node 20, which Sluice supports; the user cannot act on it.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

  let client: S3Client | undefined
  let uploadClient: S3Client | undefined
  /** Whether to send `If-None-Match: *`; cleared when the service answers it with 501. */
  let conditional = true

  function makeClient(sdkAttempts: number): S3Client {
    const config: S3ClientConfig = {
      region: opts.region ?? defaultRegion,
      maxAttempts: sdkAttempts,
      // Else the SDK frames bodies as aws-chunked with trailing checksums, which s3rver and some
      // S3-compatible services store verbatim.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      followRegionRedirects: true,
      requestHandler: new NodeHttpHandler({
        connectionTimeout: opts.timeouts?.connectMs ?? S3_CONNECT_TIMEOUT_MS,
        socketTimeout: opts.timeouts?.idleMs ?? S3_SOCKET_IDLE_TIMEOUT_MS,
        requestTimeout: opts.timeouts?.requestMs ?? S3_REQUEST_TIMEOUT_MS,
        throwOnRequestTimeout: true,
      }),
    }
    if (opts.endpoint) config.endpoint = opts.endpoint
    if (opts.forcePathStyle !== undefined) config.forcePathStyle = opts.forcePathStyle
    if (opts.credentials) config.credentials = opts.credentials
    return new S3Client(config)
  }

  /** The SDK's own region chain, with us-east-1 when it finds nothing (it would throw). */
  let regionPromise: Promise<string> | undefined
  function defaultRegion(): Promise<string> {
    regionPromise ??= (async () => {
      const probe = new S3Client({})
      try {
        return await probe.config.region()
      } catch {
        return 'us-east-1'
      } finally {
        probe.destroy()
      }
    })()
    return regionPromise
  }

  function s3(): S3Client {
    client ??= makeClient(1)
    return client
  }

  function fatal(err: unknown, what: string): SluiceError {
    const e = err as AwsLikeError
    if (e?.name === 'NoSuchBucket') {
      return new SluiceError('ERR_REPO_NOT_FOUND', `S3 bucket "${bucket}" does not exist (${where})`, { cause: err })
    }
    if (e?.name === 'CredentialsProviderError') {
      return new SluiceError(
        'ERR_ACCESS_DENIED',
        `no AWS credentials found for ${where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, or ~/.aws/credentials`,
        { cause: err },
      )
    }
    if (DENIED_NAMES.has(e?.name ?? '') || statusOf(err) === 403) {
      return new SluiceError('ERR_ACCESS_DENIED', `S3 refused our credentials for ${where}: ${detail(err)}`, { cause: err })
    }
    return new SluiceError('ERR_STORAGE', `S3 ${what} failed (${where}): ${detail(err)}`, { cause: err })
  }

  /** Runs one request: every failure leaves as a SluiceError, a TransientError when another
   *  attempt may succeed. */
  async function attempt<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      if (err instanceof SluiceError) throw err
      const verdict = classify(err)
      if (verdict === 'fatal') throw fatal(err, what)
      const message = verdict === 'unreachable' ? `cannot reach S3 at ${opts.endpoint ?? 'AWS'} (${where}): ${detail(err)}` : undefined
      throw new TransientError(verdict, `S3 ${what}`, where, detail(err), { cause: err, message })
    }
  }

  async function headExists(objectKey: string, key: string): Promise<boolean> {
    return attempt(`HEAD ${key}`, async () => {
      try {
        await s3().send(new HeadObjectCommand({ Bucket: bucket, Key: objectKey }))
        return true
      } catch (err) {
        if (isMissingKey(err)) return false
        throw err
      }
    })
  }

  /** Sends one write with `If-None-Match: *` (while the service supports it): false when the
   *  key already exists (412); a service answering 501 gets plain writes from then on. */
  async function putIfAbsent(send: (ifNoneMatch: { IfNoneMatch?: string }) => Promise<void>): Promise<boolean> {
    for (;;) {
      const withCondition = conditional
      try {
        await send(withCondition ? { IfNoneMatch: '*' } : {})
        return true
      } catch (err) {
        if (isPreconditionFailed(err)) return false
        if (withCondition && isNotImplemented(err)) {
          conditional = false
          continue
        }
        throw err
      }
    }
  }

  async function put(key: string, data: Uint8Array): Promise<boolean> {
    assertKey(key)
    const objectKey = keyPrefix + key
    if (await headExists(objectKey, key)) return false
    const body = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
    if (body.length > threshold) {
      return attempt(`multipart upload of ${key}`, () => {
        // Parts are retried by the SDK inside this client; on failure Upload aborts the multipart
        // upload, so no partial object is ever visible (S3 shows an object only on Complete).
        uploadClient ??= makeClient(4)
        const client = uploadClient
        return putIfAbsent(async ifNoneMatch => {
          await new Upload({
            client,
            params: { Bucket: bucket, Key: objectKey, Body: body, ContentLength: body.length, ...ifNoneMatch },
            partSize: S3_PART_SIZE,
            queueSize: S3_PART_QUEUE,
            leavePartsOnError: false,
          }).done()
        })
      })
    }
    return attempt(`PUT ${key}`, () =>
      putIfAbsent(async ifNoneMatch => {
        await s3().send(new PutObjectCommand({ Bucket: bucket, Key: objectKey, Body: body, ContentLength: body.length, ...ifNoneMatch }))
      }),
    )
  }

  async function get(key: string, maxBytes?: number, into?: (length: number) => Buffer): Promise<Buffer> {
    assertKey(key)
    return attempt(`GET ${key}`, async () => {
      let res
      try {
        res = await s3().send(new GetObjectCommand({ Bucket: bucket, Key: keyPrefix + key }))
      } catch (err) {
        if (isMissingKey(err)) throw new SluiceError('ERR_NOT_FOUND', `no object ${key} in ${where}`, { cause: err })
        throw err
      }
      const body = res.Body as (AsyncIterable<Uint8Array> & { destroy?: () => void }) | undefined
      if (!body) throw new TransientError('retry', `S3 GET ${key}`, where, 'returned no body')
      const size = res.ContentLength
      if (maxBytes !== undefined && size !== undefined && size > maxBytes) {
        body.destroy?.()
        throw tooLarge(key, size, maxBytes, where)
      }
      return readBody(body, key, size, maxBytes, into)
    })
  }

  /**
   * A GET's body, read piece by piece as the socket delivers it: into `into(size)` (restore's
   * reused chunk memory) or one buffer of the announced size, so no object is held twice and
   * none is concatenated (the SDK's transformToByteArray keeps every piece, then copies them
   * into a fresh buffer: an object's worth of garbage per GET). Without a Content-Length the
   * pieces are kept, up to `maxBytes`, and joined. A body longer or shorter than announced is a
   * TransientError (a cut connection); the body is destroyed on every way out but the end.
   */
  async function readBody(body: AsyncIterable<Uint8Array> & { destroy?: () => void }, key: string, size: number | undefined, maxBytes: number | undefined, into?: (length: number) => Buffer): Promise<Buffer> {
    let got = 0
    try {
      if (size === undefined) {
        const pieces: Uint8Array[] = []
        for await (const piece of body) {
          got += piece.length
          if (maxBytes !== undefined && got > maxBytes) throw tooLarge(key, got, maxBytes, where)
          pieces.push(piece)
        }
        return Buffer.concat(pieces, got)
      }
      const buf = into ? into(size) : Buffer.allocUnsafe(size)
      for await (const piece of body) {
        if (got + piece.length > size) throw new TransientError('retry', `S3 GET ${key}`, where, `returned more than the ${size} bytes announced`)
        buf.set(piece, got)
        got += piece.length
      }
      if (got !== size) throw new TransientError('retry', `S3 GET ${key}`, where, `returned ${got} of ${size} bytes`)
      return buf
    } catch (err) {
      body.destroy?.()
      throw err
    }
  }

  async function has(key: string): Promise<boolean> {
    assertKey(key)
    // A HEAD in a missing bucket is a bare 404 too, so this says false there; get, put and list
    // name the missing bucket.
    return headExists(keyPrefix + key, key)
  }

  async function statKey(key: string): Promise<{ size: number; mtimeMs: number } | null> {
    assertKey(key)
    return attempt(`HEAD ${key}`, async () => {
      try {
        const res = await s3().send(new HeadObjectCommand({ Bucket: bucket, Key: keyPrefix + key }))
        return { size: res.ContentLength ?? 0, mtimeMs: res.LastModified?.getTime() ?? Date.now() }
      } catch (err) {
        if (isMissingKey(err)) return null
        throw err
      }
    })
  }

  async function del(key: string): Promise<void> {
    assertKey(key)
    // DeleteObject of a missing key succeeds on S3.
    await attempt(`DELETE ${key}`, () => s3().send(new DeleteObjectCommand({ Bucket: bucket, Key: keyPrefix + key })))
  }

  async function* list(prefix: string): AsyncGenerator<string> {
    assertPrefix(prefix)
    let token: string | undefined
    let last: string | undefined
    for (;;) {
      const page = await attempt(`LIST ${prefix || '(all)'}`, () =>
        s3().send(
          new ListObjectsV2Command({
            Bucket: bucket,
            Prefix: keyPrefix + prefix,
            MaxKeys: S3_LIST_PAGE,
            ContinuationToken: token,
          }),
        ),
      )
      for (const obj of page.Contents ?? []) {
        const full = obj.Key
        if (!full || !full.startsWith(keyPrefix)) continue
        const key = full.slice(keyPrefix.length)
        // Skip what Sluice never writes: folder markers ("x/") that consoles create, odd names.
        if (!isValidKey(key)) continue
        // Callers merge-join listings; a service that lists out of byte order (s3rver does, for
        // names below '/' such as "a-b" beside "a/x") must fail loudly, not mislead them.
        if (last !== undefined && key <= last) {
          throw new SluiceError(
            'ERR_STORAGE',
            `S3 service listed ${JSON.stringify(key)} after ${JSON.stringify(last)}: keys are not in byte order (${where})`,
          )
        }
        last = key
        yield key
      }
      if (!page.IsTruncated) return
      if (!page.NextContinuationToken) {
        throw new SluiceError('ERR_STORAGE', `S3 LIST ${prefix} was truncated without a continuation token (${where})`)
      }
      token = page.NextContinuationToken
    }
  }

  return {
    put,
    get,
    has,
    list,
    delete: del,
    stat: statKey,
    describe: () => where,
    close: async () => {
      client?.destroy()
      uploadClient?.destroy()
      client = uploadClient = undefined
    },
  }
}

function isValidKey(key: string): boolean {
  try {
    assertKey(key)
    return true
  } catch {
    return false
  }
}
