/**
 * The one typed loader of the sluice_native addon (native/*.c): the few Linux syscalls Node's fs
 * lacks, with paths as raw bytes, the walk's lstat and the batched small-file reads, and the
 * chunker's hot loop. fs.utimes takes float seconds and loses nanoseconds, cannot set a symlink's
 * own times, fs has no mknod, and the xattr packages take string paths, so names that are not
 * UTF-8 cannot be reached.
 *
 * Every call is synchronous (one or a few syscalls, microseconds) except the batches
 * (`readFiles`, `readXattrs`, `writeFiles`, `listDir`, `statAt`) and `zstdCompress`, which run on a thread-pool
 * thread and return a promise. None follows a final symlink. Errors are
 * shaped like Node's fs errors: `code` is the errno name ('ENOENT', 'EACCES', 'ENOTSUP', ...),
 * `errno` the negated errno number, `syscall` the failing call; test them with `isErrno` from
 * lib/errors.ts. Bad arguments throw a TypeError or RangeError with Node's codes
 * (ERR_INVALID_ARG_TYPE, ERR_OUT_OF_RANGE, ERR_MISSING_ARGS); a path holding a NUL byte is
 * refused (ERR_INVALID_ARG_VALUE) rather than silently naming a shorter path.
 *
 * The addon is built by `node-gyp rebuild`, which npm runs by itself on `npm ci`/`npm install`
 * (the package has a binding.gyp and no install script). It is loaded on first use, so importing
 * this module never fails; a missing or unloadable addon is one ERR_NATIVE error naming it.
 */

import { constants, existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { constants as osConstants } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import util from 'node:util'
import type { EntryMeta, Xattr } from './entry.js'
import { SluiceError } from './errors.js'

/** A point in time as whole seconds since the epoch (may be negative or beyond 2^31) and
 *  nanoseconds 0..999999999, as stored in EntryMeta. */
export interface Timespec {
  sec: number
  nsec: number
}

/**
 * One step of lib/fastcdc.ts `Cdc.next` in C: scans `buf` from `start` and returns the index just
 * past a chunk boundary, or -1 when `buf` ended first. `state` is the chunker's Float64Array
 * [h, n, min, avg, max, maskS, maskL]; h and n are read and written back (both 0 after a cut).
 * gear must hold 256 values; min/avg/max must be integers below 2^53 with 0 < min <= avg <= max.
 */
export type CdcNext = (gear: Int32Array, buf: Uint8Array, start: number, state: Float64Array) => number

/** Copies all of `src` into `dst` at `offset` (native/fsbatch.c copy). */
export type CopyInto = (dst: Uint8Array, offset: number, src: Uint8Array) => void

/** An opaque zstd compression context of native/zstdpool.c. */
export type ZstdContext = { readonly __zstdContext: unique symbol }

/** An opaque pair of keys of native/decodepool.c. */
export type DecodeContext = { readonly __decodeContext: unique symbol }

/** The whole addon interface, as native/sluice_native.c, fsbatch.c, restorebatch.c,
 *  xattrbatch.c, walkbatch.c, zstdpool.c and decodepool.c export it. */
export interface Addon {
  utimens(path: Buffer, atimeSec: number, atimeNsec: number, mtimeSec: number, mtimeNsec: number): void
  lgetxattrs(path: Buffer): Array<[Buffer, Buffer]>
  lsetxattr(path: Buffer, name: Buffer, value: Buffer): void
  mknod(path: Buffer, mode: number, dev: number): void
  /** glibc mallopt; false off glibc or when glibc refused a value. */
  tuneMalloc(mmapThreshold: number, arenaMax: number): boolean
  /** glibc malloc_trim(0); false off glibc. */
  trimMalloc(): boolean
  releaseFilePages(): number
  execSelf(flags: string[]): number
  cdcNext: CdcNext
  /** Writes twelve stat fields into `out` and returns 0, or returns the errno. */
  lstat(path: Buffer, out: Float64Array): number
  readFiles(paths: Buffer[], sizes: number[], arena: Buffer, results: Int32Array, stats?: Float64Array): Promise<void>
  readXattrs(paths: Buffer[], arena: Buffer, results: Int32Array): Promise<void>
  listDir(path: Buffer, maxBytes: number): Promise<Buffer | number>
  statAt(dir: Buffer, listing: Buffer, from: number, to: number, out: Float64Array, links: Buffer): Promise<void>
  zstdContext(level: number, windowLog: number): ZstdContext
  zstdCompress(ctx: ZstdContext, src: Uint8Array, dst: Uint8Array): Promise<number>
  zstdBound(length: number): number
  decodeContext(encKey: Uint8Array, idKey: Uint8Array): DecodeContext
  openObject(ctx: DecodeContext, id: Uint8Array, obj: Uint8Array, bound: number, verify: boolean): Promise<number>
  decodeFrame(ctx: DecodeContext, id: Uint8Array, frame: Uint8Array, dst: Uint8Array, verify: boolean): Promise<number>
  writeFiles(paths: Buffer[], meta: Float64Array, arena: Buffer, results: Int32Array): Promise<void>
  copy: CopyInto
  seekData(fd: number, offset: number, hole: boolean): number
}

/** Where the addon is built, relative to the package root. */
export const ADDON_PATH = join('build', 'Release', 'sluice_native.node')

let addon: Addon | undefined

/** The package root is the first directory above this file holding binding.gyp: the same from
 *  lib/native.ts (run by tsx) and from dist/lib/native.js (compiled). */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (;;) {
    if (existsSync(join(dir, 'binding.gyp'))) return dir
    const up = dirname(dir)
    if (up === dir) throw new SluiceError('ERR_NATIVE', `the native addon cannot be found: no binding.gyp above ${fileURLToPath(import.meta.url)}`)
    dir = up
  }
}

