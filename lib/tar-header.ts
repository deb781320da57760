/**
 * A pure codec for the header blocks of a POSIX (pax) tar member, as GNU tar and bsdtar read
 * them. tar-stream's pack() cannot be used for this: it turns every name and PAX value into a
 * UTF-8 string, so non-UTF-8 names and binary xattr values cannot get through it, and it writes
 * whole-second mtimes only. Here names, link targets, xattr names and values are raw bytes.
 *
 * A member is a ustar header, preceded by a PAX extended header ('x') when something does not
 * fit ustar: a long name, a link target over 100 bytes, nanoseconds, large or
 * negative numbers, long or non-ASCII owner names, or xattrs (`SCHILY.xattr.NAME`, GNU tar's and
 * bsdtar's convention). A long name that is not UTF-8 gets `hdrcharset=BINARY`, so bsdtar keeps
 * the bytes instead of failing to convert them from UTF-8.
 */
import type { EntryMeta } from './entry.js'

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

/** One PAX record, `LEN KEY=VALUE\n`, where LEN counts the whole record in decimal. */
export function paxRecord(key: string | Buffer, value: string | Buffer): Buffer {
  const k = typeof key === 'string' ? Buffer.from(key, 'utf8') : key
  const v = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
  const base = k.length + v.length + 3
  let len = base + String(base).length
  if (String(len).length !== String(base).length) len = base + String(len).length
  return Buffer.concat([Buffer.from(`${len} `), k, Buffer.of(0x3d), v, Buffer.of(0x0a)])
}

/** A PAX time: seconds and nanoseconds as a decimal fraction ("-1.25" for sec -2, nsec 75e7). */
export function paxTime(sec: number, nsec: number): string {
  if (nsec === 0) return String(sec)
  if (sec < 0) return `-${-sec - 1}.${String(1e9 - nsec).padStart(9, '0')}`.replace(/0+$/, '')
  return `${sec}.${String(nsec).padStart(9, '0')}`.replace(/0+$/, '')
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

/** Members a tar cannot hold: sockets (tar has no type for them). */
export function tarCanHold(entry: EntryMeta): boolean {
  return entry.type !== 'socket'
}

/**
 * The header blocks of one member: a PAX extended header (when needed) and the ustar header.
 * `size` is the content size written after them: the record's size for a regular file, 0 for
 * everything else (hardlinks included).
 */
export function encodeTarHeader(entry: EntryMeta): { header: Buffer; size: number } {
  const isHardlink = entry.hardlinkTo !== undefined
  const typeflag = isHardlink
    ? TYPEFLAG.hardlink
    : entry.type === 'socket'
      ? TYPEFLAG.file
      : TYPEFLAG[entry.type]
  const size = entry.type === 'file' && !isHardlink ? entry.size : 0
  const name = entry.type === 'dir' ? Buffer.concat([entry.path, Buffer.of(0x2f)]) : entry.path
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
