/**
 * The two helpers every stage is built from. A stage is an async generator over its input,
 * wrapped as a Duplex: the generator runs only when the next stage asks for an item, so
 * backpressure needs no code of its own, and each stage holds what its generator holds.
 */
import { Duplex } from 'node:stream'

/**
 * Wraps an async generator function as a Duplex stream in object mode. The generator pulls one
 * written item at a time (the writer's callback fires when it is taken) and its output is
 * pushed as the reader asks, so each side holds at most one item beyond what the generator
 * holds. (Node's Duplex.from does the same but loses errors when two of them are chained.)
 */
export function stage<I, O>(fn: (source: AsyncIterable<I>) => AsyncIterable<O>): Duplex {
  return new GeneratorStage(fn as (source: AsyncIterable<unknown>) => AsyncIterable<unknown>)
}

/**
 * Stages made by {@link stage} run as one: their generators feed each other directly, with one
 * Duplex around the whole run instead of one per stage. Each hop between two Duplexes costs an
 * item a write, a push, a promise and their result objects (for an incremental backup, where
 * five stages pass every entry on, most of its garbage); a direct hop costs one promise. What
 * each generator holds, and so the memory bound, is the same; only the one item of slack on
 * each side of a Duplex goes. The stages given must be fresh (never piped); they are not used.
 */
export function fuse(...stages: Duplex[]): Duplex {
  const fns = stages.map(s => {
    if (!(s instanceof GeneratorStage) || s.piped) throw new TypeError('fuse: only fresh stages made by stage()')
    return s.fn
  })
  return stage(source => fns.reduce((s, fn) => fn(s), source))
}

class GeneratorStage extends Duplex {
  private slot: { item: unknown; cb: (err?: Error | null) => void } | null = null
  private taker: { resolve: (r: IteratorResult<unknown>) => void; reject: (e: Error) => void } | null = null
  private inputEnded = false
  private failure: Error | null = null
  private started = false
  private wakeReader: (() => void) | null = null
  private readonly output: AsyncIterator<unknown>
  /** Something was piped into it (fuse takes only stages that were not). */
  piped = false

  constructor(readonly fn: (source: AsyncIterable<unknown>) => AsyncIterable<unknown>) {
    super({ objectMode: true, readableHighWaterMark: 1, writableHighWaterMark: 1 })
    this.once('pipe', () => (this.piped = true))
    const input: AsyncIterable<unknown> = { [Symbol.asyncIterator]: () => ({ next: () => this.takeInput() }) }
    this.output = fn(input)[Symbol.asyncIterator]()
  }

  private takeInput(): Promise<IteratorResult<unknown>> {
    if (this.failure) return Promise.reject(this.failure)
    if (this.slot) {
      const { item, cb } = this.slot
      this.slot = null
      cb()
      return Promise.resolve({ value: item, done: false })
    }
    if (this.inputEnded) return Promise.resolve({ value: undefined, done: true })
    return new Promise((resolve, reject) => (this.taker = { resolve, reject }))
  }

  override _write(item: unknown, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.taker) {
      const t = this.taker
      this.taker = null
      cb()
      t.resolve({ value: item, done: false })
    } else {
      this.slot = { item, cb }
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.inputEnded = true
    if (this.taker) {
      const t = this.taker
      this.taker = null
      t.resolve({ value: undefined, done: true })
    }
    cb()
  }

  override _read(): void {
    if (this.wakeReader) {
      const r = this.wakeReader
      this.wakeReader = null
      r()
    }
    if (this.started) return
    this.started = true
    void this.pump()
  }

  private async pump(): Promise<void> {
    try {
      for (;;) {
        const r = await this.output.next()
        if (this.destroyed) return
        if (r.done) break
        if (!this.push(r.value)) await new Promise<void>(res => (this.wakeReader = res))
        if (this.destroyed) return
      }
      this.push(null)
    } catch (err) {
      if (!this.destroyed) this.destroy(err as Error)
    }
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.failure = err ?? new Error('stage destroyed')
    if (this.taker) {
      const t = this.taker
      this.taker = null
      t.reject(this.failure)
    }
    if (this.wakeReader) {
      const r = this.wakeReader
      this.wakeReader = null
      r()
    }
    this.output.return?.(undefined)?.catch(() => {})
    cb(err)
  }
}