/** The addon, loaded on first use. Throws ERR_NATIVE naming it when it is missing or broken. */
export function loadAddon(): Addon {
  if (addon) return addon
  const root = packageRoot()
  const file = join(root, ADDON_PATH)
  if (!existsSync(file)) throw new SluiceError('ERR_NATIVE', `the native addon ${file} is missing: run npm rebuild in ${root}`)
  try {
    addon = createRequire(import.meta.url)(file) as Addon
  } catch (cause) {
    const why = cause instanceof Error ? cause.message.split('\n')[0] : String(cause)
    throw new SluiceError('ERR_NATIVE', `the native addon ${file} cannot be loaded (${why}): run npm rebuild in ${root}`, { cause })
  }
  return addon
}

/** Sets the access and modification times of `path` itself (a symlink's own times, not its
 *  target's), to the nanosecond. */
export function utimens(path: Buffer, atime: Timespec, mtime: Timespec): void {
  loadAddon().utimens(path, atime.sec, atime.nsec, mtime.sec, mtime.nsec)
}

/** Every extended attribute of `path` itself (not a symlink's target), sorted by name bytes.
 *  Values may be binary or empty. A filesystem without xattr support gives []. An attribute
 *  removed while we read is left out. Size is bounded by the kernel: names list and each value
 *  at most 64 KiB on Linux. */
export function lgetxattrs(path: Buffer): Xattr[] {
  const pairs = loadAddon().lgetxattrs(path)
  if (pairs.length === 0) return [] // most files: nothing to map or sort
  return sortXattrs(pairs.map(([name, value]): Xattr => ({ name, value })))
}

/** Sorts `out` by name bytes, in place, and returns it. Insertion sort: a file has a few names,
 *  and Array.prototype.sort allocates a work array per call (~1 KB per file on a tree where
 *  every file has two xattrs). */
function sortXattrs(out: Xattr[]): Xattr[] {
  for (let i = 1; i < out.length; i++) {
    const x = out[i]!
    let j = i - 1
    while (j >= 0 && Buffer.compare(out[j]!.name, x.name) > 0) {
      out[j + 1] = out[j]!
      j--
    }
    out[j + 1] = x
  }
  return out
}

/** Creates or replaces one extended attribute on `path` itself. */
export function lsetxattr(path: Buffer, name: Buffer, value: Buffer): void {
  loadAddon().lsetxattr(path, name, value)
}

/** mknod(2): `mode` holds the file type (S_IFIFO, S_IFCHR, S_IFBLK) and permission bits;
 *  `dev` is the device number as lstat's rdev reports it. Devices need root (EPERM otherwise).
 *  The umask applies, as for mkdir. */
export function mknod(path: Buffer, mode: number, dev: number): void {
  loadAddon().mknod(path, mode, dev)
}

/** Creates a FIFO with permission bits `perm` (the umask applies). */
export function mkfifo(path: Buffer, perm: number): void {
  loadAddon().mknod(path, constants.S_IFIFO | (perm & 0o7777), 0)
}

