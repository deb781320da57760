import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createSealer, wantsWorkers } from '../../transforms/backup/seal.js'
import { SEAL_POOL_JOBS_HIGH, SEAL_POOL_MIN_CHUNK, SEAL_WORKER_MIN_MEAN_FILE, SEAL_WORKER_SHARE, ZSTD_HIGH_WINDOW_LOG, ZSTD_LEVEL, ZSTD_MAX_LEVEL } from '../../lib/limits.js'
import { ChunkArena } from '../../lib/chunk-arena.js'
import type { ChunkItem } from '../../lib/entry.js'
import { CHUNK_OBJECT_OVERHEAD, CHUNK_PLAIN_OFFSET, COMPRESSION_NONE, COMPRESSION_ZSTD, compressAndSeal, compressPayload, openChunk } from '../../lib/repo/objects.js'
import { PoolZstd } from '../../lib/native.js'
import { seededBytes } from '../helpers/tree.js'

const KiB = 1024
const MiB = 1024 * KiB

// The seal stage moves to its worker (and pays ~20 MB for it) only for content-bound work. The
// windows below are ones measured on the bench's trees (lib/limits.ts): the share of time spent
// sealing overlaps between a tree of small files and large files; the mean file size does not.
test('the seal worker starts for large files, not for a tree of small files that seals as much', () => {
  // 100k small files (2.9 KB each): a first window seen at 48 % sealing, a later one at 43 %.
  assert.equal(wantsWorkers({ ms: 109, sealMs: 52, files: 300, bytes: 300 * 2900 }), false)
  assert.equal(wantsWorkers({ ms: 512, sealMs: 220, files: 2769, bytes: 7_943_981 }), false)
  // The middle of a large file: no file begins in the window.
  assert.equal(wantsWorkers({ ms: 136, sealMs: 67, files: 0, bytes: 13 * MiB }), true)
  assert.equal(wantsWorkers({ ms: 506, sealMs: 268, files: 0, bytes: 35 * MiB }), true)
  // Large files one after another, and files of exactly the threshold.
  assert.equal(wantsWorkers({ ms: 500, sealMs: 250, files: 3, bytes: 40 * MiB }), true)
  assert.equal(wantsWorkers({ ms: 500, sealMs: 250, files: 100, bytes: 100 * SEAL_WORKER_MIN_MEAN_FILE }), true)
  assert.equal(wantsWorkers({ ms: 500, sealMs: 250, files: 100, bytes: 100 * SEAL_WORKER_MIN_MEAN_FILE - 1 }), false)
  // Large files, but sealing is not where the time goes (a slow disk, say): no worker.
  assert.equal(wantsWorkers({ ms: 500, sealMs: 500 * SEAL_WORKER_SHARE - 1, files: 0, bytes: 20 * MiB }), false)
  assert.equal(wantsWorkers({ ms: 500, sealMs: 500 * SEAL_WORKER_SHARE, files: 0, bytes: 20 * MiB }), true)
})

test('the seal worker starts where metadata outweighs content (small files with large xattrs)', () => {
  // 50k files of 1.5 KB with two 1.9 KB xattrs each: ~4 KB of records per file.
  assert.equal(wantsWorkers({ ms: 500, sealMs: 250, files: 1000, bytes: 1000 * 1500, metaBytes: 1000 * 4000 }), true)
  // The 100k small-file tree: records of ~150 bytes per 2.9 KB file stay inline.
  assert.equal(wantsWorkers({ ms: 512, sealMs: 220, files: 2769, bytes: 7_943_981, metaBytes: 2769 * 150 }), false)
  // Metadata-heavy but sealing is not where the time goes (empty files): no worker.
  assert.equal(wantsWorkers({ ms: 500, sealMs: 500 * SEAL_WORKER_SHARE - 1, files: 5000, bytes: 0, metaBytes: 5000 * 150 }), false)
})

// Chunks of SEAL_POOL_MIN_CHUNK and more are compressed on the thread pool when the workers are
// off (the default budget): what comes out opens to the same bytes, compressed or stored as is.
test('the sealer without workers compresses on the thread pool: every chunk opens to its bytes, in order', async () => {
  const encKey = randomBytes(32)
  const arena = new ChunkArena(8 * MiB)
  const text = Buffer.from('the quick brown fox jumps over the lazy dog\n'.repeat(8000)) // compressible
  const noise = randomBytes(300 * KiB) // incompressible: the probe stores it as is
  const small = Buffer.from('a small chunk, sealed inline')
  const plains = [text, noise, small, text.subarray(0, SEAL_POOL_MIN_CHUNK), Buffer.concat([noise, text])]
  const items: ChunkItem[] = plains.map((p, i) => {
    const id = Buffer.alloc(32, i)
    if (i === 2) return { kind: 'chunk', id, data: Buffer.from(p), size: p.length, meta: false } // a buffer of its own
    const slot = arena.reserve(p.length + CHUNK_OBJECT_OVERHEAD)
    slot.region.set(p, CHUNK_PLAIN_OFFSET)
    arena.handOff(slot)
    return { kind: 'chunk', id, data: slot.region.subarray(CHUNK_PLAIN_OFFSET, CHUNK_PLAIN_OFFSET + p.length), size: p.length, meta: false, slot }
  })
  // A large chunk with a buffer of its own goes to the pool too.
  items.push({ kind: 'chunk', id: Buffer.alloc(32, 9), data: Buffer.from(text), size: text.length, meta: false })
  plains.push(text)
  const out: ChunkItem[] = []
  await pipeline(
    Readable.from(items),
    createSealer(encKey, { mode: 'inline' }),
    new Writable({ objectMode: true, write: (item: ChunkItem, _e, done) => { out.push(item); done() } }),
  )
  assert.equal(out.length, plains.length)
  out.forEach((o, i) => {
    assert.equal(o.id, items[i]!.id, 'in order')
    assert.deepEqual(openChunk(encKey, o.id, o.data), plains[i])
  })
  assert.equal(out[0]!.compression, COMPRESSION_ZSTD)
  assert.ok(out[0]!.data.length < text.length / 10)
  assert.equal(out[1]!.compression, COMPRESSION_NONE)
  assert.equal(out[5]!.compression, COMPRESSION_ZSTD)
})

