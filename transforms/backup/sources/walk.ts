/**
 * The filesystem source: walks the backup paths and yields one `SourceEntry` per file,
 * directory, symlink or special file, in the canonical order of docs/DESIGN.md (depth first,
 * siblings by raw name bytes, a directory before its children), so that `comparePaths` of
 * consecutive entries is strictly increasing and an incremental backup can merge-join the walk
 * with the parent snapshot.
 *
 * Names are raw bytes from first to last: listings are read with `encoding: 'buffer'` and never
 * decoded. Symlinks are never followed (lstat only; a symlink to a directory is a symlink entry).
 *
 * lstat is synchronous (the addon's, without a Stats object: on a warm cache a third of the CPU
 * of a thread-pool round trip), one entry at a time. A file entry's content() is read by
 * read-content.ts when the chunker asks for it.
 *
 * Memory: the sorted listings of the directories on the current path, and the hardlink map
 * (inodes with a link count above one whose links have not all been seen yet: the one
 * structure that docs/DESIGN.md allows to grow with the data).
 */
import fs, { promises as fsp, constants as fsc } from 'node:fs'
import { lstatNumbers, type LStat } from '../../../lib/native.js'
import { Readable } from 'node:stream'
import { comparePaths, displayPath, isUnder } from '../../../lib/bytes.js'
import type { EntryType, SourceEntry } from '../../../lib/entry.js'
import { SluiceError, isErrno } from '../../../lib/errors.js'
import { STAGE_HWM } from '../../../lib/limits.js'
import { readContent, statNumbers, type ContentReader } from './read-content.js'
import { systemOwners } from '../../../lib/owners.js'

/** Options of {@link createWalk}. */
export interface WalkOptions {
  /** Receives per-entry trouble (ERR_READ: unreadable directory, vanished entry, readlink
   *  failure). The walk goes on after each. */
  onWarning: (err: SluiceError) => void
  /** Do not enter directories on another device than their backup path (the mount point itself
   *  is still emitted, without children). */
  oneFileSystem?: boolean
  /** Called for every entry before it is emitted: false drops it and, for a directory, keeps the
   *  walk out of it (its listing is never read). Pass `FilterRules.canDescend` here so excluded
   *  trees cost nothing and an excluded file never becomes the first link of a hardlink group. */
  descend?: (entry: SourceEntry) => boolean
  /** A directory whose listing holds one of these names is dropped with all its contents. */
  excludeIfPresent?: string[]
  /** Filled in as the walk goes, for progress and tests. */
  stats?: WalkStats
  /** lstat of a path (default: the addon's lstatNumbers); tests inject failures here. */
  lstat?: (fsPath: Buffer) => LStat
  /** Reads a file entry's content (default: readContent); tests inject changes here. */
  readContent?: ContentReader
}

/** Counters a walk keeps up to date in a caller-owned object. */
export interface WalkStats {
  /** Warnings passed to `onWarning`. */
  warnings: number
  /** Hardlinked inodes whose links have not all been seen yet: the size of the hardlink map.
   *  What remains at the end are inodes with links outside the backup paths. */
  pendingHardlinks: number
}

const SLASH = Buffer.of(0x2f)
const S_IFMT = fsc.S_IFMT

/** One lstat (and, for symlinks, readlink) result, or the error. */
type Stat = { st: LStat; link?: Buffer; linkErr?: unknown }
type Probe = Stat | { err: unknown }
type ProbeOf = (fsPath: Buffer) => Probe

interface Frame {
  fsDir: Buffer
  names: Buffer[]
  /** Index in `names` of the next entry to visit. */
  next: number
}

type Warn = (msg: string, cause: unknown, fsPath: Buffer) => void

interface LinkGroup {
  first: Buffer
  left: number
}

/**
 * Walks `paths` (absolute or relative to the working directory) and yields their entries.
 * The snapshot path of an entry under an absolute backup path is its absolute path without the
 * leading '/'; under a relative one it is, as restic 0.14 stores it, the path as given, cleaned,
 * without its leading '..' components (`data` → `data/...`, `../x/y` → `x/y/...`, `.` → the
 * directory's children at the top). The ancestors of each backup path's snapshot path are
 * emitted first (once, even when backup paths share them). A backup path inside another one is
 * dropped; two whose snapshot paths would be the same or nested are refused (ERR_ARGS). A
 * backup path that does not exist fails the stream with ERR_PATH_NOT_FOUND before anything is
 * emitted.
 */
export function createWalk(paths: string[] | Buffer[], opts: WalkOptions): Readable {
  return Readable.from(walk(paths, opts), { objectMode: true, highWaterMark: STAGE_HWM })
}

