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
 * Listings and lstats run on libuv's thread pool (native/walkbatch.c): `listDir` reads a
 * directory's names into one buffer, sorted, with offsets and dirent types; `statAt` lstats a run
 * of up to WALK_STAT_BATCH of them (numbers only, symlink targets too), the next run while this
 * one is emitted. A run ends at a directory, and what was read for the names after a directory
 * the walk enters is dropped, so no lstat is older than the walk of the subtree before it; a run
 * shorter than WALK_STAT_SYNC_BELOW is lstat'ed here (cheaper than a round trip). The listing of
 * a directory that ends a run is read as soon as its lstat is in, if the walk will enter it. A file entry's content() is
 * read by read-content.ts when the chunker asks for it.
 *
 * Listings are held in memory while the listings held for the directories on the current path
 * fit `listingBytes` (WALK_LISTING_BYTES); a directory whose listing does not fit is read with
 * opendir and sorted externally (lib/external-sort.ts: sorted runs in a temporary directory,
 * merged into one sorted file that is read back a block at a time, WALK_SPILL_CHUNK names at a
 * time into a small listing of their own, lstat'ed on the thread pool like an in-memory one), so
 * one directory of millions of entries costs what one of thousands does.
 *
 * Hardlinks: an inode with a link count above one is remembered (its first path) until all its
 * links have been seen, in a map of at most WALK_HARDLINK_GROUPS inodes. When it is full the
 * inode seen longest ago is forgotten: its later links are then stored as files with their own
 * content (which dedup stores once) and restore as separate files, as they would from a tar
 * split in two.
 *
 * Memory: at most `listingBytes` of in-memory listings (plus, while one is read, about twice its
 * size in the addon's arrays), for the directory being emitted two runs of lstats (WALK_STAT_BATCH
 * results, WALK_LINKS_BYTES of targets each) and one listing read early, plus one WALK_SPILL_BLOCK read block per
 * externally sorted directory on the current path, plus, while such a listing is being sorted,
 * one EXTSORT_RUN_BYTES run (or the merge's blocks); the hardlink map (WALK_HARDLINK_GROUPS
 * inodes); for the externally sorted directory being emitted, one chunk of WALK_SPILL_CHUNK names
 * (WALK_SPILL_CHUNK_BYTES, twice: staged and as a listing). Disk: the names of the externally
 * sorted directories on the current path, plus 6 bytes each.
 */
import fs, { promises as fsp, constants as fsc } from 'node:fs'
import os from 'node:os'
import nodePath from 'node:path'
import { DT_DIR, DT_UNKNOWN, errnoError, listDir, lstatNumbers, STAT_AT_FIELDS, statAt, statAtResult, type Listing, type LStat } from '../../../lib/native.js'
import { Readable } from 'node:stream'
import { comparePaths, displayPath, isUnder } from '../../../lib/bytes.js'
import type { EntryType, SourceEntry } from '../../../lib/entry.js'
import { SluiceError, isErrno } from '../../../lib/errors.js'
import { ExternalSorter, type SortedReader } from '../../../lib/external-sort.js'
import { STAGE_HWM, WALK_HARDLINK_GROUPS, WALK_LINKS_BYTES, WALK_LISTING_BYTES, WALK_SPILL_BLOCK, WALK_SPILL_CHUNK, WALK_SPILL_CHUNK_BYTES, WALK_STAT_BATCH, WALK_STAT_SYNC_BELOW } from '../../../lib/limits.js'
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
  /** Bytes of directory listings held in memory (default WALK_LISTING_BYTES); tests lower it so
   *  that the external sort runs on small directories. */
  listingBytes?: number
  /** Bytes per sorted run of an external listing sort (default EXTSORT_RUN_BYTES). */
  sortRunBytes?: number
  /** Where externally sorted listings are kept while the walk is inside them (default
   *  os.tmpdir(); a directory `sluice-walk-*` is made there on the first one and removed). */
  tmpDir?: string
  /** Inodes the hardlink map remembers (default WALK_HARDLINK_GROUPS). */
  hardlinkGroups?: number
}