/**
 * Maps items with at most `concurrency` calls of `fn` in flight, yielding results in input
 * order. Holds at most `concurrency` pending results, and yields each as soon as it and those
 * before it are done, without waiting for more input: a result never waits on the stage
 * upstream (the chunker waits for chunks downstream to leave the arena, lib/chunk-arena.ts).
 * With `within`, it also takes no more input once the pending items' weights (`weigh`, say their
 * bytes) reach `bytes`: at most `bytes` plus one item's weight is pending, however many items
 * `concurrency` allows (one item is always taken, whatever its weight).
 */
export async function* orderedMap<I, O>(
  source: AsyncIterable<I>,
  concurrency: number,
  fn: (item: I) => O | Promise<O>,
  within?: { bytes: number; weigh: (item: I) => number },
): AsyncIterable<Awaited<O>> {
  const queue: Promise<Awaited<O>>[] = []
  const weights: number[] = []
  let pending = 0
  const take = (): Promise<Awaited<O>> => {
    pending -= weights.shift()!
    return queue.shift()!
  }
  const input = source[Symbol.asyncIterator]()
  // The input asked for and not yet taken (kept across yields: one next() at a time).
  let next: Promise<IteratorResult<I>> | null = null
  let ended = false
  const HEAD = Symbol('head')
  try {
    for (;;) {
      if (!ended && queue.length < concurrency && (!within || queue.length === 0 || pending < within.bytes)) {
        next ??= input.next()
        // Take the next input, or yield the head if it is done first.
        const r = queue.length === 0 ? await next : await Promise.race([next, queue[0]!.then(() => HEAD, () => HEAD)])
        if (r === HEAD) {
          yield await take()
          continue
        }
        next = null
        const res = r as IteratorResult<I>
        if (res.done) {
          ended = true
          continue
        }
        const p = Promise.resolve().then(() => fn(res.value)) as Promise<Awaited<O>>
        p.catch(() => {}) // handled when it reaches the head; avoid an unhandled rejection meanwhile
        const w = within ? within.weigh(res.value) : 0
        queue.push(p)
        weights.push(w)
        pending += w
        continue
      }
      if (queue.length === 0) break
      yield await take()
    }
  } finally {
    queue.length = 0
    weights.length = 0
    // Not awaited: a next() may still be pending, and the source's return waits for it.
    if (!ended) input.return?.()?.catch(() => {})
  }
}

/** An LRU set/map with a size cap, for caches that must not grow with the data. */
export class Lru<K, V> {
  private readonly map = new Map<K, V>()
  constructor(
    private readonly cap: number,
    private readonly weigh: (v: V) => number = () => 1,
    /** Told of each value the cap pushes out. */
    private readonly onEvict?: (v: V) => void,
  ) {}
  private weight = 0

  get(k: K): V | undefined {
    const v = this.map.get(k)
    if (v === undefined) return undefined
    this.map.delete(k)
    this.map.set(k, v)
    return v
  }

  has(k: K): boolean {
    return this.get(k) !== undefined
  }

  set(k: K, v: V): void {
    const old = this.map.get(k)
    if (old !== undefined) {
      this.weight -= this.weigh(old)
      this.map.delete(k)
    }
    this.map.set(k, v)
    this.weight += this.weigh(v)
    while (this.weight > this.cap && this.map.size > 1) {
      const [first, fv] = this.map.entries().next().value as [K, V]
      this.map.delete(first)
      this.weight -= this.weigh(fv)
      this.onEvict?.(fv)
    }
  }

  get size(): number {
    return this.map.size
  }
}

/** A budget of bytes shared by concurrent tasks: `take(n)` waits until n more fit under the cap
 *  (a task larger than the cap runs alone), `give(n)` hands them back; waiters go first come,
 *  first served. Memory: one entry per waiting task (as many as the callers run at once). */
export class ByteGate {
  private used = 0
  private readonly waiting: Array<{ n: number; go: () => void }> = []
  constructor(private readonly cap: number) {}

  take(n: number): Promise<void> {
    if (this.waiting.length === 0 && (this.used === 0 || this.used + n <= this.cap)) {
      this.used += n
      return Promise.resolve()
    }
    return new Promise(go => this.waiting.push({ n, go }))
  }

  give(n: number): void {
    this.used -= n
    while (this.waiting.length > 0) {
      const w = this.waiting[0]!
      if (this.used !== 0 && this.used + w.n > this.cap) break
      this.waiting.shift()
      this.used += w.n
      w.go()
    }
  }
}