async function* walk(paths: string[] | Buffer[], opts: WalkOptions): AsyncGenerator<SourceEntry> {
  const probeOf = prober(opts.lstat ?? lstatNumbers)
  const read = opts.readContent ?? readContent
  const roots = checkRoots(paths, probeOf)
  const markers = (opts.excludeIfPresent ?? []).map((n) => Buffer.from(n))
  const links = new Map<string, LinkGroup>()
  /** Ancestor directories already emitted (ok) or refused by `descend`, outermost first, by
   *  their snapshot paths. */
  let chain: { snap: Buffer; ok: boolean }[] = []

  const onWarning = (err: SluiceError): void => {
    if (opts.stats) opts.stats.warnings++
    opts.onWarning(err)
  }
  const warn: Warn = (msg, cause, fsPath) => {
    const detail = cause instanceof Error ? `: ${cause.message}` : ''
    onWarning(new SluiceError('ERR_READ', `${msg} ${displayPath(fsPath)}${detail}`, { cause, path: fsPath }))
  }

  /** Turns a probe into an entry, applying `descend` and the hardlink map; null when dropped.
   *  `cut`: where the snapshot path starts in fsPath (its backup path's, see Root). */
  const admit = (fsPath: Buffer, probe: Stat, cut: number): SourceEntry | null => {
    if (probe.linkErr !== undefined) warn('cannot read symlink', probe.linkErr, fsPath)
    const entry = toEntry(fsPath, probe.st, probe.link, cut)
    if (entry.type === 'file') {
      const before = probe.st
      // entry.size is read when the content is asked for: prefetch may set -1 (read to the end).
      entry.content = () => read({ fsPath, size: entry.size, before }, onWarning)
    }
    if (opts.descend && !opts.descend(entry)) return null
    if (entry.type !== 'dir' && probe.st.nlink > 1) {
      const key = `${probe.st.dev}:${probe.st.ino}`
      const group = links.get(key)
      if (group === undefined) {
        // A copy of its own: entry.path is a view that may pin a shared 8 KiB allocation pool.
        const first = Buffer.allocUnsafeSlow(entry.path.length)
        entry.path.copy(first)
        links.set(key, { first, left: Number(probe.st.nlink) - 1 })
      } else {
        entry.hardlinkTo = group.first
        entry.content = undefined
        if (--group.left <= 0) links.delete(key)
      }
      if (opts.stats) opts.stats.pendingHardlinks = links.size
    }
    return entry
  }

  /** Reads a directory's listing, sorted; null when it cannot be listed (already warned). */
  const list = async (fsPath: Buffer): Promise<Buffer[] | null> => {
    try {
      const names = (await fsp.readdir(fsPath, { encoding: 'buffer' })) as Buffer[]
      return names.sort(Buffer.compare)
    } catch (err) {
      warn('cannot list directory', err, fsPath)
      return null
    }
  }

  for (const root of roots) {
    // Ancestors of the backup path's snapshot path, shared with the previous one as far as they
    // agree (a relative path's ancestors above what was given are not part of the snapshot).
    const { cut } = root
    const anc = ancestors(root.fsPath).filter((a) => a.length > cut)
    let i = 0
    while (i < chain.length && i < anc.length && chain[i]!.snap.equals(anc[i]!.subarray(cut))) i++
    chain = chain.slice(0, i)
    if (chain.some((c) => !c.ok)) continue
    let refused = false
    for (; i < anc.length; i++) {
      const fsPath = anc[i]!
      let probe = probeOf(fsPath)
      // An ancestor that is a symlink (/var -> /private/var) is recorded as the directory it
      // leads to: a symlink record with children would not restore.
      if ('st' in probe && (probe.st.mode & S_IFMT) === fsc.S_IFLNK) probe = await statOf(fsPath)
      if ('err' in probe) throw new SluiceError('ERR_READ', `cannot read ${displayPath(fsPath)}`, { cause: probe.err, path: fsPath })
      const entry = admit(fsPath, probe, cut)
      chain.push({ snap: fsPath.subarray(cut), ok: entry !== null })
      if (entry === null) {
        refused = true
        break
      }
      yield entry
    }
    if (refused) continue

    const stack: Frame[] = []
    const rootDev = root.st.dev
    // Visits one entry: emits it and, for a directory, pushes its listing.
    let pending: { fsPath: Buffer; probe: Probe } | null = { fsPath: root.fsPath, probe: { st: root.st, ...root.link } }
    for (;;) {
      if (pending !== null) {
        const { fsPath, probe } = pending
        pending = null
        if ('err' in probe) {
          warn(isErrno(probe.err, 'ENOENT') ? 'vanished:' : 'cannot read', probe.err, fsPath)
        } else if (fsPath.length <= cut) {
          // Backing up '/' (or '.'): the root has no snapshot path of its own, only children.
          const names = await list(fsPath)
          if (names !== null && names.length > 0) stack.push(frame(fsPath, names))
        } else {
          const entry = admit(fsPath, probe, cut)
          if (entry !== null) {
            if (entry.type !== 'dir') {
              yield entry
            } else if (opts.oneFileSystem && probe.st.dev !== rootDev) {
              yield entry
            } else {
              const names = await list(fsPath)
              if (names !== null && markers.length > 0 && names.some((n) => markers.some((m) => m.equals(n)))) {
                // exclude-if-present: the directory goes with everything in it
              } else {
                yield entry
                if (names !== null && names.length > 0) stack.push(frame(fsPath, names))
              }
            }
          }
        }
      }
      const top = stack[stack.length - 1]
      if (top === undefined) break
      if (top.next >= top.names.length) {
        stack.pop()
        continue
      }
      const fsPath = childPath(top.fsDir, top.names[top.next++]!)
      pending = { fsPath, probe: probeOf(fsPath) }
    }
  }
}

