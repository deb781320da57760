/** Helpers for raw-byte paths and ids. Paths inside a snapshot are Buffers, '/'-separated,
 *  relative (no leading slash); names may hold any byte but '/' and NUL. */

const SLASH = 0x2f

export function hex(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')
}

/** Canonical order of docs/DESIGN.md: depth first, siblings by raw name bytes, a directory before its
 *  children. Equivalent to comparing byte strings with '/' ranked below every other byte. */
export function comparePaths(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a[i]!, y = b[i]!
    if (x === y) continue
    if (x === SLASH) return -1
    if (y === SLASH) return 1
    return x - y
  }
  return a.length - b.length
}

/** Joins snapshot path components with '/'. An empty parent means the root. */
export function joinPath(parent: Uint8Array, name: Uint8Array): Buffer {
  if (parent.length === 0) return Buffer.from(name)
  return Buffer.concat([parent, Buffer.of(SLASH), name])
}

/** True when `path` equals `prefix` or lies below it. */
export function isUnder(path: Uint8Array, prefix: Uint8Array): boolean {
  if (prefix.length === 0) return true
  if (path.length < prefix.length) return false
  for (let i = 0; i < prefix.length; i++) if (path[i] !== prefix[i]) return false
  return path.length === prefix.length || path[prefix.length] === SLASH
}

/** The components of a snapshot path. */
export function splitPath(path: Uint8Array): Buffer[] {
  const out: Buffer[] = []
  let start = 0
  for (let i = 0; i <= path.length; i++) {
    if (i === path.length || path[i] === SLASH) {
      out.push(Buffer.from(path.subarray(start, i)))
      start = i + 1
    }
  }
  return out
}

/** The parent of a snapshot path ('' for a top-level name). */
export function parentPath(path: Uint8Array): Buffer {
  const i = Buffer.from(path.buffer, path.byteOffset, path.byteLength).lastIndexOf(SLASH)
  return i < 0 ? Buffer.alloc(0) : Buffer.from(path.subarray(0, i))
}

/** True when the bytes are valid UTF-8 (so a JS string path names the same file). */
export function isUtf8(b: Uint8Array): boolean {
  return Buffer.from(Buffer.from(b).toString('utf8'), 'utf8').equals(b)
}

/** A path for humans: UTF-8 where valid, other bytes as \xNN, control characters escaped. */
export function displayPath(b: Uint8Array): string {
  let s = ''
  const buf = Buffer.from(b)
  const text = buf.toString('utf8')
  if (Buffer.from(text, 'utf8').equals(buf)) {
    for (const ch of text) {
      const c = ch.codePointAt(0)!
      s += c < 0x20 || c === 0x7f ? `\\x${c.toString(16).padStart(2, '0')}` : ch === '\\' ? '\\\\' : ch
    }
    return s
  }
  for (const c of buf) {
    s += c >= 0x20 && c < 0x7f && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`
  }
  return s
}

/**
 * Small byte strings (chunk ids) copied into slabs of their own. An id fresh from the hash is a
 * view into Node's shared 8 KiB allocation pool, and a view kept for long pins its whole pool
 * slab: a list of a thousand such ids can hold 8 MB. Ids that are kept (the open tree nodes of
 * the metadata, the extents of a record held back) are copied here instead: 32 bytes each, plus
 * the view object.
 */
export class IdArena {
  private slab = Buffer.allocUnsafeSlow(0)
  private used = 0

  constructor(private readonly slabBytes = 64 * 1024) {}

  /** A copy of `id` that pins nothing but this arena's slab. */
  copy(id: Uint8Array): Buffer {
    if (this.used + id.length > this.slab.length) {
      this.slab = Buffer.allocUnsafeSlow(Math.max(this.slabBytes, id.length))
      this.used = 0
    }
    const out = this.slab.subarray(this.used, this.used + id.length)
    out.set(id)
    this.used += id.length
    return out
  }
}

const ZERO_BLOCK = Buffer.alloc(64 * 1024)

/** True when every byte of `b` is zero (an empty `b` too). Random data answers at its first or
 *  last byte; zeros are compared 64 KiB at a time. */
export function isAllZero(b: Uint8Array): boolean {
  if (b.length === 0) return true
  if (b[0] !== 0 || b[b.length - 1] !== 0) return false
  const buf = Buffer.from(b.buffer, b.byteOffset, b.byteLength)
  for (let at = 0; at < buf.length; at += ZERO_BLOCK.length) {
    const end = Math.min(buf.length, at + ZERO_BLOCK.length)
    if (!buf.subarray(at, end).equals(ZERO_BLOCK.subarray(0, end - at))) return false
  }
  return true
}
