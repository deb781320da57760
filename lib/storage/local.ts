/**
 * Storage in a local directory: one file per key, the key's '/' components as directories.
 * `<dir>/tmp/` holds files being written; the key `tmp` and keys under it are reserved.
 *
 * put-if-absent without a race: the bytes go to a fresh temp file, are fsynced, then hard-linked
 * to the key's path. link() fails with EEXIST when the key exists, so of two writers exactly one
 * wins, and a reader sees either no file or the whole, synced one.
 *
 * putStaged splits a put in two: it returns once the bytes are in the temp file (the caller's
 * memory is free again), and its `stored` settles once the file is fsynced and linked, with
 * LOCAL_SYNC_CONCURRENCY of those at once. The object appears only synced, as with put.
 *
 * A writer holds its temp file for one object's write, fsync and link; a killed one leaves it
 * behind. leftovers() counts and removes those older than an age no live write reaches.
 *
 * stat, move and delete make their system calls synchronously: prune makes them once per chunk
 * (hundreds of thousands in a row), each takes microseconds on a local disk, and the thread-pool
 * hop of an async call cost twice the call's own CPU (docs/BENCHMARKS.md, prune). The event loop
 * waits that long; nothing else in a prune needs it meanwhile.
 *
 * Memory: get holds one object; list holds one directory listing per level of the path being
 * walked (for `chunks/ab/<hex>` at most the listing of one `chunks/ab`).
 */
import { randomBytes } from 'node:crypto'
import { constants as fsConstants, linkSync, mkdirSync, statSync, unlinkSync, type Dirent } from 'node:fs'
import { copyFile, link, lstat, mkdir, open, opendir, readdir, readFile, stat, unlink, type FileHandle } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { asSluiceError, isErrno, SluiceError } from '../errors.js'
import type { Leftovers, Storage } from './storage.js'
import { assertKey, assertPrefix, tooLarge } from './key.js'
import { LOCAL_SYNC_CONCURRENCY } from '../limits.js'
import { ByteGate } from '../flow.js'

const TMP = 'tmp'

/** Errors that mean "this filesystem cannot hard-link" (exFAT, some network mounts). */
const NO_LINK = ['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EMLINK']

