/**
 * A hostile file tree for end-to-end tests, and a comparer that says what differs between two
 * trees. Everything is built and read with raw-byte names (Buffers), lstat with bigint times,
 * and the native addon for nanosecond times and binary xattrs, so that the comparer sees what a
 * careful `diff -r` plus `stat` plus `getfattr` would.
 */
import { createCipheriv, createHash } from 'node:crypto'
import fs from 'node:fs'
import { displayPath } from '../../lib/bytes.js'
import { lgetxattrs, lsetxattr, mkfifo, utimens } from '../../lib/native.js'

const B = (s: string | Buffer): Buffer => (typeof s === 'string' ? Buffer.from(s) : s)
const cat = (...parts: (string | Buffer)[]): Buffer => Buffer.concat(parts.map(B))
export const isRoot = process.getuid?.() === 0

/** Deterministic pseudo-random bytes: AES-256-CTR of zeros under a key derived from `seed`. */
export function seededBytes(seed: string, n: number): Buffer {
  const key = createHash('sha256').update(seed).digest()
  return createCipheriv('aes-256-ctr', key, Buffer.alloc(16)).update(Buffer.alloc(n))
}

/** Names in the hostile tree that tests refer to (raw bytes, relative to the tree root). */
export const NAMES = {
  nonUtf8: Buffer.from([0x6e, 0x2d, 0xff, 0xfe]), // "n-" then two bytes that are never UTF-8
  newline: Buffer.from('new\nline'),
  long255: Buffer.from('L'.repeat(255)),
  shell: Buffer.from(`sh $(x) ;|&*?'"\\ name`),
  /** A 100-byte directory name, repeated to make a path over 1000 bytes. */
  deepPart: Buffer.from('D'.repeat(100)),
  deepLevels: 11,
}

/** What buildHostileTree made, for tests that need to point at parts of it. */
export interface HostileTree {
  root: string
  /** Entries that carry user.* xattrs. */
  xattrPaths: Buffer[]
  /** The path of the deepest file (over 1000 bytes below the root). */
  deepFile: Buffer
}

const MiB = 1024 * 1024

/**
 * Creates the hostile tree in `dir` (which must not exist): every file type, hardlinks across
 * directories, special permission bits, nanosecond and pre-1970 mtimes (on a symlink and a
 * directory too), binary user xattrs, names that are not UTF-8, hold a newline, are 255 bytes
 * long or full of shell metacharacters, a path over 1000 bytes, and (as root) foreign owners.
 */
