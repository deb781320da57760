/**
 * write-fs: the directory sink of restore. Creates each entry under `target` as its record
 * comes, writes file content from the DataItems that follow, and sets metadata in the order
 * that keeps it: owner (root only), then mode (chown clears setuid), then xattrs, then times —
 * a directory's times after its children are written, when the walk leaves it. Owners as root
 * by recorded name where it exists here, else by number (lib/owners.ts; numbers only with
 * `numericOwner`).
 *
 * A file's times are set only once its content is complete and closed: `restore --overwrite
 * if-changed` (overwrite.ts) relies on it to resume, as a file cut short then never carries the
 * snapshot's mtime. A SkippedItem (an entry --overwrite does not write) gets its metadata set
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
 * ftruncate when it is closed.
 *
 * Memory: the stack of directories on the current path (their metadata, to finish them when
 * left), one open large file, and RESTORE_FILE_JOBS small files (copies of at most
 * RESTORE_SMALL_FILE bytes each) being created concurrently.
 */
import { Writable } from 'node:stream'
import fs from 'node:fs'
import type { EntryMeta, RestoreItem } from '../../../lib/entry.js'
import type { DamagedItem } from '../download.js'
import type { SkippedItem } from '../overwrite.js'
import { SluiceError, asSluiceError, isErrno } from '../../../lib/errors.js'
import { displayPath, isUnder, joinPath, parentPath, splitPath } from '../../../lib/bytes.js'
import { lsetxattr, mkfifo, mknod, utimens } from '../../../lib/native.js'
import { RESTORE_FILE_JOBS, RESTORE_SMALL_FILE } from '../../../lib/limits.js'
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

