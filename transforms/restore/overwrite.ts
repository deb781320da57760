/**
 * overwrite: decides, before anything is downloaded, which entries a restore writes over what
 * already exists in the target (restic 0.17's `--overwrite`):
 *
 * - `always`: every entry is written (the content of every file downloaded and rewritten).
 * - `if-changed`: a regular file already there with the snapshot's size and mtime (to the
 *   nanosecond) is taken as restored: its content is neither downloaded nor written, its
 *   metadata (owner, mode, xattrs) is set again. With `check` (restore --verify) its content is
 *   also compared with the snapshot's chunk ids (verify.ts) and it is rewritten if it differs.
 * - `if-newer`: an existing entry whose mtime is not older than the snapshot's is left alone.
 * - `never`: an existing entry is left alone.
 * Directories are always (re)created and their metadata set.
 *
 * Resuming works because the directory sink sets a file's mtime last, after its content is
 * complete: a file cut short by a kill has the time of the kill, never the snapshot's.
 *
 * A skipped file leaves the stream as a SkippedItem (its extents dropped, so the downloader
 * fetches nothing for it). Whatever lies below a directory that was not a real directory in the
 * target (missing, or a symlink the sink will replace) is written without a look.
 *
 * Memory: the directories on the current path (a flag each), one record; with `check`, the
 * extents of the file being compared, at most OVERWRITE_CHECK_EXTENTS of them (a larger file
 * that matches that far is rewritten rather than held), one extent's bytes and a chunk cache.
 */
import fs from 'node:fs'
import type { Duplex } from 'node:stream'
import type { EntryMeta, ExtentsItem, RecordItem } from '../../lib/entry.js'
import { stage } from '../../lib/flow.js'
import { isUnder, parentPath } from '../../lib/bytes.js'
import { OVERWRITE_CHECK_EXTENTS } from '../../lib/limits.js'
import { chunkCache, ExtentChecker, type ContentKey } from './verify.js'
import { SluiceError } from '../../lib/errors.js'

export type OverwriteMode = 'always' | 'if-changed' | 'if-newer' | 'never'
export const OVERWRITE_MODES: readonly OverwriteMode[] = ['always', 'if-changed', 'if-newer', 'never']

/** An entry the restore does not write: `unchanged` (already the snapshot's: its metadata is set
 *  again) or `kept` (an existing entry left alone by if-newer / never). */
export interface SkippedItem {
  kind: 'skipped'
  entry: EntryMeta
  reason: 'unchanged' | 'kept'
}

export interface OverwriteOptions {
  target: string
  mode: OverwriteMode
  /** if-changed: compare the content of files whose size and mtime match (restore --verify). */
  check?: ContentKey
}

export function parseOverwriteMode(s: string): OverwriteMode {
  if (!(OVERWRITE_MODES as readonly string[]).includes(s)) throw new SluiceError('ERR_ARGS', `--overwrite must be one of ${OVERWRITE_MODES.join(', ')}, not "${s}"`)
  return s as OverwriteMode
}

/** Whether an entry at the target (lstat, bigint) is left alone under if-newer / never. */
export function keeps(mode: OverwriteMode, e: EntryMeta, st: fs.BigIntStats | undefined): boolean {
  if (!st) return false
  if (mode === 'never') return true
  if (mode === 'if-newer') return st.mtimeNs >= BigInt(e.mtimeSec) * 1_000_000_000n + BigInt(e.mtimeNsec)
  return false
}

/** if-changed: a regular file with the snapshot's size and mtime. */
export function looksRestored(e: EntryMeta, st: fs.BigIntStats | undefined): boolean {
  return !!st && st.isFile() && st.size === BigInt(e.size) && st.mtimeNs === BigInt(e.mtimeSec) * 1_000_000_000n + BigInt(e.mtimeNsec)
}

export function createOverwrite(opts: OverwriteOptions): Duplex {
  return stage<RecordItem | ExtentsItem, RecordItem | ExtentsItem | SkippedItem>(source => overwrite(source, opts))
}

