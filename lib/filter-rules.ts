/**
 * Include / exclude rules, with restic's semantics: a pattern starting with '/' is anchored at
 * the snapshot root; any other pattern matches at any depth (as if '**\/' were prepended).
 * Patterns are minimatch globs with `dot: true`; '!' and '#' have no special meaning on the
 * command line (an exclude file strips '#' comment lines). A pattern ending in '/' matches
 * directories only. A path matches a pattern when it, or one of its ancestors, does: excluding
 * a directory excludes everything below it, whatever source the entries come from.
 *
 * Snapshot paths are raw bytes; they are decoded as UTF-8 for matching only (a byte that is not
 * UTF-8 matches '?' or '*' as U+FFFD).
 */
import { closeSync, openSync, readSync, readFileSync } from 'node:fs'
import { Minimatch, type MinimatchOptions } from 'minimatch'
import type { EntryMeta, SourceEntry } from './entry.js'
import { SluiceError } from './errors.js'

/** Options of {@link compileFilter}; the CLI flags of the same names. */
export interface FilterOptions {
  exclude?: string[]
  include?: string[]
  /** Files with one exclude pattern per line; blank lines and lines starting with '#' are
   *  ignored, surrounding whitespace is trimmed. */
  excludeFile?: string[]
  /** Regular files larger than this many bytes are dropped. */
  excludeLargerThan?: number
  /** As exclude / include, matched without regard to case (restic's --iexclude / --iinclude). */
  iexclude?: string[]
  iinclude?: string[]
  /** Drop directories holding a CACHEDIR.TAG file that starts with the signature of the Cache
   *  Directory Tagging Specification (restic's --exclude-caches). Walked entries only. */
  excludeCaches?: boolean
}

/** The compiled rules: pure functions of one entry's metadata, no state. */
export interface FilterRules {
  /** True when the entry must be dropped. Also true below an excluded directory, so a source
   *  that cannot prune (a tar stream) gets the same result as a pruning walk. */
  excludes(entry: EntryMeta): boolean
  /** False when the walk must neither emit the entry nor, for a directory, read its listing
   *  (nothing below it can be kept). Pass it as the walk's `descend`: an entry dropped there
   *  never becomes the first link of a hardlink group that a later link would point to. */
  canDescend(entry: EntryMeta): boolean
  /** True for a directory kept only because an include could match below it (not itself
   *  included): restore creates it only once something below it is kept, as restic does. */
  onTheWay?(entry: EntryMeta): boolean
  /** True when no rule was given: nothing is ever excluded, so a pipeline may leave the filter
   *  stage out (one stream hop less per entry). */
  readonly empty?: boolean
}

const MM_OPTS: MinimatchOptions = { dot: true, nonegate: true, nocomment: true }

/** The first bytes of a CACHEDIR.TAG file (https://bford.info/cachedir/). */
const CACHEDIR_SIGNATURE = Buffer.from('Signature: 8a477f597d28d172789f06886806bc55')

/** True when the directory on disk holds a CACHEDIR.TAG with the signature. */
function isCacheDir(fsPath: Buffer): boolean {
  let fd: number
  try {
    fd = openSync(Buffer.concat([fsPath, Buffer.from('/CACHEDIR.TAG')]), 'r')
  } catch {
    return false
  }
  try {
    const head = Buffer.alloc(CACHEDIR_SIGNATURE.length)
    return readSync(fd, head, 0, head.length, 0) === head.length && head.equals(CACHEDIR_SIGNATURE)
  } catch {
    return false
  } finally {
    closeSync(fd)
  }
}

/** One pattern, compiled for matching a relative snapshot path (no leading '/'). */
export interface Pattern {
  /** Matches the path itself. */
  self: Minimatch
  /** Matches any path strictly below a match of `self`. */
  below: Minimatch
  dirOnly: boolean
}

