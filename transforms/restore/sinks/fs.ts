/**
 * write-fs: the directory sink of restore. Creates each entry under `target` as its record
 * comes, writes file content from the DataItems that follow, and sets metadata in the order
 * that keeps it: owner (root only), then mode (chown clears setuid), then xattrs, then times —
 * a directory's times after its children are written, when the walk leaves it. Owners as root
 * by recorded name where it exists here, else by number (lib/owners.ts; numbers only with
 * `numericOwner`); a small file's are mapped to numbers before it joins a batch.
 *
 * A file's times are set only once its content is complete and closed: `restore --overwrite
 * if-changed` (overwrite.ts) relies on it to resume, as a file cut short then never carries the
 * snapshot's mtime (the batch sets them after the write and the xattrs, before close; xattrs it
 * leaves to the main thread follow, and change no time). A SkippedItem (an entry --overwrite does not write) gets its metadata set
 * again when `unchanged`, nothing when `kept`.
 *
 * Safety: every path is checked (no absolute paths, no '.', '..' or empty components, no NUL);
 * an unsafe one aborts the restore with ERR_UNSAFE_PATH before anything is written for it. A
 * parent is only ever a directory this restore created or checked with lstat, so a symlink in
 * the snapshot can never redirect a later write outside the target.
 *
 * Damaged content (a DamagedItem from the downloader: a chunk missing, or failing
 * authentication): the file is not restored. What was written of it is removed, so no file
 * that looks complete but is not is left behind, and `onWarning` gets one warning naming the
 * path and the chunk (ERR_CORRUPT or ERR_MISSING); the restore goes on with the next entry.
 * A write that fails (a full disk) stops the restore with ERR_WRITE naming the file, and the
 * file being written is removed.
 *
 * Sparse files (`sparse`, restore --sparse, on by default): hole extents, and all-zero content,
 * are left as holes rather than written (write-sparse.ts); the file's length is set with
 * ftruncate when it is closed. A small file's holes are zeros in its batch arena; one that has
 * an all-zero block (so a hole or zeros) under `sparse` leaves the batch and is written on the
 * main thread through writeSparse (the batch writes every byte it is given).
 *
 * Writing: files up to RESTORE_SMALL_FILE are copied into a batch (an arena of
 * RESTORE_BATCH_BYTES, at most RESTORE_BATCH_FILES files) and each batch is created, written
 * and finished (owner, mode, xattrs, times) by one addon call on the thread pool
 * (native/restorebatch.c), RESTORE_BATCHES at once: a file's xattrs are packed into the arena
 * after its content (those that cannot be, or that fail there, are set one by one when the
 * batch returns), and warnings are applied when a batch returns, in order. A directory left while its files are still in a batch gets its
 * metadata once that batch is done; an entry at a path a batch has yet to create, or whose
 * parents must be checked, waits for the batches first, so the result is as if every entry
 * were created in turn. A larger file is opened in place and written by positioned writes on
 * the thread pool, RESTORE_FILE_WRITES at once. `startSmall`/`endSmall`/`submit` and the large
 * file's `create`/`writeLarge`/`closeFile` are where a file is written; `setMeta` (and the
 * batch's own metadata steps) where its metadata is applied.
 *
 * Memory: the stack of directories on the current path (their metadata, to finish them when
 * left) and at most RESTORE_PENDING_DIRS left directories waiting for their batches; one open
 * large file and RESTORE_FILE_WRITES views of decoded chunks being written; RESTORE_BATCHES + 1
 * batch arenas (RESTORE_BATCH_BYTES each, allocated once and reused; xattrs share them with the
 * content, so files with large xattrs make fewer files a batch, not more memory) with their
 * files' records and paths (RESTORE_BATCH_FILES each).
 */