export async function* overwrite(source: AsyncIterable<RecordItem | ExtentsItem>, opts: OverwriteOptions): AsyncIterable<RecordItem | ExtentsItem | SkippedItem> {
  const root = Buffer.from(opts.target.replace(/\/+$/, '') || '/')
  const abs = (p: Buffer) => Buffer.concat([root, Buffer.from('/'), p])
  const load = opts.check ? chunkCache(opts.check) : null
  // Directories on the current path and whether each is new (nothing below it to look at).
  const dirs: { path: Buffer; fresh: boolean }[] = []
  let dropping = false
  // A file being compared (if-changed --verify): its record and extents so far.
  let held: { item: RecordItem; more: ExtentsItem[]; count: number; fd: number; checker: ExtentChecker } | null = null
  const release = function* (h: NonNullable<typeof held>) {
    yield h.item
    yield* h.more
  }
  const close = (h: NonNullable<typeof held>) => {
    try {
      fs.closeSync(h.fd)
    } catch {}
  }
  /** The held file's records are all in: skipped when every byte matched, else written. */
  const finishHeld = function* (): Generator<RecordItem | ExtentsItem | SkippedItem> {
    if (!held) return
    const h = held
    held = null
    close(h)
    if (h.checker.pos === h.item.entry.size) yield { kind: 'skipped', entry: h.item.entry, reason: 'unchanged' }
    else yield* release(h)
  }
  try {
    for await (const item of source) {
      if (item.kind === 'extents') {
        if (held) {
          const h = held
          h.more.push(item)
          h.count += item.extents.length
          if (h.count <= OVERWRITE_CHECK_EXTENTS && (await h.checker.check(item.extents))) continue
          held = null
          dropping = false
          close(h)
          yield* release(h)
          continue
        }
        if (!dropping) yield item
        continue
      }
      yield* finishHeld()
      dropping = false
      const e = item.entry
      while (dirs.length > 0 && !isUnder(e.path, dirs[dirs.length - 1]!.path)) dirs.pop()
      // Is the parent a directory that was already there (and really a directory)?
      const top = dirs[dirs.length - 1]
      const parent = parentPath(e.path)
      let fresh: boolean
      if (top && top.path.equals(parent)) fresh = top.fresh
      else if (parent.length === 0) fresh = false
      else {
        // Not in canonical order (or a subtree's first entry): look at the parent itself.
        const st = fs.lstatSync(abs(parent), { throwIfNoEntry: false })
        fresh = !st || !st.isDirectory()
      }
      if (fresh || opts.mode === 'always') {
        if (e.type === 'dir') dirs.push({ path: e.path, fresh })
        yield item
        continue
      }
      const st = fs.lstatSync(abs(e.path), { bigint: true, throwIfNoEntry: false })
      if (e.type === 'dir') {
        dirs.push({ path: e.path, fresh: !st || !st.isDirectory() })
        yield item
        continue
      }
      if (keeps(opts.mode, e, st)) {
        dropping = true
        yield { kind: 'skipped', entry: e, reason: 'kept' }
        continue
      }
      if (opts.mode !== 'if-changed' || e.type !== 'file' || e.hardlinkTo || !looksRestored(e, st)) {
        yield item
        continue
      }
      if (!opts.check) {
        dropping = true
        yield { kind: 'skipped', entry: e, reason: 'unchanged' }
        continue
      }
      let fd: number
      try {
        fd = fs.openSync(abs(e.path), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
      } catch {
        yield item
        continue
      }
      const h = { item, more: [], count: item.extents.length, fd, checker: new ExtentChecker(fd, opts.check, load!) }
      if (await h.checker.check(item.extents)) {
        held = h
        dropping = true
      } else {
        close(h)
        yield item
      }
    }
    yield* finishHeld()
  } finally {
    if (held) close(held)
  }
}
