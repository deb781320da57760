/** A small tree with every kind of entry the tar source and writer must carry, built on disk with
 *  the same tools a user has (GNU tar, setfattr), for the tar round-trip tests. */
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdirSync, mkdtempSync, writeFileSync, symlinkSync, linkSync, utimesSync } from 'node:fs'
import { join } from 'node:path'
import { scratch } from './scratch.js'

export const ROOT = scratch('tar-task')

/** Raw bytes 'a' 0xff 0xfe: not UTF-8, so it only survives if nothing decodes it. */
export const BAD_NAME = Buffer.from([0x61, 0xff, 0xfe])
export const LONG_NAME = 'n'.repeat(200)
/** 2021-01-02T03:04:05.123456789Z */
export const MTIME_SEC = 1609556645
export const MTIME_NSEC = 123456789

/** Seeded bytes (xorshift), so content and hashes are the same every run. */
export function seeded(n: number, seed: number): Buffer {
  const out = Buffer.alloc(n)
  let x = seed >>> 0 || 1
  for (let i = 0; i < n; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

export function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex')
}

export function freshDir(name: string): string {
  mkdirSync(ROOT, { recursive: true })
  return mkdtempSync(join(ROOT, `${name}-`))
}

/** Builds the tree and returns its directory. Contents: d/ (0750), d/f.txt (seeded, 0640,
 *  xattr user.test=hello, mtime with ns), d/link -> f.txt, d/hard (hardlink of d/f.txt),
 *  d/<200 n's> (0600), <BAD_NAME> (xattr user.bin = ff fe 00), p (FIFO), empty/ (dir),
 *  big.bin (3 MiB seeded). */
export function makeTree(): string {
  const dir = join(freshDir('tree'), 'src')
  mkdirSync(dir)
  mkdirSync(join(dir, 'd'), { mode: 0o750 })
  writeFileSync(join(dir, 'd', 'f.txt'), seeded(5000, 1), { mode: 0o640 })
  symlinkSync('f.txt', join(dir, 'd', 'link'))
  linkSync(join(dir, 'd', 'f.txt'), join(dir, 'd', 'hard'))
  writeFileSync(join(dir, 'd', LONG_NAME), 'long name\n', { mode: 0o600 })
  writeFileSync(Buffer.concat([Buffer.from(dir + '/'), BAD_NAME]), 'bytes\n')
  writeFileSync(join(dir, 'big.bin'), seeded(3 * 1024 * 1024 + 7, 2))
  mkdirSync(join(dir, 'empty'))
  execFileSync('mkfifo', [join(dir, 'p')])
  execFileSync('setfattr', ['-n', 'user.test', '-v', 'hello', join(dir, 'd', 'f.txt')])
  // The name is not UTF-8, so it cannot be an argv string from JS: let the shell make it.
  execFileSync('sh', ['-c', `setfattr -n user.bin -v 0xfffe00 "$(printf 'a\\377\\376')"`], { cwd: dir })
  const t = new Date(MTIME_SEC * 1000)
  utimesSync(join(dir, 'empty'), t, t)
  // utimes takes ms; touch sets the nanoseconds.
  execFileSync('touch', ['-h', '-d', '@1609556645.123456789', join(dir, 'd', 'f.txt')])
  return dir
}

/** GNU tar of the tree: `format` 'posix' (PAX records, with user xattrs) or 'gnu' (GNU long
 *  names, raw header names; no xattrs, since those would bring PAX records in). */
export function gnuTar(dir: string, format: 'posix' | 'gnu'): Buffer {
  const xattrs = format === 'posix' ? ['--xattrs', '--xattrs-include=user.*'] : []
  return execFileSync('tar', [`--format=${format}`, ...xattrs, '--sort=name', '-cf', '-', '.'], {
    cwd: dir,
    maxBuffer: 64 * 1024 * 1024,
  })
}
