/**
 * Progress of prune and check (issue 17 item 1): what the stages report through onProgress
 * (phases, steps, counts against their totals, bytes, errors), and the line and JSON status
 * the CLI makes of it (cli/progress.ts PhaseClock) at given instants. No timing is measured:
 * the events are compared in order, and the clock is given its "now".
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { PhaseClock } from '../../cli/progress.js'
import { backup, check, createLocalStorage, initRepository, openRepository, prune, snapshotRecords, treeOf, type PhaseProgress, type Repository } from '../../index.js'
import type { ExtentsItem, RecordItem } from '../../lib/entry.js'
import { forgetRoot, NO_MARGINS_API, SMALL_REPO, writeFiles, KiB } from '../helpers/gc.js'
import { damage } from '../helpers/damage.js'
import { scratch } from '../helpers/scratch.js'

const BASE = scratch('cli-progress')
const PW = 'pw'

/** Every event, copied as it was when reported (the stage updates one object in place). */
function recorder(): { events: PhaseProgress[]; onProgress: (p: PhaseProgress) => void } {
  const events: PhaseProgress[] = []
  return { events, onProgress: p => events.push({ ...p }) }
}
/** The last event of each step, in the order the steps began. */
function lastOfEachStep(events: PhaseProgress[]): PhaseProgress[] {
  const out = new Map<string, PhaseProgress>()
  for (const e of events) {
    const k = `${e.phase}/${e.step}`
    out.delete(k)
    out.set(k, e)
  }
  return [...out.values()]
}

async function repoWithForgotten(name: string): Promise<{ repo: Repository; dir: string; snapshots: string[] }> {
  const dir = `${BASE}/${name}`
  const storage = createLocalStorage(`${dir}/repo`)
  const repo = await initRepository(storage, PW, SMALL_REPO)
  writeFiles(`${dir}/a`, 'a', 6, 40 * KiB)
  writeFiles(`${dir}/b`, 'b', 4, 40 * KiB)
  const a = await backup({ repo, paths: [`${dir}/a`] })
  const b = await backup({ repo, paths: [`${dir}/b`] })
  const c = await backup({ repo, paths: [`${dir}/a`], parent: false })
  await forgetRoot(storage, b.snapshotId)
  return { repo, dir, snapshots: [a.snapshotId, c.snapshotId] }
}

test('prune reports mark, collect and sweep with counts that reach their totals', async () => {
  const { repo } = await repoWithForgotten('prune')
  try {
    const first = recorder()
    const r1 = await prune({ repo, ...NO_MARGINS_API, onProgress: first.onProgress })
    assert.ok(r1.collect && r1.collect.candidates > 0)
    const steps1 = lastOfEachStep(first.events)
    assert.deepEqual(steps1.map(e => `${e.phase}/${e.step}`), ['mark/marking snapshots', 'collect/listing chunks', 'collect/moving back', 'collect/moving aside'])
    const [mark, listing, , aside] = steps1 as [PhaseProgress, PhaseProgress, PhaseProgress, PhaseProgress]
    assert.deepEqual([mark.done, mark.total, mark.unit], [2, 2, 'snapshots'])
    assert.match(mark.current!, /^snapshot [0-9a-f]{8}$/)
    assert.deepEqual([listing.done, listing.total, listing.unit], [r1.collect.chunks, r1.collect.chunks, 'chunks'])
    assert.deepEqual([aside.done, aside.total], [r1.collect.candidates, r1.collect.candidates])
    // Each mark event before the last names the snapshot being marked, counting up.
    const marks = first.events.filter(e => e.phase === 'mark')
    for (let i = 1; i < marks.length; i++) assert.ok(marks[i]!.done >= marks[i - 1]!.done)
    for (const e of first.events) assert.equal(e.errors, 0)

    const second = recorder()
    const r2 = await prune({ repo, ...NO_MARGINS_API, onProgress: second.onProgress })
    assert.ok(r2.sweep?.swept)
    const sweep = lastOfEachStep(second.events).filter(e => e.phase === 'sweep')
    assert.deepEqual(sweep.map(e => e.step), ['marking new snapshots', 'listing moved-aside chunks', 'moving back', 'deleting'])
    const deleting = sweep.at(-1)!
    assert.deepEqual([deleting.done, deleting.total, deleting.bytes, deleting.totalBytes], [r2.sweep.deleted, r2.sweep.deleted, r2.sweep.deletedBytes, r1.collect.candidateBytes])
    // Then the next collection marks again.
    assert.ok(second.events.some(e => e.phase === 'mark'))
  } finally {
    await repo.close()
  }
})

test('prune counts referenced chunks stored nowhere as errors', async () => {
  const { repo, dir, snapshots } = await repoWithForgotten('prune-missing')
  try {
    // A content chunk of a kept snapshot, named by its records, removed by hand.
    const { snap } = await repo.findSnapshot(snapshots[0]!)
    let victim: string | undefined
    for await (const item of snapshotRecords(repo, treeOf(snap)) as AsyncIterable<RecordItem | ExtentsItem>) {
      if (item.extents.length > 0) {
        victim = item.extents[0]!.id.toString('hex')
        break
      }
    }
    fs.rmSync(`${dir}/repo/chunks/${victim!.slice(0, 2)}/${victim}`)
    const rec = recorder()
    const r = await prune({ repo, ...NO_MARGINS_API, dryRun: true, onProgress: rec.onProgress })
    assert.ok(r.collect!.missing >= 1)
    const listing = lastOfEachStep(rec.events).find(e => e.step === 'listing chunks')!
    assert.equal(listing.errors, r.collect!.missing)
  } finally {
    await repo.close()
  }
})

