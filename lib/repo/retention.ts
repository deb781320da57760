/**
 * The retention policy of `forget`, pure: restic's ExpirePolicy and ApplyPolicy
 * (internal/data/snapshot_policy.go, restic 0.16+ with its "oldest" rule) rule for rule, plus
 * the grouping and filtering of snapshots that come before it. No I/O: given one group's
 * snapshot summaries and the rules, it says which to keep and why.
 */
import { SluiceError } from '../errors.js'

/** What the policy needs of a snapshot (forget keeps only these, one group at a time). */
export interface SnapshotSummary {
  id: string
  /** ISO 8601 time, as in the snapshot root. */
  time: string
  host: string
  paths: string[]
  tags: string[]
}

/** restic's duration: years, months, days, hours (`1y2m3d4h`); calendar arithmetic. */
export interface Duration {
  years: number
  months: number
  days: number
  hours: number
}

/** A count of periods to keep; -1 is `unlimited`. */
export type KeepCount = number

export interface RetentionPolicy {
  last?: KeepCount
  hourly?: KeepCount
  daily?: KeepCount
  weekly?: KeepCount
  monthly?: KeepCount
  yearly?: KeepCount
  within?: Duration
  withinHourly?: Duration
  withinDaily?: Duration
  withinWeekly?: Duration
  withinMonthly?: Duration
  withinYearly?: Duration
  /** Keep snapshots that have every tag of at least one list (`--keep-tag a,b --keep-tag c`). */
  tags?: string[][]
}

/** Calendar boundaries: the local time zone (restic: the zone the time was recorded in, which
 *  is the backup host's) or UTC (restic's own tests). */
export type Zone = 'local' | 'utc'

export interface KeepReason<S> {
  snapshot: S
  /** restic's words: "daily snapshot", "oldest monthly snapshot", "within 7d", "has tags [a]". */
  matches: string[]
  /** The counts left after this snapshot, per rule (restic reports them too). */
  counters: { last?: number; hourly?: number; daily?: number; weekly?: number; monthly?: number; yearly?: number }
}

export interface PolicyResult<S> {
  /** Newest first, as restic lists them. */
  keep: S[]
  remove: S[]
  /** One per kept snapshot, in the order of `keep`. */
  reasons: KeepReason<S>[]
}

/** The reason given to a snapshot dated after `now` that the rules alone would remove. */
export const FUTURE_REASON = 'timestamp in the future'

/** Parses restic's `N|unlimited` for --keep-last and friends. */
export function parseKeepCount(text: string, flag: string): KeepCount {
  if (text === 'unlimited') return -1
  if (!/^-?[0-9]+$/.test(text)) throw new SluiceError('ERR_ARGS', `--${flag}: "${text}" is not a number or "unlimited"`)
  const n = Number(text)
  if (n < 0) throw new SluiceError('ERR_ARGS', `--${flag}: negative values not allowed, use 'unlimited' instead`)
  if (!Number.isSafeInteger(n)) throw new SluiceError('ERR_ARGS', `--${flag}: ${text} is too large`)
  return n
}

/** Parses restic's duration syntax (`6y5m234d37h`; each unit once or more, the last wins). */
export function parseDuration(text: string, flag = 'keep-within'): Duration {
  const d: Duration = { years: 0, months: 0, days: 0, hours: 0 }
  let s = text.trim()
  while (s !== '') {
    const m = /^(-?)([0-9]*)(.?)/.exec(s)!
    if (m[2] === '') throw new SluiceError('ERR_ARGS', `--${flag}: no number found in "${text}"`)
    const n = Number(m[2]) * (m[1] ? -1 : 1)
    if (!Number.isSafeInteger(n)) throw new SluiceError('ERR_ARGS', `--${flag}: ${m[2]} is too large`)
    if (m[3] === '') throw new SluiceError('ERR_ARGS', `--${flag}: no unit found after number ${n} in "${text}"`)
    const unit = ({ y: 'years', m: 'months', d: 'days', h: 'hours' } as const)[m[3] as 'y']
    if (!unit) throw new SluiceError('ERR_ARGS', `--${flag}: invalid unit "${m[3]}" found after number ${n} in "${text}" (use y, m, d, h)`)
    if (n < 0) throw new SluiceError('ERR_ARGS', `--${flag}: durations containing negative values are not allowed`)
    d[unit] = n
    s = s.slice(m[0].length)
  }
  return d
}

