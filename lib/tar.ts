/**
 * The tar codec, both directions (as node-tar's pax.js): header blocks of a POSIX (pax) member
 * written for restore --tar, and members read back by the tar source. Pure: no streams here.
 *
 * Writing: tar-stream's pack() cannot be used: it turns every name and PAX value into a UTF-8
 * string, so non-UTF-8 names and binary xattr values cannot get through it, and it writes
 * whole-second mtimes only. Here names, link targets, xattr names and values are raw bytes.
 *
 * A member is a ustar header, preceded by a PAX extended header ('x') when something does not
 * fit ustar: a long name, a link target over 100 bytes, nanoseconds, large or
 * negative numbers, long or non-ASCII owner names, or xattrs (`SCHILY.xattr.NAME`, GNU tar's and
 * bsdtar's convention). A long name that is not UTF-8 gets `hdrcharset=BINARY`, so bsdtar keeps
 * the bytes instead of failing to convert them from UTF-8.
 *
 * Reading: tar-stream splits the stream into members and parses the ustar fields (names as
 * latin1, i.e. the raw bytes); PAX records, which it would decode as UTF-8 (losing non-UTF-8
 * bytes), are decoded here byte-exactly, so a name GNU tar wrote as raw bytes in a PAX `path`
 * record, and binary xattr values, survive. A PAX `path` that is UTF-8 (as the spec wants) is
 * kept as its UTF-8 bytes, i.e. the name the file had on a UTF-8 system. GNU sparse 1.0 members
 * (PAX GNU.sparse.*, both directions) carry a map of their data regions (encodeSparseMap,
 * decodeSparseMap) before the data; older sparse formats are not read.
 */
import { displayPath, joinPath } from './bytes.js'
import type { EntryMeta, EntryType, SourceEntry, Xattr } from './entry.js'
import { SluiceError } from './errors.js'

export const TAR_BLOCK = 512

/** Zero padding after `size` bytes of content, up to the next block. */
export function tarPadding(size: number): number {
  const r = size % TAR_BLOCK
  return r === 0 ? 0 : TAR_BLOCK - r
}

const TYPEFLAG = { file: 0x30, hardlink: 0x31, symlink: 0x32, char: 0x33, block: 0x34, dir: 0x35, fifo: 0x36 } as const

/** glibc's major()/minor() of a Linux st_rdev. */
export function splitDev(rdev: number): [number, number] {
  const d = BigInt(rdev)
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn)
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn)
  return [Number(major & 0xffffffffn), Number(minor & 0xffffffffn)]
}

/** glibc's makedev: the device number encoding of Linux stat's st_rdev. */
export function makedev(major: number, minor: number): number {
  const M = BigInt(major)
  const m = BigInt(minor)
  return Number(((M & 0xfffn) << 8n) | ((M & ~0xfffn) << 32n) | (m & 0xffn) | ((m & ~0xffn) << 12n))
}

/** One PAX record, `LEN KEY=VALUE\n`, where LEN counts the whole record in decimal. */
export function paxRecord(key: string | Buffer, value: string | Buffer): Buffer {
  const k = typeof key === 'string' ? Buffer.from(key, 'utf8') : key
  const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
  const base = k.length + v.length + 3
  let len = base + String(base).length
  if (String(len).length !== String(base).length) len = base + String(len).length
  return Buffer.concat([Buffer.from(`${len} `), k, Buffer.of(0x3d), v, Buffer.of(0x0a)])
}

/** Decodes PAX extended header records (`LEN KEY=VALUE\n`) byte-exactly into latin1 strings. */
export function decodePax(buf: Buffer): Record<string, string> {
  const out: Record<string, string> = {}
  let at = 0
  while (at < buf.length) {
    const sp = buf.indexOf(0x20, at)
    if (sp < 0) break
    const len = parseInt(buf.toString('latin1', at, sp), 10)
    if (!(len > 0) || at + len > buf.length || buf[at + len - 1] !== 0x0a) {
      if (buf.subarray(at).every((b) => b === 0)) break
      throw new Error('bad PAX record')
    }
    const rec = buf.subarray(sp + 1, at + len - 1)
    const eq = rec.indexOf(0x3d)
    if (eq < 0) throw new Error('bad PAX record')
    out[rec.toString('latin1', 0, eq)] = rec.toString('latin1', eq + 1)
    at += len
  }
  return out
}