/**
 * A backup path: resolved, lstat'ed, and `cut`, where an entry's snapshot path starts in its
 * fsPath: 1 for an absolute path (the leading '/' dropped); for a relative one, where the path
 * as given (cleaned, leading '..' dropped) starts, or past the end when that is empty ('.').
 */
interface Root {
  fsPath: Buffer
  cut: number
  st: LStat
  link: { link?: Buffer; linkErr?: unknown }
}

/** The backup paths, resolved, sorted by snapshot path, with nested ones dropped, each
 *  lstat'ed up front. */
function checkRoots(paths: string[] | Buffer[], probeOf: ProbeOf): Root[] {
  if (paths.length === 0) throw new SluiceError('ERR_ARGS', 'no backup path given')
  const resolved = paths.map((given) => {
    const p = typeof given === 'string' ? Buffer.from(given) : given
    const fsPath = resolvePath(p)
    if (p[0] === 0x2f) return { fsPath, cut: 1 }
    const kept = cleanRelative(p).length
    return { fsPath, cut: kept === 0 ? fsPath.length + (fsPath.length === 1 ? 0 : 1) : fsPath.length - kept }
  })
  resolved.sort((a, b) => comparePaths(a.fsPath, b.fsPath))
  const kept: { fsPath: Buffer; cut: number }[] = []
  for (const p of resolved) {
    const last = kept[kept.length - 1]
    if (last !== undefined && isUnder(p.fsPath.subarray(1), last.fsPath.subarray(1))) continue
    if (last !== undefined && last.fsPath.length === 1) continue // '/' covers everything
    kept.push(p)
  }
  // Relative paths keep only their own part: two backup paths may then meet in the snapshot.
  const snap = (r: { fsPath: Buffer; cut: number }) => r.fsPath.subarray(r.cut)
  kept.sort((a, b) => comparePaths(snap(a), snap(b)))
  for (let i = 1; i < kept.length; i++) {
    if (isUnder(snap(kept[i]!), snap(kept[i - 1]!))) {
      const [a, b] = [kept[i - 1]!, kept[i]!]
      throw new SluiceError('ERR_ARGS', `backup paths ${displayPath(a.fsPath)} and ${displayPath(b.fsPath)} would overlap in the snapshot (as /${displayPath(snap(a))} and /${displayPath(snap(b))}): give them as absolute paths`)
    }
  }
  const out: Root[] = []
  for (const { fsPath, cut } of kept) {
    const probe = probeOf(fsPath)
    if ('err' in probe) {
      if (isErrno(probe.err, 'ENOENT', 'ENOTDIR')) {
        throw new SluiceError('ERR_PATH_NOT_FOUND', `backup path not found: ${displayPath(fsPath)}`, { cause: probe.err, path: fsPath })
      }
      throw new SluiceError('ERR_READ', `cannot read backup path ${displayPath(fsPath)}`, { cause: probe.err, path: fsPath })
    }
    out.push({ fsPath, cut, st: probe.st, link: { link: probe.link, linkErr: probe.linkErr } })
  }
  return out
}

