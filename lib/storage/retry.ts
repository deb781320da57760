/**
 * A Storage that retries another one, as restic's backend/retry wraps every backend: the backend
 * makes one attempt per call and says which failures are worth another ([TransientError]); this
 * wrapper waits (exponential backoff with full jitter) and asks again, and turns the last
 * failure into one ERR_STORAGE line. Anything else (a SluiceError of another kind: missing
 * object, refused credentials, missing bucket) passes through at once.
 *
 * Every call is safe to repeat: put is put-if-absent (a retry after a lost answer may say false,
 * the object is stored either way), get/has/delete are idempotent, and a listing that fails
 * part-way is listed again from the start, skipping the keys already yielded (keys come in byte
 * order), so the caller sees each key once.
 *
 * Memory: nothing beyond the wrapped call's own, plus the last key a listing yielded.
 */
import { SluiceError } from '../errors.js'
import type { Storage } from './storage.js'

/** 'retry': throttling, 5xx, timeouts, reset connections. 'unreachable': nothing answers
 *  (refused, unknown host), which gets fewer tries: a user waits seconds, not minutes. */
export type Transience = 'retry' | 'unreachable'

/** A failure a backend expects a later attempt may not meet. An ERR_STORAGE SluiceError, so a
 *  backend used without the wrapper still fails with one coded line. */
export class TransientError extends SluiceError {
  readonly transience: Transience
  /** What failed, e.g. "S3 GET config"; the wrapper's last message names it with the count. */
  readonly operation: string
  /** Where: the storage's describe(). */
  readonly where: string
  readonly detail: string

  constructor(transience: Transience, operation: string, where: string, detail: string, opts: { cause?: unknown; message?: string } = {}) {
    super('ERR_STORAGE', opts.message ?? `${operation} failed (${where}): ${detail}`, { cause: opts.cause })
    this.transience = transience
    this.operation = operation
    this.where = where
    this.detail = detail
  }
}

export interface RetryOptions {
  /** Attempts per call for 'retry' failures. */
  maxAttempts: number
  /** Attempts per call when the backend is 'unreachable'. */
  unreachableAttempts: number
  /** The wait before attempt n+1 is uniform in [0, min(cap, base × 2^(n−1))] ms. */
  backoff: { baseMs: number; capMs: number }
  /** The cap for waits after an 'unreachable' failure. */
  unreachableCapMs: number
  /** Told of each failure that will be retried, and the wait before the retry. */
  onRetry?: (err: TransientError, attempt: number, waitMs: number) => void
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** Wraps `inner` so that every call is retried under `opts`. */
export function withRetry(inner: Storage, opts: RetryOptions): Storage {
  const maxAttempts = Math.max(1, opts.maxAttempts)

  /** One streak of failures: `failed` waits before the next attempt, or throws the last error. */
  function streak(): { failed(err: unknown): Promise<void>; reset(): void } {
    let n = 0
    let unreachable = 0
    return {
      async failed(err) {
        if (!(err instanceof TransientError)) throw err
        n++
        if (err.transience === 'unreachable' && ++unreachable >= opts.unreachableAttempts) {
          throw new SluiceError('ERR_STORAGE', err.message, { cause: err.cause ?? err })
        }
        if (n >= maxAttempts) {
          throw new SluiceError('ERR_STORAGE', `${err.operation} failed after ${n} attempts (${err.where}): ${err.detail}`, {
            cause: err.cause ?? err,
          })
        }
        const cap = err.transience === 'unreachable' ? Math.min(opts.backoff.capMs, opts.unreachableCapMs) : opts.backoff.capMs
        const wait = Math.random() * Math.min(cap, opts.backoff.baseMs * 2 ** (n - 1))
        opts.onRetry?.(err, n, wait)
        await sleep(wait)
      },
      reset() {
        n = unreachable = 0
      },
    }
  }

  async function attempt<T>(fn: () => Promise<T>): Promise<T> {
    const failures = streak()
    for (;;) {
      try {
        return await fn()
      } catch (err) {
        await failures.failed(err)
      }
    }
  }

  async function* list(prefix: string): AsyncGenerator<string> {
    const failures = streak()
    let last: string | undefined
    for (;;) {
      try {
        for await (const key of inner.list(prefix)) {
          if (last !== undefined && key <= last) continue
          last = key
          // Keys coming through end the streak: the budget is per run of failures, not per list.
          failures.reset()
          yield key
        }
        return
      } catch (err) {
        await failures.failed(err)
      }
    }
  }

  return {
    put: (key, data) => attempt(() => inner.put(key, data)),
    get: (key, maxBytes, into) => attempt(() => inner.get(key, maxBytes, into)),
    has: (key) => attempt(() => inner.has(key)),
    delete: (key) => attempt(() => inner.delete(key)),
    list,
    describe: () => inner.describe(),
    close: () => inner.close(),
    // Optional methods the inner storage has: stat and move are requests like the others (a
    // move is safe to repeat: `to` is never replaced, an absent `from` answers false);
    // leftovers is local housekeeping, passed on as it is.
    ...(inner.stat ? { stat: (key: string) => attempt(() => inner.stat!(key)) } : {}),
    ...(inner.move ? { move: (from: string, to: string) => attempt(() => inner.move!(from, to)) } : {}),
    ...(inner.leftovers ? { leftovers: inner.leftovers.bind(inner) } : {}),
    ...(inner.readAhead ? { readAhead: inner.readAhead } : {}),
    ...(inner.reserveBytes ? { reserveBytes: inner.reserveBytes } : {}),
  }
}