/** A PAX time: seconds and nanoseconds as a decimal fraction ("-1.25" for sec -2, nsec 75e7). */
export function paxTime(sec: number, nsec: number): string {
  if (nsec === 0) return String(sec)
  if (sec < 0) return `-${-sec - 1}.${String(1e9 - nsec).padStart(9, '0')}`.replace(/0+$/, '')
  return `${sec}.${String(nsec).padStart(9, '0')}`.replace(/0+$/, '')
}

/** Parses a PAX time ("1795685289.404501667", maybe negative) into seconds and nanoseconds,
 *  seconds floored so that the nanoseconds stay non-negative. */
export function parseTime(text: string): [number, number] {
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(text.trim())
  if (!m) throw new SluiceError('ERR_TAR', `tar stream on stdin is corrupt: bad PAX time ${JSON.stringify(text)}`)
  const sec = Number(m[2])
  const nsec = Number(((m[3] ?? '') + '000000000').slice(0, 9))
  if (m[1] !== '-') return [sec, nsec]
  return nsec === 0 ? [-sec, 0] : [-sec - 1, 1_000_000_000 - nsec]
}

function isAscii(b: Uint8Array): boolean {
  for (const c of b) if (c >= 0x80) return false
  return true
}

function isUtf8(b: Buffer): boolean {
  return Buffer.from(b.toString('utf8'), 'utf8').equals(b)
}

/** Writes `value` as octal in `width` bytes (width-1 digits and a NUL); false if it does not fit. */
function putOctal(buf: Buffer, off: number, width: number, value: number): boolean {
  if (!Number.isSafeInteger(value) || value < 0) return false
  const s = value.toString(8)
  if (s.length > width - 1) return false
  buf.write(s.padStart(width - 1, '0'), off, 'latin1')
  buf[off + width - 1] = 0
  return true
}

interface UstarFields {
  name: Buffer
  prefix: Buffer
  mode: number
  uid: number
  gid: number
  size: number
  mtime: number
  typeflag: number
  linkname: Buffer
  uname: Buffer
  gname: Buffer
  devmajor: number
  devminor: number
}

function ustar(f: UstarFields): Buffer {
  const b = Buffer.alloc(TAR_BLOCK)
  f.name.copy(b, 0, 0, Math.min(100, f.name.length))
  putOctal(b, 100, 8, f.mode)
  putOctal(b, 108, 8, f.uid)
  putOctal(b, 116, 8, f.gid)
  putOctal(b, 124, 12, f.size)
  putOctal(b, 136, 12, f.mtime)
  b[156] = f.typeflag
  f.linkname.copy(b, 157, 0, Math.min(100, f.linkname.length))
  b.write('ustar\x0000', 257, 'latin1')
  f.uname.copy(b, 265, 0, Math.min(31, f.uname.length))
  f.gname.copy(b, 297, 0, Math.min(31, f.gname.length))
  putOctal(b, 329, 8, f.devmajor)
  putOctal(b, 337, 8, f.devminor)
  f.prefix.copy(b, 345, 0, Math.min(155, f.prefix.length))
  b.fill(0x20, 148, 156)
  let sum = 0
  for (const c of b) sum += c
  b.write(sum.toString(8).padStart(6, '0') + '\x00 ', 148, 'latin1')
  return b
}

/** Splits a name into ustar prefix (≤155) and name (≤100) at a '/', or null if it cannot be. */
function splitName(name: Buffer): [Buffer, Buffer] | null {
  if (name.length <= 100) return [Buffer.alloc(0), name]
  for (let i = name.length - 101; i < name.length; i++) {
    if (i < 1 || name[i] !== 0x2f) continue
    if (i <= 155 && name.length - i - 1 <= 100 && name.length - i - 1 > 0) return [name.subarray(0, i), name.subarray(i + 1)]
    if (i > 155) break
  }
  return null
}

/** The last component of a path. */
function baseName(p: Buffer): Buffer {
  return p.subarray(p.lastIndexOf(0x2f) + 1)
}

/** Members a tar cannot hold: sockets (tar has no type for them). */
export function tarCanHold(entry: EntryMeta): boolean {
  return entry.type !== 'socket'
}

/** A data region of a sparse file: `[offset, length]` in the file. */
export type SparseRegion = [number, number]

/**
 * The GNU sparse 1.0 map that starts a sparse member's stored content: the number of regions,
 * then each region's offset and length, in decimal, one per line, padded with NULs to a whole
 * block. The regions' data follows it, back to back.
 */
