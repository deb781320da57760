/**
 * The retention policy (lib/repo/retention.ts) on fabricated snapshot lists: restic's own golden
 * results, the examples of restic's "Removing backup snapshots" page, and what Sluice adds
 * (future snapshots are never removed). Calendar fields in UTC unless a test says otherwise.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import {
  applyPolicy, describePolicy, groupKeyOf, isoWeek, matchesFilter, parseDuration, parseGroupBy, parseKeepCount, parseTagList,
  policyEmpty, FUTURE_REASON, type RetentionPolicy, type SnapshotSummary,
} from '../../index.js'

const NOW = Date.parse('2026-01-01T00:00:00Z')
const utc = { now: NOW, zone: 'utc' as const }

function snap(time: string, extra: Partial<SnapshotSummary> = {}): SnapshotSummary {
  return { id: extra.id ?? time, time, host: 'mopped', paths: ['/home/user/work'], tags: [], ...extra }
}

/** "2019-09-01 11:00:00" as printed by restic (UTC here). */
const at = (t: string) => `${t.replace(' ', 'T')}Z`
const times = (l: SnapshotSummary[]) => l.map(s => s.time)

interface Golden {
  snapshots: { time: string; tags?: string[]; paths?: string[] }[]
  cases: { policy: Record<string, unknown>; keep: { time: string; tags?: string[]; paths?: string[]; matches: string[]; counters?: Record<string, number> }[] }[]
}

test("restic's own policy tests: 40 policies over its 103 snapshots give its golden keep lists, reasons and counters", () => {
  const g = JSON.parse(fs.readFileSync(new URL('./fixtures/restic-policy.json', import.meta.url), 'utf8')) as Golden
  const list = g.snapshots.map((s, i) => snap(s.time, { id: String(i), tags: s.tags ?? [], paths: s.paths ?? [] }))
  assert.equal(g.cases.length, 40)
  g.cases.forEach(({ policy, keep }, n) => {
    const p: RetentionPolicy = {}
    for (const [k, v] of Object.entries(policy)) (p as Record<string, unknown>)[k] = typeof v === 'string' ? parseDuration(v) : v
    const r = applyPolicy(list, p, utc)
    assert.equal(r.keep.length + r.remove.length, list.length, `case ${n}`)
    const got = r.reasons.map(({ snapshot: s, matches, counters }) => ({
      ms: Date.parse(s.time), tags: s.tags.length ? s.tags : undefined, paths: s.paths.length ? s.paths : undefined, matches,
      counters: Object.keys(counters).length ? counters : undefined,
    }))
    const want = keep.map(k => ({ ms: Date.parse(k.time), tags: k.tags, paths: k.paths, matches: k.matches, counters: k.counters }))
    assert.deepEqual(got, want, `case ${n}: ${JSON.stringify(policy)}`)
  })
})

test("restic's docs, 12 Sundays: --keep-daily 4 keeps the last four Sundays and removes eight", () => {
  const sundays = ['2019-09-01', '2019-09-08', '2019-09-15', '2019-09-22', '2019-09-29', '2019-10-06', '2019-10-13', '2019-10-20',
    '2019-10-27', '2019-11-03', '2019-11-10', '2019-11-17'].map(d => snap(at(`${d} 11:00:00`)))
  const r = applyPolicy(sundays, { daily: 4 }, utc)
  assert.deepEqual(times(r.keep).reverse(), ['2019-10-27', '2019-11-03', '2019-11-10', '2019-11-17'].map(d => at(`${d} 11:00:00`)))
  assert.ok(r.reasons.every(k => k.matches.join() === 'daily snapshot'))
  assert.equal(r.remove.length, 8)
  assert.equal(describePolicy({ daily: 4 }), 'keep 4 daily snapshots')
})