export function createFsWriter(targetDir: string, opts: FsWriterOptions): Writable {
  const root = Buffer.from(targetDir.replace(/\/+$/, '') || '/')
  const owners = opts.owners ?? process.getuid?.() === 0
  const sparse = opts.sparse ?? true
  const stack: OpenDir[] = []
  // Directories (snapshot-relative) known to be real directories we may write into.
  let file: { fd: number; meta: EntryMeta; abs: Buffer; written: number; skipped?: boolean; damaged?: SluiceError } | null = null
  // The large file's write on the thread pool, while one is running: a destroy must not close
  // its descriptor under it (the number could be reused by the next open before the write runs).
  let writing: Promise<unknown> | null = null
  // A small file being collected, to be created by a job of its own (see `flushSmall`).
  // A part is data, or the length of a hole.
  let small: { meta: EntryMeta; abs: Buffer; parts: (Buffer | number)[]; damaged?: SluiceError } | null = null
  // Small-file jobs in flight: creating a file costs the kernel 30-300 µs (inode, journal), so
  // several run at once on the thread pool. A directory's metadata, a hardlink and the end of the
  // restore wait for them.
  const jobs = new Set<Promise<void>>()
  let jobFailure: unknown
  // Set by destroy: a write still running (handle() waits on the pool) starts nothing more.
  let stopped = false

  const abs = (p: Buffer): Buffer => Buffer.concat([root, Buffer.from('/'), p])
  const warn = (e: EntryMeta, what: string, cause: unknown) =>
    opts.onWarning(new SluiceError('ERR_WRITE', `${displayPath(e.path)}: ${what}: ${(cause as Error).message ?? cause}`, { cause, path: e.path }))

  // Every call below is synchronous: a restore is a long run of small metadata operations, and
  // each costs a third as much as a round trip through libuv's thread pool (measured: 100k
  // files spent 20 of 53 s idle waiting for those round trips). Writes land in the page cache.

  function setMeta(e: EntryMeta, p: Buffer, done: ((e: EntryMeta) => void) | undefined = opts.onEntry): void {
    if (owners) {
      try {
        // Owners-by-name hook (lib/owners.ts): a recorded name that exists here wins.
        const o = opts.numericOwner ? e : systemOwners.owner(e)
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

  function closeFile(): void {
    if (!file) return
    const f = file
    file = null
    if (f.damaged) {
      fs.closeSync(f.fd)
      dropDamaged(f.meta, f.abs, f.damaged)
      return
    }
    try {
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

  /** Starts the job that creates the collected small file. */
  async function flushSmall(): Promise<void> {
    if (!small || stopped) return
    const f = small
    small = null
    if (f.damaged) {
      // An older file at that path (restoring over a previous restore) would pass for this one.
      dropDamaged(f.meta, f.abs, f.damaged)
      return
    }
    const flags = fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW
    const job = (async () => {
      let fd: number
      try {
        fd = await openAsync(f.abs, flags)
      } catch (err) {
        if (!isErrno(err, 'EEXIST', 'ELOOP')) throw err
        fd = replacing(f.abs, () => fs.openSync(f.abs, flags, 0o600))
      }
      try {
        let pos = 0
        let skipped = false
        for (const part of f.parts) {
          const w = await writeSparse((b, off, at) => writeAsync(fd, b, off, at), part, pos, sparse)
          pos += w.length
          skipped ||= w.skipped
        }
        if (pos < f.meta.size || skipped) fs.ftruncateSync(fd, f.meta.size)
      } catch (err) {
        fs.closeSync(fd)
        fs.rmSync(f.abs, { force: true }) // a partial file must not pass for the file
        throw asSluiceError(err, 'ERR_WRITE', `cannot write ${displayPath(f.abs)}`)
      }
      fs.closeSync(fd)
      setMeta(f.meta, f.abs)
    })().catch(err => {
      jobFailure ??= asSluiceError(err, 'ERR_WRITE', `cannot restore ${displayPath(f.abs)}`)
    })
    jobs.add(job)
    void job.finally(() => jobs.delete(job))
    if (jobs.size >= RESTORE_FILE_JOBS) await Promise.race(jobs)
  }

  /** Waits for every small-file job; rethrows the first failure. */
  async function drain(): Promise<void> {
    await flushSmall()
    while (jobs.size > 0) await Promise.all(jobs)
    if (jobFailure !== undefined) throw jobFailure
  }

  /** Finishes directories on the stack that `path` is not inside. */
  async function leaveTo(path: Buffer): Promise<void> {
    if (stack.length > 0 && !isUnder(path, stack[stack.length - 1]!.path)) await drain()
    while (stack.length > 0 && !isUnder(path, stack[stack.length - 1]!.path)) {
      const d = stack.pop()!
      setMeta(d.meta, abs(d.path))
    }
  }

  // An entry whose parent is not the directory on top of the stack (a tar snapshot out of
  // canonical order) may land in a directory that is already finished: that directory's mtime
  // is read before and put back once the entry exists (small files: after their job), so its
  // time stays the recorded one and nothing is kept per directory.
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

  async function create(e: EntryMeta): Promise<void> {
    checkSafePath(e.path)
    await leaveTo(e.path)
    await putBackTouched()
    const parent = parentPath(e.path)
    const top = stack[stack.length - 1]
    if (parent.length > 0 && !(top && top.path.equals(parent))) {
      const st = fs.lstatSync(abs(parent), { bigint: true, throwIfNoEntry: false })
      if (st?.isDirectory()) touched = { p: abs(parent), sec: Number(st.mtimeNs / 1_000_000_000n), nsec: Number(st.mtimeNs % 1_000_000_000n) }
    }
    ensureParents(e.path)
    const p = abs(e.path)
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
        if (e.size <= RESTORE_SMALL_FILE) {
          small = { meta: e, abs: p, parts: [] }
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
    if (stopped) return
    if (jobFailure !== undefined) throw jobFailure
    if (item.kind === 'damaged') {
      // The first damaged chunk of a file is the one named; the rest of its content is dropped.
      if (small) small.damaged ??= item.error
      else if (file) file.damaged ??= item.error
      return
    }
    if (item.kind === 'data' || item.kind === 'hole') {
      if (small) {
        if (small.damaged) return
        // A copy: the data is a view of a whole decoded chunk, which must not be held for it.
        small.parts.push(item.kind === 'hole' ? item.length : Buffer.from(item.data))
        return
      }
      if (!file || file.damaged) return
      // On the thread pool: the main thread decrypts and decompresses the next chunks meanwhile.
      // The data is a view of a decoded chunk; the write completes before the next item comes.
      const f = file
      const piece = item.kind === 'hole' ? item.length : item.data
      const write = (b: Uint8Array, off: number, pos: number): Promise<number> => {
        const w = writeAsync(f.fd, b, off, pos)
        writing = w
        return w.finally(() => (writing = null))
      }
      try {
        const w = await writeSparse(write, piece, f.written, sparse)
        f.written += w.length
        if (w.skipped) f.skipped = true
      } catch (err) {
        throw asSluiceError(err, 'ERR_WRITE', `cannot write ${displayPath(f.abs)}`)
      }
      return
    }
    if (item.kind === 'extents') return
    // restore --overwrite hook (overwrite.ts): an entry already restored (its metadata is set
    // again, as restic does) or one left alone.
    if (item.kind === 'skipped') {
      closeFile()
      await flushSmall()
      if (stopped) return
      const e = item.entry
      checkSafePath(e.path)
      await leaveTo(e.path)
      ensureParents(e.path)
      const done = (x: EntryMeta) => opts.onSkipped?.(x, item.reason)
      if (item.reason === 'unchanged') setMeta(e, abs(e.path), done)
      else done(e)
      return
    }
    closeFile()
    await flushSmall()
    if (stopped) return
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
    write(item: RestoreItem, _enc, cb) {
      handle(item).then(() => cb(), err => cb(err))
    },
    final(cb) {
      ;(async () => {
        closeFile()
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
      Promise.allSettled([writing, ...jobs]).then(close).then(() => cb(err))
    },
  })
}
