/**
 * xattr-read: the backup stage that reads extended attributes of the entries in flight.
 *
 * Attributes are read when an entry passes, never up front, so this stage holds at most the
 * entries buffered on its two sides (STAGE_HWM each) plus the attributes of the one entry being
 * read, which Linux bounds (a name list and each value are at most 64 KiB). The reads are
 * synchronous syscalls of a few microseconds each; a slow filesystem stalls this stage and
 * backpressure does the rest.
 */

import { Transform } from 'node:stream'
import { displayPath } from '../../lib/bytes.js'
import type { BackupItem, Xattr } from '../../lib/entry.js'
import { isErrno, SluiceError } from '../../lib/errors.js'
import { STAGE_HWM } from '../../lib/limits.js'
import { lgetxattrs } from '../../lib/native.js'

/** Options of {@link createXattrReader}. */
export interface XattrReaderOptions {
  /** Receives per-entry trouble (ERR_READ with the entry's path); the entry goes on without
   *  xattrs and the backup continues. If it throws, the stream fails with that error. */
  onWarning: (err: SluiceError) => void
  /** Which attribute names to keep; {@link defaultXattrFilter} when absent. */
  filter?: (name: Buffer) => boolean
}

const KEPT_NAMESPACES = ['user.', 'trusted.', 'security.'].map((p) => Buffer.from(p))

/**
 * Keeps `user.*`, `trusted.*` and `security.*` (e.g. security.capability of setcap binaries,
 * security.selinux). `trusted.*` is only listed to root, so it appears only in root backups.
 * `system.*` is left out: those names are filesystem-synthesised views (POSIX ACLs as
 * system.posix_acl_*, NFSv4 ACLs, ...) whose restore depends on the target filesystem and
 * belongs to a dedicated ACL feature, not to raw attribute copying.
 */
export function defaultXattrFilter(name: Buffer): boolean {
  // compare(), not subarray().equals(): no view allocated per name and namespace.
  for (const p of KEPT_NAMESPACES) if (name.length > p.length && name.compare(p, 0, p.length, 0, p.length) === 0) return true
  return false
}

/**
 * Sets `xattrs` (sorted by name, only when at least one is kept) on every walked entry, that
 * is an item with `kind === 'entry'` and an `fsPath`. Other items pass untouched, and so do
 * entries the parent-join reuses: setting an xattr changes the ctime, so a file whose ctime is
 * unchanged has the parent's xattrs, which the join copied.
 * A read error (EACCES, ENOENT when the file vanished, ...) goes to `onWarning` as ERR_READ and
 * the entry passes without xattrs; a filesystem without xattr support (ENOTSUP) is no warning.
 * Holds only the entries in flight; see the module comment for the bound.
 */
export function createXattrReader(opts: XattrReaderOptions): Transform {
  const keep = opts.filter ?? defaultXattrFilter
  return new Transform({
    objectMode: true,
    readableHighWaterMark: STAGE_HWM,
    writableHighWaterMark: STAGE_HWM,
    transform(item: BackupItem, _enc, done) {
      if (item.kind !== 'entry' || item.fsPath === undefined || item.reuse) {
        done(null, item)
        return
      }
      let attrs: Xattr[]
      try {
        attrs = lgetxattrs(item.fsPath).filter((a) => keep(a.name))
      } catch (cause) {
        if (isErrno(cause, 'ENOTSUP', 'EOPNOTSUPP')) {
          done(null, item)
          return
        }
        if (typeof (cause as { syscall?: unknown })?.syscall !== 'string') {
          done(cause as Error) // not a syscall failure: a bug, not a per-entry problem
          return
        }
        try {
          const detail = cause instanceof Error ? cause.message : String(cause)
          opts.onWarning(
            new SluiceError('ERR_READ', `cannot read extended attributes of ${displayPath(item.path)}: ${detail}`, {
              cause,
              path: item.path,
            }),
          )
        } catch (err) {
          done(err as Error)
          return
        }
        done(null, item)
        return
      }
      if (attrs.length > 0) item.xattrs = attrs
      done(null, item)
    },
  })
}
