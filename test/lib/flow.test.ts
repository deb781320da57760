import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Readable, PassThrough } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { fuse, orderedMap, stage } from '../../lib/flow.js'

/** Items 0..n-1, each held by `fn` until released by hand: what is pending is what the map took. */
async function run(weights: number[], concurrency: number, bytes?: number) {
  const started: number[] = []
  const release = new Map<number, () => void>()
  let pendingWeight = 0
  let maxWeight = 0
  let maxPending = 0
  async function* source() {
    for (let i = 0; i < weights.length; i++) yield i
  }
  const fn = (i: number) => {
    started.push(i)
    pendingWeight += weights[i]!
    maxWeight = Math.max(maxWeight, pendingWeight)
    maxPending = Math.max(maxPending, started.length - out.length)
    return new Promise<number>(resolve => release.set(i, () => resolve(i)))
  }
  const out: number[] = []
  const it = orderedMap(source(), concurrency, fn, bytes === undefined ? undefined : { bytes, weigh: i => weights[i]! })[Symbol.asyncIterator]()
  for (;;) {
    const next = it.next()
    // Let the map take all it may, then release the oldest pending item.
    await new Promise(resolve => setImmediate(resolve))
    const head = out.length
    if (head < weights.length) {
      assert.ok(release.has(head), `item ${head} was started`)
      release.get(head)!()
    }
    const r = await next
    if (r.done) break
    out.push(r.value)
    pendingWeight -= weights[r.value]!
  }
  return { out, maxWeight, maxPending }
}

test('orderedMap yields in order with at most `concurrency` pending', async () => {
  const { out, maxPending } = await run(Array(20).fill(1), 4)
  assert.deepEqual(out, [...Array(20).keys()])
  assert.equal(maxPending, 4)
})

test('orderedMap `within` stops taking input once the pending weights reach its bytes', async () => {
  const weights = [3, 1, 1, 5, 1, 1, 1, 8, 2, 2, 2, 2, 2, 2, 1, 1]
  const { out, maxWeight, maxPending } = await run(weights, 16, 6)
  assert.deepEqual(out, [...weights.keys()])
  // Below 6 it takes one more, whatever its weight: at most 5 + the largest (8) pending.
  assert.ok(maxWeight <= 5 + 8, `${maxWeight} pending`)
  assert.ok(maxPending < 16, `${maxPending} items pending`)
})

test('orderedMap `within` always takes one item, however heavy', async () => {
  const { out, maxPending } = await run([100, 100, 100], 4, 10)
  assert.deepEqual(out, [0, 1, 2])
  assert.equal(maxPending, 1)
})

/** Stages that tag each number, and one that fails at `failAt`. */
const add = (n: number) => stage<number, number>(async function* (src) {
  for await (const x of src) yield x + n
})
const double = () => stage<number, number>(async function* (src) {
  for await (const x of src) {
    yield x * 2
    yield x * 2 + 1
  }
})
const failAt = (bad: number) => stage<number, number>(async function* (src) {
  for await (const x of src) {
    if (x === bad) throw new Error(`bad ${x}`)
    yield x
  }
})

async function through(...stages: NodeJS.ReadWriteStream[]): Promise<number[]> {
  const out: number[] = []
  await (pipeline as (...streams: unknown[]) => Promise<void>)(Readable.from([1, 2, 3, 4]), ...stages, async (src: AsyncIterable<number>) => {
    for await (const x of src) out.push(x)
  })
  return out
}

test('fuse runs stages as one, with the output of the same stages piped', async () => {
  const piped = await through(add(10), double(), add(100))
  assert.deepEqual(piped, [122, 123, 124, 125, 126, 127, 128, 129])
  assert.deepEqual(await through(fuse(add(10), double(), add(100))), piped)
  assert.deepEqual(await through(fuse()), [1, 2, 3, 4])
})

test('fuse: an error in any fused stage fails the pipeline with it', async () => {
  await assert.rejects(through(fuse(add(10), failAt(13), double())), /bad 13/)
  await assert.rejects(through(add(1), fuse(double(), failAt(7))), /bad 7/)
})

test('fuse takes only fresh stages made by stage()', () => {
  assert.throws(() => fuse(new PassThrough({ objectMode: true })), TypeError)
  const used = add(1)
  Readable.from([1]).pipe(used)
  assert.throws(() => fuse(used), TypeError)
})