/** Crafted plaintexts for the pooled-against-inline comparisons: text of several sizes around
 *  the thresholds (tiny, under and at SEAL_POOL_MIN_CHUNK, above the window), noise, and a mix. */
function craftedChunks(): Buffer[] {
  const line = (i: number) => `line ${i}: ${'abcdefghij'.repeat(1 + (i % 7))} ${(i * 7919) % 1000}\n`
  const text = Buffer.from(Array.from({ length: 40_000 }, (_, i) => line(i)).join(''))
  const noise = seededBytes('noise', 200 * KiB)
  return [
    text.subarray(0, 1), text.subarray(0, 100), text.subarray(5, 3000), text.subarray(0, SEAL_POOL_MIN_CHUNK - 1),
    text.subarray(0, SEAL_POOL_MIN_CHUNK), text.subarray(0, 1 * MiB), noise, Buffer.concat([noise.subarray(0, 100 * KiB), text.subarray(0, 300 * KiB)]),
  ]
}

// zstd's output depends only on its parameters and input, not on which context or thread ran
// it: a chunk compressed on the pool is the frame the inline path makes, byte for byte, so a
// repository stores the same bytes whichever path sealed a chunk (dedup and sizes agree).
test('zstd on the thread pool gives the inline frame byte for byte, at the default level and at max', async () => {
  for (const level of [ZSTD_LEVEL, ZSTD_MAX_LEVEL]) {
    const z = new PoolZstd(level, level > ZSTD_LEVEL ? ZSTD_HIGH_WINDOW_LOG : 0)
    for (const plain of craftedChunks()) {
      const out = Buffer.alloc(PoolZstd.bound(plain.length))
      const n = await z.compress(plain, out)
      const inline = compressPayload(plain, level, ZSTD_HIGH_WINDOW_LOG)
      if (inline.compression === COMPRESSION_ZSTD) assert.deepEqual(out.subarray(0, n), Buffer.from(inline.data), `level ${level}, ${plain.length} bytes`)
      else assert.ok(n >= plain.length * 0.99, `level ${level}, ${plain.length} bytes: stored as is inline, compressed on the pool to ${n}`)
    }
  }
})

// Above ZSTD_LEVEL every chunk, however small, goes to the pool, SEAL_POOL_JOBS_HIGH at a time on
// contexts of their own. A large chunk first and small ones behind it: the small ones finish
// first, and still leave in order, each sealed to the size the inline path gives.
test('at max every chunk is compressed on the pool, jobs at once: in order, same sizes as inline', async () => {
  assert.ok(SEAL_POOL_JOBS_HIGH >= 2)
  const encKey = randomBytes(32)
  const arena = new ChunkArena(8 * MiB)
  const plains = craftedChunks().reverse()
  plains.push(...craftedChunks().slice(0, 4), craftedChunks()[5]!)
  const items: ChunkItem[] = plains.map((p, i) => {
    const id = Buffer.alloc(32, i)
    if (i % 3 === 2) return { kind: 'chunk', id, data: Buffer.from(p), size: p.length, meta: true } // a buffer of its own
    const slot = arena.reserve(p.length + CHUNK_OBJECT_OVERHEAD)
    slot.region.set(p, CHUNK_PLAIN_OFFSET)
    arena.handOff(slot)
    return { kind: 'chunk', id, data: slot.region.subarray(CHUNK_PLAIN_OFFSET, CHUNK_PLAIN_OFFSET + p.length), size: p.length, meta: false, slot }
  })
  const out: ChunkItem[] = []
  await pipeline(
    Readable.from(items),
    createSealer(encKey, { level: ZSTD_MAX_LEVEL, mode: 'worker' }), // no worker above ZSTD_LEVEL: the pool
    new Writable({ objectMode: true, write: (item: ChunkItem, _e, done) => { out.push(item); done() } }),
  )
  assert.equal(out.length, plains.length)
  out.forEach((o, i) => {
    assert.equal(o.id, items[i]!.id, 'in order')
    assert.deepEqual(openChunk(encKey, o.id, o.data), plains[i])
    const inline = compressAndSeal(encKey, o.id, plains[i]!, ZSTD_MAX_LEVEL, ZSTD_HIGH_WINDOW_LOG)
    assert.equal(o.data.length, inline.obj.length, `chunk ${i} (${plains[i]!.length} bytes): sealed size`)
    assert.equal(o.compression, inline.compression)
  })
  assert.ok(out.some((o, i) => o.compression === COMPRESSION_ZSTD && plains[i]!.length < SEAL_POOL_MIN_CHUNK), 'a small chunk compressed')
})
