/**
 * The chunk arena (lib/chunk-arena.ts) and sealing in place: regions in flight never overlap and
 * keep their bytes whatever order they are released in; an arena without room spills instead of
 * waiting, and `room` waits for a release (so a small arena holds a large file's chunks without
 * spilling); an object sealed in shared memory opens to the same plaintext; and backups whose
 * chunks spill (an arena far too small) restore exactly, sealed inline and on the worker.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { Readable } from 'node:stream'
import { ChunkArena, type ChunkSlot } from '../../lib/chunk-arena.js'
import { chunkId, idHasher, randomBytes } from '../../lib/repo/crypto.js'
import { compressAndSealInPlace, openChunk, CHUNK_OBJECT_OVERHEAD, CHUNK_PLAIN_OFFSET } from '../../lib/repo/objects.js'
import { MiB } from '../../lib/limits.js'
import {
  backup, restore, check, createLocalStorage, createStdinSource, initRepository, type Repository,
} from '../../index.js'
import { seededBytes } from '../helpers/tree.js'
import { scratch } from '../helpers/scratch.js'

/** A small deterministic PRNG (mulberry32), so a failing sequence can be replayed. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = seed
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

test('regions in flight never overlap and keep their bytes, released in any order', () => {
  const size = 64 * 1024
  const arena = new ChunkArena(size)
  const rand = rng(7)
  const live: { slot: ChunkSlot; fill: number }[] = []
  let placed = 0
  for (let step = 0; step < 5000; step++) {
    if (live.length > 0 && (rand() < 0.45 || live.length > 12)) {
      // Release one, mostly the oldest (the pipeline's order), sometimes any.
      const i = rand() < 0.7 ? 0 : Math.floor(rand() * live.length)
      const { slot, fill } = live.splice(i, 1)[0]!
      assert.ok(slot.region.every(b => b === fill), `region at ${slot.offset} was overwritten`)
      slot.release()
      slot.release() // idempotent: must not free a region placed there since
      continue
    }
    const want = 1 + Math.floor(rand() * size * 0.3)
    const slot = arena.reserve(want)
    assert.equal(slot.region.length, want)
    const cut = rand() < 0.5 ? want : 1 + Math.floor(rand() * want)
    arena.shrink(slot, cut)
    assert.equal(slot.region.length, cut)
    const fill = step % 251
    slot.region.fill(fill)
    if (!slot.spilled) {
      placed++
      assert.ok(slot.buffer instanceof SharedArrayBuffer)
      assert.ok(slot.offset >= 0 && slot.offset + cut <= size)
      for (const other of live) {
        if (other.slot.spilled) continue
        const a = other.slot
        const apart = slot.offset + cut <= a.offset || a.offset + a.region.length <= slot.offset
        assert.ok(apart, `region ${slot.offset}+${cut} overlaps ${a.offset}+${a.region.length}`)
      }
    } else {
      assert.ok(!(slot.buffer instanceof SharedArrayBuffer), 'a spilled region is not shared')
    }
    live.push({ slot, fill })
    const inRing = live.filter(l => !l.slot.spilled).reduce((n, l) => n + l.slot.region.length, 0)
    assert.equal(arena.used, inRing)
  }
  assert.ok(placed > 1000, `most regions fit the arena (${placed})`)
  assert.ok(arena.spills > 0, 'some did not and spilled')
})

test('an arena without room spills at once instead of waiting, and takes regions again once freed', () => {
  const arena = new ChunkArena(100)
  const a = arena.reserve(60)
  const b = arena.reserve(60)
  assert.equal(a.spilled, false)
  assert.equal(b.spilled, true)
  assert.equal(arena.spills, 1)
  assert.equal(arena.spilledBytes, 60)
  assert.throws(() => arena.shrink(a, 61), RangeError)
  a.release()
  assert.equal(arena.used, 0)
  const c = arena.reserve(100)
  assert.equal(c.spilled, false)
  assert.equal(arena.reserve(101).spilled, true, 'larger than the arena')
})

test('room: ready at once with space or only the caller\'s own region, else waits for a release', async () => {
  const arena = new ChunkArena(100)
  assert.equal(arena.room(60), undefined, 'an empty arena has room')
  const own = arena.reserve(60)
  assert.equal(arena.room(60, own), undefined, 'only the caller\'s own region in flight: no wait (it cannot be released meanwhile)')
  const other = arena.reserve(30)
  let woke = false
  const wait = arena.room(60, own)
  assert.ok(wait, 'another region fills the arena: wait')
  void wait.then(() => (woke = true))
  own.release() // frees 60 at the low end: room for 60 again
  await wait
  assert.ok(woke)
  const a = arena.reserve(50)
  const w2 = arena.room(40)
  assert.ok(w2, 'no hole of 40 while 50 + 30 are in flight')
  other.release()
  await w2
  a.release()
  assert.equal(arena.used, 0)
})

test('room does not wait for a held region (the metadata packer\'s open chunk) until it is handed off', async () => {
  const arena = new ChunkArena(100)
  const own = arena.reserve(50)
  const meta = arena.reserve(30, true)
  // 20 free: a region of 40 cannot fit, but only the caller's own and a held region are in
  // flight, and the held one waits for the caller's records: waiting would never end.
  assert.equal(arena.room(40, own), undefined, 'no wait on a held region')
  arena.handOff(meta)
  const wait = arena.room(40, own)
  assert.ok(wait, 'handed downstream, the region is released like any other: wait for it')
  meta.release()
  await wait
  own.release()
  assert.equal(arena.used, 0)
})

test('room with growTo: waits until the caller\'s region can grow (in place or elsewhere) and the next region still fits', async () => {
  const arena = new ChunkArena(100)
  const own = arena.reserve(20) // 0-20
  const next = arena.reserve(30) // 20-50: own cannot grow in place
  assert.equal(arena.room(20, own, 40), undefined, 'a hole of 40 at 50: growing moves there')
  const filler = arena.reserve(30) // 50-80: no hole of 40 left
  const wait = arena.room(20, own, 40)
  assert.ok(wait, 'no room to grow: wait rather than spill')
  let woke = false
  void wait.then(() => (woke = true))
  filler.release()
  await wait
  assert.ok(woke)
  assert.equal(arena.grow(own, 40, 20).spilled, false, 'the growth the wait made room for does not spill')
  next.release()
  const lone = new ChunkArena(100)
  const mine = lone.reserve(20) // 0-20
  const after = lone.reserve(10) // 20-30
  const gap = lone.reserve(30) // 30-60
  const tail = lone.reserve(10) // 60-70
  gap.release() // free: 30-60 and 70-100, no hole of 60
  const w = lone.room(20, mine, 60)
  assert.ok(w, 'growing in place to 60 is blocked and there is no hole of 60 elsewhere')
  after.release()
  await w
  assert.equal(lone.room(20, mine, 60), undefined, 'grows in place to 60, and 20 fit beside it (70-100)')
  const w2 = lone.room(40, mine, 60)
  assert.ok(w2, 'it could grow in place, but 40 more would not fit beside it')
  tail.release()
  await w2
  assert.equal(lone.grow(mine, 60, 20).offset, 0, 'grown in place')
  assert.equal(lone.reserve(40).spilled, false, 'and the next region fits beside it')
})

test('a growth that only fits over its own place moves there, bytes kept, instead of spilling', async () => {
  // A held region (the metadata packer's open chunk) in the middle and the caller's own near
  // the end: no hole of 50 anywhere, nor room to grow in place, but one over its own region
  // once it moves (40-100).
  const arena = new ChunkArena(100)
  const before = arena.reserve(30) // 0-30
  const meta = arena.reserve(10, true) // 30-40, held
  const x = arena.reserve(30) // 40-70
  const own = arena.reserve(20) // 70-90
  before.release()
  x.release()
  own.region.set(seededBytes('own', 20))
  assert.equal(arena.room(10, own, 50), undefined, 'moving over its own place makes room, and 10 fit beside (0-30)')
  const grown = arena.grow(own, 50, 20)
  assert.equal(grown.spilled, false, 'no spill')
  assert.equal(arena.spills, 0)
  assert.equal(grown.offset, 40)
  assert.equal(grown.region.length, 50)
  assert.deepEqual(grown.region.subarray(0, 20), seededBytes('own', 20), 'the bytes it keeps')
  // Moved down over itself (the copy overlaps): a region at 50-70 grown to 60 lands at 40.
  const b = new ChunkArena(100)
  const m = b.reserve(40, true) // 0-40, held
  const gap = b.reserve(10) // 40-50
  const o = b.reserve(20) // 50-70
  const t = b.reserve(30) // 70-100
  gap.release()
  t.release()
  o.region.set(seededBytes('down', 20))
  const g = b.grow(o, 60, 20)
  assert.equal(g.spilled, false)
  assert.equal(g.offset, 40)
  assert.deepEqual(g.region.subarray(0, 20), seededBytes('down', 20))
  g.release()
  m.release()
  meta.release()
  grown.release()
  assert.equal(arena.used, 0)
  assert.equal(b.used, 0)
})

test('a large file backed up through a small arena (the chunker waits for room) restores exactly', async () => {
  const repo = await freshRepo('wait')
  const src = `${BASE}/wait/src`
  fs.mkdirSync(src, { recursive: true })
  const data = seededBytes('wait', 12 * MiB)
  fs.writeFileSync(`${src}/big.bin`, data)
  const arena = new ChunkArena(6 * MiB)
  const { snapshotId } = await backup({ repo, paths: [src], arena })
  // The chunker waited for room between read blocks (a wait that never ended would hang here:
  // every region ahead of it is released downstream without more input).
  assert.equal(arena.used, 0, 'every region was released')
  const target = `${BASE}/wait/out`
  await restore({ repo, snapshot: snapshotId, target })
  assert.deepEqual(fs.readFileSync(`${target}${src}/big.bin`), data)
})

test('a region grows in place when the bytes after it are free, else moves with its bytes', () => {
  const arena = new ChunkArena(100)
  const a = arena.reserve(10)
  a.region.fill(1)
  const a2 = arena.grow(a, 30, 10)
  assert.equal(a2, a, 'grown in place')
  assert.equal(a2.offset, 0)
  assert.equal(a2.region.length, 30)
  assert.ok(a2.region.subarray(0, 10).every(b => b === 1))
  const b = arena.reserve(20) // right behind a: a cannot grow in place any more
  b.region.fill(2)
  a2.region.fill(3, 10, 30)
  const a3 = arena.grow(a2, 40, 25)
  assert.notEqual(a3.offset, 0, 'moved')
  assert.equal(a3.region.length, 40)
  assert.ok(a3.region.subarray(0, 10).every(v => v === 1) && a3.region.subarray(10, 25).every(v => v === 3), 'kept bytes moved')
  assert.ok(b.region.every(v => v === 2), 'the neighbour is untouched')
  assert.equal(arena.used, 60, 'the old place was given back')
  const c = arena.reserve(30) // the hole a left (30 bytes at 0) takes it
  assert.equal(c.offset, 0)
  const big = arena.grow(a3, 200, 40) // larger than the arena: spills, bytes kept
  assert.equal(big.spilled, true)
  assert.ok(big.region.subarray(0, 10).every(v => v === 1))
  assert.equal(arena.used, 50)
})

test('a chunk sealed in place in shared memory opens to its plaintext; the piecewise id is the id', () => {
  const encKey = randomBytes(32)
  const idKey = randomBytes(32)
  const sab = new SharedArrayBuffer(3 * MiB)
  for (const [what, plain] of [
    ['compressible', Buffer.from('sluice '.repeat(100_000))],
    ['incompressible', seededBytes('arena', 200_000)],
    ['one byte', Buffer.of(42)],
  ] as const) {
    const pieces = [plain.subarray(0, 7), plain.subarray(7, 7), plain.subarray(7)]
    const h = idHasher(idKey)
    for (const p of pieces) h.update(p)
    const id = h.digest()
    assert.deepEqual(id, chunkId(idKey, plain), `${what}: piecewise id`)
    const region = Buffer.from(sab, 1000, plain.length + CHUNK_OBJECT_OVERHEAD)
    region.set(plain, CHUNK_PLAIN_OFFSET)
    const r = compressAndSealInPlace(encKey, id, region, plain.length, 3)
    assert.equal(r.compression, what === 'compressible' ? 1 : 0, `${what}: compression`)
    const obj = Buffer.from(region.subarray(0, r.length))
    assert.deepEqual(openChunk(encKey, id, obj), plain, `${what}: opens`)
    obj[obj.length - 1]! ^= 1
    assert.throws(() => openChunk(encKey, id, obj), /failed authentication/, `${what}: tampered`)
  }
  const region = Buffer.from(sab, 0, 10)
  assert.throws(() => compressAndSealInPlace(encKey, idKey, region, 10, 3), RangeError, 'a region without room for the overhead')
})

const BASE = scratch('chunk-arena-task')
const PW = 'arena'

async function freshRepo(name: string): Promise<Repository> {
  fs.rmSync(`${BASE}/${name}`, { recursive: true, force: true })
  return initRepository(createLocalStorage(`${BASE}/${name}/repo`), PW, { kdf: { opslimit: 1, memlimit: 8192 } })
}

test('a tree backed up through an arena far too small (chunks spill) restores exactly', async () => {
  const repo = await freshRepo('tree')
  const src = `${BASE}/tree/src`
  fs.mkdirSync(`${src}/small`, { recursive: true })
  const big = [seededBytes('big-a', 6 * MiB), seededBytes('big-b', 5 * MiB + 12345)]
  fs.writeFileSync(`${src}/a.bin`, big[0]!)
  fs.writeFileSync(`${src}/b.bin`, big[1]!)
  fs.writeFileSync(`${src}/copy-of-a.bin`, big[0]!) // deduplicated: released in dedup
  for (let i = 0; i < 300; i++) fs.writeFileSync(`${src}/small/${i}`, seededBytes(`s${i}`, (i * 977) % 9000))
  // Smaller than one open chunk's region (twice the average chunk): every content chunk spills,
  // whatever the timing (the chunker never waits: nothing is ever in the arena).
  const arena = new ChunkArena(2 * MiB)
  const res = await backup({ repo, paths: [src], arena })
  assert.ok(arena.spills > 0, 'the spill path ran')
  assert.equal(arena.used, 0, 'every region was released')
  const target = `${BASE}/tree/out`
  await restore({ repo, snapshot: res.snapshotId, target })
  const out = `${target}${src}`
  assert.deepEqual(fs.readFileSync(`${out}/a.bin`), big[0])
  assert.deepEqual(fs.readFileSync(`${out}/b.bin`), big[1])
  assert.deepEqual(fs.readFileSync(`${out}/copy-of-a.bin`), big[0])
  for (let i = 0; i < 300; i++) assert.deepEqual(fs.readFileSync(`${out}/small/${i}`), seededBytes(`s${i}`, (i * 977) % 9000))
  const problems: string[] = []
  await check({ repo, readData: true, onProblem: m => problems.push(m) })
  assert.deepEqual(problems, [])
})

test('a stream sealed on the worker through an arena far too small restores exactly', async () => {
  const repo = await freshRepo('stream')
  const data = Buffer.concat([seededBytes('stream', 9 * MiB), Buffer.alloc(3 * MiB, 0x61), seededBytes('stream', 2 * MiB)])
  const pieces = function* () {
    for (let p = 0; p < data.length; p += 65536) yield data.subarray(p, p + 65536)
  }
  const arena = new ChunkArena(2 * MiB) // smaller than one open chunk's region: every chunk spills
  const res = await backup({ repo, source: createStdinSource(Readable.from(pieces()), { name: Buffer.from('dump.sql') }), arena })
  assert.ok(arena.spills > 0, 'the spill path ran')
  assert.equal(arena.used, 0)
  const target = `${BASE}/stream/out`
  await restore({ repo, snapshot: res.snapshotId, target })
  assert.deepEqual(fs.readFileSync(`${target}/dump.sql`), data)
  const problems: string[] = []
  await check({ repo, readData: true, onProblem: m => problems.push(m) })
  assert.deepEqual(problems, [])
})
