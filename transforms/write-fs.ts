/**
 * write-fs: the directory sink of restore. Creates each entry under `target` as its record
 * comes, writes file content from the DataItems that follow, and sets metadata in the order
 * that keeps it: owner (root only), then mode (chown clears setuid), then xattrs, then times —
 * a directory's times after its children are written, when the walk leaves it.
 *
 * Safety: every path is checked (no absolute paths, no '.', '..' or empty components, no NUL);
 * an unsafe one aborts the restore with ERR_UNSAFE_PATH before anything is written for it. A
 * parent is only ever a directory this restore created or checked with lstat, so a symlink in
 * the snapshot can never redirect a later write outside the target.
 *
 * Memory: the stack of directories on the current path (their metadata, to finish them when
 * left) and one open file.
 */
import { Writable } from 'node:stream'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import type { EntryMeta, RestoreItem } from '../lib/entry.js'
import { SluiceError, asSluiceError, isErrno } from '../lib/errors.js'
import { displayPath, isUnder, joinPath, parentPath, splitPath } from '../lib/bytes.js'
import { lsetxattr, mkfifo, mknod, utimens } from '../lib/native.js'

export interface FsWriterOptions {
  /** Per-entry trouble (cannot set an owner, an xattr, a device without root): the restore goes on. */
  onWarning: (err: SluiceError) => void
  /** Restore owners (default: when running as root). */
  owners?: boolean
  /** Called after each entry is finished (for progress). */
  onEntry?: (entry: EntryMeta) => void
}

/** Throws ERR_UNSAFE_PATH unless `p` is a relative path of plain components. */
export function checkSafePath(p: Buffer): void {
  const bad = (why: string) => new SluiceError('ERR_UNSAFE_PATH', `snapshot names an unsafe path "${displayPath(p)}" (${why}); refusing to restore`)
  if (p.length === 0) throw bad('empty')
  if (p[0] === 0x2f) throw bad('absolute')
  if (p.includes(0)) throw bad('NUL byte')
  for (const c of splitPath(p)) {
    if (c.length === 0) throw bad('empty component')
    if (c.length === 1 && c[0] === 0x2e) throw bad("'.' component")
    if (c.length === 2 && c[0] === 0x2e && c[1] === 0x2e) throw bad("'..' component")
  }
}

interface OpenDir {
  path: Buffer
  meta: EntryMeta
}