test("restic's docs, weekdays with a missed Wednesday: --keep-daily 5 and --keep-within-daily 7d", () => {
  const rows: [string, string][] = [
    ['60e5c031', '2025-04-21 11:00:00'], ['1dccffe9', '2025-04-22 11:00:00'], ['90a5c949', '2025-04-23 11:00:00'],
    ['79580708', '2025-04-24 11:00:00'], ['8a603ddf', '2025-04-25 11:00:00'], ['ae33bf10', '2025-04-25 23:00:00'],
    ['fb8b1418', '2025-04-28 11:00:00'], ['1db188b4', '2025-04-29 11:00:00'], ['7baa4f28', '2025-05-01 11:00:00'],
    ['05c48af3', '2025-05-02 11:00:00'], ['ad72e262', '2025-05-02 23:00:00'],
  ]
  const list = rows.map(([id, t]) => snap(at(t), { id }))
  const ids = (l: SnapshotSummary[]) => l.map(s => s.id).sort()
  const daily = applyPolicy(list, { daily: 5 }, utc)
  assert.deepEqual(ids(daily.keep), ['1db188b4', '7baa4f28', 'ad72e262', 'ae33bf10', 'fb8b1418'].sort())
  assert.deepEqual(ids(daily.remove), ['60e5c031', '1dccffe9', '90a5c949', '79580708', '8a603ddf', '05c48af3'].sort())
  const within = applyPolicy(list, { withinDaily: parseDuration('7d') }, utc)
  assert.deepEqual(ids(within.keep), ['fb8b1418', '1db188b4', '7baa4f28', 'ad72e262'].sort())
  assert.ok(within.reasons.every(k => k.matches.join() === 'daily within 7d'))
  assert.equal(within.remove.length, 7)
  assert.equal(describePolicy({ withinDaily: parseDuration('7d') }), 'keep daily snapshots within 7d')
})

test("restic's docs, 100 years of daily backups: --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --keep-yearly 75", () => {
  // One backup a day at noon from 1924-01-01 to Sunday 2023-12-31.
  const list: SnapshotSummary[] = []
  for (let t = Date.UTC(1924, 0, 1, 12); t <= Date.UTC(2023, 11, 31, 12); t += 86400_000) list.push(snap(new Date(t).toISOString()))
  assert.equal(list.length, 36525)
  const r = applyPolicy(list, { daily: 7, weekly: 5, monthly: 12, yearly: 75 }, utc)
  const kept = new Set(times(r.keep).map(t => t.slice(0, 10)))
  // The docs: the 7 dailies, 4 more last-days-of-the-week (the dailies hold one), 11 more
  // last-days-of-the-month (December is a daily's), 74 more last-days-of-the-year.
  const dailies = ['2023-12-25', '2023-12-26', '2023-12-27', '2023-12-28', '2023-12-29', '2023-12-30', '2023-12-31']
  const sundays = ['2023-12-24', '2023-12-17', '2023-12-10', '2023-12-03']
  const monthEnds = ['01-31', '02-28', '03-31', '04-30', '05-31', '06-30', '07-31', '08-31', '09-30', '10-31', '11-30'].map(d => `2023-${d}`)
  const yearEnds = Array.from({ length: 74 }, (_, i) => `${2022 - i}-12-31`)
  const want = [...dailies, ...sundays, ...monthEnds, ...yearEnds]
  assert.deepEqual([...kept].sort(), want.sort())
  assert.equal(r.keep.length, 7 + 4 + 11 + 74)
  const reasonsOf = (d: string) => r.reasons.find(k => k.snapshot.time.startsWith(d))!.matches
  assert.deepEqual(reasonsOf('2023-12-31'), ['daily snapshot', 'weekly snapshot', 'monthly snapshot', 'yearly snapshot'])
  assert.deepEqual(reasonsOf('2023-12-24'), ['weekly snapshot'])
  assert.deepEqual(reasonsOf('1949-12-31'), ['yearly snapshot'])
})

test('the oldest snapshot is kept when a rule cannot fill its count (restic 0.16+), marked "oldest"', () => {
  const list = ['2025-03-01T10:00:00Z', '2025-03-01T09:00:00Z', '2025-03-02T10:00:00Z'].map(t => snap(t))
  const r = applyPolicy(list, { daily: 5 }, utc)
  assert.deepEqual(r.reasons.map(k => [k.snapshot.time, k.matches]), [
    ['2025-03-02T10:00:00Z', ['daily snapshot']],
    ['2025-03-01T10:00:00Z', ['daily snapshot']],
    ['2025-03-01T09:00:00Z', ['oldest daily snapshot']],
  ])
  // A filled count keeps no extra oldest.
  assert.equal(applyPolicy(list, { daily: 2 }, utc).keep.length, 2)
})

