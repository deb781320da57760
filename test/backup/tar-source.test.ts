import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { Readable } from 'node:stream'
import type { SourceEntry } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { createTarSource } from '../../transforms/backup/sources/tar.js'
import { decodePax, normalizeTarPath, parseTime } from '../../lib/tar.js'
import { BAD_NAME, LONG_NAME, MTIME_NSEC, MTIME_SEC, gnuTar, makeTree, seeded, sha256 } from '../helpers/tar-tree.js'

const FIX = new URL('../../fixtures/tar/', import.meta.url)

/** The bytes as a stream of odd-sized pieces, so headers and contents straddle pieces. */
function pieces(buf: Buffer, seed = 7): Readable {
  const sizes = [1, 511, 513, 7, 4096, 100_000, 3]
  let at = 0
  let i = seed
  return new Readable({
    read() {
      if (at >= buf.length) return this.push(null)
      const n = sizes[i++ % sizes.length]!
      this.push(buf.subarray(at, at + n))
      at += n
    },
  })
}

interface Got {
  entry: SourceEntry
  data?: Buffer
}

async function collect(src: Readable): Promise<Got[]> {
  const out: Got[] = []
  for await (const entry of src as AsyncIterable<SourceEntry>) {
    const got: Got = { entry }
    if (entry.content) {
      const parts: Buffer[] = []
      for await (const p of entry.content()) parts.push(Buffer.from(p))
      got.data = Buffer.concat(parts)
    }
    out.push(got)
  }
  return out
}

function byPath(got: Got[], path: string | Buffer): Got {
  const want = typeof path === 'string' ? Buffer.from(path) : path
  const g = got.find((x) => x.entry.path.equals(want))
  assert.ok(g, `no entry ${want.toString('latin1')}; have ${got.map((x) => x.entry.path.toString('latin1')).join(', ')}`)
  return g
}

async function rejectsTar(src: Readable, message: RegExp): Promise<void> {
  await assert.rejects(collect(src), (err: unknown) => {
    assert.ok(err instanceof SluiceError, String(err))
    assert.equal(err.code, 'ERR_TAR')
    assert.match(err.message, message)
    return true
  })
}

const tree = makeTree()

for (const format of ['posix', 'gnu'] as const) {
  test(`a GNU tar (${format}) of every entry kind comes out with the fields and bytes on disk`, async () => {
    const got = await collect(createTarSource(pieces(gnuTar(tree, format))))
    const paths = got.map((g) => g.entry.path.toString('latin1'))
    assert.ok(!paths.includes(''), 'the archive root is not an entry without a prefix')
    for (const p of paths) assert.ok(!p.startsWith('.') && !p.startsWith('/') && !p.endsWith('/'), p)

    const f = byPath(got, 'd/f.txt')
    assert.equal(f.entry.type, 'file')
    assert.equal(f.entry.mode, 0o640)
    assert.equal(f.entry.size, 5000)
    assert.equal(sha256(f.data!), sha256(seeded(5000, 1)))
    assert.equal(f.entry.mtimeSec, MTIME_SEC)
    // PAX keeps nanoseconds; the GNU format has whole seconds only.
    assert.equal(f.entry.mtimeNsec, format === 'posix' ? MTIME_NSEC : 0)
    assert.equal(f.entry.uid, process.getuid!())
    assert.equal(f.entry.ino, 0)
    assert.ok(f.entry.user, 'GNU tar records the owner name')
    if (format === 'posix') {
      assert.deepEqual(f.entry.xattrs?.map((x) => [x.name.toString(), x.value.toString()]), [['user.test', 'hello']])
    }

    const big = byPath(got, 'big.bin')
    assert.equal(big.entry.size, 3 * 1024 * 1024 + 7)
    assert.equal(sha256(big.data!), sha256(seeded(3 * 1024 * 1024 + 7, 2)))

    const hard = byPath(got, 'd/hard')
    const link = byPath(got, 'd/link')
    assert.equal(link.entry.type, 'symlink')
    assert.deepEqual(link.entry.linkTarget, Buffer.from('f.txt'))
    assert.equal(link.data, undefined)
    // --sort=name puts d/f.txt first, so d/hard is the second link.
    assert.equal(hard.entry.type, 'file')
    assert.deepEqual(hard.entry.hardlinkTo, Buffer.from('d/f.txt'))
    assert.equal(hard.entry.content, undefined)

    assert.equal(byPath(got, 'd/' + LONG_NAME).data!.toString(), 'long name\n')
    assert.equal(byPath(got, 'd/' + LONG_NAME).entry.mode, 0o600)
    const bad = byPath(got, BAD_NAME)
    assert.equal(bad.data!.toString(), 'bytes\n')
    if (format === 'posix') {
      // GNU tar writes the non-UTF-8 name and the binary xattr value raw into PAX records.
      assert.deepEqual(bad.entry.xattrs?.map((x) => [x.name.toString(), x.value.toString('hex')]), [['user.bin', 'fffe00']])
    }
    assert.equal(byPath(got, 'p').entry.type, 'fifo')
    assert.equal(byPath(got, 'empty').entry.type, 'dir')
    assert.equal(byPath(got, 'd').entry.type, 'dir')
    assert.equal(byPath(got, 'd').entry.mode, 0o750)
  })
}

