/** mulberry32: a small seeded PRNG (uniform in [0, 1)), so faults and fuzz cases repeat run to run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** rng with the seed mixed first: mulberry32's first outputs for small neighbouring seeds are close. */
export function mixedRng(seed: number): () => number {
  let a = Math.imul((seed ^ 0x5bd1e995) >>> 0, 0x9e3779b1) >>> 0
  a = Math.imul(a ^ (a >>> 16), 0x85ebca6b) >>> 0
  return rng(a)
}