export function createFsWriter(targetDir: string, opts: FsWriterOptions): Writable {
  const root = Buffer.from(targetDir.replace(/\/+$/, '') || '/')
  const owners = opts.owners ?? process.getuid?.() === 0
  const stack: OpenDir[] = []
  // Directories (snapshot-relative) known to be real directories we may write into.
  let file: { fh: fsp.FileHandle; meta: EntryMeta; abs: Buffer; written: number } | null = null

  const abs = (p: Buffer): Buffer => Buffer.concat([root, Buffer.from('/'), p])
  const warn = (e: EntryMeta, what: string, cause: unknown) =>
    opts.onWarning(new SluiceError('ERR_WRITE', `${displayPath(e.path)}: ${what}: ${(cause as Error).message ?? cause}`, { cause, path: e.path }))

  async function setMeta(e: EntryMeta, p: Buffer): Promise<void> {
    const isLink = e.type === 'symlink'
    if (owners) {
      try {
        await fsp.lchown(p, e.uid, e.gid)
      } catch (cause) {
        warn(e, 'cannot set owner', cause)
      }
    }
    if (!isLink) {
      try {
        await fsp.chmod(p, e.mode & 0o7777)
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
    opts.onEntry?.(e)
  }

  async function closeFile(): Promise<void> {
    if (!file) return
    const f = file
    file = null
    if (f.written < f.meta.size) await f.fh.truncate(f.meta.size) // sparse tail stays a hole
    await f.fh.close()
    await setMeta(f.meta, f.abs)
  }

  /** Finishes directories on the stack that `path` is not inside. */
  async function leaveTo(path: Buffer): Promise<void> {
    while (stack.length > 0 && !isUnder(path, stack[stack.length - 1]!.path)) {
      const d = stack.pop()!
      await setMeta(d.meta, abs(d.path))
    }
  }

  /** Makes sure every ancestor of `p` is a real directory under the target (not a symlink);
   *  missing ones are created, unless `create` is false (a hardlink's source: link() would
   *  follow a symlink in its parents and link a file from outside the target). */
  async function ensureParents(p: Buffer, create = true): Promise<void> {
    const parent = parentPath(p)
    if (parent.length === 0) return
    const top = stack[stack.length - 1]
    if (top && top.path.equals(parent)) return
    // Not the directory we are in (a source in another order): check each component.
    let cur: Buffer = Buffer.alloc(0)
    for (const c of splitPath(parent)) {
      cur = joinPath(cur, c)
      const a = abs(cur)
      try {
        const st = await fsp.lstat(a)
        if (!st.isDirectory()) throw new SluiceError('ERR_UNSAFE_PATH', `"${displayPath(p)}" lies below "${displayPath(cur)}", which is not a directory; refusing to restore`)
      } catch (err) {
        if (!isErrno(err, 'ENOENT') || !create) throw err
        await fsp.mkdir(a, { mode: 0o700 })
      }
    }
  }

  async function removeExisting(p: Buffer): Promise<void> {
    try {
      const st = await fsp.lstat(p)
      if (st.isDirectory()) return
      await fsp.unlink(p)
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err
    }
  }

  async function create(e: EntryMeta): Promise<void> {
    checkSafePath(e.path)
    await leaveTo(e.path)
    await ensureParents(e.path)
    const p = abs(e.path)
    if (e.hardlinkTo) {
      checkSafePath(e.hardlinkTo)
      await removeExisting(p)
      try {
        await ensureParents(e.hardlinkTo, false)
        await fsp.link(abs(e.hardlinkTo), p)
      } catch (cause) {
        if (cause instanceof SluiceError) throw cause
        warn(e, `cannot link to ${displayPath(e.hardlinkTo)}`, cause)
      }
      return
    }
    switch (e.type) {
      case 'dir':
        try {
          await fsp.mkdir(p, { mode: 0o700 })
        } catch (err) {
          if (!isErrno(err, 'EEXIST')) throw err
          const st = await fsp.lstat(p)
          if (!st.isDirectory()) {
            await fsp.unlink(p)
            await fsp.mkdir(p, { mode: 0o700 })
          }
        }
        stack.push({ path: e.path, meta: e })
        return
      case 'file': {
        await removeExisting(p)
        const fh = await fsp.open(p, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC | fs.constants.O_NOFOLLOW, 0o600)
        file = { fh, meta: e, abs: p, written: 0 }
        return
      }
      case 'symlink':
        await removeExisting(p)
        await fsp.symlink(e.linkTarget ?? Buffer.alloc(0), p)
        break
      case 'fifo':
        await removeExisting(p)
        mkfifo(p, 0o600)
        break
      case 'char':
      case 'block':
        await removeExisting(p)
        try {
          mknod(p, (e.type === 'char' ? fs.constants.S_IFCHR : fs.constants.S_IFBLK) | 0o600, e.rdev ?? 0)
        } catch (cause) {
          warn(e, 'cannot create device', cause)
          return
        }
        break
      case 'socket':
        return // sockets are recorded but, like tar and restic, not recreated
    }
    await setMeta(e, p)
  }

  async function handle(item: RestoreItem): Promise<void> {
    if (item.kind === 'data') {
      if (!file) return
      const f = file
      let off = 0
      while (off < item.data.length) {
        const { bytesWritten } = await f.fh.write(item.data, off, item.data.length - off, f.written)
        off += bytesWritten
        f.written += bytesWritten
      }
      return
    }
    if (item.kind === 'extents') return
    await closeFile()
    try {
      await create(item.entry)
    } catch (err) {
      // An entry that cannot be created (a path the snapshot names twice with different types,
      // a full disk) stops the restore with a code, not a bare errno.
      throw asSluiceError(err, 'ERR_WRITE', `cannot restore ${displayPath(item.entry.path)}`)
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
        await closeFile()
        await leaveTo(Buffer.from([0])) // a path under no directory: finish them all
      })().then(() => cb(), err => cb(err))
    },
    destroy(err, cb) {
      const f = file
      file = null
      if (f) f.fh.close().then(() => cb(err), () => cb(err))
      else cb(err)
    },
  })
}
