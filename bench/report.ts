/**
 * Result records of a benchmark run and their rendering as plain-text and Markdown tables.
 * Units: MB = 10^6 bytes everywhere (data, throughput and RSS alike).
 */
import type { ToolName } from './tools.js'

/** The timed operations: each tool's backup, restore and second backup; for Sluice on the
 *  huge-directory and tar scenarios also `restore --tar`, `ls`, `diff`, `check` and `prune`. */
export const OPS = ['backup', 'restore', 'incremental', 'restore-tar', 'ls', 'diff', 'check', 'prune'] as const
export type Op = (typeof OPS)[number]

/** One measured operation of one tool on one scenario. */
export interface OpResult {
  scenario: string
  tool: ToolName
  op: Op
  ok: boolean
  /** Why it failed (exit code and the tail of stderr), when it did. */
  error?: string
  /** Files and bytes of the source tree (backup) or found in the restored tree (restore). */
  files: number
  bytes: number
  seconds: number | null
  cpuSeconds: number | null
  /** The kernel's part of cpuSeconds (JSON only). */
  sysSeconds?: number | null
  peakRssBytes: number | null
  /** 1-minute load average just before the command: above nproc, other work shared the CPUs. */
  load1?: number
  /** Repository size on disk after this backup. */
  repoBytes?: number
  /** For restores: whether the restored tree equals the source. */
  verified?: boolean
  verifyProblems?: string[]
  /** For Sluice backups: its own `--json` report. */
  toolReport?: Record<string, unknown>
}

const MB = 1e6

function fmt(n: number | null | undefined, digits = 1): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return 'n/a'
  return n.toFixed(digits)
}

/** The columns of the main table, as strings. */
function rowCells(r: OpResult): string[] {
  const ok = r.ok ? (r.verified === false ? 'MISMATCH' : 'ok') : 'FAILED'
  const timed = r.ok && r.seconds !== null
  return [
    r.scenario,
    r.tool,
    r.op,
    r.ok ? String(r.files) : 'n/a',
    r.ok ? fmt(r.bytes / MB) : 'n/a',
    timed ? fmt(r.seconds, 2) : 'n/a',
    timed && r.seconds ? fmt(r.bytes / MB / r.seconds) : 'n/a',
    r.ok ? fmt(r.cpuSeconds, 1) : 'n/a',
    r.ok ? fmt(r.peakRssBytes === null ? null : r.peakRssBytes / MB, 0) : 'n/a',
    r.repoBytes === undefined ? '' : fmt(r.repoBytes / MB),
    ok,
  ]
}

const HEADER = ['scenario', 'tool', 'op', 'files', 'MB', 'seconds', 'MB/s', 'CPU s', 'peak RSS MB', 'repo MB', 'status']
const RIGHT = new Set([3, 4, 5, 6, 7, 8, 9])

/** A ratio row: Sluice divided by a peer, for time and peak memory. */
interface RatioRow {
  scenario: string
  op: Op
  peer: ToolName
  time: number | null
  rss: number | null
}

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return null
  return a / b
}

function ratios(results: readonly OpResult[]): RatioRow[] {
  const rows: RatioRow[] = []
  const find = (s: string, t: ToolName, op: Op): OpResult | undefined =>
    results.find((r) => r.scenario === s && r.tool === t && r.op === op && r.ok)
  const scenarios = [...new Set(results.map((r) => r.scenario))]
  for (const s of scenarios) {
    if (!results.some((r) => r.scenario === s && r.tool === 'sluice')) continue
    for (const op of OPS) {
      const mine = find(s, 'sluice', op)
      for (const peer of ['restic', 'borg'] as const) {
        const theirs = find(s, peer, op)
        if (!results.some((r) => r.scenario === s && r.tool === peer)) continue
        if (mine === undefined && theirs === undefined) continue
        rows.push({
          scenario: s, op, peer,
          time: ratio(mine?.seconds, theirs?.seconds),
          rss: ratio(mine?.peakRssBytes, theirs?.peakRssBytes),
        })
      }
    }
  }
  return rows
}

/** Peak RSS of the large scenario over the small one, per tool and op: 1.0 means flat. */
function flatness(results: readonly OpResult[], small: string, large: string): string[][] {
  const rows: string[][] = []
  for (const tool of ['sluice', 'restic', 'borg'] as const) {
    for (const op of OPS) {
      const a = results.find((r) => r.scenario === small && r.tool === tool && r.op === op && r.ok)
      const b = results.find((r) => r.scenario === large && r.tool === tool && r.op === op && r.ok)
      if (a === undefined && b === undefined) continue
      const mb = (r: OpResult | undefined): string =>
        r?.peakRssBytes === null || r?.peakRssBytes === undefined ? 'n/a' : fmt(r.peakRssBytes / MB, 0)
      rows.push([tool, op, mb(a), mb(b), fmt(ratio(b?.peakRssBytes, a?.peakRssBytes), 2)])
    }
  }
  return rows
}

function textTable(header: string[], rows: string[][], right: Set<number>): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)))
  const line = (cells: string[]): string =>
    cells.map((c, i) => (right.has(i) ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd()
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

function mdTable(header: string[], rows: string[][], right: Set<number>): string {
  const sep = header.map((_, i) => (right.has(i) ? '---:' : '---'))
  return [header, sep, ...rows].map((r) => `| ${r.join(' | ')} |`).join('\n')
}

/** Renders all tables, as plain text for the terminal or Markdown for the docs. */
export function render(results: readonly OpResult[], style: 'text' | 'markdown', flats: readonly { small: string; large: string }[] = []): string {
  const table = style === 'text' ? textTable : mdTable
  const parts: string[] = []
  parts.push(table(HEADER, results.map(rowCells), RIGHT))
  const rr = ratios(results)
  if (rr.length > 0) {
    const rows = rr.map((r) => [r.scenario, r.op, `sluice/${r.peer}`, fmt(r.time, 2), fmt(r.rss, 2)])
    parts.push(table(['scenario', 'op', 'ratio', 'time', 'peak RSS'], rows, new Set([3, 4])))
  }
  for (const flat of flats) {
    const rows = flatness(results, flat.small, flat.large)
    if (rows.length > 0) {
      parts.push(table(['tool', 'op', `RSS MB ${flat.small}`, `RSS MB ${flat.large}`, 'growth'], rows, new Set([2, 3, 4])))
    }
  }
  return parts.join('\n\n')
}

/** Failures and verification problems, one line each, for the end of the run. */
export function problems(results: readonly OpResult[]): string[] {
  const out: string[] = []
  for (const r of results) {
    if (!r.ok) out.push(`${r.scenario} ${r.tool} ${r.op}: FAILED: ${r.error ?? ''}`)
    else if (r.verified === false) out.push(`${r.scenario} ${r.tool} ${r.op}: restored tree differs: ${(r.verifyProblems ?? []).join('; ')}`)
  }
  return out
}