export function encodeSparseMap(regions: readonly SparseRegion[]): Buffer {
  const text = Buffer.from([regions.length, ...regions.flat()].map(n => `${n}\n`).join(''), 'latin1')
  return Buffer.concat([text, Buffer.alloc(tarPadding(text.length))])
}

/**
 * Decodes the GNU sparse 1.0 map at the start of a sparse member's stored content: null while
 * `buf` does not hold all of it yet; else the regions and the bytes the map takes (whole
 * blocks). Throws ERR_TAR for a map that is not decimal lines, or whose regions are out of
 * order, overlap or end past `realSize`.
 */
export function decodeSparseMap(buf: Buffer, realSize: number): { regions: SparseRegion[]; bytes: number } | null {
  const nums: number[] = []
  let at = 0
  const bad = (why: string) => new SluiceError('ERR_TAR', `tar stream on stdin is corrupt: a GNU sparse map ${why}`)
  for (;;) {
    if (nums.length > 0 && nums.length === 1 + 2 * nums[0]!) break
    const nl = buf.indexOf(0x0a, at)
    if (nl < 0) {
      if (buf.length - at > 20) throw bad('holds a number too long')
      return null
    }
    const text = buf.toString('latin1', at, nl)
    if (!/^\d{1,16}$/.test(text) || !Number.isSafeInteger(Number(text))) throw bad(`holds ${JSON.stringify(text.slice(0, 20))}, not a number`)
    nums.push(Number(text))
    at = nl + 1
  }
  const regions: SparseRegion[] = []
  let end = 0
  for (let i = 1; i < nums.length; i += 2) {
    const [offset, length] = [nums[i]!, nums[i + 1]!]
    if (offset < end || offset + length > realSize) throw bad(`region ${offset}+${length} overlaps another or lies past the file's ${realSize} bytes`)
    regions.push([offset, length])
    end = offset + length
  }
  return { regions, bytes: at + tarPadding(at) }
}

/**
 * The header blocks of one member: a PAX extended header (when needed) and the ustar header.
 * `size` is the content size written after them: the record's size for a regular file, 0 for
 * everything else (hardlinks included).
 *
 * With `sparse` (a regular file; its data regions, in order, within entry.size), the member is a
 * GNU sparse 1.0 one (GNU tar's `--sparse-version=1.0`, which GNU tar and bsdtar extract as a
 * sparse file): PAX records GNU.sparse.major=1, minor=0, name (the real name) and realsize, a
 * ustar name `GNUSparseFile.0/NAME`, and a stored content of the map (encodeSparseMap) followed
 * by the regions' data; `size` is then that stored size.
 */