/** lseek SEEK_DATA (or SEEK_HOLE with `hole`): where the next data (or hole) of the open file
 *  `fd` starts at or after `offset`, or -1 when no data follows (ENXIO). Throws an fs-shaped
 *  error otherwise: EINVAL where the filesystem cannot say (then treat the file as all data). */
export function seekData(fd: number, offset: number, hole: boolean): number {
  return loadAddon().seekData(fd, offset, hole)
}

/** glibc mallopt: fixes the mmap threshold and caps the arenas (0: leave them). Both must be
 *  non-negative integers (a RangeError otherwise). False off glibc. The policy that calls it,
 *  and its numbers, are in lib/memory.ts. */
export function tuneMalloc(mmapThreshold: number, arenaMax: number): boolean {
  return loadAddon().tuneMalloc(mmapThreshold, arenaMax)
}

/** glibc malloc_trim(0): the free pages inside malloc's heaps given back to the system. False
 *  off glibc or when the addon cannot be loaded (nothing else depends on it). */
export function trimMalloc(): boolean {
  return loaded()?.trimMalloc() ?? false
}

/** Drops the clean pages of the process's read-only file mappings (node's binary, libraries)
 *  from its page tables; what runs again faults back in from the page cache. Returns the bytes
 *  dropped (0 without the addon). native/sluice_native.c `releaseFilePages`. */
export function releaseFilePages(): number {
  return loaded()?.releaseFilePages() ?? 0
}

/** Replaces this process by its own executable run again with the same raw command line and
 *  node's `flags` before it (same pid, descriptors and environment: cli/main.ts's low-memory
 *  run). Returns only when that failed: the errno (ENOSYS off Linux, -1 without the addon).
 *  native/sluice_native.c `execSelf`. */
export function execSelf(flags: string[]): number {
  return loaded()?.execSelf(flags) ?? -1
}

/** The native chunker step, or undefined when the addon cannot be loaded: the chunker then
 *  keeps to its TypeScript loop, which cuts at the same places. */
export function nativeCdcNext(): CdcNext | undefined {
  return loaded()?.cdcNext
}

/** A memcpy into any Uint8Array, or undefined when the addon cannot be loaded. */
export function nativeCopy(): CopyInto | undefined {
  return loaded()?.copy
}

let missing = false

/** The addon, or undefined when it cannot be loaded (asked once). */
function loaded(): Addon | undefined {
  if (addon || missing) return addon
  try {
    return loadAddon()
  } catch {
    missing = true
    return undefined
  }
}

/** Below this V8 copies even into shared memory: an addon call costs about what V8's slow path
 *  takes for 256 bytes (docs/TUNING.md). */
const NATIVE_COPY_MIN = 256

/** Copies all of `src` into `dst` at `offset`, for copies into shared memory: V8 copies there
 *  byte by byte unless source and destination are equally aligned, so larger pieces go through
 *  the addon's memcpy when it is built. */
export function copyBytes(dst: Uint8Array, offset: number, src: Uint8Array): void {
  const copy = src.length >= NATIVE_COPY_MIN ? nativeCopy() : undefined
  if (copy) copy(dst, offset, src)
  else dst.set(src, offset)
}

/** lstat fields as numbers (native/fsbatch.c), named as in EntryMeta; `mode` here is the whole
 *  st_mode (type bits too) and `rdev` is always set. Inode and device numbers above 2^53 lose
 *  precision, as Number(bigint) does. */
export type LStat = Pick<EntryMeta, 'uid' | 'gid' | 'size' | 'mtimeSec' | 'mtimeNsec' | 'ctimeSec' | 'ctimeNsec' | 'ino' | 'dev' | 'nlink'> & {
  mode: number
  rdev: number
}

const statOut = new Float64Array(12)

/** An error shaped like Node's fs errors (`code`, negated `errno`, `syscall`, `path`). */
export function errnoError(errno: number, syscall: string, path: Buffer): NodeJS.ErrnoException {
  const [code, desc] = util.getSystemErrorMap().get(-errno) ?? [`E${errno}`, `error ${errno}`]
  const err: NodeJS.ErrnoException = new Error(`${code}: ${desc}, ${syscall}`)
  err.code = code
  err.errno = -errno
  err.syscall = syscall
  err.path = path.toString('latin1')
  return err
}

/** lstat of `path` itself as twelve numbers, without the Stats object (four Dates or twenty
 *  BigInts) that fs.lstatSync builds: for a walk of many files that object is most of its
 *  garbage. Synchronous. Throws an fs-shaped error. */
