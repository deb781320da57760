/**
 * What the progress line knows of the whole: the scanner, which counts the files and bytes a
 * backup will see before the backup gets there (as restic's), restic's progress formats, and
 * the phase clock of prune's and check's lines.
 */
import { pipeline } from 'node:stream/promises'
import { Writable } from 'node:stream'
import { compileFilter, createWalk, type FilterOptions, type PhaseProgress, type SourceEntry } from '../index.js'
import { formatBytes } from './common.js'

/** Totals of what the backup will read; `done` once the scan has walked everything. */
export interface ScanTotals {
  files: number
  dirs: number
  bytes: number
  done: boolean
}

export interface ScanOptions {
  filter: FilterOptions
  excludeIfPresent?: string[]
  oneFileSystem?: boolean
}

/**
 * Walks the backup's paths with the backup's filter beside it, counting files and their bytes
 * (a later hardlink counts once, as the backup reads it once). Unreadable entries are left to the
 * backup to report. Memory: the walk's (the listings on the current path and its hardlink map):
 * it counts, it keeps no list. Returns the live totals and a stop function.
 */
export function startScanner(paths: readonly (string | Buffer)[], opts: ScanOptions): { totals: ScanTotals; stop: () => void } {
  const totals: ScanTotals = { files: 0, dirs: 0, bytes: 0, done: false }
  const rules = compileFilter(opts.filter)
  const walk = createWalk(paths, {
    onWarning: () => {},
    descend: e => rules.canDescend(e),
    ...(opts.excludeIfPresent ? { excludeIfPresent: opts.excludeIfPresent } : {}),
    ...(opts.oneFileSystem ? { oneFileSystem: true } : {}),
  })
  const count = new Writable({
    objectMode: true,
    write(e: SourceEntry, _enc, cb) {
      if (e.type === 'dir') totals.dirs++
      else if (e.type === 'file') {
        totals.files++
        if (!e.hardlinkTo) totals.bytes += e.size
      }
      cb()
    },
  })
  // A scan that fails only leaves the totals unknown: the backup says what went wrong.
  pipeline(walk, count).then(() => (totals.done = true), () => {})
  return { totals, stop: () => walk.destroy() }
}

/** restic's elapsed and remaining time: m:ss, or h:mm:ss from an hour on. */
export function clock(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds))
  const h = Math.floor(s / 3600)
  const mm = String(Math.floor((s % 3600) / 60))
  const ss = String(s % 60).padStart(2, '0')
  return h > 0 ? `${h}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`
}

/** Where a job stands: done so far, the totals (when known) and how long it has run. */
export interface Position {
  elapsed: number
  files: number
  bytes: number
  total?: { files: number; bytes: number; done: boolean }
  errors: number
  current?: string
}

/** Fraction done (0..1) by bytes (by files when there are no bytes), and the seconds left
 *  at the rate so far; undefined while the totals are still being counted. */
export function estimate(p: Position): { fraction?: number; remaining?: number } {
  if (!p.total || !p.total.done) return {}
  const fraction = p.total.bytes > 0 ? Math.min(1, p.bytes / p.total.bytes) : p.total.files > 0 ? Math.min(1, p.files / p.total.files) : 1
  const remaining = fraction > 0 ? (p.elapsed * (1 - fraction)) / fraction : undefined
  return { fraction, ...(remaining !== undefined ? { remaining } : {}) }
}

/** restic's progress line, `[0:03] 82.53%  747 files 13.3 MiB, total 755 files 16.2 MiB,
 *  0 errors ETA 0:01`, then the rate and the current file (what a narrow terminal cuts off). */
export function progressLine(p: Position): string {
  const { fraction, remaining } = estimate(p)
  const rate = p.elapsed > 0 ? `${formatBytes(p.bytes / p.elapsed)}/s` : ''
  const total = p.total ? `, total ${p.total.files} files ${formatBytes(p.total.bytes)}${p.total.done ? '' : ' (counting)'}` : ''
  return [
    `[${clock(p.elapsed)}]`,
    // restic's two spaces after the percent, one when there is none to show
    fraction !== undefined ? `${(fraction * 100).toFixed(2)}% ` : '',
    `${p.files} files ${formatBytes(p.bytes)}${total}, ${p.errors} errors`,
    remaining !== undefined ? `ETA ${clock(remaining)}` : '',
    rate,
    p.current ?? '',
  ].filter(s => s !== '').join(' ')
}