export function encodeTarHeader(entry: EntryMeta, sparse?: readonly SparseRegion[]): { header: Buffer; size: number } {
  const isHardlink = entry.hardlinkTo !== undefined
  const typeflag = isHardlink
    ? TYPEFLAG.hardlink
    : entry.type === 'socket'
      ? TYPEFLAG.file
      : TYPEFLAG[entry.type]
  const isSparse = sparse !== undefined && entry.type === 'file' && !isHardlink
  const size = !(entry.type === 'file' && !isHardlink) ? 0 : isSparse ? encodeSparseMap(sparse).length + sparse.reduce((n, r) => n + r[1], 0) : entry.size
  const realName = entry.type === 'dir' ? Buffer.concat([entry.path, Buffer.of(0x2f)]) : entry.path
  // A sparse member's ustar name is a stand-in (what a tar without sparse support extracts it
  // as); its real name is GNU.sparse.name.
  const name = isSparse ? Buffer.concat([Buffer.from('GNUSparseFile.0/'), baseName(realName).subarray(0, 84)]) : realName
  const link = isHardlink ? entry.hardlinkTo! : entry.type === 'symlink' ? (entry.linkTarget ?? Buffer.alloc(0)) : Buffer.alloc(0)
  const uname = Buffer.from(entry.user ?? '', 'utf8')
  const gname = Buffer.from(entry.group ?? '', 'utf8')
  const [devmajor, devminor] = entry.rdev !== undefined && (entry.type === 'char' || entry.type === 'block') ? splitDev(entry.rdev) : [0, 0]

  const pax: Buffer[] = []
  let binary = false
  // A name that fits the ustar fields goes there as raw bytes, whatever its encoding: both tools
  // take those bytes as they are. A PAX path that is not UTF-8 needs hdrcharset=BINARY, which
  // bsdtar needs (it fails otherwise) and GNU tar 1.34 warns about (but honours).
  const split = splitName(name)
  if (split === null) {
    pax.push(paxRecord('path', name))
    if (!isUtf8(name)) binary = true
  }
  if (isSparse) {
    pax.push(paxRecord('GNU.sparse.major', '1'), paxRecord('GNU.sparse.minor', '0'), paxRecord('GNU.sparse.name', realName), paxRecord('GNU.sparse.realsize', String(entry.size)))
    if (!isUtf8(realName)) binary = true
  }
  if (link.length > 100) {
    pax.push(paxRecord('linkpath', link))
    if (!isUtf8(link)) binary = true
  }
  const probe = Buffer.alloc(12)
  const fits = (v: number, width: number): boolean => putOctal(probe, 0, width, v)
  if (!fits(size, 12)) pax.push(paxRecord('size', String(size)))
  if (!fits(entry.uid, 8)) pax.push(paxRecord('uid', String(entry.uid)))
  if (!fits(entry.gid, 8)) pax.push(paxRecord('gid', String(entry.gid)))
  if (entry.mtimeNsec !== 0 || !fits(entry.mtimeSec, 12)) pax.push(paxRecord('mtime', paxTime(entry.mtimeSec, entry.mtimeNsec)))
  if (uname.length > 31 || !isAscii(uname)) pax.push(paxRecord('uname', uname))
  if (gname.length > 31 || !isAscii(gname)) pax.push(paxRecord('gname', gname))
  for (const x of entry.xattrs ?? []) pax.push(paxRecord(Buffer.concat([Buffer.from('SCHILY.xattr.'), x.name]), x.value))
  // hdrcharset applies to the records after it; bsdtar and GNU tar read it wherever it stands,
  // but putting it first is what libarchive writes.
  if (binary) pax.unshift(paxRecord('hdrcharset', 'BINARY'))

  const [prefix, short] = split ?? [Buffer.alloc(0), name.subarray(0, 100)]
  const fields: UstarFields = {
    name: short,
    prefix,
    mode: entry.mode & 0o7777,
    uid: fits(entry.uid, 8) ? entry.uid : 0,
    gid: fits(entry.gid, 8) ? entry.gid : 0,
    size: fits(size, 12) ? size : 0,
    mtime: fits(entry.mtimeSec, 12) ? entry.mtimeSec : 0,
    typeflag,
    linkname: link.subarray(0, 100),
    uname: isAscii(uname) ? uname : Buffer.alloc(0),
    gname: isAscii(gname) ? gname : Buffer.alloc(0),
    devmajor,
    devminor,
  }
  const main = ustar(fields)
  if (pax.length === 0) return { header: main, size }
  const body = Buffer.concat(pax)
  const xname = Buffer.concat([Buffer.from('PaxHeaders/'), short.subarray(0, 89)])
  const xhead = ustar({ ...fields, name: xname, prefix: Buffer.alloc(0), size: body.length, typeflag: 0x78, linkname: Buffer.alloc(0), devmajor: 0, devminor: 0 })
  return { header: Buffer.concat([xhead, body, Buffer.alloc(tarPadding(body.length)), main]), size }
}

// Reading: a member's header as tar-stream parses it, back into an entry.

/** One tar member's header as tar-stream parses it, with PAX values as latin1 strings (raw bytes). */
export interface TarMemberHeader {
  name: string
  type: string | null
  mode: number
  uid: number
  gid: number
  size: number
  mtime: Date
  linkname: string | null
  uname: string
  gname: string
  devmajor: number
  devminor: number
  byteOffset: number
  pax: Record<string, string> | null
}

const TYPES: Record<string, EntryType> = {
  file: 'file',
  'contiguous-file': 'file',
  link: 'file',
  symlink: 'symlink',
  directory: 'dir',
  fifo: 'fifo',
  'character-device': 'char',
  'block-device': 'block',
}

/** The SourceEntry of a member (without content), its path put under `prefix`, or null for a
 *  member that is skipped (the archive's own '.', or a type Sluice cannot store: `onWarning`
 *  hears of it). */
