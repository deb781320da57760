/**
 * Directory-tree helpers for the benchmark: read a tree once to warm the page cache and count
 * it, compare a restored tree with its source, and measure a repository's size on disk.
 * All walks are depth first in sorted name order, so two equal trees yield the same sequence.
 */
import { createHash } from 'node:crypto'
import { closeSync, existsSync, lstatSync, openSync, readSync, readdirSync, statSync } from 'node:fs'
import { basename, join } from 'node:path'
import { lgetxattrs } from '../lib/native.js'

/** One entry of a walk, relative to the walk's root. */
export interface WalkEntry {
  rel: string
  kind: 'file' | 'dir' | 'symlink' | 'other'
  /** Size in bytes for regular files, 0 otherwise. */
  size: number
}

/** Walks `root` depth first, entries of a directory sorted by name, a directory before its children. */
export function* walk(root: string, rel = ''): Generator<WalkEntry> {
  const names = readdirSync(join(root, rel)).sort(byCodeUnit)
  for (const name of names) {
    const r = rel === '' ? name : join(rel, name)
    const st = lstatSync(join(root, r))
    if (st.isDirectory()) {
      yield { rel: r, kind: 'dir', size: 0 }
      yield* walk(root, r)
    } else if (st.isFile()) yield { rel: r, kind: 'file', size: st.size }
    else if (st.isSymbolicLink()) yield { rel: r, kind: 'symlink', size: 0 }
    else yield { rel: r, kind: 'other', size: 0 }
  }
}

function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

/** Counts of a tree. */
export interface TreeStats {
  files: number
  dirs: number
  bytes: number
}

const READ_BUF = Buffer.allocUnsafe(1 << 20)

/** Reads every file of `root` (a directory or one file) once, so every tool starts on a warm
 *  page cache, and counts it. */
export function warmAndCount(root: string): TreeStats {
  const stats: TreeStats = { files: 0, dirs: 0, bytes: 0 }
  const st = lstatSync(root)
  const entries: Iterable<WalkEntry> = st.isFile() ? [{ rel: '', kind: 'file', size: st.size }] : walk(root)
  for (const e of entries) {
    if (e.kind === 'dir') stats.dirs++
    if (e.kind !== 'file') continue
    stats.files++
    stats.bytes += e.size
    const fd = openSync(join(root, e.rel), 'r')
    try {
      while (readSync(fd, READ_BUF, 0, READ_BUF.length, null) > 0) { /* reading is the point */ }
    } finally {
      closeSync(fd)
    }
  }
  return stats
}

/** Sum of the sizes of all regular files under `root` (a repository's size on disk). */
export function treeBytes(root: string): number {
  let n = 0
  for (const e of walk(root)) if (e.kind === 'file') n += e.size
  return n
}

/** SHA-256 of a whole file (about 0.7 s per GiB here, so even the big scenario is hashed whole). */
export function fileHash(path: string): string {
  const h = createHash('sha256')
  const fd = openSync(path, 'r')
  try {
    let n: number
    while ((n = readSync(fd, READ_BUF, 0, READ_BUF.length, null)) > 0) h.update(READ_BUF.subarray(0, n))
  } finally {
    closeSync(fd)
  }
  return h.digest('hex')
}

/** A file's user.* xattrs as one comparable string (names and SHA-256 of values, sorted). */
function userXattrs(path: string): string {
  return lgetxattrs(Buffer.from(path))
    .filter((a) => a.name.subarray(0, 5).toString('latin1') === 'user.')
    .map((a) => `${a.name.toString('hex')}=${createHash('sha256').update(a.value).digest('hex')}`)
    .join(',')
}

/** Outcome of comparing a restored tree with its source. */
export interface VerifyResult {
  ok: boolean
  /** The directory inside the restore target that matched the source root. */
  root: string | null
  files: number
  bytes: number
  hashed: number
  /** The first few differences, human-readable. */
  problems: string[]
  /** Total number of differences found. */
  problemCount: number
}

/**
 * Finds where a tool put the restored copy of `source` inside `target`: restic and borg re-root
 * the absolute path (`target/tmp/bench/data/x`); a tool might also use the last path component
 * or the target itself.
 */
export function locateRestored(target: string, source: string): string | null {
  const candidates = [join(target, source), join(target, basename(source)), target]
  for (const c of candidates) {
    if (existsSync(c) && statSync(c).isDirectory()) return c
  }
  return null
}

/**
 * Compares the restored copy of `source` under `target`: same entry names and kinds in the same
 * order, same file sizes, and equal SHA-256 and extended attributes (`user.*` ones, which any
 * user can set and read) for about `samples` files spread over the tree.
 */
export function verifyRestore(source: string, target: string, sourceFiles: number, samples = 200): VerifyResult {
  const root = locateRestored(target, source)
  const res: VerifyResult = { ok: false, root, files: 0, bytes: 0, hashed: 0, problems: [], problemCount: 0 }
  const problem = (msg: string): void => {
    res.problemCount++
    if (res.problems.length < 10) res.problems.push(msg)
  }
  if (root === null) {
    problem(`restored tree not found in ${target}`)
    return res
  }
  const every = Math.max(1, Math.floor(sourceFiles / samples))
  const a = walk(source)
  const b = walk(root)
  let fileIndex = 0
  for (;;) {
    const x = a.next()
    const y = b.next()
    if (x.done && y.done) break
    if (x.done) { problem(`extra in restore: ${(y.value as WalkEntry).rel}`); continue }
    if (y.done) { problem(`missing from restore: ${x.value.rel}`); continue }
    const s = x.value
    const r = y.value
    if (r.kind === 'file') { res.files++; res.bytes += r.size }
    if (s.rel !== r.rel || s.kind !== r.kind) {
      problem(`entry differs: source ${s.kind} ${s.rel}, restored ${r.kind} ${r.rel}`)
      // Names no longer line up, so every later comparison would fail; stop here.
      break
    }
    if (s.kind !== 'file') continue
    if (s.size !== r.size) problem(`size differs: ${s.rel}: ${s.size} vs ${r.size}`)
    else if (fileIndex % every === 0) {
      res.hashed++
      if (fileHash(join(source, s.rel)) !== fileHash(join(root, r.rel))) {
        problem(`content differs: ${s.rel}`)
      }
      if (userXattrs(join(source, s.rel)) !== userXattrs(join(root, r.rel))) {
        problem(`xattrs differ: ${s.rel}`)
      }
    }
    fileIndex++
  }
  res.ok = res.problemCount === 0
  return res
}
