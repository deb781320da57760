import assert from 'node:assert/strict'
import { PassThrough, Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { test } from 'node:test'
import { fuse, stage } from '../../lib/flow.js'

const add = (n: number) => stage<number, number>(async function* (src) {
  for await (const x of src) yield x + n
})
const double = () => stage<number, number>(async function* (src) {
  for await (const x of src) yield x * 2
})

async function collect(items: Iterable<number>, ...mid: NodeJS.ReadWriteStream[]): Promise<number[]> {
  const out: number[] = []
  await pipeline([Readable.from(items), ...mid, new Writable({ objectMode: true, write: (x: number, _e, cb) => { out.push(x); cb() } })] as never)
  return out
}

test('fused stages give what the same stages give one after another, in order', async () => {
  const items = Array.from({ length: 1000 }, (_, i) => i)
  const apart = await collect(items, add(1), double(), add(-3))
  const fused = await collect(items, fuse(add(1), double(), add(-3)))
  assert.deepEqual(fused, apart)
  assert.deepEqual(fused.slice(0, 3), [-1, 1, 3])
})

test('an error in a fused stage fails the pipeline with it, and the stages before it are closed', async () => {
  const boom = new Error('stage 2 failed')
  let firstClosed = false
  const first = stage<number, number>(async function* (src) {
    try {
      for await (const x of src) yield x
    } finally {
      firstClosed = true
    }
  })
  const failing = stage<number, number>(async function* (src) {
    for await (const x of src) {
      if (x === 5) throw boom
      yield x
    }
  })
  await assert.rejects(collect(Array.from({ length: 100 }, (_, i) => i), fuse(first, failing, add(0))), boom)
  assert.equal(firstClosed, true)
})

test('a fused chain pulls only what its consumer asks for', async () => {
  let produced = 0
  function* endless(): Generator<number> {
    for (;;) yield produced++
  }
  const chain = fuse(add(1), double(), add(1))
  Readable.from(endless()).pipe(chain)
  const seen: number[] = []
  for await (const x of chain) {
    seen.push(x as number)
    if (seen.length === 5) break
  }
  assert.deepEqual(seen, [3, 5, 7, 9, 11])
  // Readable.from's buffer and the fused stage's two one-item sides, not the stages' own.
  assert.ok(produced < 5 + 25, `source drained ahead: ${produced}`)
})

test('fuse takes only stages made by stage()', () => {
  assert.throws(() => fuse(add(1), new PassThrough({ objectMode: true })), TypeError)
})