export function formatDuration(d: Duration): string {
  return `${d.years ? `${d.years}y` : ''}${d.months ? `${d.months}m` : ''}${d.days ? `${d.days}d` : ''}${d.hours ? `${d.hours}h` : ''}`
}

function isZero(d: Duration | undefined): boolean {
  return !d || (d.years === 0 && d.months === 0 && d.days === 0 && d.hours === 0)
}

const COUNTS = [
  ['last', 'latest'], ['hourly', 'hourly'], ['daily', 'daily'], ['weekly', 'weekly'], ['monthly', 'monthly'], ['yearly', 'yearly'],
] as const
const WITHINS = [
  ['withinHourly', 'hourly'], ['withinDaily', 'daily'], ['withinWeekly', 'weekly'], ['withinMonthly', 'monthly'], ['withinYearly', 'yearly'],
] as const

/** True when no rule is given (restic: such a policy removes nothing; `--keep-last 0` is empty). */
export function policyEmpty(p: RetentionPolicy): boolean {
  return (
    (p.tags ?? []).length === 0 &&
    COUNTS.every(([k]) => !p[k]) &&
    isZero(p.within) &&
    WITHINS.every(([k]) => isZero(p[k]))
  )
}

/** restic's one-line description ("keep 7 daily, 4 weekly snapshots, ..."). */
export function describePolicy(p: RetentionPolicy): string {
  const keeps: string[] = []
  for (const [k, word] of COUNTS) {
    const n = p[k] ?? 0
    if (n > 0) keeps.push(`${n} ${word}`)
    else if (n === -1) keeps.push(`all ${word}`)
  }
  const keepw = WITHINS.filter(([k]) => !isZero(p[k])).map(([k, word]) => `${word} snapshots within ${formatDuration(p[k]!)}`)
  let s = keeps.length > 0 ? `${keeps.join(', ')} snapshots` : ''
  if (keepw.length > 0) s += (s ? ', ' : '') + keepw.join(', ')
  if ((p.tags ?? []).length > 0) s += (s ? ' and ' : '') + `all snapshots with tags [${p.tags!.map(tagListText).join(' ')}]`
  if (!isZero(p.within)) s += (s ? ' and ' : '') + `all snapshots within ${formatDuration(p.within!)} of the newest`
  return s === '' ? 'remove' : `keep ${s}`
}

function tagListText(l: string[]): string {
  return `[${l.join(', ')}]`
}

/** restic's HasTags: every tag of the list; the empty tag matches a snapshot without tags. */
export function hasTags(snapTags: readonly string[], list: readonly string[]): boolean {
  for (const t of list) {
    if (t === '' && snapTags.length === 0) return true
    if (!snapTags.includes(t)) return false
  }
  return true
}

/** restic's `--tag a,b`: one list per use, tags trimmed. */
export function parseTagList(text: string): string[] {
  return text.split(',').map(t => t.trim())
}

/** `--host/--tag/--path`: restic's snapshot filter (any host, any tag list, all paths). */
export interface SnapshotFilter {
  hosts?: string[]
  tags?: string[][]
  paths?: string[]
}

export function filterEmpty(f: SnapshotFilter): boolean {
  return (f.hosts ?? []).length + (f.tags ?? []).length + (f.paths ?? []).length === 0
}

export function matchesFilter(s: Pick<SnapshotSummary, 'host' | 'tags' | 'paths'>, f: SnapshotFilter): boolean {
  if (f.hosts && f.hosts.length > 0 && !f.hosts.includes(s.host)) return false
  if (f.tags && f.tags.length > 0 && !f.tags.some(l => hasTags(s.tags, l))) return false
  return (f.paths ?? []).every(p => s.paths.includes(p))
}