test('weeks are ISO weeks, Monday to Sunday, as Go computes them', () => {
  assert.deepEqual(isoWeek(2023, 12, 31), { year: 2023, week: 52 }) // a Sunday
  assert.deepEqual(isoWeek(2024, 1, 1), { year: 2024, week: 1 }) // the Monday after
  assert.deepEqual(isoWeek(2025, 12, 29), { year: 2026, week: 1 })
  assert.deepEqual(isoWeek(2021, 1, 3), { year: 2020, week: 53 })
  assert.deepEqual(isoWeek(2016, 1, 1), { year: 2015, week: 53 })
  // Sunday and the Monday after fall in two weeks; Monday to Sunday in one.
  const r = applyPolicy([snap('2023-12-31T10:00:00Z'), snap('2024-01-01T10:00:00Z'), snap('2024-01-07T10:00:00Z')], { weekly: 1 }, utc)
  assert.deepEqual(times(r.keep), ['2024-01-07T10:00:00Z'])
  assert.equal(applyPolicy([snap('2023-12-31T10:00:00Z'), snap('2024-01-01T10:00:00Z')], { weekly: 2 }, utc).keep.length, 2)
})

test('calendar boundaries are in local time: the same snapshots fall in other days in Tokyo', () => {
  const list = ['2025-04-25T14:00:00Z', '2025-04-25T23:30:00Z', '2025-04-26T00:30:00Z'].map(t => snap(t))
  assert.deepEqual(times(applyPolicy(list, { daily: 2 }, utc).keep), ['2025-04-26T00:30:00Z', '2025-04-25T23:30:00Z'])
  const tz = process.env.TZ
  process.env.TZ = 'Asia/Tokyo'
  try {
    assert.deepEqual(times(applyPolicy(list, { daily: 2 }, { now: NOW, zone: 'local' }).keep), ['2025-04-26T00:30:00Z', '2025-04-25T14:00:00Z'])
  } finally {
    if (tz === undefined) delete process.env.TZ
    else process.env.TZ = tz
  }
})

test('--keep-within counts back from the newest snapshot, not from now, in calendar units', () => {
  const list = ['2020-01-31T12:00:00Z', '2020-02-29T12:00:00Z', '2020-03-01T11:00:00Z', '2020-03-31T12:00:00Z'].map(t => snap(t))
  // 1m before 2020-03-31 12:00 is 2020-03-02 12:00, 1m1d 03-01 12:00, 1m2d 02-29 12:00 (February
  // has no 31st: Go's AddDate normalizes). A snapshot exactly at the boundary is not within.
  assert.deepEqual(times(applyPolicy(list, { within: parseDuration('1m') }, utc).keep), ['2020-03-31T12:00:00Z'])
  assert.deepEqual(times(applyPolicy(list, { within: parseDuration('1m1d') }, utc).keep), ['2020-03-31T12:00:00Z'])
  assert.deepEqual(times(applyPolicy(list, { within: parseDuration('1m2d') }, utc).keep), ['2020-03-31T12:00:00Z', '2020-03-01T11:00:00Z'])
  // Hours are subtracted after the calendar part.
  assert.deepEqual(times(applyPolicy(list, { within: parseDuration('30d1h') }, utc).keep), ['2020-03-31T12:00:00Z'])
  assert.deepEqual(times(applyPolicy(list, { within: parseDuration('30d2h') }, utc).keep), ['2020-03-31T12:00:00Z', '2020-03-01T11:00:00Z'])
  assert.equal(applyPolicy(list, { within: parseDuration('2y') }, utc).keep.length, 4)
  assert.equal(describePolicy({ within: parseDuration('1y2m3d4h') }), 'keep all snapshots within 1y2m3d4h of the newest')
})

test('--keep-tag keeps snapshots with all tags of any list; the empty tag means untagged', () => {
  const list = [
    snap('2025-01-01T00:00:00Z', { tags: ['a'] }), snap('2025-01-02T00:00:00Z', { tags: ['a', 'b'] }),
    snap('2025-01-03T00:00:00Z', { tags: ['c'] }), snap('2025-01-04T00:00:00Z'),
  ]
  const kept = (p: RetentionPolicy) => times(applyPolicy(list, p, utc).keep).map(t => t.slice(8, 10))
  assert.deepEqual(kept({ tags: [['a']] }), ['02', '01'])
  assert.deepEqual(kept({ tags: [parseTagList('a,b')] }), ['02'])
  assert.deepEqual(kept({ tags: [['b'], ['c']] }), ['03', '02'])
  assert.deepEqual(kept({ tags: [['']] }), ['04'])
  assert.deepEqual(applyPolicy(list, { tags: [['a', 'b']] }, utc).reasons[0]!.matches, ['has tags [a, b]'])
  assert.equal(describePolicy({ tags: [['a', 'b'], ['c']] }), 'keep all snapshots with tags [[a, b] [c]]')
})