import { Writable } from 'node:stream'
import fs from 'node:fs'
import type { EntryMeta, RestoreItem } from '../../../lib/entry.js'
import type { DamagedItem } from '../download.js'
import type { SkippedItem } from '../overwrite.js'
import { SluiceError, asSluiceError, isErrno } from '../../../lib/errors.js'
import { displayPath, isAllZero, isUnder, joinPath, parentPath, splitPath } from '../../../lib/bytes.js'
import { WRITE_FILES_CHOWN, WRITE_FILES_META, WRITE_FILES_RESULTS, WRITE_FILES_STEPS, copyBytes, errnoError, lsetxattr, mkfifo, mknod, packXattrs, packedXattrsLength, utimens, writeFiles } from '../../../lib/native.js'
import { RESTORE_BATCHES, RESTORE_BATCH_BYTES, RESTORE_BATCH_FILES, RESTORE_FILE_WRITES, RESTORE_PENDING_DIRS, RESTORE_SMALL_FILE, RESTORE_SPARSE_MIN } from '../../../lib/limits.js'
import { checkSafePath } from '../read-snapshot.js'
import { writeSparse } from './write-sparse.js'
import { systemOwners } from '../../../lib/owners.js'

export { checkSafePath }

export interface FsWriterOptions {
  /** Per-entry trouble (cannot set an owner, an xattr, a device without root): the restore goes on. */
  onWarning: (err: SluiceError) => void
  /** Restore owners (default: when running as root). */
  owners?: boolean
  /** Owners by number even where the recorded names exist here (default: by name, lib/owners.ts). */
  numericOwner?: boolean
  /** Called after each entry is finished (for progress). */
  onEntry?: (entry: EntryMeta) => void
  /** restore --sparse (default true): holes, and all-zero runs, are left as holes (write-sparse.ts). */
  sparse?: boolean
  /** Called for each entry restore --overwrite did not write (a SkippedItem), once done. */
  onSkipped?: (entry: EntryMeta, reason: SkippedItem['reason']) => void
}

function openAsync(p: Buffer, flags: number): Promise<number> {
  return new Promise((resolve, reject) => fs.open(p, flags, 0o600, (err, fd) => (err ? reject(err) : resolve(fd))))
}

function writeAsync(fd: number, b: Uint8Array, off: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => fs.write(fd, b, off, b.length - off, pos, (err, n) => (err ? reject(err) : resolve(n))))
}

interface OpenDir {
  path: Buffer
  meta: EntryMeta
}

/** A small file in a batch: its content lies in the batch's arena at `offset`, its xattrs
 *  (packed, `xattrBytes` long; 0 when it has none or they are set on the main thread) right after
 *  the room for its content. */
interface BatchFile {
  meta: EntryMeta
  abs: Buffer
  offset: number
  length: number
  xattrBytes: number
  damaged?: SluiceError
}

/** Small files created together by one writeFiles call (native/restorebatch.c). */
interface Batch {
  /** Its number, from 1 in the order batches are submitted (0 while it fills). */
  n: number
  files: BatchFile[]
  paths: Buffer[]
  /** Bytes of the arena given out (a file's whole size is reserved when it starts). */
  used: number
  arena: Buffer
  meta: Float64Array
  results: Int32Array
}

