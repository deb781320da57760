/**
 * xattr-read: the backup stage that reads extended attributes of the entries in flight.
 *
 * Attributes are read when an entry passes, never up front, in batches: up to
 * XATTR_BATCH_FILES consecutive entries to read become one `readXattrs` call of the addon
 * (native/xattrbatch.c), which lists and reads them all on a thread-pool thread into one arena,
 * so the kernel's path walks (llistxattr, then lgetxattr per name, each resolving the path again)
 * run beside the main thread's chunking and hashing, for one round trip per batch. Up to
 * XATTR_BATCHES batches are in flight. Entries keep their order (lib/ordered-batches.ts, shared
 * with prefetch); an entry that needs no read
 * (reused, not walked) closes the batch being filled, so it is never held back behind one. A
 * batch of fewer than XATTR_SYNC_BELOW entries (an incremental backup's directories between
 * reused files) is read here, synchronously: a thread-pool round trip costs more than a few
 * syscalls, and entries held for a batch outlive V8's young generation.
 * When the arena fills, the batch's remaining entries are read by another call into the same
 * arena (the attributes read are copied out first); a path whose attributes do not fit in the
 * empty arena is read alone, synchronously (lgetxattrs), as every path was before batching.
 *
 * Memory: XATTR_BATCHES + 1 arenas of XATTR_BATCH_BYTES (being read, being decoded, free), at
 * most XATTR_BATCH_FILES × (XATTR_BATCHES + 1) entries waiting in order with their attributes,
 * and the attributes of one entry read alone, which Linux bounds (a name list and each value are
 * at most 64 KiB).
 */

import type { Duplex } from 'node:stream'
import { displayPath } from '../../lib/bytes.js'
import type { BackupItem, SourceEntry, Xattr } from '../../lib/entry.js'
import { isErrno, SluiceError } from '../../lib/errors.js'
import { stage } from '../../lib/flow.js'
import { orderedBatches } from '../../lib/ordered-batches.js'
import { XATTR_BATCH_BYTES, XATTR_BATCH_FILES, XATTR_BATCHES, XATTR_SYNC_BELOW } from '../../lib/limits.js'
import { errnoError, lgetxattrs, READ_XATTRS_RESULTS, READ_XATTRS_STEPS, readXattrs, xattrsAt } from '../../lib/native.js'

