/**
 * The chunker's boundaries are part of the repository format: new backups dedup against chunks
 * that older versions cut. These tests pin them three ways: against boundaries recorded from the
 * TypeScript chunker before the C loop existed (b6dac3c), between the C loop (native/
 * sluice_native.c cdcNext) and the TypeScript fallback, and across every way of splitting the
 * input into buffers, including splits that hand alternate buffers to the two loops.
 */
import { createHash } from 'node:crypto'
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { Cdc, gearTable, type ChunkerParams, type CdcOptions } from '../../lib/fastcdc.js'
import { CHUNK_AVG, CHUNK_MAX, CHUNK_MIN, META_CHUNK_AVG, META_CHUNK_MAX, META_CHUNK_MIN } from '../../lib/limits.js'
import { nativeCdcNext } from '../../lib/native.js'
import { seededBytes } from '../helpers/tree.js'

const MiB = 1 << 20
const SIZE = 8 * MiB
const gear = gearTable(Buffer.alloc(32, 0x5a))

function repeat(text: string, n: number): Buffer {
  return Buffer.alloc(n).fill(text)
}

/** Log lines: low entropy, but not periodic like `repeat`. */
function logLines(n: number): Buffer {
  const parts: string[] = []
  let len = 0
  for (let i = 0; len < n; i++) {
    const line = `2024-01-01T00:00:${String(i % 60).padStart(2, '0')}Z INFO request ${i} served in ${(i * 7) % 1000} ms\n`
    parts.push(line)
    len += line.length
  }
  return Buffer.from(parts.join('')).subarray(0, n)
}

const DATA: Record<string, Buffer> = {
  random: seededBytes('fastcdc random', SIZE),
  zeros: Buffer.alloc(SIZE),
  text: repeat('The quick brown fox jumps over the lazy dog. ', SIZE),
  log: logLines(SIZE),
}

const PARAMS: Record<string, ChunkerParams> = {
  content: { min: CHUNK_MIN, avg: CHUNK_AVG, max: CHUNK_MAX },
  meta: { min: META_CHUNK_MIN, avg: META_CHUNK_AVG, max: META_CHUNK_MAX },
  // Tens of thousands of chunks in 8 MiB: the min/avg/max switch points are crossed often
  // enough that a boundary landing one byte off there is certain to show.
  small: { min: 64, avg: 256, max: 1024 },
  odd: { min: 1000, avg: 3000, max: 7001 },
}

/** [boundary count, sha256 of the list joined by commas (16 hex)], from the TypeScript chunker at
 *  b6dac3c with gearTable(32 × 0x5a). Changing one means old repositories stop deduplicating. */
const GOLDEN: Record<string, [number, string]> = {
  'random/content': [6, '820ec5e35f8efda5'], // first 880487, 2177667, 3283983
  'random/meta': [56, 'a63435d9b0b2a6f7'], // first 108897, 324417, 459690
  'random/small': [28727, '4d1f6b384473df34'], // first 268, 704, 782
  'random/odd': [2244, '6f63ea0b70c1630d'], // first 4494, 7847, 10885
  'zeros/content': [2, '192992b36fb27fcf'], // first 4194304, 8388608
  'zeros/meta': [16, '30d6fcee4bb7df8d'], // first 524288, 1048576, 1572864
  'zeros/small': [8192, '1239a9dd2cd5ed95'], // first 1024, 2048, 3072
  'zeros/odd': [1198, '8ebc451d454e3718'], // first 7001, 14002, 21003
  'text/content': [2, '192992b36fb27fcf'], // first 4194304, 8388608
  'text/meta': [16, '30d6fcee4bb7df8d'], // first 524288, 1048576, 1572864
  'text/small': [8748, '1e8dacca09fb282b'], // first 82, 1106, 2130
  'text/odd': [1198, '8ebc451d454e3718'], // first 7001, 14002, 21003
  'log/content': [5, '19816072da0990e3'], // first 1940586, 3285141, 5611084
  'log/meta': [40, '8d5ff758d20a7174'], // first 524288, 696178, 786584
  'log/small': [28661, 'd853882703d90620'], // first 338, 622, 943
  'log/odd': [2178, 'a49a1e28052fda26'], // first 2495, 7398, 11017
}

/** mulberry32: a seeded source of split sizes. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Piece sizes from 1 byte to 256 KiB, a third each tiny, small and large. */
function randomSizes(seed: number): () => number {
  const r = rng(seed)
  return () => {
    const k = r()
    if (k < 1 / 3) return 1 + Math.floor(r() * 16)
    if (k < 2 / 3) return 17 + Math.floor(r() * 4096)
    return 1 + Math.floor(r() * 256 * 1024)
  }
}

interface Cut {
  boundaries: number[]
  pending: number
}

/** Feeds `data` in pieces of `size()` bytes, as the chunk stage does; boundaries as offsets. */
function cutAll(data: Uint8Array, params: ChunkerParams, opts: CdcOptions, size: () => number = () => data.length): Cut {
  const cdc = new Cdc(gear, params, opts)
  assert.equal(cdc.isNative, opts.native !== false, 'the chunker runs the loop the test meant')
  const boundaries: number[] = []
  for (let off = 0; off < data.length; ) {
    const piece = data.subarray(off, Math.min(data.length, off + size()))
    for (let pos = 0; pos < piece.length; ) {
      const at = cdc.next(piece, pos)
      if (at < 0) break
      assert.ok(at > pos || (at === pos && cdc.pending === 0), `boundary ${at} not past ${pos}`)
      boundaries.push(off + at)
      pos = at
    }
    off += piece.length
  }
  return { boundaries, pending: cdc.pending }
}

const digest = (b: number[]): string => createHash('sha256').update(b.join(',')).digest('hex').slice(0, 16)