export function lstatNumbers(path: Buffer): LStat {
  const e = loadAddon().lstat(path, statOut)
  if (e !== 0) throw errnoError(e, 'lstat', path)
  return statFields(statOut, 0)
}

/** lstat's twelve numbers as the addon writes them (native/fsbatch.c), from `out[at]` on. */
function statFields(out: Float64Array, at: number): LStat {
  return {
    mode: out[at]!, uid: out[at + 1]!, gid: out[at + 2]!, size: out[at + 3]!, mtimeSec: out[at + 4]!, mtimeNsec: out[at + 5]!,
    ctimeSec: out[at + 6]!, ctimeNsec: out[at + 7]!, ino: out[at + 8]!, dev: out[at + 9]!, nlink: out[at + 10]!, rdev: out[at + 11]!,
  }
}

/**
 * A directory's names, sorted by raw bytes (Buffer.compare), in one buffer (native/walkbatch.c):
 * name i is `names.subarray(offsets[i], offsets[i + 1] - 1)` (each is followed by a NUL), its
 * dirent type `types[i]` (DT_DIR 4, DT_UNKNOWN 0, ...). `bytes` is what the listing holds.
 */
export interface Listing {
  /** The buffer statAt reads (do not change it). */
  raw: Buffer
  count: number
  offsets: Uint32Array
  types: Uint8Array
  names: Buffer
  bytes: number
}

/** dirent types of a Listing. */
export const DT_UNKNOWN = 0
export const DT_DIR = 4

/**
 * Lists directory `path` on a thread-pool thread ('.' and '..' left out), sorted by raw bytes.
 * Resolves with the listing, with 'too big' when it would take more than `maxBytes` (nothing is
 * kept: the caller lists it another way), or rejects with an fs-shaped error (syscall 'scandir').
 */
export async function listDir(path: Buffer, maxBytes: number): Promise<Listing | 'too big'> {
  const r = await loadAddon().listDir(path, Math.max(0, Math.min(maxBytes, 0xffffffff)))
  if (typeof r === 'number') {
    if (r === -E2BIG) return 'too big'
    throw errnoError(-r, 'scandir', path)
  }
  const count = r.readUInt32LE(0)
  const head = 4 + 4 * (count + 1) + count
  return {
    raw: r,
    count,
    offsets: new Uint32Array(r.buffer, r.byteOffset + 4, count + 1),
    types: r.subarray(4 + 4 * (count + 1), head),
    names: r.subarray(head),
    bytes: r.length,
  }
}

const E2BIG = osConstants.errno.E2BIG

/** Doubles per name in statAt's `out`: errno (0 when lstat succeeded), mode, uid, gid, size,
 *  mtime sec, mtime nsec, ctime sec, ctime nsec, ino, dev, nlink, rdev, and for a symlink its
 *  target's offset in `links` and length (or -errno of readlinkat; -ERANGE when it did not fit in
 *  `links`: read it alone). */
export const STAT_AT_FIELDS = 15

/** lstats names [from, to) of `listing` (of directory `dir`) on a thread-pool thread, relative
 *  to the directory (fstatat, readlinkat): STAT_AT_FIELDS doubles per name into `out`, symlink
 *  targets back to back into `links`. Leave listing, out and links alone until it settles. */
export function statAt(dir: Buffer, listing: Listing, from: number, to: number, out: Float64Array, links: Buffer): Promise<void> {
  return loadAddon().statAt(dir, listing.raw, from, to, out, links)
}

/** The LStat of name `i - from` in statAt's `out`. */
export function statAtResult(out: Float64Array, k: number): LStat {
  return statFields(out, STAT_AT_FIELDS * k + 1)
}

/**
 * Reads at most `sizes[i]` bytes of each file `paths[i]` (opened with O_NOFOLLOW | O_NONBLOCK)
 * into `arena`, back to back, on one thread-pool thread. Afterwards `results[2i]` is the number
 * of bytes read (fewer if the file shrank) or -errno, and `results[2i+1]` the failing step
 * (0 open, 1 read). The arena must hold the sum of the sizes. With `stats`
 * (READ_FILES_STAT_FIELDS per file), each file read is lstat'ed again by its path right after its
 * read, on the same thread (`readFilesStat` reads the result), so a caller that checks for
 * changes does not lstat on the main thread.
 */
