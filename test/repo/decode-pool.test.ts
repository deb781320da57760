// Chunk objects opened on the thread pool (native/decodepool.c through lib/repo/objects.ts
// openChunkPooled) against the synchronous path (sodium-native and zstd-napi, openChunk): the
// same plaintext for every framing, the same ERR_CORRUPT words for every damage.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes, randomInt } from 'node:crypto'
import sodium from 'sodium-native'
import { compress as zstdCompress } from 'zstd-napi'
import { chunkId } from '../../lib/repo/crypto.js'
import { compressAndSeal, openChunk, openChunkPooled, sealChunk, CHUNK_PLAIN_OFFSET, COMPRESSION_NONE, COMPRESSION_ZSTD } from '../../lib/repo/objects.js'
import { PoolDecoder } from '../../lib/native.js'
import { ByteGate } from '../../lib/flow.js'
import { CHUNK_MAX } from '../../lib/limits.js'
import { SluiceError } from '../../lib/errors.js'
import { seededBytes } from '../helpers/tree.js'
import { scratch } from '../helpers/scratch.js'
import { createLocalStorage, initRepository } from '../../index.js'
import { chunkKey } from '../../lib/repo/objects.js'
import { ChunkPool } from '../../transforms/restore/chunk-pool.js'

const encKey = randomBytes(32)
const idKey = randomBytes(32)
const decoder = PoolDecoder.of(encKey, idKey)
const text = (n: number): Buffer => Buffer.from('the quick brown fox jumps over the lazy dog, again and again. '.repeat(Math.ceil(n / 62) + 1)).subarray(0, n)

function native(): PoolDecoder {
  assert.ok(decoder, 'the addon is built (npm rebuild) and has the decoder')
  return decoder
}

/** What openChunk (the synchronous path) makes of `obj`: the plaintext or the error's words. */
function viaJs(id: Buffer, obj: Buffer, verify = false): Buffer | string {
  try {
    const plain = openChunk(encKey, id, Buffer.from(obj))
    if (verify && !chunkId(idKey, plain).equals(id)) return `ERR_CORRUPT: chunk ${id.toString('hex')} does not hash to its id`
    return plain
  } catch (err) {
    assert.ok(err instanceof SluiceError, String(err))
    return `${err.code}: ${err.message}`
  }
}

/** The same through the pool, on a copy (the object is decrypted in place). */
async function viaPool(id: Buffer, obj: Buffer, opts: { verify?: boolean; pooled?: boolean } = {}): Promise<Buffer | string> {
  const taken: number[] = []
  try {
    const plain = await openChunkPooled(native(), id, Buffer.from(obj), {
      ...(opts.verify ? { verifyWith: idKey } : {}),
      ...(opts.pooled ? { alloc: (n: number) => (taken.push(n), Buffer.alloc(n + 7).subarray(3, 3 + n)) } : {}),
      gate: new ByteGate(CHUNK_MAX),
    })
    // Only a compressed chunk takes memory, and only its frame's size.
    if (opts.pooled) assert.deepEqual(taken, obj[1] === COMPRESSION_ZSTD ? [plain.length] : [])
    return plain
  } catch (err) {
    assert.ok(err instanceof SluiceError, String(err))
    return `${err.code}: ${err.message}`
  }
}

const sameBoth = async (what: string, id: Buffer, obj: Buffer, verify = false): Promise<Buffer | string> => {
  const js = viaJs(id, obj, verify)
  for (const pooled of [false, true]) assert.deepEqual(await viaPool(id, obj, { verify, pooled }), js, `${what} (pooled: ${pooled}, verify: ${verify})`)
  return js
}

test('every framing opens to the same bytes as the synchronous path: stored, compressed, empty, up to CHUNK_MAX', async () => {
  const plains: [string, Buffer][] = [
    ['empty', Buffer.alloc(0)],
    ['one byte', Buffer.of(7)],
    ['63 bytes', randomBytes(63)],
    ['64 bytes (one ChaCha20 block)', randomBytes(64)],
    ['65 bytes', randomBytes(65)],
    ['random 300 KB', seededBytes('decode-random', 300_000)],
    ['text 1 MiB', text(1 << 20)],
    ['zeros CHUNK_MAX', Buffer.alloc(CHUNK_MAX)],
    ['random CHUNK_MAX', seededBytes('decode-max', CHUNK_MAX)],
  ]
  for (let i = 0; i < 40; i++) plains.push([`random ${i}`, i % 2 ? randomBytes(randomInt(0, 70_000)) : text(randomInt(0, 70_000))])
  const seen = new Set<number>()
  for (const [what, plain] of plains) {
    const id = chunkId(idKey, plain)
    const { obj, compression } = compressAndSeal(encKey, id, plain, 3)
    seen.add(compression)
    for (const verify of [false, true]) assert.deepEqual(await sameBoth(what, id, obj, verify), plain, `${what}: the plaintext`)
    // Stored as is by choice, whatever zstd would do.
    const raw = sealChunk(encKey, id, COMPRESSION_NONE, plain)
    assert.deepEqual(await sameBoth(`${what}, stored`, id, raw, true), plain, `${what}, stored: the plaintext`)
  }
  assert.deepEqual([...seen].sort(), [COMPRESSION_NONE, COMPRESSION_ZSTD], 'both framings were tried')
})