export function createFsWriter(targetDir: string, opts: FsWriterOptions): Writable {
  const root = Buffer.from(targetDir.replace(/\/+$/, '') || '/')
  const owners = opts.owners ?? process.getuid?.() === 0
  const sparse = opts.sparse ?? true
  const stack: OpenDir[] = []
  // Directories (snapshot-relative) known to be real directories we may write into.
  let file: { fd: number; meta: EntryMeta; abs: Buffer; written: number; skipped?: boolean; damaged?: SluiceError; failed?: unknown } | null = null
  // The large file's positioned writes on the thread pool (up to RESTORE_FILE_WRITES at once, each
  // at its own offset): a destroy must not close its descriptor under them (the number could be
  // reused by the next open before a write runs). Each holds a view of a decoded chunk.
  const writing = new Set<Promise<unknown>>()
  // Small files are collected into a batch (their content copied into its arena) and a batch is
  // created by one writeFiles call on the thread pool, one batch at a time (several at once
  // contend for the directory's lock: measured, docs/TUNING.md), while the main thread decodes
  // and fills the next; at most RESTORE_BATCHES wait or run. `small` is the file being collected
  // into `filling`.
  let small: BatchFile | null = null
  let filling: Batch | null = null
  const spare: Batch[] = []
  // Submitted batches not yet finished, oldest first; each settles after its results are applied.
  const running: Promise<void>[] = []
  // Batches are applied in submission order through this chain.
  let chain: Promise<void> = Promise.resolve()
  let submitted = 0
  let applied = 0
  // Paths (latin1) of files in unfinished batches: an entry at one of them waits for them, so a
  // snapshot that names a path twice restores as if entries were created one after another.
  const pendingPaths = new Set<string>()
  // Directories left while files inside them were still in a batch: their metadata (times!) is
  // set once batch `need` is applied, in the order they were left (children first).
  const pendingDirs: { dir: OpenDir; need: number }[] = []
  let jobFailure: unknown
  // Set by destroy: a write still running (handle() waits on the pool) starts nothing more.
  let stopped = false

  const abs = (p: Buffer): Buffer => Buffer.concat([root, Buffer.from('/'), p])
  const warn = (e: EntryMeta, what: string, cause: unknown) =>
    opts.onWarning(new SluiceError('ERR_WRITE', `${displayPath(e.path)}: ${what}: ${(cause as Error).message ?? cause}`, { cause, path: e.path }))

  // Every call below is synchronous: a restore is a long run of small metadata operations, and
  // each costs a third as much as a round trip through libuv's thread pool (measured: 100k
  // files spent 20 of 53 s idle waiting for those round trips). Writes land in the page cache.

  /** The numbers to chown to: by recorded name where it exists here (lib/owners.ts). */
  const ownerOf = (e: EntryMeta): { uid: number; gid: number } => (opts.numericOwner ? e : systemOwners.owner(e))

  function setMeta(e: EntryMeta, p: Buffer, done: ((e: EntryMeta) => void) | undefined = opts.onEntry): void {
    if (owners) {
      try {
        const o = ownerOf(e)
        fs.lchownSync(p, o.uid, o.gid)
      } catch (cause) {
        warn(e, 'cannot set owner', cause)
      }
    }
    if (e.type !== 'symlink') {
      try {
        fs.chmodSync(p, e.mode & 0o7777)
      } catch (cause) {
        warn(e, 'cannot set mode', cause)
      }
    }
    for (const x of e.xattrs ?? []) {
      try {
        lsetxattr(p, x.name, x.value)
      } catch (cause) {
        warn(e, `cannot set xattr ${x.name.toString()}`, cause)
      }
    }
    try {
      utimens(p, { sec: e.mtimeSec, nsec: e.mtimeNsec }, { sec: e.mtimeSec, nsec: e.mtimeNsec })
    } catch (cause) {
      warn(e, 'cannot set times', cause)
    }
    done?.(e)
  }

  /** Removes what was written of a file whose content is damaged, and says so. */
  function dropDamaged(e: EntryMeta, p: Buffer, damage: SluiceError): void {
    try {
      fs.unlinkSync(p)
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err
    }
    opts.onWarning(new SluiceError(damage.code, `${damage.message}; the file is not restored`, { cause: damage, path: e.path }))
  }

  /** Finishes the large file: waits for its writes, sizes it, closes it, sets its metadata. */
  async function closeFile(): Promise<void> {
    if (!file) return
    const f = file
    file = null
    await Promise.allSettled(writing)
    if (f.damaged) {
      fs.closeSync(f.fd)
      dropDamaged(f.meta, f.abs, f.damaged)
      return
    }
    try {
      if (f.failed !== undefined) throw f.failed
      if (f.written < f.meta.size || f.skipped) fs.ftruncateSync(f.fd, f.meta.size) // holes stay holes
      fs.closeSync(f.fd)
    } catch (err) {
      // The descriptor is closed (or was never going to be) and the partial file goes.
      try {
        fs.closeSync(f.fd)
      } catch {}
      try {
        fs.unlinkSync(f.abs)
      } catch {}
      throw asSluiceError(err, 'ERR_WRITE', `cannot write ${displayPath(f.abs)}`)
    }
    setMeta(f.meta, f.abs)
  }

  /** Writes one piece of the large file (data, or a hole's length) at its offset, with up to
   *  RESTORE_FILE_WRITES at once; holes and zero blocks skipped under `sparse` (write-sparse.ts). */
  async function writeLarge(piece: Uint8Array | number, done?: () => void): Promise<void> {
    const f = file!
    const pos = f.written
    f.written += typeof piece === 'number' ? piece : piece.length
    if (typeof piece === 'number' && sparse) {
      f.skipped = true
      return
    }
    const w = writeSparse((b, off, at) => writeAsync(f.fd, b, off, at), piece, pos, sparse).then(
      r => {
        if (r.skipped) f.skipped = true
      },
      err => {
        f.failed ??= err
      },
    ).finally(done)
    writing.add(w)
    void w.finally(() => writing.delete(w))
    while (writing.size >= RESTORE_FILE_WRITES) await Promise.race(writing)
    if (f.failed !== undefined) throw asSluiceError(f.failed, 'ERR_WRITE', `cannot write ${displayPath(f.abs)}`)
  }

  const pathKey = (p: Buffer): string => p.toString('latin1')
  const isSmall = (e: EntryMeta): boolean => e.type === 'file' && !e.hardlinkTo && e.size <= RESTORE_SMALL_FILE

  /** Starts collecting small file `e` into the filling batch, its xattrs packed after its
   *  content's room (when they fit in an arena with it: else applyBatch sets them). */
  async function startSmall(e: EntryMeta, p: Buffer): Promise<void> {
    let xattrBytes = e.xattrs?.length ? packedXattrsLength(e.xattrs) : 0
    if (xattrBytes < 0 || e.size + xattrBytes > RESTORE_BATCH_BYTES) xattrBytes = 0
    const need = e.size + xattrBytes
    if (filling && (filling.files.length >= RESTORE_BATCH_FILES || filling.used + need > filling.arena.length)) await submit()
    if (pendingPaths.has(pathKey(p))) await drain()
    if (!filling) {
      filling = spare.pop() ?? {
        n: 0, files: [], paths: [], used: 0,
        arena: Buffer.allocUnsafe(RESTORE_BATCH_BYTES),
        meta: new Float64Array(RESTORE_BATCH_FILES * WRITE_FILES_META),
        results: new Int32Array(RESTORE_BATCH_FILES * WRITE_FILES_RESULTS),
      }
    }
    small = { meta: e, abs: p, offset: filling.used, length: 0, xattrBytes }
    if (xattrBytes > 0) packXattrs(e.xattrs!, filling.arena, filling.used + e.size)
    filling.used += need
  }

  /** Content of the small file being collected, copied into the batch's arena (the data is a
   *  view of a whole decoded chunk, which must not be held for it); a hole as its zeros. */
  function addSmall(piece: Uint8Array | number): void {
    const f = small!
    const n = typeof piece === 'number' ? piece : piece.length
    if (f.length + n > f.meta.size) {
      throw new SluiceError('ERR_CORRUPT', `${displayPath(f.meta.path)}: content longer than its recorded size ${f.meta.size}`)
    }
    if (typeof piece === 'number') filling!.arena.fill(0, f.offset + f.length, f.offset + f.length + n)
    else copyBytes(filling!.arena, f.offset + f.length, piece)
    f.length += n
  }

  /** Whether writeSparse would leave some of `a[off, off + length)` (a file's content from its
   *  start) as a hole: a RESTORE_SPARSE_MIN block aligned in the file (the last may be short)
   *  of zeros. Random data costs a byte's look per block. */
  function hasZeroBlock(a: Buffer, off: number, length: number): boolean {
    for (let at = 0; at < length; at += RESTORE_SPARSE_MIN) {
      const end = Math.min(length, at + RESTORE_SPARSE_MIN)
      if (a[off + at] === 0 && a[off + end - 1] === 0 && isAllZero(a.subarray(off + at, off + end))) return true
    }
    return false
  }

  /** Puts the collected small file into its batch (or drops it when its content is damaged, or
   *  writes it now when it has a block to leave as a hole). */
  async function endSmall(): Promise<void> {
    if (!small) return
    const f = small
    const b = filling!
    small = null
    if (f.damaged) {
      b.used = f.offset // it is the last file of the batch: give back its room
      // An older file at that path (restoring over a previous restore) would pass for this one.
      dropDamaged(f.meta, f.abs, f.damaged)
      return
    }
    if (sparse && hasZeroBlock(b.arena, f.offset, f.length)) {
      // No batch file is at its path (startSmall waited for them): created now, in turn.
      try {
        await writeSmallNow(f, b.arena)
      } finally {
        b.used = f.offset // the last file of the batch: its room is free again
      }
      return
    }
    const e = f.meta
    const i = b.files.length
    const o = owners ? ownerOf(e) : e
    b.files.push(f)
    b.paths.push(f.abs)
    const xattrAt = f.xattrBytes > 0 ? f.offset + e.size : 0
    b.meta.set([f.offset, f.length, e.size, e.mode, o.uid, o.gid, e.mtimeSec, e.mtimeNsec, owners ? WRITE_FILES_CHOWN : 0, xattrAt, f.xattrBytes], i * WRITE_FILES_META)
    pendingPaths.add(pathKey(f.abs))
  }

  /** Submits the filling batch; waits while RESTORE_BATCHES are running. */
  async function submit(): Promise<void> {
    await endSmall()
    const b = filling
    if (!b || b.files.length === 0 || stopped) return
    filling = null
    b.n = ++submitted
    const n = b.files.length
    // One batch in the kernel at a time: the next one fills (and waits) meanwhile.
    const done = (chain = chain.then(async () => {
      try {
        if (!stopped) await writeFiles(b.paths, b.meta.subarray(0, n * WRITE_FILES_META), b.arena, b.results.subarray(0, n * WRITE_FILES_RESULTS))
        if (!stopped) await applyBatch(b)
      } catch (err) {
        jobFailure ??= asSluiceError(err, 'ERR_WRITE', `cannot restore ${displayPath(b.files[0]!.abs)}`)
      } finally {
        for (const f of b.files) pendingPaths.delete(pathKey(f.abs))
        applied = b.n
        b.files = []
        b.paths = []
        b.used = 0
        spare.push(b)
        running.shift()
      }
      if (jobFailure === undefined && !stopped) finishDirs()
    }))
    running.push(done)
    while (running.length >= RESTORE_BATCHES) await running[0]
  }

  /** Reports what writeFiles did to each file of a batch, sets the xattrs it did not (not
   *  packed, or one failed: all again, one by one, so each failure is named), and redoes
   *  (replacing what was there) the files whose path was taken. */
  async function applyBatch(b: Batch): Promise<void> {
    for (let i = 0; i < b.files.length; i++) {
      const f = b.files[i]!
      const r = b.results.subarray(i * WRITE_FILES_RESULTS, (i + 1) * WRITE_FILES_RESULTS)
      const e = f.meta
      if (r[0]! < 0) {
        const err = errnoError(-r[0]!, WRITE_FILES_STEPS[r[1]!] ?? 'write', f.abs)
        if (r[1] !== 0 || !isErrno(err, 'EEXIST', 'ELOOP')) throw asSluiceError(err, 'ERR_WRITE', `cannot write ${displayPath(f.abs)}`)
        await writeSmallNow(f, b.arena)
        continue
      }
      if (r[2]) warn(e, 'cannot set owner', errnoError(r[2], 'chown', f.abs))
      if (r[3]) warn(e, 'cannot set mode', errnoError(r[3], 'chmod', f.abs))
      if (r[4]) warn(e, 'cannot set times', errnoError(r[4], 'utimens', f.abs))
      if (f.xattrBytes > 0 && r[5] === 0) {
        opts.onEntry?.(e)
        continue
      }
      for (const x of e.xattrs ?? []) {
        try {
          lsetxattr(f.abs, x.name, x.value)
        } catch (cause) {
          warn(e, `cannot set xattr ${x.name.toString()}`, cause)
        }
      }
      opts.onEntry?.(e)
    }
  }

  /** Writes small file `f` from `arena` on the main thread, replacing what is at its path (a
   *  directory stays, and the file fails), zero blocks left as holes under `sparse`: a file whose
   *  path a batch found taken (restoring over an earlier restore), or one with holes. */
  async function writeSmallNow(f: BatchFile, arena: Buffer): Promise<void> {
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW
    const fd = replacing(f.abs, () => fs.openSync(f.abs, flags, 0o600))
    try {
      const content = arena.subarray(f.offset, f.offset + f.length)
      const w = await writeSparse(async (b, off, at) => fs.writeSync(fd, b, off, b.length - off, at), content, 0, sparse)
      if (f.length < f.meta.size || w.skipped) fs.ftruncateSync(fd, f.meta.size)
    } catch (err) {
      fs.closeSync(fd)
      fs.rmSync(f.abs, { force: true }) // a partial file must not pass for the file
      throw asSluiceError(err, 'ERR_WRITE', `cannot write ${displayPath(f.abs)}`)
    }
    fs.closeSync(fd)
    setMeta(f.meta, f.abs)
  }

  /** Sets the metadata of left directories whose files are all written. */
  function finishDirs(): void {
    while (pendingDirs.length > 0 && pendingDirs[0]!.need <= applied) {
      const { dir } = pendingDirs.shift()!
      setMeta(dir.meta, abs(dir.path))
    }
  }

  /** Waits for every batch; rethrows the first failure. */
  async function drain(): Promise<void> {
    await submit()
    while (running.length > 0) await running[running.length - 1]
    if (jobFailure !== undefined) throw jobFailure
    finishDirs()
  }

  /** Finishes directories on the stack that `path` is not inside (once their files are written). */
  async function leaveTo(path: Buffer): Promise<void> {
    while (stack.length > 0 && !isUnder(path, stack[stack.length - 1]!.path)) {
      const dir = stack.pop()!
      const need = filling && filling.files.length > 0 ? submitted + 1 : submitted
      if (need <= applied && pendingDirs.length === 0) setMeta(dir.meta, abs(dir.path))
      else pendingDirs.push({ dir, need })
    }
    if (pendingDirs.length > RESTORE_PENDING_DIRS) await drain()
  }

  /** Makes sure every ancestor of `p` is a real directory under the target (not a symlink);
   *  missing ones are created, unless `create` is false (a hardlink's source: link() would
   *  follow a symlink in its parents and link a file from outside the target). */
  function ensureParents(p: Buffer, create = true): void {
    const parent = parentPath(p)
    if (parent.length === 0) return
    const top = stack[stack.length - 1]
    if (top && top.path.equals(parent)) return
    // Not the directory we are in (a source in another order): check each component.
    let cur: Buffer = Buffer.alloc(0)
    for (const c of splitPath(parent)) {
      cur = joinPath(cur, c)
      const a = abs(cur)
      const st = fs.lstatSync(a, { throwIfNoEntry: false })
      if (st === undefined) {
        if (!create) throw Object.assign(new Error(`no directory ${displayPath(cur)}`), { code: 'ENOENT' })
        fs.mkdirSync(a, { mode: 0o700 })
      } else if (!st.isDirectory()) {
        throw new SluiceError('ERR_UNSAFE_PATH', `"${displayPath(p)}" lies below "${displayPath(cur)}", which is not a directory; refusing to restore`)
      }
    }
  }

  /** Runs `make`; if something is already at `p`, removes it (a directory stays) and tries once
   *  more. Restoring into an empty target costs no extra call per entry. */
  function replacing<T>(p: Buffer, make: () => T): T {
    try {
      return make()
    } catch (err) {
      if (!isErrno(err, 'EEXIST', 'ELOOP')) throw err
      const st = fs.lstatSync(p, { throwIfNoEntry: false })
      if (st && !st.isDirectory()) fs.unlinkSync(p)
      return make()
    }
  }

  // An entry whose parent is not the directory on top of the stack (a tar snapshot out of
  // canonical order) may land in a directory that is already finished: that directory's mtime
  // is read before (once the batches are done, so its own times are set) and put back once the
  // entry exists (small files: after their batch), so its time stays the recorded one and
  // nothing is kept per directory.
  let touched: { p: Buffer; sec: number; nsec: number } | null = null
  async function putBackTouched(): Promise<void> {
    if (!touched) return
    const t = touched
    touched = null
    await drain()
    try {
      utimens(t.p, { sec: t.sec, nsec: t.nsec }, { sec: t.sec, nsec: t.nsec })
    } catch {
      // the directory's own record, if it comes later, sets its times anyway
    }
  }

  /** Whether the parent of `path` is not the directory on top of the stack (so it is checked). */
  function elsewhere(path: Buffer): boolean {
    const parent = parentPath(path)
    const top = stack[stack.length - 1]
    return parent.length > 0 && !top?.path.equals(parent)
  }

  /** Waits for the batches when an entry at `p` must meet what they make: its parents are to be
   *  checked (not the current directory), or a batch has yet to create its path (`samePath`):
   *  as if every earlier entry were already there. */
  async function settleFor(path: Buffer, p: Buffer, samePath: boolean): Promise<void> {
    if (pendingPaths.size === 0 && pendingDirs.length === 0) return
    if (elsewhere(path) || (samePath && pendingPaths.has(pathKey(p)))) await drain()
  }

  async function create(e: EntryMeta): Promise<void> {
    checkSafePath(e.path)
    await leaveTo(e.path)
    await putBackTouched()
    const p = abs(e.path)
    await settleFor(e.path, p, !isSmall(e))
    if (elsewhere(e.path)) {
      const st = fs.lstatSync(abs(parentPath(e.path)), { bigint: true, throwIfNoEntry: false })
      if (st?.isDirectory()) touched = { p: abs(parentPath(e.path)), sec: Number(st.mtimeNs / 1_000_000_000n), nsec: Number(st.mtimeNs % 1_000_000_000n) }
    }
    ensureParents(e.path)
    if (e.hardlinkTo) {
      checkSafePath(e.hardlinkTo)
      await drain() // the first link may still be being written
      try {
        ensureParents(e.hardlinkTo, false)
        replacing(p, () => fs.linkSync(abs(e.hardlinkTo!), p))
      } catch (cause) {
        if (cause instanceof SluiceError) throw cause
        warn(e, `cannot link to ${displayPath(e.hardlinkTo)}`, cause)
      }
      return
    }
    switch (e.type) {
      case 'dir':
        try {
          fs.mkdirSync(p, { mode: 0o700 })
        } catch (err) {
          if (!isErrno(err, 'EEXIST')) throw err
          if (!fs.lstatSync(p).isDirectory()) {
            fs.unlinkSync(p)
            fs.mkdirSync(p, { mode: 0o700 })
          }
        }
        stack.push({ path: e.path, meta: e })
        return
      case 'file': {
        if (isSmall(e)) {
          await startSmall(e, p)
          return
        }
        const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW
        const fd = replacing(p, () => fs.openSync(p, flags, 0o600))
        file = { fd, meta: e, abs: p, written: 0 }
        return
      }
      case 'symlink':
        replacing(p, () => fs.symlinkSync(e.linkTarget ?? Buffer.alloc(0), p))
        break
      case 'fifo':
        replacing(p, () => mkfifo(p, 0o600))
        break
      case 'char':
      case 'block':
        try {
          replacing(p, () => mknod(p, (e.type === 'char' ? fs.constants.S_IFCHR : fs.constants.S_IFBLK) | 0o600, e.rdev ?? 0))
        } catch (cause) {
          warn(e, 'cannot create device', cause)
          return
        }
        break
      case 'socket':
        return // sockets are recorded but, like tar and restic, not recreated
    }
    setMeta(e, p)
  }

  async function handle(item: RestoreItem | DamagedItem | SkippedItem): Promise<void> {
    if (item.kind === 'data') {
      // The chunk's memory goes back to download's pool once its bytes are copied or written.
      const done = item.done
      if (stopped || jobFailure !== undefined || (small ? small.damaged : !file || file.damaged)) done?.()
      else if (small) {
        try {
          addSmall(item.data)
        } finally {
          done?.()
        }
        return
      } else {
        await writeLarge(item.data, done)
        return
      }
    }
    if (stopped) return
    if (jobFailure !== undefined) throw jobFailure
    if (item.kind === 'damaged') {
      // The first damaged chunk of a file is the one named; the rest of its content is dropped.
      if (small) small.damaged ??= item.error
      else if (file) file.damaged ??= item.error
      return
    }
    if (item.kind === 'data' || item.kind === 'hole') {
      const piece = item.kind === 'hole' ? item.length : item.data
      if (small) {
        if (!small.damaged) addSmall(piece)
        return
      }
      if (!file || file.damaged) return
      // On the thread pool: the main thread decrypts and decompresses the next chunks meanwhile.
      await writeLarge(piece)
      return
    }
    if (item.kind === 'extents') return
    await closeFile()
    await endSmall()
    if (stopped) return
    // restore --overwrite hook (overwrite.ts): an entry already restored (its metadata is set
    // again, as restic does) or one left alone.
    if (item.kind === 'skipped') {
      const e = item.entry
      checkSafePath(e.path)
      await leaveTo(e.path)
      const p = abs(e.path)
      await settleFor(e.path, p, true)
      ensureParents(e.path)
      const done = (x: EntryMeta) => opts.onSkipped?.(x, item.reason)
      if (item.reason === 'unchanged') setMeta(e, p, done)
      else done(e)
      return
    }
    try {
      await create(item.entry)
    } catch (err) {
      // An entry that cannot be created (a path the snapshot names twice with different types,
      // a full disk) stops the restore with a code, not a bare errno.
      throw asSluiceError(err, 'ERR_WRITE', `cannot restore ${displayPath(abs(item.entry.path))}`)
    }
  }

  return new Writable({
    objectMode: true,
    highWaterMark: 2,
    write(item: RestoreItem | DamagedItem | SkippedItem, _enc, cb) {
      handle(item).then(() => cb(), err => cb(err))
    },
    final(cb) {
      ;(async () => {
        await closeFile()
        await drain()
        await putBackTouched()
        await leaveTo(Buffer.from([0])) // a path under no directory: finish them all
      })().then(() => cb(), err => cb(asSluiceError(err, 'ERR_WRITE', `cannot finish the restore into ${targetDir}`)))
    },
    destroy(err, cb) {
      stopped = true
      const f = file
      file = null
      small = null
      // A restore that stops (a damaged metadata chunk, a full disk) leaves no partial file
      // that could pass for a complete one, and nothing still being written once it has ended:
      // the large file's write and the small-file jobs are waited for (each is one write of at
      // most a chunk) before the error goes on.
      const close = () => {
        try {
          if (f) {
            fs.closeSync(f.fd)
            fs.unlinkSync(f.abs)
          }
        } catch {
          // already failing
        }
      }
      Promise.allSettled([...writing, ...running]).then(close).then(() => cb(err))
    },
  })
}
