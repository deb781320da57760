/**
 * --limit-upload measured: 100 MiB put as 1 MiB objects into a local storage through the rate
 * limiter at 5 MiB/s, expected to take 20 s ± 10% (issue 18). Also a download of the same
 * objects at the same rate. Run: node --import tsx bench/limit.ts [MiB] [MiB/s]
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createLocalStorage } from '../lib/storage/local.js'
import { withLimit } from '../lib/storage/limit.js'

const MiB = 1024 * 1024
const total = Number(process.argv[2] ?? 100)
const rate = Number(process.argv[3] ?? 5)
const dir = await mkdtemp(join(tmpdir(), 'sluice-bench-limit-'))
try {
  const s = withLimit(createLocalStorage(dir), { uploadBytesPerSecond: rate * MiB, downloadBytesPerSecond: rate * MiB })
  const body = Buffer.alloc(MiB, 7)
  let t0 = performance.now()
  // Four puts in flight, as the upload stage keeps several: together they keep to the rate.
  const keys = Array.from({ length: total }, (_, i) => `obj/${String(i).padStart(6, '0')}`)
  for (let i = 0; i < keys.length; i += 4) await Promise.all(keys.slice(i, i + 4).map(k => s.put(k, body)))
  const up = (performance.now() - t0) / 1000
  t0 = performance.now()
  for (let i = 0; i < keys.length; i += 4) await Promise.all(keys.slice(i, i + 4).map(k => s.get(k)))
  const down = (performance.now() - t0) / 1000
  const expect = total / rate
  const within = (t: number) => Math.abs(t - expect) / expect <= 0.1
  console.log(`upload ${total} MiB at ${rate} MiB/s: ${up.toFixed(2)} s (expected ${expect} s ± 10%: ${within(up) ? 'ok' : 'OUT'})`)
  console.log(`download ${total} MiB at ${rate} MiB/s: ${down.toFixed(2)} s (expected ${expect} s ± 10%: ${within(down) ? 'ok' : 'OUT'})`)
  if (!within(up) || !within(down)) process.exitCode = 1
} finally {
  await rm(dir, { recursive: true, force: true })
}