test('check reports snapshots checked of those listed, then chunks and bytes read of the total to read', async () => {
  const { repo, dir } = await repoWithForgotten('check')
  await repo.close()
  const opened = await openRepository(createLocalStorage(`${dir}/repo`), PW)
  try {
    const all = recorder()
    const r = await check({ repo: opened, readData: true, onProblem: () => {}, onProgress: all.onProgress })
    const steps = lastOfEachStep(all.events)
    assert.deepEqual(steps.map(e => e.phase), ['snapshots', 'read-data'])
    const [snaps, data] = steps as [PhaseProgress, PhaseProgress]
    assert.deepEqual([snaps.done, snaps.total, snaps.unit], [2, 2, 'snapshots'])
    assert.deepEqual([data.done, data.total, data.bytes, data.unit, data.errors], [r.chunks, r.chunks, r.bytesRead, 'chunks', 0])
    assert.match(data.current!, /^[0-9a-f]{8}$/)

    // n/t: the total is the group's count; a size: the bytes to read are the total.
    const part = recorder()
    const p = await check({ repo: opened, readDataSubset: { part: 1, of: 3 }, onProblem: () => {}, onProgress: part.onProgress })
    const pd = lastOfEachStep(part.events).at(-1)!
    assert.deepEqual([pd.done, pd.total], [p.chunks, p.chunks])
    const size = recorder()
    await check({ repo: opened, readDataSubset: { bytes: 100 * KiB }, onProblem: () => {}, onProgress: size.onProgress })
    const sd = lastOfEachStep(size.events).at(-1)!
    assert.equal(sd.totalBytes, 100 * KiB)
    assert.equal(sd.total, undefined)
    assert.ok(sd.bytes! >= 100 * KiB)

    // A damaged chunk is an error in the progress as in the result.
    const victim = fs.readdirSync(`${dir}/repo/chunks`, { recursive: true }).map(String).find(p => /[0-9a-f]{64}$/.test(p))!
    await damage(opened.storage, `chunks/${victim}`, 'flipped')
    const bad = recorder()
    const b = await check({ repo: opened, readData: true, onProblem: () => {}, onProgress: bad.onProgress })
    assert.ok(b.problems >= 1)
    assert.equal(bad.events.at(-1)!.errors, b.problems)
  } finally {
    await opened.close()
  }
})

test('the phase line and JSON status: percent and ETA of the step, totals, rate, errors, the item', () => {
  const t0 = 1_000_000
  const c = new PhaseClock(t0)
  assert.equal(c.line('prune', t0 + 500), '[0:00] prune: starting')
  assert.deepEqual(c.status(t0 + 500), { message_type: 'status', phase: 'starting', step: 'starting', seconds_elapsed: 0, percent_done: 0, unit: '', items_done: 0, error_count: 0 })
  const p: PhaseProgress = { phase: 'mark', step: 'marking snapshots', done: 0, unit: 'snapshots', errors: 0, current: 'snapshot 40dc1520' }
  c.update(p, t0 + 1000)
  // Total not known yet: no percent, no ETA, and one space where the percent would be (restic).
  p.done = 3
  assert.equal(c.line('mark', t0 + 4000), '[0:04] mark (marking snapshots) 3 snapshots, 0 errors 1.0 snapshots/s snapshot 40dc1520')
  p.total = 12
  assert.equal(c.line('mark', t0 + 4000), '[0:04] mark (marking snapshots) 25.00%  3 snapshots, total 12 snapshots, 0 errors ETA 0:09 1.0 snapshots/s snapshot 40dc1520')
  // A new step: its own clock for rate and ETA; bytes make the rate and, with a total, the percent.
  const d: PhaseProgress = { phase: 'sweep', step: 'deleting', done: 0, unit: 'chunks', total: 400, bytes: 0, totalBytes: 4 * 1024 * 1024, errors: 2 }
  c.update(d, t0 + 10_000)
  Object.assign(d, { done: 100, bytes: 3 * 1024 * 1024 })
  assert.equal(c.line('sweep', t0 + 16_000), '[0:16] sweep (deleting) 75.00%  100 chunks 3.0 MiB, total 400 chunks 4.0 MiB, 2 errors ETA 0:02 512.0 KiB/s')
  assert.deepEqual(c.status(t0 + 16_000), {
    message_type: 'status', phase: 'sweep', step: 'deleting', seconds_elapsed: 16, seconds_remaining: 2, percent_done: 0.75,
    unit: 'chunks', items_done: 100, total_items: 400, bytes_done: 3 * 1024 * 1024, total_bytes: 4 * 1024 * 1024, error_count: 2,
  })
  // An empty step is done.
  c.update({ phase: 'collect', step: 'moving back', done: 0, total: 0, unit: 'chunks', errors: 0 }, t0 + 20_000)
  assert.match(c.line('collect', t0 + 20_000), /^\[0:20\] collect \(moving back\) 100\.00% {2}0 chunks, total 0 chunks, 0 errors ETA 0:00$/)
})
