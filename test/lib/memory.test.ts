import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { describe, test } from 'node:test'

const MEMORY = fileURLToPath(new URL('../../lib/memory.ts', import.meta.url))

/** Runs `body` in a fresh node (tsx) that has imported lib/memory.ts as `m`, and returns what it
 *  printed as JSON: V8 flags are process-wide, so each case gets a process of its own. */
function inFreshNode(body: string): unknown {
  const script = `
    import v8 from 'node:v8'
    import { Worker } from 'node:worker_threads'
    const m = await import(${JSON.stringify(MEMORY)})
    const youngKiB = () => v8.getHeapSpaceStatistics().find(s => s.space_name === 'new_space').space_size / 1024
    // Short-lived garbage with a few survivors, as a backup makes: what grows the young generation.
    const churn = () => { let keep = []; for (let i = 0; i < 2e6; i++) { keep.push({ i, s: 'x' + i }); if (keep.length > 20000) keep = [] } }
    ${body}`
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8' })
  assert.equal(r.status, 0, r.stderr)
  return JSON.parse(r.stdout)
}

describe('paceHeap', () => {
  test("keeps V8's young generation at its size under churn, which it otherwise grows", () => {
    const free = inFreshNode(`const before = youngKiB(); churn(); console.log(JSON.stringify({ before, after: youngKiB() }))`) as Record<string, number>
    assert.ok(free.after! > free.before!, `without the policy V8 grows it (${free.before} -> ${free.after} KiB)`)
    const paced = inFreshNode(`m.paceHeap(); const before = youngKiB(); churn(); console.log(JSON.stringify({ before, after: youngKiB() }))`) as Record<string, number>
    // V8 may still shrink it (it does when a scavenge finds little alive); it must not grow.
    assert.ok(paced.after! <= paced.before!, `paced, it grew (${paced.before} -> ${paced.after} KiB)`)
  })

  test('still holds after a worker thread starts (a new isolate resets the growth factor)', () => {
    const r = inFreshNode(`
      m.paceHeap()
      const before = youngKiB()
      const w = new Worker('setInterval(() => {}, 1000)', { eval: true })
      await new Promise(resolve => w.once('online', resolve))
      churn()
      const after = youngKiB()
      await w.terminate()
      console.log(JSON.stringify({ before, after }))`) as Record<string, number>
    assert.ok(r.after! <= r.before!, `paced, it grew after the worker started (${r.before} -> ${r.after} KiB)`)
  })
})

describe('collectEvery', () => {
  test('forces a full collection each time the counted bytes reach the pace, not before', () => {
    const r = inFreshNode(`
      const { PerformanceObserver, constants } = await import('node:perf_hooks')
      const majors = []
      const obs = new PerformanceObserver(list => { for (const e of list.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors.push(e) })
      obs.observe({ entryTypes: ['gc'] })
      const collect = m.collectEvery('chunks')
      const { GC_EVERY_BYTES } = await import(${JSON.stringify(fileURLToPath(new URL('../../lib/limits.ts', import.meta.url)))})
      const counts = []
      for (const bytes of [GC_EVERY_BYTES - 1, 1, GC_EVERY_BYTES / 2, GC_EVERY_BYTES / 2]) {
        collect(bytes)
        // Node reports a collection from a native immediate, and the observer hears it on the
        // next one: two turns of the loop's check phase, whatever the machine's speed.
        for (let i = 0; i < 3; i++) await new Promise(resolve => setImmediate(resolve))
        counts.push(majors.filter(e => e.detail.flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED).length)
      }
      obs.disconnect()
      console.log(JSON.stringify(counts))`)
    assert.deepEqual(r, [0, 1, 1, 2])
  })
})

describe('releaseFilePages', () => {
  test("drops start-up's file pages from RSS and the process runs on (code faults back in)", () => {
    const r = inFreshNode(`
      const { readFileSync } = await import('node:fs')
      const zlib = await import('node:zlib')
      const { createHash } = await import('node:crypto')
      const { releaseFilePages } = await import(${JSON.stringify(fileURLToPath(new URL('../../lib/native.ts', import.meta.url)))})
      const fileKiB = () => Number(/^RssFile:\\s+(\\d+)/m.exec(readFileSync('/proc/self/status', 'latin1'))[1])
      const before = fileKiB()
      const dropped = releaseFilePages()
      const after = fileKiB()
      // Code that has not run since: compression, hashing, a collection, a worker's isolate.
      const text = Buffer.from('sluice '.repeat(100000))
      const same = zlib.gunzipSync(zlib.gzipSync(text)).equals(text)
      const hash = createHash('sha256').update(text).digest('hex')
      m.releaseMemory()
      const w = new Worker('import("node:worker_threads").then(t => t.parentPort.postMessage(6 * 7))', { eval: true })
      const answer = await new Promise(resolve => w.once('message', resolve))
      await w.terminate()
      console.log(JSON.stringify({ before, after, dropped, same, hash, answer }))`) as Record<string, unknown>
    assert.equal(r.same, true)
    assert.equal(r.hash, createHash('sha256').update(Buffer.from('sluice '.repeat(100000))).digest('hex'))
    assert.equal(r.answer, 42)
    assert.ok((r.dropped as number) > 8 * 1024 * 1024, `dropped only ${r.dropped} bytes`)
    // Node's binary alone leaves over 30 MB of file pages after start-up; at least 8 must go.
    assert.ok((r.after as number) < (r.before as number) - 8 * 1024, `RssFile ${r.before} -> ${r.after} KiB`)
  })
})