/**
 * Follows a job's phases (prune, check: lib/progress.ts) for its progress line and status
 * messages: keeps the job's progress object and when its current step began, for the step's
 * percent, rate and ETA. Memory: one object.
 */
export class PhaseClock {
  p: PhaseProgress | undefined
  private key = ''
  private stepStarted: number
  constructor(readonly started: number = Date.now()) {
    this.stepStarted = started
  }

  /** The job's onProgress: called at each step's start (and more often). */
  readonly update = (p: PhaseProgress, now = Date.now()): void => {
    this.p = p
    const key = `${p.phase}\0${p.step}`
    if (key !== this.key) {
      this.key = key
      this.stepStarted = now
    }
  }

  /** Fraction of the step done (by bytes when their total is known, else by count), the seconds
   *  left at the step's rate so far, and that rate (bytes, else items, a second). */
  estimate(now = Date.now()): { elapsed: number; fraction?: number; remaining?: number; rate?: number } {
    const elapsed = (now - this.started) / 1000
    const p = this.p
    if (!p) return { elapsed }
    const stepElapsed = (now - this.stepStarted) / 1000
    const fraction = p.totalBytes !== undefined && p.bytes !== undefined ? (p.totalBytes > 0 ? Math.min(1, p.bytes / p.totalBytes) : 1)
      : p.total !== undefined ? (p.total > 0 ? Math.min(1, p.done / p.total) : 1)
      : undefined
    const remaining = fraction !== undefined && fraction > 0 ? (stepElapsed * (1 - fraction)) / fraction : undefined
    const rate = stepElapsed > 0 ? (p.bytes ?? p.done) / stepElapsed : undefined
    return { elapsed, ...(fraction !== undefined ? { fraction } : {}), ...(remaining !== undefined ? { remaining } : {}), ...(rate !== undefined ? { rate } : {}) }
  }

  /** restic's style, as backup's line: `[0:12] sweep (deleting) 45.00%  1800 chunks 1.2 MiB,
   *  total 4000 chunks 2.6 MiB, 0 errors ETA 0:15 120 chunks/s 3fa0c1d2`. */
  line(label: string, now = Date.now()): string {
    const { elapsed, fraction, remaining, rate } = this.estimate(now)
    const p = this.p
    if (!p) return `[${clock(elapsed)}] ${label}: starting`
    const bytes = p.bytes !== undefined ? ` ${formatBytes(p.bytes)}` : ''
    const total = p.total !== undefined || p.totalBytes !== undefined
      ? `, total${p.total !== undefined ? ` ${p.total} ${p.unit}` : ''}${p.totalBytes !== undefined ? ` ${formatBytes(p.totalBytes)}` : ''}`
      : ''
    return [
      `[${clock(elapsed)}]`,
      `${label} (${p.step})`,
      fraction !== undefined ? `${(fraction * 100).toFixed(2)}% ` : '',
      `${p.done} ${p.unit}${bytes}${total}, ${p.errors} errors`,
      remaining !== undefined ? `ETA ${clock(remaining)}` : '',
      rate !== undefined ? (p.bytes !== undefined ? `${formatBytes(rate)}/s` : `${rate.toFixed(rate < 10 ? 1 : 0)} ${p.unit}/s`) : '',
      p.current ?? '',
    ].filter(s => s !== '').join(' ')
  }

  /** The `--json` status message (docs/JSON.md, "prune --json" and "check --json"). */
  status(now = Date.now()): Record<string, unknown> {
    const { elapsed, fraction, remaining } = this.estimate(now)
    const p = this.p
    return {
      message_type: 'status',
      phase: p?.phase ?? 'starting',
      step: p?.step ?? 'starting',
      seconds_elapsed: Math.floor(elapsed),
      ...(remaining !== undefined ? { seconds_remaining: Math.ceil(remaining) } : {}),
      percent_done: fraction ?? 0,
      unit: p?.unit ?? '',
      items_done: p?.done ?? 0,
      ...(p?.total !== undefined ? { total_items: p.total } : {}),
      ...(p?.bytes !== undefined ? { bytes_done: p.bytes } : {}),
      ...(p?.totalBytes !== undefined ? { total_bytes: p.totalBytes } : {}),
      error_count: p?.errors ?? 0,
      ...(p?.current ? { current_item: p.current } : {}),
    }
  }
}