test('snapshots dated in the future are never removed and do not move the --keep-within reference', () => {
  const list = [snap('2025-12-30T00:00:00Z'), snap('2025-12-31T00:00:00Z'), snap('2030-05-01T00:00:00Z'), snap('2030-05-01T01:00:00Z')]
  // keep-daily 1: restic keeps the newest (a future one) and would remove the other future one.
  const r = applyPolicy(list, { daily: 1 }, utc)
  assert.deepEqual(times(r.keep), ['2030-05-01T01:00:00Z', '2030-05-01T00:00:00Z'])
  assert.deepEqual(r.reasons[1]!.matches, [FUTURE_REASON])
  assert.deepEqual(times(r.remove), ['2025-12-31T00:00:00Z', '2025-12-30T00:00:00Z'])
  // keep-within 1d: measured from 2025-12-31 (the newest not in the future), not from 2030.
  assert.deepEqual(times(applyPolicy(list, { within: parseDuration('1d') }, utc).remove), ['2025-12-30T00:00:00Z'])
})

test('unlimited counts, --keep-last, and an empty policy', () => {
  const list = Array.from({ length: 10 }, (_, i) => snap(`2025-01-${String(i + 1).padStart(2, '0')}T00:00:00Z`))
  assert.equal(applyPolicy(list, { last: -1 }, utc).keep.length, 10)
  assert.equal(applyPolicy(list, { last: 3 }, utc).keep.length, 3)
  assert.equal(applyPolicy(list, { monthly: -1 }, utc).keep.length, 2) // January's newest, and the oldest
  assert.ok(policyEmpty({}))
  assert.ok(policyEmpty({ last: 0, within: parseDuration('0d') }))
  assert.ok(!policyEmpty({ tags: [['']] }))
  assert.ok(!policyEmpty({ last: -1 }))
  assert.equal(describePolicy({}), 'remove')
  assert.equal(describePolicy({ last: -1, daily: 7, weekly: 4 }), 'keep all latest, 7 daily, 4 weekly snapshots')
  // Equal times keep their given order (restic sorts stably).
  const same = [snap('2025-01-01T00:00:00Z', { id: 'x' }), snap('2025-01-01T00:00:00Z', { id: 'y' })]
  assert.deepEqual(applyPolicy(same, { last: 1 }, utc).keep.map(s => s.id), ['x'])
})

test("argument parsing takes restic's syntax and rejects what restic rejects", () => {
  assert.deepEqual(parseDuration('1y2m3d4h'), { years: 1, months: 2, days: 3, hours: 4 })
  assert.deepEqual(parseDuration(' 36h '), { years: 0, months: 0, days: 0, hours: 36 })
  for (const bad of ['1w', '5', 'd', '1d-2h', '2x']) assert.throws(() => parseDuration(bad), { code: 'ERR_ARGS' }, bad)
  assert.equal(parseKeepCount('unlimited', 'keep-last'), -1)
  assert.equal(parseKeepCount('7', 'keep-last'), 7)
  for (const bad of ['-1', 'x', '1.5']) assert.throws(() => parseKeepCount(bad, 'keep-last'), { code: 'ERR_ARGS' }, bad)
  assert.deepEqual(parseGroupBy('host,paths'), { host: true, paths: true, tags: false })
  assert.deepEqual(parseGroupBy(''), { host: false, paths: false, tags: false })
  assert.deepEqual(parseGroupBy('tags'), { host: false, paths: false, tags: true })
  assert.throws(() => parseGroupBy('hostname'), { code: 'ERR_ARGS' })
})

test('groups and filters: keys in restic\'s shape (sorted paths and tags), --host any, --tag lists ORed, --path all', () => {
  const s = snap('2025-01-01T00:00:00Z', { host: 'h', paths: ['/b', '/a'], tags: ['y', 'x'] })
  assert.deepEqual(groupKeyOf(s, parseGroupBy('host,paths')), { host: 'h', paths: ['/a', '/b'], tags: null })
  assert.deepEqual(groupKeyOf(s, parseGroupBy('tags')), { host: '', paths: null, tags: ['x', 'y'] })
  assert.deepEqual(groupKeyOf(s, parseGroupBy('')), { host: '', paths: null, tags: null })
  assert.ok(matchesFilter(s, { hosts: ['g', 'h'] }))
  assert.ok(!matchesFilter(s, { hosts: ['g'] }))
  assert.ok(matchesFilter(s, { tags: [['z'], ['x', 'y']] }))
  assert.ok(!matchesFilter(s, { tags: [['x', 'z']] }))
  assert.ok(matchesFilter(s, { paths: ['/a'] }))
  assert.ok(!matchesFilter(s, { paths: ['/a', '/c'] }))
})