const TS: CdcOptions = { native: false }
const NATIVE: CdcOptions = {}
const ALL_NATIVE: CdcOptions = { nativeMinBytes: -Infinity } // every call crosses, tiny ones too

test('the addon has the C chunker loop (npm ci builds it), so the comparisons below run it', () => {
  assert.equal(typeof nativeCdcNext(), 'function')
  assert.equal(new Cdc(gear, PARAMS.content!).isNative, true)
  assert.equal(new Cdc(gear, PARAMS.content!, TS).isNative, false)
})

for (const [dname, data] of Object.entries(DATA)) {
  for (const [pname, params] of Object.entries(PARAMS)) {
    describe(`${dname} data, ${pname} params (${params.min}/${params.avg}/${params.max})`, () => {
      const ref = cutAll(data, params, TS)

      test('the TypeScript loop cuts where it did before the C loop existed', () => {
        assert.deepEqual([ref.boundaries.length, digest(ref.boundaries)], GOLDEN[`${dname}/${pname}`])
      })

      test('every chunk is at least min and at most max bytes; only the open tail may be shorter', () => {
        let prev = 0
        for (const b of ref.boundaries) {
          assert.ok(b - prev >= params.min && b - prev <= params.max, `chunk ${prev}..${b} is ${b - prev} bytes`)
          prev = b
        }
        assert.equal(ref.pending, data.length - prev)
        assert.ok(ref.pending < params.max)
      })

      // Byte-at-a-time feeds cost ~150 ns a call: they get a prefix reaching past max (a
      // chunk cut at max, and for the smaller params thousands of chunks), all other feeds get
      // the whole data.
      const prefix = Math.min(data.length, Math.max(MiB, params.max + MiB))
      const splits: Array<[string, CdcOptions, (() => number) | undefined, number]> = [
        ['C loop, whole', NATIVE, undefined, data.length],
        ['C loop, 64 KiB pieces', NATIVE, () => 64 * 1024, data.length],
        ['C loop, 1 MiB + 1 pieces', NATIVE, () => MiB + 1, data.length],
        ['C and TS loops by piece size, random pieces', NATIVE, randomSizes(1), data.length],
        ['C loop for every call, random pieces', ALL_NATIVE, randomSizes(2), data.length],
        ['C loop for every call, 7-byte pieces', ALL_NATIVE, () => 7, prefix],
        ['TS loop, random pieces', TS, randomSizes(3), data.length],
        ['TS loop, 7-byte pieces', TS, () => 7, prefix],
        ['TS loop, 1-byte pieces', TS, () => 1, prefix],
      ]
      for (const [label, opts, size, len] of splits) {
        const of = len < data.length ? ` (first ${len} bytes)` : ''
        test(`${label}${of}: the same boundaries and the same open tail`, () => {
          const got = cutAll(data.subarray(0, len), params, opts, size)
          const want = ref.boundaries.filter(b => b <= len)
          assert.deepEqual(got.boundaries, want)
          assert.equal(got.pending, len - (want[want.length - 1] ?? 0))
          if (len < data.length) assert.ok(want.length > 0, 'the prefix holds a boundary')
        })
      }
    })
  }
}

test('the C loop reads every byte: one byte changed just before a boundary moves or removes it', () => {
  const params = PARAMS.meta!
  const data = Buffer.from(DATA.random!.subarray(0, 4 * MiB))
  const before = cutAll(data, params, NATIVE).boundaries
  const b = before[3]!
  data[b - 1] ^= 0x01
  const after = cutAll(data, params, NATIVE).boundaries
  assert.deepEqual(after.slice(0, 3), before.slice(0, 3), 'earlier chunks are untouched')
  assert.notEqual(after[3], b)
  assert.deepEqual(after, cutAll(data, params, TS).boundaries)
})

test('a forced cut (reset) mid-stream gives the same boundaries in both loops', () => {
  const params = PARAMS.odd!
  const data = DATA.log!.subarray(0, 2 * MiB)
  const run = (opts: CdcOptions): number[] => {
    const cdc = new Cdc(gear, params, opts)
    const out: number[] = []
    const next = randomSizes(4)
    for (let off = 0, k = 0; off < data.length; k++) {
      const piece = data.subarray(off, Math.min(data.length, off + next()))
      if (k % 4 === 3) {
        cdc.reset() // as the chunk stage does when too many records wait
        out.push(-off)
      }
      for (let pos = 0; pos < piece.length; ) {
        const at = cdc.next(piece, pos)
        if (at < 0) break
        out.push(off + at)
        pos = at
      }
      off += piece.length
    }
    return out
  }
  const ts = run(TS)
  assert.ok(ts.filter(x => x <= 0).length > 5)
  assert.deepEqual(run(ALL_NATIVE), ts)
  assert.deepEqual(run(NATIVE), ts)
})

test('params the C loop cannot take (fractions) keep the TypeScript loop', () => {
  assert.equal(new Cdc(gear, { min: 10.5, avg: 100, max: 1000 }).isNative, false)
  assert.equal(new Cdc(gear, { min: 10, avg: 100, max: Infinity }).isNative, false)
  assert.throws(() => new Cdc(gear, { min: 0, avg: 100, max: 1000 }), RangeError)
})

test('min = avg = max cuts every max bytes in both loops', () => {
  const params = { min: 4096, avg: 4096, max: 4096 }
  const data = DATA.random!.subarray(0, MiB + 100)
  const want = Array.from({ length: 256 }, (_, i) => (i + 1) * 4096)
  for (const opts of [TS, NATIVE, ALL_NATIVE]) {
    assert.deepEqual(cutAll(data, params, opts, randomSizes(5)).boundaries, want)
  }
})