test('XChaCha20-Poly1305 (HChaCha20 by hand, then OpenSSL) opens what libsodium seals, under random keys', async () => {
  for (let i = 0; i < 300; i++) {
    const key = randomBytes(32)
    const d = PoolDecoder.of(key, idKey)!
    const id = randomBytes(32)
    const plain = randomBytes(randomInt(0, 5000))
    // libsodium directly, not through objects.ts: the object's layout by hand.
    const nonce = randomBytes(24)
    const ad = Buffer.concat([Buffer.of(1), id, Buffer.of(0)])
    const ct = Buffer.alloc(plain.length + 16)
    sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(ct, plain, ad, null, nonce, key)
    const obj = Buffer.concat([Buffer.of(1, 0), nonce, ct])
    const n = await d.open(id, obj, CHUNK_MAX, false)
    assert.equal(n, plain.length, `case ${i}: length`)
    assert.deepEqual(obj.subarray(CHUNK_PLAIN_OFFSET, CHUNK_PLAIN_OFFSET + n), plain, `case ${i}: plaintext`)
  }
})

test('a flipped bit anywhere, a wrong key, a wrong id, truncation: the synchronous path\'s ERR_CORRUPT', async () => {
  for (const [what, plain] of [['stored', seededBytes('decode-flip', 5000)], ['compressed', text(5000)]] as const) {
    const id = chunkId(idKey, plain)
    const { obj } = compressAndSeal(encKey, id, plain, 3)
    const failed = `ERR_CORRUPT: chunk ${id.toString('hex')} failed authentication`
    // Every byte of a small object; for the nonce, ciphertext and tag alike.
    for (let at = 1; at < obj.length; at++) {
      const bad = Buffer.from(obj)
      bad[at]! ^= 1 << (at % 8)
      const r = await sameBoth(`${what}, bit flipped at ${at}`, id, bad, true)
      assert.equal(r, failed, `${what}, byte ${at}`)
    }
    const format = Buffer.from(obj)
    format[0] = 2
    assert.equal(await sameBoth(`${what}, format`, id, format), `ERR_CORRUPT: chunk ${id.toString('hex')} has unknown format 2`)
    const otherId = randomBytes(32)
    assert.equal(await sameBoth(`${what}, another id`, otherId, obj), `ERR_CORRUPT: chunk ${otherId.toString('hex')} failed authentication`)
    const otherKey = PoolDecoder.of(randomBytes(32), idKey)!
    await assert.rejects(openChunkPooled(otherKey, id, Buffer.from(obj)), /failed authentication/, `${what}: another key`)
    for (const len of [0, 1, 2, 41, 42, obj.length - 1]) {
      const r = await sameBoth(`${what}, truncated to ${len}`, id, obj.subarray(0, len))
      assert.match(String(r), /^ERR_CORRUPT: chunk [0-9a-f]{64} (is truncated|failed authentication)$/, `${what}, ${len} bytes`)
    }
  }
})

test('a chunk that authenticates but does not hash to its id: refused with verify, as is without', async () => {
  for (const plain of [seededBytes('decode-id', 9000), text(9000)]) {
    const id = randomBytes(32) // not the plaintext's id: a backup that computed a wrong one
    const { obj } = compressAndSeal(encKey, id, plain, 3)
    assert.deepEqual(await sameBoth('not verified', id, obj, false), plain)
    assert.equal(await sameBoth('verified', id, obj, true), `ERR_CORRUPT: chunk ${id.toString('hex')} does not hash to its id`)
  }
})

test('crafted zstd frames: above CHUNK_MAX refused before allocation, lying sizes, garbage, an unknown compression byte', async () => {
  // A frame that says it decodes to more than any chunk: nothing of that size is taken.
  const big = Buffer.alloc(CHUNK_MAX + 1)
  const bigId = chunkId(idKey, big)
  const bigObj = sealChunk(encKey, bigId, COMPRESSION_ZSTD, zstdCompress(big))
  const tooBig = `ERR_CORRUPT: chunk ${bigId.toString('hex')} says it decodes to ${CHUNK_MAX + 1} bytes (at most ${CHUNK_MAX})`
  assert.equal(await sameBoth('too big', bigId, bigObj), tooBig)
  // A frame whose header claims more (or less) than its blocks hold.
  const plain = text(1000)
  const id = chunkId(idKey, plain)
  const frame = zstdCompress(plain)
  assert.equal(frame[4]! & 0xe0, 0x60, 'single segment, two-byte content size')
  assert.equal(frame.readUInt16LE(5) + 256, 1000)
  for (const claim of [999, 1001, 2000]) {
    const lying = Buffer.from(frame)
    lying.writeUInt16LE(claim - 256, 5)
    const r = await sameBoth(`claims ${claim}`, id, sealChunk(encKey, id, COMPRESSION_ZSTD, lying))
    assert.match(String(r), /^ERR_CORRUPT: chunk [0-9a-f]{64} (does not decompress|decodes to \d+ bytes, not the \d+ its frame says)$/, `claims ${claim}`)
  }
  for (const garbage of [Buffer.alloc(0), randomBytes(3), randomBytes(100), Buffer.concat([frame.subarray(0, 9), randomBytes(50)])]) {
    const r = await sameBoth(`garbage of ${garbage.length}`, id, sealChunk(encKey, id, COMPRESSION_ZSTD, garbage))
    assert.match(String(r), /^ERR_CORRUPT: chunk [0-9a-f]{64} (does not decompress|says it decodes to|decodes to)/, `garbage of ${garbage.length}`)
  }
  assert.equal(await sameBoth('compression 7', id, sealChunk(encKey, id, 7, plain)), `ERR_CORRUPT: chunk ${id.toString('hex')} has unknown compression 7`)
})