export function readFiles(paths: Buffer[], sizes: number[], arena: Buffer, results: Int32Array, stats?: Float64Array): Promise<void> {
  return loadAddon().readFiles(paths, sizes, arena, results, stats)
}

/** Doubles per file in readFiles' `stats`: the errno of the lstat after the read (0: it was
 *  done), then lstat's twelve numbers (native/fsbatch.c READ_STAT_FIELDS). */
export const READ_FILES_STAT_FIELDS = 13

/** File `i`'s lstat after its read, from readFiles' `stats` (only for a file whose read
 *  succeeded). Throws the fs-shaped error of that lstat. */
export function readFilesStat(stats: Float64Array, i: number, path: Buffer): LStat {
  const b = READ_FILES_STAT_FIELDS * i
  const e = stats[b]!
  if (e !== 0) throw errnoError(e, 'lstat', path)
  return statFields(stats, b + 1)
}

/** Numbers per path in readXattrs' `results`: the attribute count or -errno, the failing step
 *  (READ_XATTRS_STEPS), the bytes used in the arena. */
export const READ_XATTRS_RESULTS = 3
/** Steps of readXattrs; 'room' means the arena's rest (or 64 KiB of names) was too small: that
 *  path and every later one of the call were left unread. */
export const READ_XATTRS_STEPS = ['llistxattr', 'lgetxattr', 'room'] as const

/**
 * Reads every extended attribute of each of `paths` (not following a final symlink) into
 * `arena`, path after path, on one thread-pool thread (native/xattrbatch.c). Per path,
 * `results[3i]` is the number of attributes (0 without xattr support) or -errno,
 * `results[3i+1]` the failing step (READ_XATTRS_STEPS) and `results[3i+2]` the bytes it used
 * in the arena, which {@link xattrsAt} decodes. The first path that does not fit in the rest of
 * the arena ends the call: it and the paths after it get step 'room' and are not read. The promise rejects only on misuse.
 */
export function readXattrs(paths: Buffer[], arena: Buffer, results: Int32Array): Promise<void> {
  return loadAddon().readXattrs(paths, arena, results)
}

/** The `count` attributes readXattrs wrote at `arena[offset, offset + length)`, copied out of
 *  the arena and sorted by name bytes (as lgetxattrs returns them). */
export function xattrsAt(arena: Buffer, offset: number, length: number, count: number): Xattr[] {
  const out: Xattr[] = []
  let at = offset
  const end = offset + length
  for (let i = 0; i < count; i++) {
    if (at + 4 > end) throw new RangeError('readXattrs: attribute list overruns its bytes')
    const nameLen = arena.readUInt32LE(at)
    const valueAt = at + 4 + nameLen
    if (valueAt + 4 > end) throw new RangeError('readXattrs: attribute list overruns its bytes')
    const valueLen = arena.readUInt32LE(valueAt)
    if (valueAt + 4 + valueLen > end) throw new RangeError('readXattrs: attribute list overruns its bytes')
    out.push({ name: Buffer.from(arena.subarray(at + 4, valueAt)), value: Buffer.from(arena.subarray(valueAt + 4, valueAt + 4 + valueLen)) })
    at = valueAt + 4 + valueLen
  }
  return sortXattrs(out)
}

/**
 * zstd on the thread pool (native/zstdpool.c, the zstd zstd-napi vendors): one context at
 * `level` (and window `windowLog` when above 0), one job at a time. `compress` compresses all of
 * `src` into `dst` (at least `bound(src.length)` bytes never fails) as one frame and resolves
 * with its length; neither buffer may be touched until it settles. Memory: the zstd context
 * (level 3: ~1-2 MB; level 19, window 2^17: ~3 MB; sized by the largest chunk) and the
 * caller's buffers.
 */
export class PoolZstd {
  private readonly ctx: ZstdContext
  constructor(level: number, windowLog: number) {
    this.ctx = loadAddon().zstdContext(level, windowLog)
  }
  compress(src: Uint8Array, dst: Uint8Array): Promise<number> {
    return loadAddon().zstdCompress(this.ctx, src, dst)
  }
  static bound(length: number): number {
    return loadAddon().zstdBound(length)
  }
}

/** Numbers per file in writeFiles' `meta`: content offset and length in the arena, size, mode,
 *  uid, gid, mtime seconds and nanoseconds, flags (WRITE_FILES_CHOWN), the offset and length in
 *  the arena of its xattrs packed by packXattrs (0 and 0: none). */