/** Counters a walk keeps up to date in a caller-owned object. */
export interface WalkStats {
  /** Warnings passed to `onWarning`. */
  warnings: number
  /** Hardlinked inodes whose links have not all been seen yet: the size of the hardlink map.
   *  What remains at the end are inodes with links outside the backup paths. */
  pendingHardlinks: number
  /** Directories whose listing was sorted externally (optional: counted when present). */
  spilledDirs?: number
  /** Inodes forgotten by the full hardlink map (optional: counted when present). */
  forgottenHardlinks?: number
}

const SLASH = Buffer.of(0x2f)
const S_IFMT = fsc.S_IFMT

/** One lstat (and, for symlinks, readlink) result, or the error. */
type Stat = { st: LStat; link?: Buffer; linkErr?: unknown }
type Probe = Stat | { err: unknown }
type ProbeOf = (fsPath: Buffer) => Probe

/** A child of the directory being visited: its path and its lstat. */
interface Child {
  fsPath: Buffer
  probe: Probe
}

/** A directory being visited: its sorted names, in memory or in a sorted file. */
interface Frame {
  fsDir: Buffer
  /** The next child, null at the end, or a promise to await before asking again (its lstat is
   *  still on the thread pool). */
  next(): Child | null | Promise<void>
  /** The listing of child `fsPath` if it was started early (see memoryFrame), and forgets it. */
  listed(fsPath: Buffer): Promise<Listed> | undefined
  /** The walk goes into the child just taken: lstats already made of later names are dropped
   *  (they are made again on the way back, so none is older than the subtree's walk). */
  descend(): void
  /** Releases the listing (in-memory bytes, or the sorted file). */
  close(): void
}

/** A listing read (listDir), or why it could not be. */
type Listed = { listing: Listing | 'too big' } | { err: unknown }

/** listDir as a result instead of a rejection (a listing started early may never be awaited). */
function readListing(fsPath: Buffer, maxBytes: number): Promise<Listed> {
  return listDir(fsPath, maxBytes).then(
    (l) => ({ listing: l }),
    (err: unknown) => ({ err }),
  )
}

/** lstats of a run of names of an in-memory listing: made on the thread pool (statAt), or here
 *  when the run is short. */