/** A Storage over the directory `dir` (created on first put if missing). */
export function createLocalStorage(dir: string): Storage {
  const root = resolve(dir)
  const tmpDir = join(root, TMP)

  function pathOf(key: string): string {
    assertKey(key)
    if (key === TMP || key.startsWith(TMP + '/')) {
      throw new SluiceError('ERR_ARGS', `storage key ${JSON.stringify(key)} is reserved for temporary files`)
    }
    return join(root, key)
  }

  /** A fresh temp file holding `data`, not yet synced, and its open handle. */
  async function writeTempOpen(data: Uint8Array): Promise<{ tmp: string; fh: FileHandle }> {
    const tmp = join(tmpDir, randomBytes(12).toString('hex'))
    for (let attempt = 0; ; attempt++) {
      let fh
      try {
        fh = await open(tmp, 'wx', 0o600)
      } catch (err) {
        if (attempt === 0 && isErrno(err, 'ENOENT')) {
          await mkdir(tmpDir, { recursive: true })
          continue
        }
        throw err
      }
      try {
        await fh.writeFile(data)
      } catch (err) {
        await fh.close().catch(() => {})
        await unlink(tmp).catch(() => {})
        throw err
      }
      return { tmp, fh }
    }
  }

  /** Syncs and closes a temp file from writeTempOpen, then places it at `final` (the directory
   *  entry synced too) unless `final` exists; the temp name is removed either way. */
  async function syncAndLink(tmp: string, fh: FileHandle, final: string): Promise<boolean> {
    try {
      try {
        await fh.sync()
      } finally {
        await fh.close()
      }
      const wrote = await linkExclusive(tmp, final)
      if (wrote) await syncDir(dirname(final))
      return wrote
    } finally {
      await unlink(tmp).catch(() => {})
    }
  }

  /** Makes the new directory entry durable; best effort (some filesystems refuse to open or
   *  fsync a directory, and the data itself is already synced). */
  async function syncDir(path: string): Promise<void> {
    try {
      const fh = await open(path, 'r')
      try {
        await fh.sync()
      } finally {
        await fh.close()
      }
    } catch {
      // ignored on purpose, see above
    }
  }

  /** Places `tmp` at `final` unless `final` exists. */
  async function linkExclusive(tmp: string, final: string): Promise<boolean> {
    let madeParent = false
    for (;;) {
      try {
        await link(tmp, final)
        return true
      } catch (err) {
        if (isErrno(err, 'EEXIST')) return false
        if (!madeParent && isErrno(err, 'ENOENT')) {
          await mkdir(dirname(final), { recursive: true })
          madeParent = true
          continue
        }
        if (isErrno(err, ...NO_LINK)) {
          // No hard links here: COPYFILE_EXCL still refuses to replace an existing key, but a
          // reader racing this copy may see a short file until it completes.
          try {
            await copyFile(tmp, final, fsConstants.COPYFILE_EXCL)
          } catch (err2) {
            if (isErrno(err2, 'EEXIST')) return false
            throw err2
          }
          const fh = await open(final, 'r+')
          try {
            await fh.sync()
          } finally {
            await fh.close()
          }
          return true
        }
        throw err
      }
    }
  }

  async function put(key: string, data: Uint8Array): Promise<boolean> {
    const final = pathOf(key)
    try {
      // Cheap early answer for the common "already stored" case; link() below stays the arbiter.
      if (await exists(final)) return false
      const { tmp, fh } = await writeTempOpen(data)
      return await syncAndLink(tmp, fh, final)
    } catch (err) {
      throw asSluiceError(err, 'ERR_STORAGE', `cannot store ${key} in ${root}`)
    }
  }

  // putStaged's sync-and-link steps running at once: each holds a thread-pool thread for its
  // fsyncs, as many as the uploads that used to sync in put (LOCAL_SYNC_CONCURRENCY).
  const syncGate = new ByteGate(LOCAL_SYNC_CONCURRENCY)

  async function putStaged(key: string, data: Uint8Array): Promise<{ stored: Promise<boolean> }> {
    const final = pathOf(key)
    let staged
    try {
      if (await exists(final)) return { stored: Promise.resolve(false) }
      staged = await writeTempOpen(data)
    } catch (err) {
      throw asSluiceError(err, 'ERR_STORAGE', `cannot store ${key} in ${root}`)
    }
    const { tmp, fh } = staged
    const stored = (async () => {
      await syncGate.take(1)
      try {
        return await syncAndLink(tmp, fh, final)
      } catch (err) {
        throw asSluiceError(err, 'ERR_STORAGE', `cannot store ${key} in ${root}`)
      } finally {
        syncGate.give(1)
      }
    })()
    // The caller awaits `stored` later, or not at all when another error stops it first.
    stored.catch(() => {})
    return { stored }
  }

  async function exists(path: string): Promise<boolean> {
    try {
      return (await lstat(path)).isFile()
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return false
      throw err
    }
  }

  async function get(key: string, maxBytes?: number, into?: (length: number) => Buffer): Promise<Buffer> {
    const path = pathOf(key)
    try {
      if (maxBytes === undefined) return await readFile(path)
      const fh = await open(path, 'r')
      try {
        const { size } = await fh.stat()
        if (size > maxBytes) throw tooLarge(key, size, maxBytes, root)
        if (!into) return await fh.readFile()
        // Objects are never rewritten in place, so the size holds; a short read is returned short.
        const buf = into(size)
        let got = 0
        while (got < size) {
          const { bytesRead } = await fh.read(buf, got, size - got, got)
          if (bytesRead === 0) break
          got += bytesRead
        }
        return buf.subarray(0, got)
      } finally {
        await fh.close()
      }
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) {
        throw new SluiceError('ERR_NOT_FOUND', `no object ${key} in ${root}`, { cause: err })
      }
      throw asSluiceError(err, 'ERR_STORAGE', `cannot read ${key} in ${root}`)
    }
  }

  async function has(key: string): Promise<boolean> {
    const path = pathOf(key)
    try {
      return (await stat(path)).isFile()
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return false
      throw asSluiceError(err, 'ERR_STORAGE', `cannot check ${key} in ${root}`)
    }
  }

  async function del(key: string): Promise<void> {
    const path = pathOf(key)
    try {
      unlinkSync(path)
    } catch (err) {
      // A directory under that name is not an object either.
      if (isErrno(err, 'ENOENT', 'ENOTDIR', 'EISDIR')) return
      throw asSluiceError(err, 'ERR_STORAGE', `cannot delete ${key} in ${root}`)
    }
  }

  async function statKey(key: string): Promise<{ size: number; mtimeMs: number } | null> {
    const path = pathOf(key)
    try {
      const st = statSync(path, { throwIfNoEntry: false })
      return st?.isFile() ? { size: st.size, mtimeMs: st.mtimeMs } : null
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return null
      throw asSluiceError(err, 'ERR_STORAGE', `cannot stat ${key} in ${root}`)
    }
  }

  /** linkExclusive, synchronously: true when linked, false when `final` exists, null when this
   *  filesystem cannot hard-link (the caller goes the async way, which copies). */
  function linkExclusiveNow(src: string, final: string): boolean | null {
    let madeParent = false
    for (;;) {
      try {
        linkSync(src, final)
        return true
      } catch (err) {
        if (isErrno(err, 'EEXIST')) return false
        if (!madeParent && isErrno(err, 'ENOENT')) {
          mkdirSync(dirname(final), { recursive: true })
          madeParent = true
          continue
        }
        if (isErrno(err, ...NO_LINK)) return null
        throw err
      }
    }
  }

  /** A hard link then an unlink: never replaces `to` (link fails with EEXIST), and a crash
   *  between the two leaves both names, which the next move finishes. Keeps the mtime. */
  async function move(from: string, to: string): Promise<boolean> {
    const src = pathOf(from)
    const dst = pathOf(to)
    try {
      try {
        if (linkExclusiveNow(src, dst) === null) await linkExclusive(src, dst)
      } catch (err) {
        if (isErrno(err, 'ENOENT')) return false
        throw err
      }
      try {
        unlinkSync(src)
      } catch (err) {
        if (!isErrno(err, 'ENOENT')) throw err
      }
      // No directory fsync: a move lost to a crash leaves the object under its old name, or
      // under both, and the next prune finishes it.
      return true
    } catch (err) {
      throw asSluiceError(err, 'ERR_STORAGE', `cannot move ${from} to ${to} in ${root}`)
    }
  }

  /** Keys under `rel` ('' or ending in '/') that start with `prefix`, in byte order. A directory
   *  sorts as its name plus '/', which is where all its keys fall among its siblings' names
   *  ("a-b" < "a/x" < "a0"). */
  async function* walk(rel: string, prefix: string): AsyncGenerator<string> {
    let entries: Dirent[]
    try {
      entries = await readdir(join(root, rel), { withFileTypes: true })
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return
      throw asSluiceError(err, 'ERR_STORAGE', `cannot list ${rel || '/'} in ${root}`)
    }
    const items: { sortKey: string; name: string; dir: boolean }[] = []
    for (const e of entries) {
      const dir = e.isDirectory()
      if (!dir && !e.isFile()) continue
      if (rel === '' && e.name === TMP) continue
      if (!isKeyName(e.name)) continue
      items.push({ sortKey: dir ? e.name + '/' : e.name, name: e.name, dir })
    }
    entries = []
    items.sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0))
    for (const item of items) {
      const key = rel + item.name
      if (item.dir) {
        const sub = key + '/'
        if (sub.startsWith(prefix) || prefix.startsWith(sub)) yield* walk(sub, prefix)
      } else if (key.startsWith(prefix)) {
        yield key
      }
    }
  }

  function list(prefix: string): AsyncIterable<string> {
    assertPrefix(prefix)
    // Start at the deepest directory the prefix names in full.
    const base = prefix.slice(0, prefix.lastIndexOf('/') + 1)
    if (base.startsWith(TMP + '/')) return (async function* () {})()
    return walk(base, prefix)
  }

  /** Streams tmp/ (one entry at a time: a directory of many leftovers costs no memory). */
  async function leftovers(maxAgeMs: number, remove: boolean): Promise<Leftovers> {
    const found: Leftovers = { files: 0, bytes: 0 }
    const cutoff = Date.now() - maxAgeMs
    let dir
    try {
      dir = await opendir(tmpDir)
    } catch (err) {
      if (isErrno(err, 'ENOENT', 'ENOTDIR')) return found
      throw asSluiceError(err, 'ERR_STORAGE', `cannot list ${tmpDir}`)
    }
    try {
      for await (const e of dir) {
        if (!e.isFile()) continue
        const path = join(tmpDir, e.name)
        let st
        try {
          st = await lstat(path)
        } catch (err) {
          if (isErrno(err, 'ENOENT')) continue
          throw err
        }
        if (st.mtimeMs >= cutoff) continue
        if (remove) {
          try {
            await unlink(path)
          } catch (err) {
            if (isErrno(err, 'ENOENT')) continue
            throw err
          }
        }
        found.files++
        found.bytes += st.size
      }
    } catch (err) {
      throw asSluiceError(err, 'ERR_STORAGE', `cannot clean ${tmpDir}`)
    }
    return found
  }

  return {
    put,
    putStaged,
    get,
    has,
    list,
    delete: del,
    leftovers,
    stat: statKey,
    move,
    describe: () => root,
    close: async () => {},
  }
}

/** A directory entry that can be part of a key (skips stray files a user may have left). */
function isKeyName(name: string): boolean {
  if (name === '.' || name === '..') return false
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i)
    if (c <= 0x20 || c >= 0x7f) return false
  }
  return true
}