test('ByteGate: at most its cap in use, a task larger than the cap alone, first come first served', async () => {
  const gate = new ByteGate(10)
  const order: string[] = []
  await gate.take(6)
  const b = gate.take(6).then(() => order.push('b'))
  const c = gate.take(1).then(() => order.push('c')) // fits, but waits its turn behind b
  await Promise.resolve()
  assert.deepEqual(order, [])
  gate.give(6)
  await Promise.all([b, c])
  assert.deepEqual(order, ['b', 'c'])
  gate.give(6)
  gate.give(1)
  await gate.take(50) // alone: larger than the cap
  let d = false
  const pd = gate.take(1).then(() => (d = true))
  await Promise.resolve()
  assert.equal(d, false)
  gate.give(50)
  await pd
})

test('Repository.loadChunk into restore\'s chunk pool: a stored chunk\'s plaintext keeps its buffer, a compressed one\'s object goes back', async () => {
  const repo = await initRepository(createLocalStorage(`${scratch('decode-pool')}/repo`), 'pw', { kdf: { opslimit: 1, memlimit: 8192 } })
  const stored = seededBytes('pool-stored', 300_000)
  const packed = text(300_000)
  const ids: Buffer[] = []
  for (const plain of [stored, packed]) {
    const id = repo.chunkId(plain)
    ids.push(id)
    await repo.putChunk(id, compressAndSeal(repo.keys.encKey, id, plain, 3).obj)
  }
  const pool = new ChunkPool(64 << 20)
  // Stored: decrypted where it was read, so the plaintext lies in the pool's buffer, which the
  // pool must not hand out again until the plaintext is given back.
  const a = await repo.loadChunk(ids[0]!, pool)
  assert.deepEqual(a, stored)
  assert.ok(pool.owns(a), 'read into the pool, decoded in place')
  const next = pool.take(300_000)
  assert.notEqual(next.buffer, a.buffer, 'not handed out while the plaintext is in use')
  pool.give(next)
  // Compressed: the plaintext in a buffer of its own from the pool, the object's given back.
  const b = await repo.loadChunk(ids[1]!, pool)
  assert.deepEqual(b, packed)
  assert.ok(pool.owns(b))
  assert.notEqual(b.buffer, a.buffer)
  // Without a pool, and with verify: the same bytes.
  assert.deepEqual(await repo.loadChunk(ids[0]!, undefined, { verify: true }), stored)
  assert.deepEqual(await repo.loadChunk(ids[1]!, undefined, { verify: true }), packed)
  // Without the addon's decoder (openChunk on this thread): the same bytes, and verify's check.
  const fallback = Object.assign(Object.create(Object.getPrototypeOf(repo)), repo, { decoder: undefined }) as typeof repo
  assert.deepEqual(await fallback.loadChunk(ids[0]!, undefined, { verify: true }), stored)
  const c = await fallback.loadChunk(ids[1]!, pool, { verify: true })
  assert.deepEqual(c, packed)
  pool.give(c)
  const liar = randomBytes(32)
  await repo.putChunk(liar, compressAndSeal(repo.keys.encKey, liar, packed, 3).obj)
  for (const r of [repo, fallback]) {
    assert.deepEqual(await r.loadChunk(liar), packed, 'unverified, it authenticates')
    await assert.rejects(r.loadChunk(liar, pool, { verify: true }), { code: 'ERR_CORRUPT', message: `chunk ${liar.toString('hex')} does not hash to its id` })
  }
  assert.equal(Reflect.get(fallback, 'decoder'), undefined, 'the fallback stayed without the decoder')
  assert.ok(Reflect.get(repo, 'decoder') instanceof PoolDecoder, 'the repository decoded on the pool')
  // A damaged object read into the pool: ERR_CORRUPT naming the chunk.
  const obj = await repo.storage.get(chunkKey(ids[1]!))
  obj[obj.length - 1]! ^= 1
  await repo.storage.delete(chunkKey(ids[1]!))
  assert.ok(await repo.storage.put(chunkKey(ids[1]!), obj))
  await assert.rejects(repo.loadChunk(ids[1]!, pool), (err: unknown) => err instanceof SluiceError && err.code === 'ERR_CORRUPT' && err.message === `chunk ${ids[1]!.toString('hex')} failed authentication`)
  pool.give(a)
  pool.give(b)
})