/** Options of {@link createXattrReader}. */
export interface XattrReaderOptions {
  /** Receives per-entry trouble (ERR_READ with the entry's path); the entry goes on without
   *  xattrs and the backup continues. If it throws, the stream fails with that error. */
  onWarning: (err: SluiceError) => void
  /** Which attribute names to keep; {@link defaultXattrFilter} when absent. */
  filter?: (name: Buffer) => boolean
  /** The batched read (default: the addon's readXattrs); tests inject failures here. */
  readXattrs?: typeof readXattrs
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
 * entries the parent-join reuses (files, and other entries whose parent record it reuses):
 * setting an xattr changes the ctime, so an entry whose ctime is unchanged has the parent's
 * xattrs, which the join copied.
 * A read error (EACCES, ENOENT when the file vanished, ...) goes to `onWarning` as ERR_READ and
 * the entry passes without xattrs; a filesystem without xattr support (ENOTSUP) is no warning.
 * Holds only the entries in flight; see the module comment for the bound.
 */
export function createXattrReader(opts: XattrReaderOptions): Duplex {
  return stage<BackupItem, BackupItem>(source => xattrStream(source, opts))
}

interface Batch {
  items: SourceEntry[]
}

const needsRead = (item: BackupItem): item is SourceEntry => item.kind === 'entry' && item.fsPath !== undefined && !item.reuse && !item.reuseRecord

function xattrStream(source: AsyncIterable<BackupItem>, opts: XattrReaderOptions): AsyncIterable<BackupItem> {
  const keep = opts.filter ?? defaultXattrFilter
  const read = opts.readXattrs ?? readXattrs
  const free: Buffer[] = []
  return orderedBatches<BackupItem, { items: BackupItem[] }>(source, {
    // An item that needs no read closes the batch, so it is not held behind one: in an
    // incremental backup the batches between reused files are a directory or two, read here.
    weigh: item => (needsRead(item) ? 1 : undefined),
    open: () => ({ items: [] }),
    full: b => b.items.length >= XATTR_BATCH_FILES,
    read: b => {
      const batch = b as Batch
      if (batch.items.length >= XATTR_SYNC_BELOW) return readBatch(batch, read, keep, opts.onWarning, free)
      // A few entries (directories between reused files): cheaper read here than sent away.
      for (const e of batch.items) readAlone(e, keep, opts.onWarning)
    },
    inFlight: XATTR_BATCHES,
    maxQueued: XATTR_BATCH_FILES * (XATTR_BATCHES + 1),
  })
}

/** Reads the attributes of every entry of `b` (readXattrs calls until all are read; lgetxattrs
 *  for a path that does not fit the arena alone) and sets them. Rejects only on a bug (or when
 *  onWarning throws): the stream then fails with it. */
async function readBatch(b: Batch, read: typeof readXattrs, keep: (name: Buffer) => boolean, onWarning: XattrReaderOptions['onWarning'], free: Buffer[]): Promise<void> {
  const arena = free.pop() ?? Buffer.allocUnsafeSlow(XATTR_BATCH_BYTES)
  const results = new Int32Array(READ_XATTRS_RESULTS * b.items.length)
  try {
    // Each call reads the entries from `start` until the arena is full; the attributes are copied
    // out, and the next call reads the rest into the same arena.
    for (let start = 0; start < b.items.length; ) {
      const entries = start === 0 ? b.items : b.items.slice(start)
      await read(entries.map(e => e.fsPath!), arena, results)
      let off = 0
      let next = b.items.length
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!
        const r = READ_XATTRS_RESULTS * i
        const count = results[r]!
        const step = READ_XATTRS_STEPS[results[r + 1]!]
        const used = results[r + 2]!
        if (count >= 0) {
          if (count > 0) setXattrs(e, xattrsAt(arena, off, used, count), keep)
        } else if (step === 'room') {
          // The first entry of a call that does not fit an empty arena is read alone.
          if (i === 0) readAlone(e, keep, onWarning)
          next = start + Math.max(i, 1)
          break
        } else {
          warn(e, errnoError(-count, step ?? 'llistxattr', e.fsPath!), onWarning)
        }
        off += used
      }
      start = next
    }
  } finally {
    if (free.length < XATTR_BATCHES) free.push(arena)
  }
}

function setXattrs(e: SourceEntry, attrs: Xattr[], keep: (name: Buffer) => boolean): void {
  const kept = attrs.filter(a => keep(a.name))
  if (kept.length > 0) e.xattrs = kept
}

/** One entry's attributes read on the main thread (they did not fit in the batch's arena). */
function readAlone(e: SourceEntry, keep: (name: Buffer) => boolean, onWarning: XattrReaderOptions['onWarning']): void {
  let attrs: Xattr[]
  try {
    attrs = lgetxattrs(e.fsPath!)
  } catch (cause) {
    if (isErrno(cause, 'ENOTSUP', 'EOPNOTSUPP')) return
    if (typeof (cause as { syscall?: unknown })?.syscall !== 'string') throw cause // not a syscall failure: a bug
    warn(e, cause, onWarning)
    return
  }
  setXattrs(e, attrs, keep)
}

/** ERR_READ naming the entry's path; the entry goes on without xattrs. If `onWarning` throws,
 *  the stream fails with that error. */
function warn(e: SourceEntry, cause: unknown, onWarning: XattrReaderOptions['onWarning']): void {
  const detail = cause instanceof Error ? cause.message : String(cause)
  onWarning(new SluiceError('ERR_READ', `cannot read extended attributes of ${displayPath(e.path)}: ${detail}`, { cause, path: e.path }))
}
