/**
 * verify: compares files on disk with a snapshot's extents, without trusting anything but the
 * chunk ids. An extent that is a whole chunk (offset 0) is checked by hashing the bytes on disk
 * with the repository's id key: equal to the extent's chunk id means equal to the chunk. Any
 * other extent (a slice of a chunk packing small files) is compared with the chunk itself,
 * loaded through a small cache. Used by restore's `--verify` pass after writing (createVerifier)
 * and by `--overwrite if-changed --verify` to decide that an existing file is already correct.
 *
 * Memory: one extent's bytes read back (≤ CHUNK_MAX), the cache of RESTORE_CHUNK_CACHE_BYTES of
 * loaded chunks, one record and one open file.
 */
import fs from 'node:fs'
import { Writable } from 'node:stream'
import { isHole, type EntryMeta, type Extent, type ExtentsItem, type RecordItem } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { displayPath, hex } from '../../lib/bytes.js'
import { Lru } from '../../lib/flow.js'
import { CHUNK_MAX, RESTORE_CHUNK_CACHE_BYTES } from '../../lib/limits.js'
import type { ChunkLoader } from './read-snapshot.js'

/** Zeros to compare a hole's bytes on disk with, a block at a time. */
const ZERO_BLOCK = Buffer.alloc(64 * 1024)

export interface ContentKey extends ChunkLoader {
  /** The repository's chunk id of some plaintext (keyed BLAKE2b-256). */
  chunkId(data: Uint8Array): Buffer
}

/** Loads chunks for slices, keeping a few (packed small files share them). */
export function chunkCache(key: ContentKey): (id: Buffer) => Promise<Buffer> {
  const cache = new Lru<string, Promise<Buffer>>(Math.max(2, Math.floor(RESTORE_CHUNK_CACHE_BYTES / CHUNK_MAX)))
  return id => {
    const k = hex(id)
    let p = cache.get(k)
    if (!p) {
      p = key.loadChunk(id)
      p.catch(() => {})
      cache.set(k, p)
    }
    return p
  }
}

/** Reads a file's content extent by extent from an open descriptor and says whether it matches. */
export class ExtentChecker {
  pos = 0
  constructor(
    private readonly fd: number,
    private readonly key: ContentKey,
    private readonly load: (id: Buffer) => Promise<Buffer>,
  ) {}

  /** True while every extent so far matches the bytes at its place in the file. */
  async check(extents: readonly Extent[]): Promise<boolean> {
    for (const x of extents) {
      if (isHole(x)) {
        // A hole (sparse file): zeros on disk, whether left as a hole or written (--no-sparse).
        if (!this.zeros(x.length)) return false
        continue
      }
      if (x.length > CHUNK_MAX) return false
      const buf = Buffer.allocUnsafe(x.length)
      let got = 0
      while (got < x.length) {
        const n = fs.readSync(this.fd, buf, got, x.length - got, this.pos + got)
        if (n === 0) return false
        got += n
      }
      this.pos += x.length
      if (x.offset === 0 && this.key.chunkId(buf).equals(x.id)) continue
      const chunk = await this.load(x.id)
      if (x.offset + x.length > chunk.length || !chunk.subarray(x.offset, x.offset + x.length).equals(buf)) return false
    }
    return true
  }

  /** Reads `length` bytes at the current position, a block at a time: true when all are zero. */
  private zeros(length: number): boolean {
    const buf = Buffer.allocUnsafe(Math.min(length, ZERO_BLOCK.length))
    let left = length
    while (left > 0) {
      const n = fs.readSync(this.fd, buf, 0, Math.min(left, buf.length), this.pos)
      if (n === 0 || !buf.subarray(0, n).equals(ZERO_BLOCK.subarray(0, n))) return false
      this.pos += n
      left -= n
    }
    return true
  }
}

export interface VerifierOptions {
  /** Where the snapshot's (selected, rewritten) paths were restored. */
  target: string
  key: ContentKey
  /** One per file whose content on disk is not the snapshot's (ERR_VERIFY). */
  onMismatch: (err: SluiceError) => void
  /** Files to leave out of the check (left alone by --overwrite never / if-newer). */
  skip?: (entry: EntryMeta, st: fs.BigIntStats | undefined) => boolean
  /** Called for each file checked (for counts). */
  onChecked?: (entry: EntryMeta) => void
}

/**
 * A sink of RecordItems and ExtentsItems (the selected snapshot, read a second time) that reads
 * each restored regular file back and checks it: size, then every extent (see ExtentChecker).
 * Hardlinks after the first are checked through the first. A file that cannot be opened, or is
 * not a regular file, is a mismatch.
 */
export function createVerifier(opts: VerifierOptions): Writable {
  const root = Buffer.from(opts.target.replace(/\/+$/, '') || '/')
  const load = chunkCache(opts.key)
  let cur: { entry: EntryMeta; fd: number; checker: ExtentChecker; ok: boolean } | null = null
  const fail = (e: EntryMeta, why: string) =>
    opts.onMismatch(new SluiceError('ERR_VERIFY', `${displayPath(e.path)}: ${why}`, { path: e.path }))
  const finish = () => {
    if (!cur) return
    const c = cur
    cur = null
    fs.closeSync(c.fd)
    if (c.ok && c.checker.pos !== c.entry.size) {
      c.ok = false
      fail(c.entry, `the snapshot's extents hold ${c.checker.pos} bytes, not ${c.entry.size}`)
    } else if (!c.ok) fail(c.entry, 'content differs from the snapshot')
    opts.onChecked?.(c.entry)
  }
  const handle = async (item: RecordItem | ExtentsItem): Promise<void> => {
    if (item.kind === 'extents') {
      if (cur?.ok) cur.ok = await cur.checker.check(item.extents)
      return
    }
    finish()
    const e = item.entry
    if (e.type !== 'file' || e.hardlinkTo) return
    const p = Buffer.concat([root, Buffer.from('/'), e.path])
    const st = fs.lstatSync(p, { bigint: true, throwIfNoEntry: false })
    if (opts.skip?.(e, st)) return
    if (!st || !st.isFile()) return fail(e, st ? 'not a regular file' : 'missing')
    if (st.size !== BigInt(e.size)) return fail(e, `size ${st.size}, the snapshot's is ${e.size}`)
    let fd: number
    try {
      fd = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW)
    } catch (err) {
      return fail(e, `cannot read it back: ${(err as Error).message}`)
    }
    const checker = new ExtentChecker(fd, opts.key, load)
    cur = { entry: e, fd, checker, ok: true }
    cur.ok = await checker.check(item.extents)
  }
  return new Writable({
    objectMode: true,
    highWaterMark: 2,
    write(item: RecordItem | ExtentsItem, _enc, cb) {
      handle(item).then(() => cb(), err => cb(err))
    },
    final(cb) {
      try {
        finish()
        cb()
      } catch (err) {
        cb(err as Error)
      }
    },
    destroy(err, cb) {
      if (cur) fs.closeSync(cur.fd)
      cur = null
      cb(err)
    },
  })
}