/** `--group-by host,paths,tags` (any subset; '' groups everything together). */
export interface GroupBy {
  host: boolean
  paths: boolean
  tags: boolean
}

export function parseGroupBy(text: string): GroupBy {
  const g: GroupBy = { host: false, paths: false, tags: false }
  for (const o of text.split(',')) {
    if (o === 'host' || o === 'hosts') g.host = true
    else if (o === 'path' || o === 'paths') g.paths = true
    else if (o === 'tag' || o === 'tags') g.tags = true
    else if (o !== '') throw new SluiceError('ERR_ARGS', `--group-by: unknown grouping option "${o}" (use host, paths, tags)`)
  }
  return g
}

/** A group's key in restic's JSON shape: `host` '' and `paths`/`tags` null when not grouped by. */
export interface GroupKey {
  host: string
  paths: string[] | null
  tags: string[] | null
}

/** The group a snapshot belongs to; paths and tags sorted, as restic sorts them. */
export function groupKeyOf(s: Pick<SnapshotSummary, 'host' | 'tags' | 'paths'>, by: GroupBy): GroupKey {
  return {
    host: by.host ? s.host : '',
    paths: by.paths ? [...s.paths].sort() : null,
    tags: by.tags ? [...s.tags].sort() : null,
  }
}

/** restic's group header text ("host a, path [/x], tags [t]"). */
export function describeGroup(k: GroupKey): string {
  const parts: string[] = []
  if (k.host !== '') parts.push(`host ${k.host}`)
  if (k.paths && k.paths.length > 0) parts.push(`path [${k.paths.join(' ')}]`)
  if (k.tags && k.tags.length > 0) parts.push(`tags [${k.tags.join(' ')}]`)
  return parts.join(', ')
}

/** Calendar fields of an instant in the chosen zone. */
interface Fields {
  y: number
  mo: number
  d: number
  h: number
}

function fields(ms: number, zone: Zone): Fields {
  const t = new Date(ms)
  return zone === 'utc'
    ? { y: t.getUTCFullYear(), mo: t.getUTCMonth() + 1, d: t.getUTCDate(), h: t.getUTCHours() }
    : { y: t.getFullYear(), mo: t.getMonth() + 1, d: t.getDate(), h: t.getHours() }
}

/** Go's ISOWeek: the year and week (Monday to Sunday) of the week's Thursday. */
export function isoWeek(y: number, mo: number, d: number): { year: number; week: number } {
  const t = new Date(0)
  t.setUTCFullYear(y, mo - 1, d)
  t.setUTCDate(t.getUTCDate() - ((t.getUTCDay() + 6) % 7) + 3)
  const year = t.getUTCFullYear()
  const jan1 = new Date(0)
  jan1.setUTCFullYear(year, 0, 1)
  return { year, week: Math.floor(Math.round((t.getTime() - jan1.getTime()) / 86400000) / 7) + 1 }
}

type Bucker = (f: Fields, nr: number) => number
const ymdh: Bucker = f => f.y * 1000000 + f.mo * 10000 + f.d * 100 + f.h
const ymd: Bucker = f => f.y * 10000 + f.mo * 100 + f.d
const yw: Bucker = f => {
  const w = isoWeek(f.y, f.mo, f.d)
  return w.year * 100 + w.week
}
const ym: Bucker = f => f.y * 100 + f.mo
const yr: Bucker = f => f.y
const always: Bucker = (_f, nr) => nr

/** `latest` minus a duration: Go's AddDate (calendar, normalizing like Date) then the hours. */
function minus(latestMs: number, d: Duration, zone: Zone): number {
  const t = new Date(latestMs)
  if (zone === 'utc') t.setUTCFullYear(t.getUTCFullYear() - d.years, t.getUTCMonth() - d.months, t.getUTCDate() - d.days)
  else t.setFullYear(t.getFullYear() - d.years, t.getMonth() - d.months, t.getDate() - d.days)
  return t.getTime() - d.hours * 3600_000
}