export function buildHostileTree(dir: string): HostileTree {
  const root = B(dir)
  const p = (...parts: (string | Buffer)[]): Buffer => cat(root, '/', ...parts)
  fs.mkdirSync(root, { recursive: false })

  // Regular files.
  fs.mkdirSync(p('files'))
  fs.writeFileSync(p('files/empty'), '')
  fs.writeFileSync(p('files/small'), seededBytes('small', 1000))
  fs.writeFileSync(p('files/big'), seededBytes('big', 3 * MiB + 12345))
  const fd = fs.openSync(p('files/sparse'), 'w')
  fs.ftruncateSync(fd, 5 * MiB)
  fs.closeSync(fd)
  // The same content twice: dedup must not confuse them.
  fs.writeFileSync(p('files/small-copy'), seededBytes('small', 1000))

  // Directories.
  fs.mkdirSync(p('empty-dir'))
  fs.mkdirSync(p('nested/a/b/c'), { recursive: true })
  fs.writeFileSync(p('nested/a/b/c/leaf'), 'leaf\n')

  // Symlinks: never followed, restored as they were.
  fs.mkdirSync(p('links'))
  fs.symlinkSync('../files/small', p('links/relative'))
  fs.symlinkSync('/etc/hostname', p('links/absolute'))
  fs.symlinkSync('does/not/exist', p('links/dangling'))
  fs.symlinkSync('loop-b', p('links/loop-a'))
  fs.symlinkSync('loop-a', p('links/loop-b'))
  fs.symlinkSync('../nested', p('links/to-dir'))

  // One inode, three names in three directories.
  fs.mkdirSync(p('hard/sub'), { recursive: true })
  fs.writeFileSync(p('hard/one'), seededBytes('hard', 70_000))
  fs.linkSync(p('hard/one'), p('hard/sub/two'))
  fs.linkSync(p('hard/one'), p('nested/three'))

  // Special files.
  fs.mkdirSync(p('special'))
  mkfifo(p('special/fifo'), 0o640)

  // Permission bits.
  fs.mkdirSync(p('perms'))
  fs.writeFileSync(p('perms/setuid'), '#!/bin/sh\n')
  fs.chmodSync(p('perms/setuid'), 0o4755)
  fs.writeFileSync(p('perms/setgid'), '#!/bin/sh\n')
  fs.chmodSync(p('perms/setgid'), 0o2755)
  fs.mkdirSync(p('perms/sticky'))
  fs.chmodSync(p('perms/sticky'), 0o1777)
  fs.writeFileSync(p('perms/private'), 'secret')
  fs.chmodSync(p('perms/private'), 0o600)
  fs.mkdirSync(p('perms/read-only'))
  fs.writeFileSync(p('perms/read-only/inside'), 'inside a 0555 directory')
  fs.chmodSync(p('perms/read-only/inside'), 0o444)

  // Hostile names.
  fs.mkdirSync(p('names'))
  fs.writeFileSync(p('names/', NAMES.nonUtf8), 'not utf-8')
  fs.mkdirSync(p('names/dir-', NAMES.nonUtf8))
  fs.writeFileSync(p('names/dir-', NAMES.nonUtf8, '/inner'), 'below a non-utf-8 directory')
  fs.writeFileSync(p('names/', NAMES.newline), 'newline')
  fs.writeFileSync(p('names/', NAMES.long255), 'long name')
  fs.writeFileSync(p('names/', NAMES.shell), 'shell')
  let deep = p('deep')
  for (let i = 0; i < NAMES.deepLevels; i++) deep = cat(deep, '/', NAMES.deepPart)
  fs.mkdirSync(deep, { recursive: true })
  const deepFile = cat(deep, '/bottom')
  fs.writeFileSync(deepFile, 'over a thousand bytes down')

  // Binary user xattrs on a file and a directory.
  const xattrPaths = [p('files/small'), p('nested')]
  for (const x of xattrPaths) {
    lsetxattr(x, B('user.binary'), Buffer.from([0, 1, 2, 0xff, 0xfe, 0, 0x80]))
    lsetxattr(x, B('user.empty'), Buffer.alloc(0))
  }

  // Foreign owners (root only): on a file, a symlink and a directory.
  if (isRoot) {
    fs.mkdirSync(p('owned'))
    fs.writeFileSync(p('owned/file'), 'owned')
    fs.symlinkSync('file', p('owned/link'))
    for (const x of ['owned', 'owned/file', 'owned/link']) fs.lchownSync(p(x), 1234, 5678)
  }

  // Nanosecond times everywhere, children before their directory (writing a child changes its
  // directory's mtime); a few before 1970, including on a symlink and a directory.
  const special = new Map<string, { sec: number; nsec: number }>([
    ['links/relative', { sec: -86_400 * 365 * 3 - 17, nsec: 123_456_789 }],
    ['empty-dir', { sec: -1, nsec: 999_999_999 }],
    ['files/small', { sec: -1_000_000_000, nsec: 1 }],
  ])
  let n = 0
  const stamp = (abs: Buffer, rel: string): void => {
    const t = special.get(rel) ?? { sec: 1_600_000_000 + n * 7919, nsec: (n * 104_729_837 + 1) % 1_000_000_000 }
    n++
    utimens(abs, t, t)
  }
  const walk = (abs: Buffer, rel: string): void => {
    const st = fs.lstatSync(abs)
    if (st.isDirectory()) {
      for (const name of fs.readdirSync(abs, { encoding: 'buffer' }) as Buffer[]) {
        walk(cat(abs, '/', name), rel === '' ? name.toString('latin1') : `${rel}/${name.toString('latin1')}`)
      }
    }
    stamp(abs, rel)
  }
  walk(root, '')
  // Made read-only last: as root it changes nothing, as a user it would stop the walk above.
  fs.chmodSync(p('perms/read-only'), 0o555)
  return { root: dir, xattrPaths, deepFile }
}

interface Node {
  type: string
  mode: number
  uid: number
  gid: number
  mtimeNs: bigint
  size: bigint
  ino: bigint
  nlink: bigint
  sha256?: string
  target?: Buffer
  xattrs: string
}

function typeOf(st: fs.BigIntStats): string {
  if (st.isFile()) return 'file'
  if (st.isDirectory()) return 'dir'
  if (st.isSymbolicLink()) return 'symlink'
  if (st.isFIFO()) return 'fifo'
  if (st.isCharacterDevice()) return 'char'
  if (st.isBlockDevice()) return 'block'
  return 'socket'
}