interface StatRun {
  from: number
  to: number
  /** Filled when the run is done. */
  probes: Probe[] | null
  read: Promise<void>
  failure?: unknown
  /** Dropped by descend(): its results are not used. */
  dropped: boolean
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
export function createWalk(paths: readonly (string | Buffer)[], opts: WalkOptions): Readable {
  return Readable.from(walk(paths, opts), { objectMode: true, highWaterMark: STAGE_HWM })
}

/** What the walk must release however it ends: the frames of the directories it is in, and the
 *  temporary directory of externally sorted listings. */
interface Held {
  stack: Frame[]
  spillDir: string | null
}

async function* walk(paths: readonly (string | Buffer)[], opts: WalkOptions): AsyncGenerator<SourceEntry> {
  const res: Held = { stack: [], spillDir: null }
  const probeOf = prober(opts.lstat ?? lstatNumbers)
  const read = opts.readContent ?? readContent
  const roots = checkRoots(paths, probeOf)
  const markers = (opts.excludeIfPresent ?? []).map((n) => Buffer.from(n))
  const links = new Map<string, LinkGroup>()
  const linkCap = Math.max(1, opts.hardlinkGroups ?? WALK_HARDLINK_GROUPS)
  const listingBudget = opts.listingBytes ?? WALK_LISTING_BYTES
  // An injected lstat (tests) sees every name: every run is lstat'ed here, through it.
  const syncBelow = opts.lstat ? Infinity : WALK_STAT_SYNC_BELOW
  /** Whether the walk enters directory `fsPath` (of the backup path being walked): set per root. */
  let mayEnter: (fsPath: Buffer, st: LStat) => boolean = () => false
  /** statAt's result arrays not in use. */
  const outs: Float64Array[] = []
  const linkArenas: Buffer[] = []
  /** Bytes of in-memory listings held by the frames on the stack. */
  let held = 0
  let spills = 0
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
        if (links.size >= linkCap) {
          // Full: forget the inode seen longest ago (Map keeps insertion order).
          links.delete(links.keys().next().value!)
          if (opts.stats) opts.stats.forgottenHardlinks = (opts.stats.forgottenHardlinks ?? 0) + 1
        }
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

  /** Reads a directory's listing, sorted, as a frame; null when it cannot be listed (already
   *  warned) or holds nothing. With `markers`, a listing holding one of them is dropped and
   *  'excluded' returned. In memory (one buffer, listed on the thread pool) while the listings on
   *  the path fit `listingBudget`, otherwise sorted externally. */
  const list = async (fsPath: Buffer, markersOf: Buffer[]): Promise<Frame | null | 'excluded'> => {
    const early = res.stack[res.stack.length - 1]?.listed(fsPath)
    const got = await (early ?? readListing(fsPath, listingBudget - held))
    if ('err' in got) {
      warn('cannot list directory', got.err, fsPath)
      return null
    }
    let listing = got.listing
    // Listed early: the listings held may have changed since (they do not, but the bound is kept).
    if (listing !== 'too big' && listing.bytes > listingBudget - held) listing = 'too big'
    if (listing === 'too big') return spillList(fsPath, markersOf)
    if (markersOf.some((m) => hasName(listing, m))) return 'excluded'
    if (listing.count === 0) return null
    held += listing.bytes
    return memoryFrame(fsPath, listing)
  }

  /** A listing held in memory; its names are lstat'ed a run at a time (see StatRun), the next
   *  run while this one is being emitted, unless a directory ends this one. `counted`: its bytes
   *  are in `held` (a chunk of a spilled listing is not: see spilledFrame). */
  const memoryFrame = (fsDir: Buffer, listing: Listing, counted = true): Frame => {
    const { count, offsets, types, names } = listing
    let i = 0
    let cur: StatRun | null = null
    let ahead: StatRun | null = null
    /** The listing of the directory that ends a run, read as soon as its lstat says it is one,
     *  while the names before it are emitted. */
    let early: { fsPath: Buffer; listed: Promise<Listed> } | null = null
    /** Starts listing the directory that ends `r`, if it is one. */
    const listEarly = (r: StatRun): void => {
      const last = r.probes![r.to - r.from - 1]!
      if (!('st' in last) || (last.st.mode & S_IFMT) !== fsc.S_IFDIR) return
      const fsPath = pathOf(r.to - 1)
      // Only a directory the walk will enter: an excluded tree or another file system is never
      // listed (it may be a hung network mount).
      if (!mayEnter(fsPath, last.st)) return
      early = { fsPath, listed: readListing(fsPath, listingBudget - held) }
    }
    const pathOf = (k: number): Buffer => childPath(fsDir, names, offsets[k]!, offsets[k + 1]! - 1)
    const maybeDir = (k: number): boolean => types[k] === DT_DIR || types[k] === DT_UNKNOWN
    /** The run from `from`: up to WALK_STAT_BATCH names, ending at the first (maybe) directory. */
    const run = (from: number): StatRun => {
      let to = from
      while (to < count && to - from < WALK_STAT_BATCH) if (maybeDir(to++)) break
      const r: StatRun = { from, to, probes: null, read: DONE, dropped: false }
      if (to - from < syncBelow) {
        const probes: Probe[] = []
        for (let k = from; k < to; k++) probes.push(probeOf(pathOf(k)))
        r.probes = probes
        listEarly(r)
        return r
      }
      const out = outs.pop() ?? new Float64Array(STAT_AT_FIELDS * WALK_STAT_BATCH)
      const links = linkArenas.pop() ?? Buffer.allocUnsafeSlow(WALK_LINKS_BYTES)
      r.read = statAt(fsDir, listing, from, to, out, links).then(
        () => {
          if (r.dropped) return
          r.probes = probesOf(out, links, from, to, pathOf)
          listEarly(r)
        },
        (err: unknown) => {
          r.failure = err ?? new Error('statAt failed')
        },
      ).finally(() => {
        if (outs.length < 4) outs.push(out)
        if (linkArenas.length < 4) linkArenas.push(links)
      })
      return r
    }
    return {
      fsDir,
      next: () => {
        if (i >= count) return null
        if (cur === null || i >= cur.to) {
          cur = ahead !== null && ahead.from === i ? ahead : run(i)
          ahead = null
        }
        if (cur.failure !== undefined) throw cur.failure
        if (cur.probes === null) return cur.read
        if (ahead === null && cur.to < count && !maybeDir(cur.to - 1)) ahead = run(cur.to)
        const k = i++
        return { fsPath: pathOf(k), probe: cur.probes[k - cur.from]! }
      },
      listed: (fsPath) => {
        const e = early
        early = null
        return e !== null && e.fsPath.equals(fsPath) ? e.listed : undefined
      },
      descend: () => {
        early = null
        if (cur !== null && i < cur.to) cur.dropped = true
        cur = null
        if (ahead !== null) {
          ahead.dropped = true
          ahead = null
        }
      },
      close: () => {
        if (ahead !== null) ahead.dropped = true
        cur = ahead = early = null
        if (counted) held -= listing.bytes
      },
    }
  }

  /** A listing too large for what is left of `listingBudget`: read with opendir into an
   *  external sort. */
  const spillList = (fsPath: Buffer, markersOf: Buffer[]): Frame | null | 'excluded' => {
    let dir: fs.Dir
    try {
      dir = fs.opendirSync(fsPath, { encoding: 'buffer', bufferSize: 256 } as unknown as fs.OpenDirOptions)
    } catch (err) {
      warn('cannot list directory', err, fsPath)
      return null
    }
    const sorter = newSorter(fsPath)
    try {
      for (;;) {
        const d = dir.readSync()
        if (d === null) break
        const name = d.name as unknown as Buffer
        if (markersOf.length > 0 && markersOf.some((m) => m.equals(name))) {
          sorter.close()
          return 'excluded'
        }
        spill(sorter, name, tailOf(d), fsPath)
      }
    } catch (err) {
      sorter.close()
      if (err instanceof SluiceError) throw err
      warn('cannot list directory', err, fsPath)
      return null
    } finally {
      try {
        dir.closeSync()
      } catch {
        // closing a directory handle cannot lose data
      }
    }
    return spilledFrame(fsPath, sorter)
  }

  const newSorter = (fsPath: Buffer): ExternalSorter => {
    try {
      res.spillDir ??= fs.mkdtempSync(nodePath.join(opts.tmpDir ?? os.tmpdir(), 'sluice-walk-'))
    } catch (err) {
      throw tempError(err, opts.tmpDir ?? os.tmpdir(), fsPath)
    }
    if (opts.stats) opts.stats.spilledDirs = (opts.stats.spilledDirs ?? 0) + 1
    return new ExternalSorter(res.spillDir, `dir-${spills++}`, { runBytes: opts.sortRunBytes, block: WALK_SPILL_BLOCK })
  }

  /** Adds a name to an external sort; a failure there (a full disk) is the backup's, not the
   *  directory's: ERR_WRITE. */
  const spill = (sorter: ExternalSorter, name: Buffer, tail: Buffer, fsPath: Buffer): void => {
    try {
      sorter.add(name, tail)
    } catch (err) {
      sorter.close()
      throw tempError(err, res.spillDir!, fsPath)
    }
  }

  /** Finishes an external sort into a frame reading the sorted file. Its records are a name, a
   *  NUL and the name's dirent type (the NUL sorts before any name byte, so records sort as their
   *  names do); they are read back WALK_SPILL_CHUNK names at a time into a listing of their own
   *  (listDir's layout), which memoryFrame lstats on the thread pool like any other listing. */
  const spilledFrame = (fsPath: Buffer, sorter: ExternalSorter): Frame | null => {
    let reader: SortedReader
    try {
      reader = sorter.finish()
    } catch (err) {
      sorter.close()
      throw tempError(err, res.spillDir!, fsPath)
    }
    const close = (): void => {
      reader.close()
      sorter.close()
    }
    if (sorter.count === 0) {
      close()
      return null
    }
    const stageOffs = new Uint32Array(WALK_SPILL_CHUNK + 1)
    const stageTypes = new Uint8Array(WALK_SPILL_CHUNK)
    let stage = Buffer.allocUnsafe(WALK_SPILL_CHUNK_BYTES)
    /** A record read that did not fit the chunk before: the next chunk starts with it. */
    let carry: Buffer | null = null
    let ended = false
    const record = (): Buffer | null => {
      let rec: Buffer | null
      try {
        rec = reader.next()
      } catch (err) {
        throw tempError(err, res.spillDir!, fsPath)
      }
      if (rec !== null && (rec.length < 3 || rec[rec.length - 2] !== 0)) {
        throw tempError(new Error(`sort run ${reader.file} is damaged (a record without its type)`), res.spillDir!, fsPath)
      }
      return rec
    }
    /** The next names, up to WALK_SPILL_CHUNK of them (or WALK_SPILL_CHUNK_BYTES), as a listing. */
    const readChunk = (): Listing | null => {
      let n = 0
      let used = 0
      while (n < WALK_SPILL_CHUNK) {
        let rec = carry
        carry = null
        if (rec === null) {
          if (ended) break
          rec = record()
          if (rec === null) {
            ended = true
            break
          }
        }
        const len = rec.length - 1 // the name and its NUL
        if (used + len > stage.length) {
          if (n > 0) {
            carry = Buffer.from(rec)
            break
          }
          stage = Buffer.allocUnsafe(len) // one name longer than a chunk's bytes (not on Linux)
        }
        rec.copy(stage, used, 0, len)
        stageTypes[n] = rec[len]!
        stageOffs[n] = used
        used += len
        n++
      }
      if (n === 0) return null
      stageOffs[n] = used
      const head = 4 + 4 * (n + 1) + n
      const raw = Buffer.allocUnsafeSlow(head + used)
      raw.writeUInt32LE(n, 0)
      const offsets = new Uint32Array(raw.buffer, raw.byteOffset + 4, n + 1)
      offsets.set(stageOffs.subarray(0, n + 1))
      raw.set(stageTypes.subarray(0, n), 4 + 4 * (n + 1))
      stage.copy(raw, head, 0, used)
      return { raw, count: n, offsets, types: raw.subarray(4 + 4 * (n + 1), head), names: raw.subarray(head), bytes: raw.length }
    }
    let inner: Frame | null = null
    return {
      fsDir: fsPath,
      next: () => {
        for (;;) {
          if (inner === null) {
            const chunk = readChunk()
            if (chunk === null) return null
            inner = memoryFrame(fsPath, chunk, false)
          }
          const child = inner.next()
          if (child !== null) return child
          inner.close()
          inner = null
        }
      },
      listed: (child) => inner?.listed(child),
      descend: () => inner?.descend(),
      close: () => {
        inner?.close()
        inner = null
        close()
      },
    }
  }

  try {
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

      const stack = res.stack
      const rootDev = root.st.dev
      // As the pending entry below decides (admit, then oneFileSystem); descend is asked again there.
      mayEnter = (fsPath, st) =>
        !(opts.oneFileSystem && st.dev !== rootDev) && (fsPath.length <= cut || !opts.descend || opts.descend(toEntry(fsPath, st, undefined, cut)))
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
            const listing = await list(fsPath, [])
            if (listing !== null && listing !== 'excluded') stack.push(listing)
          } else {
            const entry = admit(fsPath, probe, cut)
            if (entry !== null) {
              if (entry.type !== 'dir') {
                yield entry
              } else if (opts.oneFileSystem && probe.st.dev !== rootDev) {
                yield entry
              } else {
                const listing = await list(fsPath, markers)
                // exclude-if-present: the directory goes with everything in it
                if (listing !== 'excluded') {
                  yield entry
                  if (listing !== null) {
                    stack[stack.length - 1]?.descend()
                    stack.push(listing)
                  }
                }
              }
            }
          }
        }
        const top = stack[stack.length - 1]
        if (top === undefined) break
        let child = top.next()
        while (child instanceof Promise) {
          await child
          child = top.next()
        }
        if (child === null) {
          stack.pop()!.close()
          continue
        }
        pending = child
      }
    }
  } finally {
    // Also when stopped early (an error, or the consumer): one generator, not two (a yield*
    // delegation costs a promise and a result object per entry).
    while (res.stack.length > 0) res.stack.pop()!.close()
    if (res.spillDir !== null) fs.rmSync(res.spillDir, { recursive: true, force: true })
  }
}