test('a prefix puts every path, hardlink target and the archive root under it', async () => {
  const got = await collect(createTarSource(pieces(gnuTar(tree, 'posix')), { prefix: Buffer.from('srv') }))
  assert.equal(got[0]!.entry.path.toString(), 'srv')
  assert.equal(got[0]!.entry.type, 'dir')
  for (const g of got.slice(1)) assert.ok(g.entry.path.subarray(0, 4).equals(Buffer.from('srv/')))
  assert.deepEqual(byPath(got, 'srv/d/hard').entry.hardlinkTo, Buffer.from('srv/d/f.txt'))
  assert.deepEqual(byPath(got, 'srv/d/link').entry.linkTarget, Buffer.from('f.txt'), 'symlink targets are not rewritten')
})

test('a consumer that stops reading a file early still gets the next entries', async () => {
  const src = createTarSource(pieces(gnuTar(tree, 'posix')))
  const seen: string[] = []
  for await (const e of src as AsyncIterable<SourceEntry>) {
    seen.push(e.path.toString('latin1'))
    if (e.content) for await (const _ of e.content()) break
  }
  assert.ok(seen.includes('big.bin') && seen.includes('p'), seen.join(','))
})

test('descend=false drops an entry and the members below a dropped directory, content skipped', async () => {
  const src = createTarSource(pieces(gnuTar(tree, 'posix')), { descend: (e) => !e.path.equals(Buffer.from('d')) && !e.path.equals(Buffer.from('big.bin')) })
  const got = await collect(src)
  const paths = got.map((g) => g.entry.path.toString('latin1'))
  assert.ok(!paths.some((p) => p === 'd' || p.startsWith('d/') || p === 'big.bin'), paths.join(','))
  assert.ok(paths.includes('p') && paths.includes('empty'))
})

test("unreadContent 'skip': content nobody asked for is skipped, and asking later is an error", async () => {
  const src = createTarSource(pieces(gnuTar(tree, 'posix')), { unreadContent: 'skip' })
  const entries: SourceEntry[] = []
  for await (const e of src as AsyncIterable<SourceEntry>) entries.push(e)
  assert.ok(entries.length >= 9)
  const f = entries.find((e) => e.path.equals(Buffer.from('d/f.txt')))!
  await assert.rejects(async () => {
    for await (const _ of f.content!()) {
      /* nothing */
    }
  }, /skipped/)
})

test('a valid fixture archive reads completely', async () => {
  const got = await collect(createTarSource(pieces(readFileSync(new URL('small.tar', FIX)))))
  assert.deepEqual(got.map((g) => g.entry.path.toString()), ['dir', 'dir/data.bin', 'dir/hello.txt'])
  assert.equal(got[1]!.data!.length, 1000)
  assert.equal(got[2]!.data!.toString(), 'hello\n')
  assert.equal(got[1]!.entry.mtimeSec, 1600000000)
})

test('an archive cut in the middle of a file is ERR_TAR truncated', async () => {
  await rejectsTar(createTarSource(pieces(readFileSync(new URL('truncated.tar', FIX)))), /truncated/)
})

test('an archive cut at a member boundary (no end-of-archive blocks) is ERR_TAR truncated', async () => {
  await rejectsTar(createTarSource(pieces(readFileSync(new URL('no-eof.tar', FIX)))), /truncated/)
})

test('empty input is ERR_TAR truncated, not an empty snapshot', async () => {
  await rejectsTar(createTarSource(Readable.from([])), /truncated/)
})

test('a header with a bad checksum is ERR_TAR corrupt', async () => {
  await rejectsTar(createTarSource(pieces(readFileSync(new URL('corrupt-checksum.tar', FIX)))), /corrupt/)
})

test('a member path with a .. component is refused with ERR_TAR', async () => {
  await rejectsTar(createTarSource(pieces(readFileSync(new URL('dotdot.tar', FIX)))), /\.\./)
})

test('the content of a truncated member errors for the reader too', async () => {
  const src = createTarSource(pieces(readFileSync(new URL('truncated.tar', FIX))))
  let contentErr: unknown
  await assert.rejects(async () => {
    for await (const e of src as AsyncIterable<SourceEntry>) {
      if (!e.content) continue
      try {
        for await (const _ of e.content()) {
          /* read */
        }
      } catch (err) {
        contentErr = err
      }
    }
  }, /truncated/)
  assert.ok(contentErr instanceof SluiceError && contentErr.code === 'ERR_TAR')
})