/** Absolute, normalized path (lexically, like path.resolve) without decoding it. */
function resolvePath(p: Buffer): Buffer {
  const full = p[0] === 0x2f ? p : Buffer.concat([Buffer.from(process.cwd()), SLASH, p])
  const parts: Buffer[] = []
  let start = 0
  for (let i = 0; i <= full.length; i++) {
    if (i < full.length && full[i] !== 0x2f) continue
    const part = full.subarray(start, i)
    start = i + 1
    if (part.length === 0 || (part.length === 1 && part[0] === 0x2e)) continue
    if (part.length === 2 && part[0] === 0x2e && part[1] === 0x2e) parts.pop()
    else parts.push(part)
  }
  return Buffer.concat(parts.flatMap((x) => [SLASH, x]).concat(parts.length === 0 ? [SLASH] : []))
}

/** A relative path as restic stores it: cleaned lexically ('.' and empty components dropped,
 *  'x/..' folded), then its leading '..' components dropped. */
function cleanRelative(p: Buffer): Buffer {
  const parts: Buffer[] = []
  for (const part of p.toString('latin1').split('/').map((s) => Buffer.from(s, 'latin1'))) {
    if (part.length === 0 || (part.length === 1 && part[0] === 0x2e)) continue
    if (part.length === 2 && part[0] === 0x2e && part[1] === 0x2e) {
      parts.pop() // at the start: a leading '..', dropped
    } else parts.push(part)
  }
  return Buffer.concat(parts.flatMap((x, i) => (i === 0 ? [x] : [SLASH, x])))
}

/** The absolute paths of the proper ancestors of an absolute path, excluding '/'. */
function ancestors(fsPath: Buffer): Buffer[] {
  const out: Buffer[] = []
  for (let i = 1; i < fsPath.length; i++) if (fsPath[i] === 0x2f) out.push(fsPath.subarray(0, i))
  return out
}

function childPath(dir: Buffer, name: Buffer): Buffer {
  const at = dir.length === 1 ? 0 : dir.length
  const out = Buffer.allocUnsafe(at + 1 + name.length)
  out.set(dir.subarray(0, at), 0)
  out[at] = 0x2f
  out.set(name, at + 1)
  return out
}

function frame(fsDir: Buffer, names: Buffer[]): Frame {
  return { fsDir, names, next: 0 }
}

/** lstat (and readlink for symlinks) through `lstat`, as a result instead of a throw. */
function prober(lstat: (fsPath: Buffer) => LStat): ProbeOf {
  return (fsPath) => {
    try {
      const st = lstat(fsPath)
      if ((st.mode & S_IFMT) !== fsc.S_IFLNK) return { st }
      try {
        return { st, link: fs.readlinkSync(fsPath, { encoding: 'buffer' }) }
      } catch (linkErr) {
        return { st, linkErr }
      }
    } catch (err) {
      return { err }
    }
  }
}

async function statOf(fsPath: Buffer): Promise<Probe> {
  try {
    return { st: statNumbers(await fsp.stat(fsPath, { bigint: true })) }
  } catch (err) {
    return { err }
  }
}

function typeOf(mode: number): EntryType {
  switch (mode & S_IFMT) {
    case fsc.S_IFREG: return 'file'
    case fsc.S_IFDIR: return 'dir'
    case fsc.S_IFLNK: return 'symlink'
    case fsc.S_IFIFO: return 'fifo'
    case fsc.S_IFCHR: return 'char'
    case fsc.S_IFBLK: return 'block'
    default: return 'socket'
  }
}

function toEntry(fsPath: Buffer, st: LStat, link: Buffer | undefined, cut: number): SourceEntry {
  const type = typeOf(st.mode)
  const size = type === 'file' || type === 'symlink' ? st.size : 0
  const entry: SourceEntry = {
    kind: 'entry',
    // The snapshot path is the absolute path without its leading '/', or the part of a
    // relative backup path given and below (Root's cut): a view, not a copy.
    path: fsPath.subarray(cut),
    type,
    mode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
    size,
    mtimeSec: st.mtimeSec,
    mtimeNsec: st.mtimeNsec,
    ctimeSec: st.ctimeSec,
    ctimeNsec: st.ctimeNsec,
    ino: st.ino,
    dev: st.dev,
    nlink: st.nlink,
    fsPath,
  }
  if (type === 'char' || type === 'block') entry.rdev = st.rdev
  if (type === 'symlink' && link !== undefined) entry.linkTarget = link
  // Owner names beside the numbers (lib/owners.ts), as restic records them.
  const user = systemOwners.userName(st.uid)
  const group = systemOwners.groupName(st.gid)
  if (user !== undefined) entry.user = user
  if (group !== undefined) entry.group = group
  return entry
}