export function decodeTarMember(h: TarMemberHeader, prefix: Buffer, onWarning?: (err: SluiceError) => void): SourceEntry | null {
  const pax = h.pax ?? {}
  // A GNU sparse 1.0 member carries its real name in GNU.sparse.name.
  const raw = Buffer.from(tarSparseSize(h) !== null ? pax['GNU.sparse.name']! : h.name, 'latin1')
  const type = h.type === null ? undefined : TYPES[h.type]
  const sparse = tarSparseSize(h)
  if (type === undefined || (sparse === null && Object.keys(pax).some((k) => k.startsWith('GNU.sparse.')))) {
    onWarning?.(new SluiceError('ERR_TAR', `tar member ${displayPath(raw)} has a type Sluice cannot store (${h.type ?? 'unknown'}); skipped`, { path: raw }))
    return null
  }
  const rel = normalizeTarPath(raw)
  if (rel.length === 0 && prefix.length === 0) return null // the archive's '.' itself
  const path = rel.length === 0 ? Buffer.from(prefix) : joinPath(prefix, rel)
  const [mtimeSec, mtimeNsec] = pax.mtime !== undefined ? parseTime(pax.mtime) : [Math.floor(h.mtime.getTime() / 1000), 0]
  const [ctimeSec, ctimeNsec] = pax.ctime !== undefined ? parseTime(pax.ctime) : [mtimeSec, mtimeNsec]
  const entry: SourceEntry = {
    kind: 'entry',
    path,
    type: rel.length === 0 ? 'dir' : type,
    mode: h.mode & 0o7777,
    uid: pax.uid !== undefined ? Number(pax.uid) : h.uid,
    gid: pax.gid !== undefined ? Number(pax.gid) : h.gid,
    size: type === 'file' && h.type !== 'link' ? (sparse ?? h.size) : 0,
    mtimeSec,
    mtimeNsec,
    ctimeSec,
    ctimeNsec,
    ino: 0,
    dev: 0,
    nlink: 0,
  }
  const user = pax.uname !== undefined ? Buffer.from(pax.uname, 'latin1').toString('utf8') : h.uname
  const group = pax.gname !== undefined ? Buffer.from(pax.gname, 'latin1').toString('utf8') : h.gname
  if (user) entry.user = user
  if (group) entry.group = group
  if (type === 'char' || type === 'block') entry.rdev = makedev(h.devmajor, h.devminor)
  if (type === 'symlink') entry.linkTarget = Buffer.from(h.linkname ?? '', 'latin1')
  if (h.type === 'link') {
    const to = normalizeTarPath(Buffer.from(h.linkname ?? '', 'latin1'))
    entry.hardlinkTo = to.length === 0 ? Buffer.from(prefix) : joinPath(prefix, to)
  }
  const xattrs: Xattr[] = []
  for (const [k, v] of Object.entries(pax)) {
    if (k.startsWith('SCHILY.xattr.')) xattrs.push({ name: Buffer.from(k.slice(13), 'latin1'), value: Buffer.from(v, 'latin1') })
  }
  if (xattrs.length > 0) entry.xattrs = xattrs.sort((a, b) => Buffer.compare(a.name, b.name))
  return entry
}

/** The real size of a GNU sparse 1.0 member (PAX GNU.sparse.major 1, minor 0, with name and
 *  realsize), or null for any other member. Other sparse formats (0.x, old GNU 'S') are not
 *  read: decodeTarMember skips them with a warning. */
export function tarSparseSize(h: Pick<TarMemberHeader, 'pax' | 'type'>): number | null {
  const pax = h.pax
  if (!pax || pax['GNU.sparse.major'] !== '1' || pax['GNU.sparse.minor'] !== '0' || h.type !== 'file') return null
  const size = Number(pax['GNU.sparse.realsize'])
  if (pax['GNU.sparse.name'] === undefined || !/^\d+$/.test(pax['GNU.sparse.realsize'] ?? '') || !Number.isSafeInteger(size)) return null
  return size
}

/** A member name as a snapshot path: no leading '/' or './', no trailing '/', no empty or '.'
 *  components. A '..' component could put the entry anywhere on restore: the archive is refused
 *  with ERR_TAR. */
export function normalizeTarPath(raw: Buffer): Buffer {
  const parts: Buffer[] = []
  let start = 0
  for (let i = 0; i <= raw.length; i++) {
    if (i < raw.length && raw[i] !== 0x2f) continue
    const part = raw.subarray(start, i)
    start = i + 1
    if (part.length === 0 || (part.length === 1 && part[0] === 0x2e)) continue
    if (part.length === 2 && part[0] === 0x2e && part[1] === 0x2e) {
      throw new SluiceError('ERR_TAR', `tar stream on stdin is corrupt: member ${displayPath(raw)} has a '..' component`, { path: raw })
    }
    parts.push(part)
  }
  const out: Buffer[] = []
  for (const p of parts) {
    if (out.length > 0) out.push(Buffer.of(0x2f))
    out.push(p)
  }
  return Buffer.concat(out)
}