/** Milliseconds since the epoch of a snapshot's time; ERR_CORRUPT if it is not a date. */
export function timeOf(s: Pick<SnapshotSummary, 'time' | 'id'>): number {
  const ms = Date.parse(s.time)
  if (!Number.isFinite(ms)) throw new SluiceError('ERR_CORRUPT', `snapshot ${s.id.slice(0, 8)} has an invalid time "${s.time}"`)
  return ms
}

/**
 * restic's ApplyPolicy on one group: sorts newest first (stable: equal times keep their given
 * order), walks the list once with a bucket per rule, keeps a snapshot when any rule wants it
 * (ORed), and also keeps the oldest snapshot for each rule that still has counts left. Durations
 * count back from the newest snapshot that is not after `now`. One addition to restic: a
 * snapshot dated after `now` is never removed (kept with FUTURE_REASON when no rule keeps it).
 */
export function applyPolicy<S extends Pick<SnapshotSummary, 'id' | 'time' | 'tags'>>(
  snapshots: readonly S[],
  p: RetentionPolicy,
  opts: { now?: number; zone?: Zone } = {},
): PolicyResult<S> {
  const now = opts.now ?? Date.now()
  const zone = opts.zone ?? 'local'
  const list = snapshots.map(s => ({ s, ms: timeOf(s) })).sort((a, b) => b.ms - a.ms)
  const keep: S[] = []
  const remove: S[] = []
  const reasons: KeepReason<S>[] = []
  if (list.length === 0) return { keep, remove, reasons }

  const buckets = ([
    [p.last, always, 'last snapshot'], [p.hourly, ymdh, 'hourly snapshot'], [p.daily, ymd, 'daily snapshot'],
    [p.weekly, yw, 'weekly snapshot'], [p.monthly, ym, 'monthly snapshot'], [p.yearly, yr, 'yearly snapshot'],
  ] as const).map(([count, bucker, reason]) => ({ count: count ?? 0, bucker, reason, last: -1 }))
  const within = ([
    [p.withinHourly, ymdh, 'hourly within'], [p.withinDaily, ymd, 'daily within'], [p.withinWeekly, yw, 'weekly within'],
    [p.withinMonthly, ym, 'monthly within'], [p.withinYearly, yr, 'yearly within'],
  ] as const).filter(([d]) => !isZero(d)).map(([d, bucker, reason]) => ({ d: d!, bucker, reason, last: -1 }))

  // The newest snapshot not in the future; with none, every duration reaches back forever.
  let latest = -Infinity
  for (const { ms } of list) if (ms > latest && ms < now) latest = ms
  const since = (d: Duration) => (latest === -Infinity ? -Infinity : minus(latest, d, zone))

  list.forEach(({ s, ms }, nr) => {
    const matches: string[] = []
    for (const l of p.tags ?? []) if (hasTags(s.tags, l)) matches.push(`has tags ${tagListText(l)}`)
    if (!isZero(p.within) && ms > since(p.within!)) matches.push(`within ${formatDuration(p.within!)}`)
    const f = fields(ms, zone)
    const oldest = nr === list.length - 1
    for (const b of buckets) {
      if (b.count > 0 || b.count === -1) {
        const val = b.bucker(f, nr)
        if (val !== b.last || oldest) {
          matches.push(val === b.last ? `oldest ${b.reason}` : b.reason)
          b.last = val
          if (b.count > 0) b.count--
        }
      }
    }
    for (const b of within) {
      if (ms > since(b.d)) {
        const val = b.bucker(f, nr)
        if (val !== b.last || oldest) {
          matches.push(`${val === b.last ? `oldest ${b.reason}` : b.reason} ${formatDuration(b.d)}`)
          b.last = val
        }
      }
    }
    if (matches.length === 0 && ms > now) matches.push(FUTURE_REASON)
    if (matches.length === 0) {
      remove.push(s)
      return
    }
    keep.push(s)
    const counters: KeepReason<S>['counters'] = {}
    COUNTS.forEach(([k], i) => {
      if (buckets[i]!.count !== 0) counters[k] = buckets[i]!.count
    })
    reasons.push({ snapshot: s, matches, counters })
  })
  return { keep, remove, reasons }
}
