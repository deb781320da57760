import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { closeSync, cpSync, existsSync, ftruncateSync, lstatSync, mkdirSync, mkdtempSync, openSync, rmSync, symlinkSync, writeFileSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { ADDON_PATH, DT_DIR, lgetxattrs, listDir, loadAddon, STAT_AT_FIELDS, statAt, statAtResult, lsetxattr, mkfifo, mknod, nativeCdcNext, nativeCopy, seekData, trimMalloc, tuneMalloc, utimens } from '../../lib/native.js'
import { scratch } from '../helpers/scratch.js'

const ROOT = scratch('native-task')
const PACKAGE = fileURLToPath(new URL('../..', import.meta.url))
const SHM = '/dev/shm'
let dir: Buffer

/** A path under the test directory, as raw bytes; `name` may be any bytes. */
function p(name: string | Buffer): Buffer {
  return Buffer.concat([dir, Buffer.from('/'), Buffer.isBuffer(name) ? name : Buffer.from(name)])
}

function ns(sec: number, nsec: number): bigint {
  return BigInt(sec) * 1_000_000_000n + BigInt(nsec)
}

const hasGetfattr = spawnSync('getfattr', ['--version']).status === 0
const isRoot = process.getuid?.() === 0

before(() => {
  mkdirSync(ROOT, { recursive: true })
  dir = Buffer.from(mkdtempSync(`${ROOT}/native-`))
})
after(() => rmSync(dir, { recursive: true, force: true }))

describe('utimens', () => {
  const times: Array<[string, number, number]> = [
    ['an ordinary time', 1_234_567_890, 123_456_789],
    ['a time before 1970', -86_401, 999_999_999],
    ['a time after 2038', 4_102_444_800, 1],
  ]

  for (const [label, sec, nsec] of times) {
    test(`restores mtime and atime to the nanosecond on a file, a directory and a symlink (${label})`, () => {
      const file = p(`f${sec}`)
      const sub = p(`d${sec}`)
      const link = p(`l${sec}`)
      writeFileSync(file, 'x')
      mkdirSync(sub)
      symlinkSync(file, link)
      for (const target of [file, sub, link]) {
        utimens(target, { sec: sec + 7, nsec: 42 }, { sec, nsec })
        const st = lstatSync(target, { bigint: true })
        assert.equal(st.mtimeNs, ns(sec, nsec))
        assert.equal(st.atimeNs, ns(sec + 7, 42))
      }
    })
  }

  test('sets the times of a symlink itself, not of its target', () => {
    const target = p('target')
    const link = p('link-to-target')
    writeFileSync(target, 'x')
    symlinkSync(target, link)
    const before = lstatSync(target, { bigint: true }).mtimeNs
    utimens(link, { sec: 1000, nsec: 1 }, { sec: 2000, nsec: 2 })
    assert.equal(lstatSync(link, { bigint: true }).mtimeNs, ns(2000, 2))
    assert.equal(lstatSync(target, { bigint: true }).mtimeNs, before)
  })

  test('works on a dangling symlink', () => {
    const link = p('dangling')
    symlinkSync('/nonexistent/nowhere', link)
    utimens(link, { sec: 5, nsec: 6 }, { sec: 7, nsec: 8 })
    assert.equal(lstatSync(link, { bigint: true }).mtimeNs, ns(7, 8))
  })

  test('rejects nanoseconds out of range with EINVAL', () => {
    const file = p('nsec-range')
    writeFileSync(file, 'x')
    assert.throws(() => utimens(file, { sec: 0, nsec: 0 }, { sec: 0, nsec: 1_000_000_000 }), { code: 'EINVAL' })
  })

  test('rejects a fractional second as a TypeError', () => {
    const file = p('frac')
    writeFileSync(file, 'x')
    assert.throws(() => utimens(file, { sec: 0, nsec: 0 }, { sec: 1.5, nsec: 0 }), TypeError)
  })
})

describe('lgetxattrs / lsetxattr', () => {
  const binary = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  const attrs = [
    { name: Buffer.from('user.zeta'), value: Buffer.from('last') },
    { name: Buffer.from('user.bin'), value: binary },
    { name: Buffer.from('user.empty'), value: Buffer.alloc(0) },
  ]
  const sorted = [...attrs].sort((a, b) => Buffer.compare(a.name, b.name))

  test('round-trips binary and empty values on a file whose name is not UTF-8', () => {
    const file = p(Buffer.from([0x62, 0xff, 0xfe, 0x2e, 0x62, 0x69, 0x6e]))
    writeFileSync(file, 'content')
    for (const a of attrs) lsetxattr(file, a.name, a.value)
    assert.deepEqual(lgetxattrs(file), sorted)
  })

  test('round-trips attributes on a directory whose name is not UTF-8', () => {
    const sub = p(Buffer.from([0xc3, 0x28, 0x80]))
    mkdirSync(sub)
    for (const a of attrs) lsetxattr(sub, a.name, a.value)
    assert.deepEqual(lgetxattrs(sub), sorted)
  })

  test('a file without attributes gives an empty list', () => {
    const file = p('plain')
    writeFileSync(file, 'x')
    assert.deepEqual(
      lgetxattrs(file).filter((a) => a.name.subarray(0, 5).toString() === 'user.'),
      [],
    )
  })

  test('replaces a value', () => {
    const file = p('replace')
    writeFileSync(file, 'x')
    lsetxattr(file, Buffer.from('user.v'), Buffer.from('first, longer value'))
    lsetxattr(file, Buffer.from('user.v'), Buffer.from('2nd'))
    assert.deepEqual(lgetxattrs(file), [{ name: Buffer.from('user.v'), value: Buffer.from('2nd') }])
  })

  // ext4 keeps all of a file's attributes in one 4 KiB block; tmpfs takes 64 KiB values and long
  // name lists, which exceed the addon's first 4 KiB buffers and take its grow-and-retry path.
  test('reads a 64 KiB value and a name list longer than 4 KiB', { skip: !existsSync(SHM) && 'no /dev/shm' }, () => {
    const shm = mkdtempSync(`${SHM}/native-task-`)
    try {
      const file = Buffer.from(`${shm}/big`)
      writeFileSync(file, 'x')
      const big = Buffer.alloc(65536)
      for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff
      try {
        lsetxattr(file, Buffer.from('user.big'), big)
      } catch (err) {
        if ((err as { code?: string }).code === 'ENOTSUP' || (err as { code?: string }).code === 'EOPNOTSUPP') return // tmpfs before Linux 6.6
        throw err
      }
      const names = Array.from({ length: 300 }, (_, i) => Buffer.from(`user.name-number-${i}`))
      for (const n of names) lsetxattr(file, n, Buffer.alloc(0))
      const got = lgetxattrs(file)
      assert.equal(got.length, 301)
      assert.deepEqual(got.find((a) => a.name.equals(Buffer.from('user.big')))?.value, big)
      assert.deepEqual(
        got.map((a) => a.name),
        [...names, Buffer.from('user.big')].sort(Buffer.compare),
      )
    } finally {
      rmSync(shm, { recursive: true, force: true })
    }
  })

  test('reads a symlink itself and does not follow it', () => {
    const target = p('xt')
    writeFileSync(target, 'x')
    lsetxattr(target, Buffer.from('user.on-target'), Buffer.from('1'))
    const link = p('xl')
    symlinkSync(target, link)
    assert.equal(
      lgetxattrs(link).some((a) => a.name.toString() === 'user.on-target'),
      false,
    )
    const dangling = p('xdangling')
    symlinkSync('/nonexistent', dangling)
    assert.ok(Array.isArray(lgetxattrs(dangling)))
  })

  test('agrees with getfattr and setfattr', { skip: !hasGetfattr && 'getfattr not installed' }, () => {
    const file = p('cross')
    const path = file.toString()
    writeFileSync(file, 'x')
    assert.equal(spawnSync('setfattr', ['-n', 'user.from-tool', '-v', '0x00ff10', path]).status, 0)
    lsetxattr(file, Buffer.from('user.from-addon'), Buffer.from([1, 2, 0, 3]))
    const ours = lgetxattrs(file).filter((a) => a.name.toString().startsWith('user.'))
    assert.deepEqual(ours, [
      { name: Buffer.from('user.from-addon'), value: Buffer.from([1, 2, 0, 3]) },
      { name: Buffer.from('user.from-tool'), value: Buffer.from([0x00, 0xff, 0x10]) },
    ])
    const out = spawnSync('getfattr', ['--absolute-names', '-d', '-e', 'hex', '-m', '^user\\.', path], {
      encoding: 'utf8',
    }).stdout
    assert.match(out, /^user\.from-addon=0x01020003$/m)
    assert.match(out, /^user\.from-tool=0x00ff10$/m)
  })

  test('a missing file throws ENOENT shaped like a Node fs error', () => {
    assert.throws(() => lgetxattrs(p('missing')), (err: unknown) => {
      const e = err as Error & { code: string; errno: number; syscall: string }
      assert.ok(e instanceof Error)
      assert.equal(e.code, 'ENOENT')
      assert.equal(e.errno, -2)
      assert.equal(e.syscall, 'llistxattr')
      assert.equal(e.message, 'ENOENT: no such file or directory, llistxattr')
      return true
    })
    assert.throws(() => lsetxattr(p('missing'), Buffer.from('user.a'), Buffer.from('b')), {
      code: 'ENOENT',
      syscall: 'lsetxattr',
    })
    assert.throws(() => utimens(p('missing'), { sec: 0, nsec: 0 }, { sec: 0, nsec: 0 }), {
      code: 'ENOENT',
      syscall: 'utimensat',
    })
  })

  test('a name outside the known namespaces is refused with ENOTSUP', () => {
    const file = p('ns')
    writeFileSync(file, 'x')
    assert.throws(() => lsetxattr(file, Buffer.from('bogus.name'), Buffer.from('v')), { code: 'ENOTSUP' })
  })

  test('a path or name holding a NUL byte is refused, not truncated', () => {
    const file = p('nul')
    writeFileSync(file, 'x')
    const withNul = Buffer.concat([file, Buffer.from([0, 0x61])])
    assert.throws(() => lgetxattrs(withNul), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' })
    assert.throws(() => lsetxattr(file, Buffer.from('user.a\0b'), Buffer.from('v')), {
      code: 'ERR_INVALID_ARG_VALUE',
    })
    assert.throws(() => utimens(withNul, { sec: 0, nsec: 0 }, { sec: 0, nsec: 0 }), { code: 'ERR_INVALID_ARG_VALUE' })
  })
})

describe('mknod / mkfifo', () => {
  test('mkfifo creates a FIFO with the permission bits (minus the umask)', () => {
    const fifo = p(Buffer.from([0x66, 0x69, 0x66, 0x6f, 0xff]))
    mkfifo(fifo, 0o640)
    const st = lstatSync(fifo)
    assert.ok(st.isFIFO())
    const mask = process.umask()
    assert.equal(st.mode & 0o7777, 0o640 & ~mask)
  })

  test('mkfifo over an existing name throws EEXIST', () => {
    const fifo = p('fifo-twice')
    mkfifo(fifo, 0o600)
    assert.throws(() => mkfifo(fifo, 0o600), { code: 'EEXIST', syscall: 'mknod' })
  })

  test('mknod creates a character device with the rdev lstat reports', { skip: !isRoot && 'needs root' }, () => {
    const devNull = lstatSync('/dev/null')
    const node = p('null-copy')
    try {
      mknod(node, 0o20000 | 0o666, devNull.rdev)
    } catch (err) {
      if ((err as { code?: string }).code === 'EPERM') return // root without CAP_MKNOD (container)
      throw err
    }
    const st = lstatSync(node)
    assert.ok(st.isCharacterDevice())
    assert.equal(st.rdev, devNull.rdev)
  })
})

describe('cdcNext (the chunker loop; its boundaries are pinned in fastcdc.test.ts)', () => {
  const gear = new Int32Array(256).map((_, i) => Math.imul(i + 1, 0x9e3779b1))
  // [h, n, min, avg, max, maskS, maskL]
  const state = (h = 0, n = 0): Float64Array => new Float64Array([h, n, 64, 256, 1024, 0xffff0000, 0xff])
  const next = () => {
    const f = nativeCdcNext()
    assert.ok(f, 'the addon is built')
    return f
  }

  test('an empty buffer cuts nothing and leaves the state as it was', () => {
    const st = state(-5, 100)
    assert.equal(next()(gear, Buffer.alloc(0), 0, st), -1)
    assert.deepEqual([...st.subarray(0, 2)], [-5, 100])
  })

  test('a chunk that reaches max is cut there, and the state resets', () => {
    const st = state(0, 1000)
    const buf = Buffer.alloc(100)
    // An all-ones mask can only match h == 0 exactly; with these gear values it does not here.
    st[6] = 0xffffffff
    assert.equal(next()(gear, buf, 10, st), 34)
    assert.deepEqual([...st.subarray(0, 2)], [0, 0])
  })

  test('the carried hash is a signed 32-bit value, as the TypeScript loop keeps it', () => {
    const st = state(0, 1000)
    st[6] = 0xffffffff
    assert.equal(next()(gear, Buffer.alloc(20, 0xff), 0, st), -1)
    let h = 0
    for (let i = 0; i < 20; i++) h = ((h << 1) + gear[0xff]!) | 0
    assert.deepEqual([...st.subarray(0, 2)], [h, 1020])
  })

  test('wrong argument types throw a TypeError', () => {
    const buf = Buffer.alloc(10)
    // Called as a script without types would: any arguments.
    const call = (...a: unknown[]) => Reflect.apply(next(), undefined, a)
    assert.throws(() => call(gear, [1, 2, 3], 0, state()), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => call(new Uint32Array(256), buf, 0, state()), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => call(gear, buf, 0, new Int32Array(7)), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => call(gear, buf, '0', state()), { code: 'ERR_INVALID_ARG_TYPE' })
    assert.throws(() => call(gear, buf, 0), { name: 'TypeError', code: 'ERR_MISSING_ARGS' })
  })

  test('out-of-range arguments throw a RangeError instead of reading outside the buffers', () => {
    const buf = Buffer.alloc(10)
    const bad: Array<[string, () => number]> = [
      ['a short gear table', () => next()(gear.subarray(1), buf, 0, state())],
      ['a short state', () => next()(gear, buf, 0, state().subarray(0, 6))],
      ['start past the end', () => next()(gear, buf, 11, state())],
      ['a negative start', () => next()(gear, buf, -1, state())],
      ['a fractional start', () => next()(gear, buf, 1.5, state())],
      ['a NaN start', () => next()(gear, buf, NaN, state())],
      ['h beyond 32 bits', () => next()(gear, buf, 0, state(2 ** 31))],
      ['n past max', () => next()(gear, buf, 0, state(0, 1025))],
      ['min of 0', () => next()(gear, buf, 0, new Float64Array([0, 0, 0, 256, 1024, 1, 1]))],
      ['avg below min', () => next()(gear, buf, 0, new Float64Array([0, 0, 64, 32, 1024, 1, 1]))],
      ['a mask beyond 32 bits', () => next()(gear, buf, 0, new Float64Array([0, 0, 64, 256, 1024, 2 ** 32, 1]))],
    ]
    for (const [label, call] of bad) assert.throws(call, { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }, label)
  })
})

describe('copy', () => {
  test('copies every byte into shared memory at any alignment, and refuses what does not fit', () => {
    const copy = nativeCopy()
    assert.ok(copy, 'the addon has copy')
    const sab = new SharedArrayBuffer(1 << 16)
    const src = Buffer.alloc(5000)
    for (let i = 0; i < src.length; i++) src[i] = (i * 31 + 7) & 0xff
    for (const [dstStart, offset, from] of [[0, 0, 0], [3, 26, 1], [5, 1001, 7], [8, 0, 3]] as const) {
      const dst = Buffer.from(sab, dstStart, 20000)
      dst.fill(0xee)
      const piece = src.subarray(from)
      copy(dst, offset, piece)
      assert.deepEqual(Buffer.from(dst.subarray(offset, offset + piece.length)), Buffer.from(piece))
      assert.equal(dst[offset - 1] ?? 0xee, 0xee, 'nothing before')
      assert.equal(dst[offset + piece.length], 0xee, 'nothing after')
    }
    const dst = Buffer.from(sab, 0, 100)
    assert.throws(() => copy(dst, 90, src.subarray(0, 11)), { code: 'ERR_OUT_OF_RANGE' })
    assert.throws(() => copy(dst, -1, src.subarray(0, 1)), { code: 'ERR_OUT_OF_RANGE' })
    assert.throws(() => copy(dst, 0.5, src.subarray(0, 1)), { code: 'ERR_OUT_OF_RANGE' })
    assert.throws(() => Reflect.apply(copy, undefined, [{}, 0, src]), { code: 'ERR_INVALID_ARG_TYPE' })
    copy(dst, 100, Buffer.alloc(0)) // an empty piece at the very end is fine
  })
})

describe('seekData (SEEK_DATA / SEEK_HOLE)', () => {
  test('finds the data and the holes of a sparse file, -1 past the last data', (t) => {
    const f = p('sparse')
    const fd = openSync(f, 'w+')
    try {
      ftruncateSync(fd, 64 << 20)
      writeSync(fd, Buffer.alloc(8192, 7), 0, 8192, 32 << 20)
      let firstHole: number
      try {
        firstHole = seekData(fd, 0, true)
      } catch (err) {
        t.skip(`this filesystem does not report holes (${(err as Error).message})`)
        return
      }
      if (firstHole >= 64 << 20) {
        t.skip('this filesystem stores the file without holes')
        return
      }
      assert.equal(firstHole, 0)
      const data = seekData(fd, 0, false)
      assert.ok(data <= 32 << 20 && data > (32 << 20) - 65536, `data at ${data}`)
      const hole = seekData(fd, data, true)
      assert.ok(hole >= (32 << 20) + 8192 && hole < (32 << 20) + 65536 + 8192, `hole at ${hole}`)
      assert.equal(seekData(fd, hole, false), -1)
      assert.throws(() => seekData(-1 as number, 0, false), { name: 'RangeError' })
      assert.throws(() => seekData(fd, 0, 'yes' as unknown as boolean), { name: 'TypeError' })
    } finally {
      closeSync(fd)
    }
  })
})

describe('tuneMalloc', () => {
  test('sets the thresholds glibc takes, and checks its arguments', () => {
    // Today's values, set again: the test process keeps the policy it had.
    assert.equal(tuneMalloc(128 * 1024, 2), true)
    const call = (...a: unknown[]) => Reflect.apply(tuneMalloc, undefined, a)
    const bad: Array<[string, unknown[], string]> = [
      ['a negative threshold', [-1, 0], 'ERR_OUT_OF_RANGE'],
      ['a fractional threshold', [1.5, 0], 'ERR_OUT_OF_RANGE'],
      ['NaN', [NaN, 0], 'ERR_OUT_OF_RANGE'],
      ['a threshold beyond an int', [2 ** 31, 0], 'ERR_OUT_OF_RANGE'],
      ['a negative arena count', [0, -1], 'ERR_OUT_OF_RANGE'],
      ['too many arenas', [0, 1e6], 'ERR_OUT_OF_RANGE'],
      ['a string', ['128', 0], 'ERR_INVALID_ARG_TYPE'],
      ['a missing argument', [128], 'ERR_INVALID_ARG_TYPE'],
    ]
    for (const [label, args, code] of bad) assert.throws(() => call(...args), { code }, label)
    assert.throws(() => Reflect.apply(loadAddon().tuneMalloc, undefined, [128]), { code: 'ERR_MISSING_ARGS' })
  })

  test('trimMalloc gives free pages back on glibc, and what is live stays as it was', () => {
    const kept = Array.from({ length: 64 }, (_, i) => Buffer.alloc(64 * 1024, i))
    assert.equal(trimMalloc(), true)
    for (const [i, b] of kept.entries()) assert.equal(b[b.length - 1], i)
  })
})

describe('trimMalloc', () => {
  test('trims where glibc is the allocator, and says so', () => {
    const glibc = Boolean((process.report.getReport() as { header?: { glibcVersionRuntime?: string } }).header?.glibcVersionRuntime)
    assert.equal(trimMalloc(), glibc)
  })
})

describe('listDir and statAt', () => {
  test('a listing is sorted by raw bytes, with types; statAt lstats its names and reads link targets', async () => {
    const d = p('listing')
    mkdirSync(d)
    const names = [Buffer.from('b'), Buffer.from([0x61, 0xff]), Buffer.from('a'), Buffer.from('a b'), Buffer.from('sub'), Buffer.from('ln')]
    for (const n of names.slice(0, 4)) writeFileSync(Buffer.concat([d, Buffer.from('/'), n]), n)
    mkdirSync(Buffer.concat([d, Buffer.from('/sub')]))
    symlinkSync('target/of/link', Buffer.concat([d, Buffer.from('/ln')]))
    const l = await listDir(d, 1 << 20)
    assert.ok(l !== 'too big')
    const got = Array.from({ length: l.count }, (_, i) => l.names.subarray(l.offsets[i]!, l.offsets[i + 1]! - 1))
    assert.deepEqual(got.map(String), [...names].sort(Buffer.compare).map(String))
    assert.deepEqual(got.map(n => n.toString('hex')), [...names].sort(Buffer.compare).map(n => n.toString('hex')))
    assert.equal(l.types[got.findIndex(n => n.equals(Buffer.from('sub')))], DT_DIR)
    const out = new Float64Array(STAT_AT_FIELDS * l.count)
    const links = Buffer.alloc(64)
    await statAt(d, l, 0, l.count, out, links)
    for (let k = 0; k < l.count; k++) {
      assert.equal(out[STAT_AT_FIELDS * k], 0)
      const want = lstatSync(Buffer.concat([d, Buffer.from('/'), got[k]!]), { bigint: true })
      const st = statAtResult(out, k)
      assert.equal(st.ino, Number(want.ino))
      assert.equal(st.size, Number(want.size))
      assert.equal(st.mode, Number(want.mode))
    }
    const ln = got.findIndex(n => n.equals(Buffer.from('ln')))
    const b = STAT_AT_FIELDS * ln
    assert.equal(links.subarray(out[b + 13]!, out[b + 13]! + out[b + 14]!).toString(), 'target/of/link')
    // A target that does not fit the links buffer is left to the caller (-ERANGE).
    await statAt(d, l, ln, ln + 1, out, Buffer.alloc(4))
    assert.ok(out[14]! < 0)
  })

  test('a listing over maxBytes is "too big"; a missing directory rejects with its errno; an empty one has no names', async () => {
    const d = p('listing-big')
    mkdirSync(d)
    for (let i = 0; i < 100; i++) writeFileSync(Buffer.concat([d, Buffer.from(`/name-${i}`)]), '')
    assert.equal(await listDir(d, 500), 'too big')
    assert.equal(((await listDir(d, 1 << 20)) as { count: number }).count, 100)
    await assert.rejects(listDir(p('no-such-dir'), 1 << 20), { code: 'ENOENT', syscall: 'scandir' })
    mkdirSync(p('listing-empty'))
    assert.equal(((await listDir(p('listing-empty'), 1 << 20)) as { count: number }).count, 0)
  })

  test('statAt reports a vanished name per name, and refuses a buffer that is not a listing', async () => {
    const d = p('listing-vanish')
    mkdirSync(d)
    writeFileSync(Buffer.concat([d, Buffer.from('/x')]), '')
    writeFileSync(Buffer.concat([d, Buffer.from('/y')]), '')
    const l = await listDir(d, 1 << 20)
    assert.ok(l !== 'too big')
    rmSync(Buffer.concat([d, Buffer.from('/x')]))
    const out = new Float64Array(STAT_AT_FIELDS * 2)
    await statAt(d, l, 0, 2, out, Buffer.alloc(16))
    assert.equal(out[0], 2) // ENOENT
    assert.equal(out[STAT_AT_FIELDS], 0)
    const forged = { ...l, raw: Buffer.from([9, 0, 0, 0, 0, 0, 0, 0]) }
    assert.throws(() => statAt(d, forged, 0, 1, out, Buffer.alloc(16)), { code: 'ERR_OUT_OF_RANGE' })
    assert.throws(() => statAt(d, l, 1, 3, out, Buffer.alloc(16)), { code: 'ERR_OUT_OF_RANGE' })
  })
})

describe('the loader', () => {
  test('finds the addon from the sources (tsx) and from dist/', { skip: !existsSync(join(PACKAGE, 'dist/lib/native.js')) && 'not built' }, () => {
    assert.equal(typeof loadAddon().readFiles, 'function')
    const fromDist = spawnSync(process.execPath, ['--input-type=module', '-e', `
      const m = await import(${JSON.stringify(join(PACKAGE, 'dist/lib/native.js'))})
      process.stdout.write(Object.keys(m.loadAddon()).sort().join(','))`], { encoding: 'utf8' })
    assert.equal(fromDist.status, 0, fromDist.stderr)
    assert.equal(fromDist.stdout, 'cdcNext,copy,decodeContext,decodeFrame,execSelf,lgetxattrs,listDir,lsetxattr,lstat,mknod,openObject,readFiles,readXattrs,releaseFilePages,seekData,statAt,trimMalloc,tuneMalloc,utimens,writeFiles,zstdBound,zstdCompress,zstdContext')
  })

  test('a missing addon is one ERR_NATIVE line naming it, not a read error', { skip: !existsSync(join(PACKAGE, 'dist/cli/main.js')) && 'not built' }, () => {
    // A copy of the package without build/: what an install whose compile failed leaves.
    const pkg = mkdtempSync(join(ROOT, 'no-addon-'))
    try {
      for (const f of ['package.json', 'binding.gyp', 'dist']) cpSync(join(PACKAGE, f), join(pkg, f), { recursive: true })
      symlinkSync(join(PACKAGE, 'node_modules'), join(pkg, 'node_modules'))
      mkdirSync(join(pkg, 'data'))
      writeFileSync(join(pkg, 'data', 'file'), 'some content')
      const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: pkg, SLUICE_PASSWORD: 'pw', SLUICE_REPOSITORY: join(pkg, 'repo') }
      const run = (...args: string[]) => spawnSync(process.execPath, [join(pkg, 'dist/cli/main.js'), ...args], { env, encoding: 'utf8' })
      const init = run('init')
      assert.equal(init.status, 0, init.stderr) // init needs no addon, nor does listing snapshots
      const snapshots = run('snapshots')
      assert.equal(snapshots.status, 0, snapshots.stderr)
      const addon = join(pkg, ADDON_PATH)
      const want = `sluice: ERR_NATIVE: the native addon ${addon} is missing: run npm rebuild in ${pkg}\n`
      for (const args of [['backup', join(pkg, 'data')], ['restore', 'latest', '--target', join(pkg, 'out')], ['check']]) {
        const r = run(...args)
        assert.equal(r.status, 1, `${args[0]}: ${r.stderr}`)
        assert.equal(r.stderr, want, args[0])
      }
    } finally {
      rmSync(pkg, { recursive: true, force: true })
    }
  })
})