/** A failure of the walk's temporary files (a full disk): the backup cannot go on correctly. */
function tempError(err: unknown, where: string, fsPath: Buffer): SluiceError {
  if (err instanceof SluiceError) return err
  const detail = err instanceof Error ? err.message : String(err)
  return new SluiceError('ERR_WRITE', `cannot sort the listing of ${displayPath(fsPath)} in ${where}: ${detail}`, { cause: err, path: fsPath })
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
function checkRoots(paths: readonly (string | Buffer)[], probeOf: ProbeOf): Root[] {
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

/** dir/name, name being names[start, end). */
function childPath(dir: Buffer, names: Buffer, start: number, end: number): Buffer {
  const at = dir.length === 1 ? 0 : dir.length
  const out = Buffer.allocUnsafe(at + 1 + end - start)
  dir.copy(out, 0, 0, at)
  out[at] = 0x2f
  names.copy(out, at + 1, start, end)
  return out
}

/** Whether a listing holds `name` (a binary search: its names are sorted by raw bytes). */
function hasName(listing: Listing, name: Buffer): boolean {
  const { offsets, names } = listing
  let lo = 0
  let hi = listing.count
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    const c = name.compare(names, offsets[mid]!, offsets[mid + 1]! - 1)
    if (c === 0) return true
    if (c > 0) lo = mid + 1
    else hi = mid
  }
  return false
}

const DONE = Promise.resolve()

/** What follows a name in a spilled listing's sort record: a NUL, then its dirent type (only
 *  directory, not a directory, and unknown matter: the walk's lstat runs end at a maybe-directory). */
const TAIL_DIR = Buffer.of(0, DT_DIR)
const TAIL_OTHER = Buffer.of(0, 8) // DT_REG
const TAIL_UNKNOWN = Buffer.of(0, DT_UNKNOWN)

function tailOf(d: fs.Dirent): Buffer {
  if (d.isDirectory()) return TAIL_DIR
  if (d.isFile() || d.isSymbolicLink() || d.isFIFO() || d.isSocket() || d.isCharacterDevice() || d.isBlockDevice()) return TAIL_OTHER
  return TAIL_UNKNOWN
}

/** The probes of names [from, to) from statAt's results (a symlink's target copied out of
 *  `links`, or read here when it did not fit there). */
function probesOf(out: Float64Array, links: Buffer, from: number, to: number, pathOf: (k: number) => Buffer): Probe[] {
  const probes: Probe[] = []
  for (let k = from; k < to; k++) {
    const b = STAT_AT_FIELDS * (k - from)
    const errno = out[b]!
    if (errno !== 0) {
      probes.push({ err: errnoError(errno, 'lstat', pathOf(k)) })
      continue
    }
    const st = statAtResult(out, k - from)
    if ((st.mode & S_IFMT) !== fsc.S_IFLNK) {
      probes.push({ st })
      continue
    }
    const at = out[b + 13]!
    const len = out[b + 14]!
    if (len >= 0) {
      probes.push({ st, link: Buffer.from(links.subarray(at, at + len)) })
    } else if (len === -ERANGE) {
      try {
        probes.push({ st, link: fs.readlinkSync(pathOf(k), { encoding: 'buffer' }) })
      } catch (linkErr) {
        probes.push({ st, linkErr })
      }
    } else {
      probes.push({ st, linkErr: errnoError(-len, 'readlink', pathOf(k)) })
    }
  }
  return probes
}

const ERANGE = os.constants.errno.ERANGE

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