/** `nocase` for find --ignore-case. Null for a pattern that is empty once trailing slashes go. */
export function compilePattern(raw: string, opts: { nocase?: boolean } = {}): Pattern | null {
  let p = raw
  const dirOnly = p.length > 1 && p.endsWith('/')
  while (p.length > 1 && p.endsWith('/')) p = p.slice(0, -1)
  const anchored = p.startsWith('/')
  if (anchored) p = p.replace(/^\/+/, '')
  if (p === '') {
    if (anchored) throw new SluiceError('ERR_ARGS', `pattern '${raw}' matches the whole snapshot`)
    return null
  }
  const body = anchored ? p : `**/${p}`
  const mm = { ...MM_OPTS, nocase: !!opts.nocase }
  return { self: new Minimatch(body, mm), below: new Minimatch(`${body}/**`, mm), dirOnly }
}

function matches(pat: Pattern, rel: string, isDir: boolean): boolean {
  return (pat.self.match(rel) && (isDir || !pat.dirOnly)) || pat.below.match(rel)
}

/** Reads the patterns of an exclude file. */
function readPatternFile(file: string): string[] {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (cause) {
    throw new SluiceError('ERR_ARGS', `cannot read exclude file ${file}: ${(cause as Error).message}`, { cause })
  }
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
}

/**
 * Compiles the options into {@link FilterRules}. With `include` patterns, an entry is kept only
 * when it or an ancestor matches one of them, or it is a directory that could contain a match;
 * `exclude` always wins. Throws ERR_ARGS for an unreadable exclude file or an anchored pattern
 * that would exclude everything ('/').
 */
export function compileFilter(opts: FilterOptions): FilterRules {
  const excludeSrc = [...(opts.exclude ?? []), ...(opts.excludeFile ?? []).flatMap(readPatternFile)]
  const compile = (list: string[] | undefined, nocase: boolean) => (list ?? []).map(p => compilePattern(p, { nocase })).filter((p): p is Pattern => p !== null)
  const excl = [...compile(excludeSrc, false), ...compile(opts.iexclude, true)]
  const incl = [...compile(opts.include, false), ...compile(opts.iinclude, true)]
  const caches = !!opts.excludeCaches
  const larger = opts.excludeLargerThan
  if (larger !== undefined && !(larger >= 0)) throw new SluiceError('ERR_ARGS', `bad size limit ${larger}`)

  const excludes = (entry: EntryMeta): boolean => {
    if (larger !== undefined && entry.type === 'file' && entry.size > larger) return true
    const fsPath = (entry as Partial<SourceEntry>).fsPath
    if (caches && entry.type === 'dir' && fsPath && isCacheDir(fsPath)) return true
    if (excl.length === 0 && incl.length === 0) return false
    const rel = entry.path.toString('utf8')
    const isDir = entry.type === 'dir'
    for (const p of excl) if (matches(p, rel, isDir)) return true
    if (incl.length === 0) return false
    for (const p of incl) if (matches(p, rel, isDir)) return false
    // A directory stays (without its other contents) when an include could match below it.
    if (isDir) for (const p of incl) if (p.below.match(rel, true)) return false
    return true
  }
  const empty = larger === undefined && !caches && excl.length === 0 && incl.length === 0
  const onTheWay = (entry: EntryMeta): boolean => {
    if (entry.type !== 'dir' || incl.length === 0) return false
    const rel = entry.path.toString('utf8')
    return !incl.some(p => matches(p, rel, true)) && !excludes(entry)
  }
  return { excludes, canDescend: (entry) => !excludes(entry), onTheWay, empty }
}

const UNITS: Record<string, number> = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 }

/** Parses a size with an optional binary unit: '100', '512k', '10M', '1.5G', '2TiB'
 *  (case-insensitive; k = 1024). Throws ERR_ARGS for anything else. */
export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?|\.\d+)\s*(?:([kmgt])(?:i?b)?|b)?\s*$/i.exec(text)
  if (m === null) throw new SluiceError('ERR_ARGS', `not a size: '${text}'`)
  const n = Number(m[1]) * UNITS[(m[2] ?? '').toLowerCase()]!
  if (!Number.isFinite(n) || n > Number.MAX_SAFE_INTEGER) throw new SluiceError('ERR_ARGS', `size too large: '${text}'`)
  return Math.floor(n)
}
