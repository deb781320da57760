/**
 * The two helpers every stage is built from. A stage is an async generator over its input,
 * wrapped as a Duplex: the generator runs only when the next stage asks for an item, so
 * backpressure needs no code of its own, and each stage holds what its generator holds.
 */
import { Duplex } from 'node:stream'

/** Wraps an async generator function as a Duplex stream in object mode (highWaterMark 1 on
 *  each side, as Node's Duplex.from sets it). */
export function stage<I, O>(fn: (source: AsyncIterable<I>) => AsyncIterable<O>): Duplex {
  return Duplex.from(fn as (source: AsyncIterable<unknown>) => AsyncIterable<unknown>)
}

/**
 * Maps items with at most `concurrency` calls of `fn` in flight, yielding results in input
 * order. Holds at most `concurrency` pending results.
 */
export async function* orderedMap<I, O>(
  source: AsyncIterable<I>,
  concurrency: number,
  fn: (item: I) => O | Promise<O>,
): AsyncIterable<Awaited<O>> {
  const queue: Promise<Awaited<O>>[] = []
  try {
    for await (const item of source) {
      const p = Promise.resolve().then(() => fn(item)) as Promise<Awaited<O>>
      p.catch(() => {}) // handled when it reaches the head; avoid an unhandled rejection meanwhile
      queue.push(p)
      if (queue.length >= concurrency) yield await queue.shift()!
    }
    while (queue.length > 0) yield await queue.shift()!
  } finally {
    queue.length = 0
  }
}

/** An LRU set/map with a size cap, for caches that must not grow with the data. */
export class Lru<K, V> {
  private readonly map = new Map<K, V>()
  constructor(private readonly cap: number, private readonly weigh: (v: V) => number = () => 1) {}
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
    }
  }

  get size(): number {
    return this.map.size
  }
}
