import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { chunkId } from '../../lib/repo/crypto.js'
import { compressAndSeal, compressAndSealInPlace, openChunk, resealChunk, CHUNK_OBJECT_OVERHEAD, CHUNK_PLAIN_OFFSET } from '../../lib/repo/objects.js'
import { PROBE_MIN_CHUNK, PROBE_SAMPLE } from '../../lib/limits.js'
import { seededBytes } from '../helpers/tree.js'

const MiB = 1024 * 1024
const encKey = randomBytes(32)
const idKey = randomBytes(32)
const text = (n: number): Buffer => Buffer.from('the quick brown fox jumps over the lazy dog, again and again. '.repeat(Math.ceil(n / 62))).subarray(0, n)
const patched = (base: Buffer, at: number, with_: Buffer): Buffer => {
  const b = Buffer.from(base)
  with_.copy(b, at)
  return b
}

// The probe before zstd (lib/repo/objects.ts) samples a chunk's start, middle and end: a chunk that
// is random there is stored as is without running zstd; anything zstd can shrink where sampled
// is compressed. Whatever it decides, the object opens to the same plaintext.
test('chunks zstd cannot shrink are stored as is; a random chunk with text where it is sampled is compressed', () => {
  const random = seededBytes('probe', MiB)
  const mid = (MiB - PROBE_SAMPLE) >> 1
  const cases: [string, Buffer, number][] = [
    ['random', random, 0],
    ['text', text(MiB), 1],
    ['random, text at the start', patched(random, 0, text(PROBE_SAMPLE)), 1],
    ['random, text in the middle', patched(random, mid, text(PROBE_SAMPLE)), 1],
    ['random, text at the end', patched(random, MiB - 64 * 1024, text(64 * 1024)), 1],
    ['random, below the probe size', random.subarray(0, PROBE_MIN_CHUNK - 1), 0],
    ['text, below the probe size', text(PROBE_MIN_CHUNK - 1), 1],
    ['zeros', Buffer.alloc(MiB), 1],
  ]
  for (const [what, plain, compression] of cases) {
    const id = chunkId(idKey, plain)
    const a = compressAndSeal(encKey, id, plain, 3)
    assert.equal(a.compression, compression, `${what}: compression`)
    assert.deepEqual(openChunk(encKey, id, a.obj), plain, `${what}: opens`)
    const region = Buffer.alloc(plain.length + CHUNK_OBJECT_OVERHEAD)
    plain.copy(region, CHUNK_PLAIN_OFFSET)
    const b = compressAndSealInPlace(encKey, id, region, plain.length, 3)
    assert.equal(b.compression, compression, `${what}: compression in place`)
    assert.deepEqual(openChunk(encKey, id, region.subarray(0, b.length)), plain, `${what}: opens in place`)
    if (compression === 0) assert.equal(b.length, plain.length + CHUNK_OBJECT_OVERHEAD, `${what}: stored as is`)
    else assert.ok(b.length < plain.length, `${what}: smaller`)
  }
})

test('an opened chunk is its own buffer: opening the next one leaves it as it was', () => {
  const plains = [text(300_000), seededBytes('own-1', 300_000), Buffer.from(text(200_000)).reverse()]
  const objs = plains.map((p) => {
    const id = chunkId(idKey, p)
    return { id, obj: compressAndSeal(encKey, id, p, 3).obj }
  })
  const opened = objs.map(({ id, obj }) => openChunk(encKey, id, obj))
  // Sealing more after opening must not touch what was opened either.
  compressAndSeal(encKey, idKey, text(400_000), 3)
  opened.forEach((o, i) => assert.deepEqual(o, plains[i], `chunk ${i}`))
})

// copy reseals a chunk object where it lies: the result opens under the new key to the same
// plaintext (compressed or not), no longer under the old one, and a damaged object is refused.
test('a chunk resealed in place opens under the new key only; a damaged one is refused', () => {
  const toKey = randomBytes(32)
  for (const plain of [text(MiB), seededBytes('reseal', 300 * 1024)]) {
    const id = chunkId(idKey, plain)
    const { obj } = compressAndSeal(encKey, id, plain, 3)
    const before = Buffer.from(obj)
    const sealed = resealChunk(encKey, toKey, id, obj)
    assert.equal(sealed, obj)
    assert.notDeepEqual(sealed, before)
    assert.deepEqual(openChunk(toKey, id, sealed), plain)
    assert.throws(() => openChunk(encKey, id, sealed), { code: 'ERR_CORRUPT' })
    const damaged = Buffer.from(before)
    damaged[damaged.length - 1]! ^= 1
    assert.throws(() => resealChunk(encKey, toKey, id, damaged), { code: 'ERR_CORRUPT' })
  }
})

// Restore decodes into reused memory (transforms/restore/chunk-pool.ts): the plaintext lands in
// the buffer `alloc` gives, and a frame that claims more than any honest chunk holds is refused
// before memory of that size is asked for.
test('openChunk decodes into the memory it is given and refuses a frame larger than CHUNK_MAX', async () => {
  const { sealChunk, COMPRESSION_ZSTD } = await import('../../lib/repo/objects.js')
  const { CHUNK_MAX } = await import('../../lib/limits.js')
  const zstd = (await import('zstd-napi')).compress
  for (const plain of [text(MiB), seededBytes('alloc', MiB)]) {
    const id = chunkId(idKey, plain)
    const { obj } = compressAndSeal(encKey, id, plain, 3)
    const asked: number[] = []
    const region = Buffer.alloc(2 * MiB)
    const out = openChunk(encKey, id, obj, n => {
      asked.push(n)
      return region.subarray(0, n)
    })
    assert.deepEqual(out, plain)
    assert.equal(out.buffer, region.buffer, 'the plaintext is in the given memory')
    assert.deepEqual(asked, [plain.length])
  }
  const huge = Buffer.alloc(CHUNK_MAX + 1)
  const id = chunkId(idKey, huge)
  const obj = sealChunk(encKey, id, COMPRESSION_ZSTD, zstd(huge))
  let asked = 0
  assert.throws(() => openChunk(encKey, id, obj, n => ((asked += n), Buffer.alloc(n))), (e: Error & { code?: string }) => e.code === 'ERR_CORRUPT' && /decodes to 4194305 bytes/.test(e.message))
  assert.throws(() => openChunk(encKey, id, obj), (e: Error & { code?: string }) => e.code === 'ERR_CORRUPT')
  assert.equal(asked, 0)
})