test('path normalization and PAX decoding', () => {
  assert.deepEqual(normalizeTarPath(Buffer.from('./a//b/./c/')), Buffer.from('a/b/c'))
  assert.deepEqual(normalizeTarPath(Buffer.from('/abs/x')), Buffer.from('abs/x'))
  assert.deepEqual(normalizeTarPath(Buffer.from('./')), Buffer.alloc(0))
  assert.throws(() => normalizeTarPath(Buffer.from('a/../../b')), /\.\./)
  assert.deepEqual(parseTime('1.5'), [1, 500000000])
  assert.deepEqual(parseTime('-1.25'), [-2, 750000000])
  assert.deepEqual(parseTime('7'), [7, 0])
  const rec = Buffer.concat([Buffer.from('12 path=a'), Buffer.from([0xff, 0xfe]), Buffer.from('\n')])
  assert.deepEqual(Buffer.from(decodePax(rec).path!, 'latin1'), Buffer.from([0x61, 0xff, 0xfe]))
})

test('a bsdtar archive (pax, xattrs) reads with raw names and xattrs', async () => {
  const { execFileSync } = await import('node:child_process')
  const tar = execFileSync('bsdtar', ['--format=pax', '--xattrs', '-cf', '-', '.'], { cwd: tree, maxBuffer: 64 << 20 })
  const got = await collect(createTarSource(pieces(tar)))
  assert.equal(byPath(got, BAD_NAME).data!.toString(), 'bytes\n')
  assert.deepEqual(byPath(got, BAD_NAME).entry.xattrs?.map((x) => [x.name.toString(), x.value.toString('hex')]), [['user.bin', 'fffe00']])
  assert.equal(byPath(got, 'd/f.txt').entry.mtimeNsec, MTIME_NSEC)
  assert.deepEqual(byPath(got, 'd/' + LONG_NAME).data!.toString(), 'long name\n')
})

test('the source streams: a 3 MiB member is not read from the input before its content is', async () => {
  const tar = gnuTar(tree, 'posix')
  let pulled = 0
  const input = pieces(tar).on('data', (p: Buffer) => (pulled += p.length))
  for await (const e of createTarSource(input) as AsyncIterable<SourceEntry>) {
    if (e.path.equals(Buffer.from('big.bin'))) {
      await new Promise((r) => setTimeout(r, 50))
      const before = pulled
      assert.ok(before < tar.indexOf(seeded(4096, 2)) + 1024 * 1024, `read ${before} bytes ahead`)
    }
    if (e.content) for await (const _ of e.content()) {
      /* read */
    }
  }
  assert.equal(pulled, tar.length)
})

test('through the real chunker and filter stage: descend prunes, a truncated tar fails the pipeline', async () => {
  const { Writable } = await import('node:stream')
  const { pipeline } = await import('node:stream/promises')
  const { createHash } = await import('node:crypto')
  const { createChunker } = await import('../../transforms/backup/chunk.js')
  const { createFilter } = await import('../../transforms/backup/filter.js')
  const { compileFilter } = await import('../../lib/filter-rules.js')
  const { gearTable } = await import('../../lib/fastcdc.js')
  const keys = { gear: gearTable(Buffer.alloc(32, 1)), chunkId: (d: Uint8Array) => createHash('sha256').update(d).digest() }
  const params = { min: 64 * 1024, avg: 256 * 1024, max: 1024 * 1024 }
  const run = async (src: Readable, rules = compileFilter({})): Promise<Map<string, number>> => {
    const sizes = new Map<string, number>()
    const sink = new Writable({
      objectMode: true,
      write(i: { kind: string; entry?: { path: Buffer; size: number } }, _e, cb) {
        if (i.kind === 'record') sizes.set(i.entry!.path.toString('latin1'), i.entry!.size)
        cb()
      },
    })
    await pipeline(src, createFilter(rules), createChunker(keys, { params, onWarning: () => {} }), sink)
    return sizes
  }
  const tar = gnuTar(tree, 'posix')
  const all = await run(createTarSource(pieces(tar)))
  assert.equal(all.get('big.bin'), 3 * 1024 * 1024 + 7)
  assert.equal(all.size, 9)
  // The filter stage cannot skip tar content: the rules go to the source as `descend` too.
  const rules = compileFilter({ exclude: ['big.bin', 'd'] })
  const some = await run(createTarSource(pieces(tar), { descend: rules.canDescend }), rules)
  assert.deepEqual([...some.keys()].sort(), ['a\xff\xfe', 'empty', 'p'])
  await assert.rejects(run(createTarSource(pieces(readFileSync(new URL('truncated.tar', FIX))))), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_TAR')
})
