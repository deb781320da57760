/**
 * A Storage that holds transfers to a rate, as restic's --limit-upload / --limit-download
 * (KiB/s): a token bucket per direction. A put waits for its bytes before it is sent; a get
 * waits for its bytes after they arrive, before they are handed on. The wait is the awaited
 * promise of the call, so callers slow down through backpressure, not a busy loop. has, list
 * and delete are not counted (restic limits object bodies only).
 *
 * Memory: two numbers per bucket.
 */
import { SluiceError } from '../errors.js'
import type { Storage } from './storage.js'
import { RATE_LIMIT_BURST_SECONDS } from '../limits.js'

/**
 * A token bucket of `bytesPerSecond` holding at most `burst` bytes, over an injected clock
 * (milliseconds). take(n) spends n bytes at once, going into debt when the bucket holds fewer,
 * and says how long to wait before the transfer may go on: the debt repaid at the rate. Calls
 * that overlap queue behind each other's debt, so together they keep to the rate.
 */
export class TokenBucket {
  private tokens: number
  private last: number

  constructor(
    readonly bytesPerSecond: number,
    readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(bytesPerSecond > 0) || !(burst >= 0)) throw new RangeError('TokenBucket: the rate must be positive and the burst not negative')
    this.tokens = burst
    this.last = now()
  }

  /** Spends `bytes`; returns the milliseconds to wait before they may pass (0 when in budget). */
  take(bytes: number): number {
    const t = this.now()
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) * this.bytesPerSecond) / 1000)
    this.last = t
    this.tokens -= bytes
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.bytesPerSecond
  }
}

export interface LimitOptions {
  /** Bytes per second for put bodies; unset: no limit. */
  uploadBytesPerSecond?: number
  /** Bytes per second for get bodies; unset: no limit. */
  downloadBytesPerSecond?: number
  /** For tests: the clock and the sleep (default Date.now and setTimeout). */
  now?: () => number
  sleep?: (ms: number) => Promise<void>
}

function sleep(ms: number): Promise<void> {
  return new Promise(r => setTimeout(r, ms))
}

function bucket(rate: number | undefined, now: () => number): TokenBucket | undefined {
  return rate === undefined ? undefined : new TokenBucket(rate, rate * RATE_LIMIT_BURST_SECONDS, now)
}

/** Wraps `inner` so that put and get bodies keep to the given rates; `inner` itself when none. */
export function withLimit(inner: Storage, opts: LimitOptions): Storage {
  const now = opts.now ?? Date.now
  const wait = opts.sleep ?? sleep
  const up = bucket(opts.uploadBytesPerSecond, now)
  const down = bucket(opts.downloadBytesPerSecond, now)
  if (!up && !down) return inner
  const limited: Storage = {
    put: async (key, data) => {
      if (up) {
        const ms = up.take(data.length)
        if (ms > 0) await wait(ms)
      }
      return inner.put(key, data)
    },
    get: async (key, maxBytes, into) => {
      const data = await inner.get(key, maxBytes, into)
      if (down) {
        const ms = down.take(data.length)
        if (ms > 0) await wait(ms)
      }
      return data
    },
    has: key => inner.has(key),
    list: prefix => inner.list(prefix),
    delete: key => inner.delete(key),
    describe: () => inner.describe(),
    close: () => inner.close(),
  }
  if (inner.readAhead) limited.readAhead = inner.readAhead
  if (inner.reserveBytes) limited.reserveBytes = inner.reserveBytes
  if (inner.leftovers) limited.leftovers = (maxAgeMs, remove) => inner.leftovers!(maxAgeMs, remove)
  return limited
}

/** KiB/s as the user gives it (restic's unit) to bytes per second; ERR_ARGS unless positive. */
export function parseRateLimit(value: unknown, flag: string): number {
  const n = typeof value === 'number' ? value : Number(value)
  if (!Number.isFinite(n) || n <= 0) throw new SluiceError('ERR_ARGS', `--${flag} ${String(value)}: give a rate in KiB/s above 0`)
  return n * 1024
}