export const WRITE_FILES_META = 11
/** Numbers per file in writeFiles' `results`: -errno of the step that lost the file (0 when it
 *  was written) and that step (WRITE_FILES_STEPS), then the errnos of chown, chmod and utimens,
 *  and of the first of its xattrs that failed. */
export const WRITE_FILES_RESULTS = 6
export const WRITE_FILES_STEPS = ['create', 'write', 'truncate', 'close'] as const
export const WRITE_FILES_CHOWN = 1

/** Bytes packXattrs needs for `xattrs`, or -1 when a name cannot be packed (empty, or holding a
 *  NUL: such a file's xattrs are set one by one, and fail there, named). */
export function packedXattrsLength(xattrs: readonly { name: Buffer; value: Buffer }[]): number {
  let n = 0
  for (const x of xattrs) {
    if (x.name.length === 0 || x.name.includes(0)) return -1
    n += x.name.length + 5 + x.value.length
  }
  return n
}

/** Packs `xattrs` into `to` at `at` as writeFiles reads them (native/restorebatch.c): each name,
 *  a NUL, the value's length (4 bytes little-endian), the value. Returns the end offset. */
export function packXattrs(xattrs: readonly { name: Buffer; value: Buffer }[], to: Buffer, at: number): number {
  for (const x of xattrs) {
    at += x.name.copy(to, at)
    to[at++] = 0
    at = to.writeUInt32LE(x.value.length, at)
    at += x.value.copy(to, at)
  }
  return at
}

/**
 * Creates (O_EXCL, O_NOFOLLOW), writes and finishes each file `paths[i]` on one thread-pool
 * thread (native/restorebatch.c): content from `arena`, then truncate to the size, owner (flag
 * WRITE_FILES_CHOWN), mode, xattrs (packXattrs), times, close. A file whose write fails is
 * removed. See WRITE_FILES_META and WRITE_FILES_RESULTS for the layout of `meta` and `results`.
 */
export function writeFiles(paths: Buffer[], meta: Float64Array, arena: Buffer, results: Int32Array): Promise<void> {
  return loadAddon().writeFiles(paths, meta, arena, results)
}

/** Negative results of PoolDecoder's calls (native/decodepool.c DECODE_*). */
export const DECODE_TRUNCATED = -1
export const DECODE_FORMAT = -2
export const DECODE_AUTH = -3
export const DECODE_COMPRESSION = -4
/** The frame's content size is not written, unreadable, or above the bound. */
export const DECODE_FRAME_SIZE = -5
export const DECODE_ZSTD = -6
export const DECODE_LENGTH = -7
export const DECODE_ID = -8
export const DECODE_INTERNAL = -9

/**
 * Chunk objects opened on the thread pool (native/decodepool.c): XChaCha20-Poly1305 (OpenSSL's
 * ChaCha20-Poly1305 under an HChaCha20 subkey), zstd and keyed BLAKE2b-256, the bytes of
 * lib/repo/objects.ts openChunk, while the calling thread goes on. `open` decrypts a chunk
 * object in place (its payload becomes plaintext at obj[26, obj.length - 16)) and resolves with
 * the payload's length for a stored chunk, the frame's content size (at most `bound`) for a zstd
 * one, or a negative DECODE_* status; `frame` decompresses a decrypted frame into `dst` (exactly
 * its content size). With `verify` the plaintext is hashed with the id key and compared with
 * `id`. No buffer may be touched until the promise settles. Memory: the keys (64 bytes), per
 * pool thread one zstd and one cipher context (~100 KB), the caller's buffers.
 */
export class PoolDecoder {
  private constructor(private readonly a: Addon, private readonly ctx: DecodeContext) {}
  /** A decoder for these keys, or undefined when the addon (or its decoder) cannot be loaded:
   *  the caller keeps to lib/repo/objects.ts openChunk, which gives the same bytes. */
  static of(encKey: Uint8Array, idKey: Uint8Array): PoolDecoder | undefined {
    const a = loaded()
    if (!a || typeof a.decodeContext !== 'function') return undefined
    return new PoolDecoder(a, a.decodeContext(encKey, idKey))
  }
  open(id: Uint8Array, obj: Uint8Array, bound: number, verify: boolean): Promise<number> {
    return this.a.openObject(this.ctx, id, obj, bound, verify)
  }
  frame(id: Uint8Array, frame: Uint8Array, dst: Uint8Array, verify: boolean): Promise<number> {
    return this.a.decodeFrame(this.ctx, id, frame, dst, verify)
  }
}