/** Every entry below `root` (relative raw path as latin1 key, which round-trips any byte). */
function scan(root: Buffer, withRoot: boolean): Map<string, Node> {
  const out = new Map<string, Node>()
  const visit = (abs: Buffer, rel: Buffer): void => {
    const st = fs.lstatSync(abs, { bigint: true })
    const type = typeOf(st)
    const node: Node = {
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtimeNs: st.mtimeNs,
      size: st.size,
      ino: st.ino,
      nlink: st.nlink,
      xattrs: lgetxattrs(abs)
        .filter((x) => x.name.subarray(0, 5).equals(B('user.')))
        .map((x) => `${x.name.toString('latin1')}=${x.value.toString('hex')}`)
        .join(','),
    }
    if (type === 'file') node.sha256 = createHash('sha256').update(fs.readFileSync(abs)).digest('hex')
    if (type === 'symlink') node.target = fs.readlinkSync(abs, { encoding: 'buffer' })
    if (rel.length > 0 || withRoot) out.set(rel.toString('latin1'), node)
    if (type === 'dir') {
      for (const name of fs.readdirSync(abs, { encoding: 'buffer' }) as Buffer[]) {
        visit(cat(abs, '/', name), rel.length === 0 ? name : cat(rel, '/', name))
      }
    }
  }
  visit(root, Buffer.alloc(0))
  return out
}

/** For each hardlinked path, the sorted names of its inode group (as a string to compare). */
function linkGroups(nodes: Map<string, Node>): Map<string, string> {
  const byIno = new Map<bigint, string[]>()
  for (const [k, n] of nodes) {
    if (n.type === 'dir' || n.nlink < 2n) continue
    const g = byIno.get(n.ino) ?? []
    g.push(k)
    byIno.set(n.ino, g)
  }
  const out = new Map<string, string>()
  for (const g of byIno.values()) {
    // Links outside the scanned tree do not count: a restored subtree has only its own.
    if (g.length < 2) continue
    const key = g.sort().map((k) => displayPath(Buffer.from(k, 'latin1'))).join(' | ')
    for (const k of g) out.set(k, key)
  }
  return out
}

export interface CompareOptions {
  /** Also compare the two roots' own metadata (default: only what lies below them). */
  root?: boolean
  /** Compare owners (default: true when running as root). */
  owners?: boolean
}

/**
 * Compares the trees below `a` and `b` and returns one line per difference (empty when they
 * are the same): names, types, mode & 0o7777, content (sha256), mtime to the nanosecond,
 * symlink targets, user.* xattrs, hardlink groups and, as root, uid/gid.
 */
export function compareTrees(a: string | Buffer, b: string | Buffer, opts: CompareOptions = {}): string[] {
  const owners = opts.owners ?? isRoot
  const A = scan(B(a), !!opts.root)
  const Bn = scan(B(b), !!opts.root)
  const la = linkGroups(A)
  const lb = linkGroups(Bn)
  const diffs: string[] = []
  const show = (k: string) => (k === '' ? '<root>' : displayPath(Buffer.from(k, 'latin1')))
  for (const [k, x] of A) {
    const y = Bn.get(k)
    const name = show(k)
    if (!y) {
      diffs.push(`${name}: missing in second tree`)
      continue
    }
    if (x.type !== y.type) {
      diffs.push(`${name}: type ${x.type} != ${y.type}`)
      continue
    }
    if (x.type !== 'symlink' && x.mode !== y.mode) diffs.push(`${name}: mode ${x.mode.toString(8)} != ${y.mode.toString(8)}`)
    if (x.mtimeNs !== y.mtimeNs) diffs.push(`${name}: mtimeNs ${x.mtimeNs} != ${y.mtimeNs}`)
    if (x.type === 'file' && x.size !== y.size) diffs.push(`${name}: size ${x.size} != ${y.size}`)
    if (x.sha256 !== y.sha256) diffs.push(`${name}: content differs`)
    if (x.target && !x.target.equals(y.target!)) diffs.push(`${name}: symlink target ${displayPath(x.target)} != ${displayPath(y.target!)}`)
    if (x.xattrs !== y.xattrs) diffs.push(`${name}: xattrs [${x.xattrs}] != [${y.xattrs}]`)
    if (owners && (x.uid !== y.uid || x.gid !== y.gid)) diffs.push(`${name}: owner ${x.uid}:${x.gid} != ${y.uid}:${y.gid}`)
    if ((la.get(k) ?? '') !== (lb.get(k) ?? '')) diffs.push(`${name}: hardlink group [${la.get(k) ?? ''}] != [${lb.get(k) ?? ''}]`)
  }
  for (const k of Bn.keys()) if (!A.has(k)) diffs.push(`${show(k)}: only in second tree`)
  return diffs
}

/** Every path below `root`, relative, as raw bytes (for "nothing was written here" checks). */
export function listTree(root: string | Buffer): Buffer[] {
  return [...scan(B(root), false).keys()].map((k) => Buffer.from(k, 'latin1'))
}
