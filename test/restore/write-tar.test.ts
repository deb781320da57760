import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import { createWriteStream, lstatSync, mkdirSync, readFileSync, readlinkSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { EntryMeta, RecordItem, RestoreItem, SourceEntry } from '../../lib/entry.js'
import type { SluiceError } from '../../lib/errors.js'
import { encodeTarHeader, makedev, paxTime, splitDev } from '../../lib/tar.js'
import { createTarSource } from '../../transforms/backup/sources/tar.js'
import { createTarWriter } from '../../transforms/restore/sinks/tar.js'
import { createContentWriter } from '../../transforms/restore/sinks/stdout.js'
import { BAD_NAME, LONG_NAME, MTIME_NSEC, MTIME_SEC, freshDir, gnuTar, makeTree, seeded, sha256 } from '../helpers/tar-tree.js'

const tree = makeTree()

/** The tree as a restore stream: records in tar order, each file's content in odd pieces. */
async function restoreItems(): Promise<RestoreItem[]> {
  const items: RestoreItem[] = []
  for await (const e of createTarSource(Readable.from([gnuTar(tree, 'posix')])) as AsyncIterable<SourceEntry>) {
    const { kind: _k, content, ...meta } = e
    items.push({ kind: 'record', entry: meta, extents: [] })
    if (content) {
      const parts: Buffer[] = []
      for await (const p of content()) parts.push(Buffer.from(p))
      const all = Buffer.concat(parts)
      for (let at = 0, i = 0; at < all.length; i++) {
        const n = [1, 4095, 70_000, 3][i % 4]!
        items.push({ kind: 'data', data: all.subarray(at, at + n) })
        at += n
      }
      items.push({ kind: 'extents', extents: [] })
    }
  }
  return items
}

async function writeTar(items: RestoreItem[], file: string, warnings: SluiceError[] = []): Promise<void> {
  await pipeline(Readable.from(items), createTarWriter(createWriteStream(file), { onWarning: (w) => warnings.push(w) }))
}

function xattr(dir: string, nameExpr: string, attr: string): string {
  const out = execFileSync('sh', ['-c', `getfattr --absolute-names -e hex -n ${attr} ${nameExpr}`], { cwd: dir }).toString()
  return /=(0x[0-9a-f]*)/.exec(out)?.[1] ?? ''
}

const extractors: [string, (tarFile: string, dir: string) => void][] = [
  ['GNU tar', (t, d) => execFileSync('tar', ['-x', '--xattrs', '--xattrs-include=*', '-f', t, '-C', d])],
  ['bsdtar', (t, d) => execFileSync('bsdtar', ['-x', '--xattrs', '-f', t, '-C', d])],
]

const items = await restoreItems()
const work = freshDir('write')
const tarFile = join(work, 'out.tar')
const warnings: SluiceError[] = []
await writeTar(items, tarFile, warnings)

test('writing the records of a tree makes a tar with no warnings and whole blocks', () => {
  assert.deepEqual(warnings.map((w) => w.message), [])
  assert.equal(readFileSync(tarFile).length % 512, 0)
})

for (const [tool, extract] of extractors) {
  test(`${tool} extracts the written tar to the same tree`, () => {
    const dir = join(work, tool.replace(' ', '-'))
    mkdirSync(dir)
    extract(tarFile, dir)
    const at = (p: string | Buffer): Buffer => Buffer.concat([Buffer.from(dir + '/'), Buffer.from(p)])
    const src = (p: string | Buffer): Buffer => Buffer.concat([Buffer.from(tree + '/'), Buffer.from(p)])

    // Every name, including the non-UTF-8 one, as raw bytes.
    assert.deepEqual(
      (readdirSync(Buffer.from(dir), { encoding: 'buffer' }) as Buffer[]).map((b) => b.toString('hex')).sort(),
      (readdirSync(Buffer.from(tree), { encoding: 'buffer' }) as Buffer[]).map((b) => b.toString('hex')).sort(),
    )
    for (const p of ['d/f.txt', 'big.bin', 'd/' + LONG_NAME, BAD_NAME]) {
      assert.equal(sha256(readFileSync(at(p))), sha256(readFileSync(src(p))), String(p))
      assert.equal(lstatSync(at(p)).mode, lstatSync(src(p)).mode, String(p))
    }
    const f = lstatSync(at('d/f.txt'), { bigint: true })
    assert.equal(f.mtimeNs, BigInt(MTIME_SEC) * 1_000_000_000n + BigInt(MTIME_NSEC), 'mtime with nanoseconds')
    assert.equal(lstatSync(at('d')).mode & 0o7777, 0o750)
    assert.equal(lstatSync(at('d/hard')).ino, lstatSync(at('d/f.txt')).ino, 'hardlink shares the inode')
    assert.equal(readlinkSync(at('d/link')).toString(), 'f.txt')
    assert.ok(lstatSync(at('p')).isFIFO())
    assert.ok(lstatSync(at('empty')).isDirectory())
    assert.equal(lstatSync(at('empty')).mtimeMs, MTIME_SEC * 1000)
    assert.equal(xattr(dir, 'd/f.txt', 'user.test'), '0x' + Buffer.from('hello').toString('hex'))
    assert.equal(xattr(dir, `"$(printf 'a\\377\\376')"`, 'user.bin'), '0xfffe00')
  })
}

test('the written tar reads back through the tar source field for field', async () => {
  const again: RestoreItem[] = []
  for await (const e of createTarSource(Readable.from([readFileSync(tarFile)])) as AsyncIterable<SourceEntry>) {
    const { kind: _k, content, ...meta } = e
    again.push({ kind: 'record', entry: meta, extents: [] })
    if (content) for await (const _ of content()) {
      /* drain */
    }
  }
  // ctime is not written (no tool restores it): the source then takes ctime = mtime.
  const noCtime = (e: EntryMeta): object => ({ ...e, ctimeSec: undefined, ctimeNsec: undefined })
  const records = items.filter((i) => i.kind === 'record').map((i) => noCtime((i as { entry: EntryMeta }).entry))
  assert.deepEqual(again.map((i) => noCtime((i as { entry: EntryMeta }).entry)), records)
})

function rec(path: string | Buffer, extra: Partial<EntryMeta> = {}): RecordItem {
  return {
    kind: 'record',
    extents: [],
    entry: { path: Buffer.from(path), type: 'file', mode: 0o644, uid: 1000, gid: 1000, size: 0, mtimeSec: 1600000000, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0, ino: 0, dev: 0, nlink: 0, ...extra },
  }
}
const data = (s: string | Buffer): RestoreItem => ({ kind: 'data', data: Buffer.from(s) })

test('the recorded size is authoritative: short content is padded, long content truncated, both warned', async () => {
  const file = join(work, 'sizes.tar')
  const warns: SluiceError[] = []
  await writeTar([rec('short', { size: 10 }), data('abc'), rec('long', { size: 3 }), data('abcdef'), data('gh'), rec('after', { size: 2 }), data('ok')], file, warns)
  assert.equal(warns.length, 2)
  assert.match(warns[0]!.message, /short.*7 bytes shorter/)
  assert.match(warns[1]!.message, /long.*5 bytes longer/)
  assert.equal(warns[0]!.code, 'ERR_WRITE')
  const dir = join(work, 'sizes')
  mkdirSync(dir)
  execFileSync('tar', ['-xf', file, '-C', dir])
  assert.deepEqual(readFileSync(join(dir, 'short')), Buffer.concat([Buffer.from('abc'), Buffer.alloc(7)]))
  assert.equal(readFileSync(join(dir, 'long')).toString(), 'abc')
  assert.equal(readFileSync(join(dir, 'after')).toString(), 'ok')
})

test('long paths, long link targets, long owner names and negative or ns times survive GNU tar', async () => {
  const deep = Array.from({ length: 12 }, (_, i) => `dir${i}-${'x'.repeat(20)}`).join('/') // > 255 bytes
  const target = 't'.repeat(150)
  const file = join(work, 'long.tar')
  await writeTar(
    [rec('r', { type: 'dir', mode: 0o755 }), rec(`r/${deep}`, { size: 2, user: 'u'.repeat(40), mtimeSec: -2, mtimeNsec: 750_000_000 }), data('hi'), rec('r/sym', { type: 'symlink', linkTarget: Buffer.from(target) }), rec('r/sock', { type: 'socket' })],
    file,
  )
  const listing = execFileSync('tar', ['--numeric-owner', '-tvf', file]).toString()
  assert.ok(listing.includes(deep), listing)
  assert.ok(listing.includes(`r/sym -> ${target}`), listing)
  assert.ok(!listing.includes('sock'))
  const verbose = execFileSync('tar', ['-tvf', file]).toString()
  assert.ok(verbose.includes('u'.repeat(40)), 'long owner name kept via PAX uname')
  const back: SourceEntry[] = []
  for await (const e of createTarSource(Readable.from([readFileSync(file)])) as AsyncIterable<SourceEntry>) {
    back.push(e)
    if (e.content) for await (const _ of e.content()) {
      /* drain */
    }
  }
  assert.equal(back[1]!.mtimeSec, -2)
  assert.equal(back[1]!.mtimeNsec, 750_000_000)
  assert.equal(back[1]!.user, 'u'.repeat(40))
})

test('device numbers round trip through the header codec', () => {
  for (const [maj, min] of [[8, 1], [259, 65536], [4095, 255], [5000, 70000]] as const) {
    assert.deepEqual(splitDev(makedev(maj, min)), [maj, min])
  }
  const h = encodeTarHeader(rec('null', { type: 'char', rdev: makedev(1, 3) }).entry as EntryMeta).header
  assert.equal(h.toString('latin1', 329, 336), '0000001')
  assert.equal(h.toString('latin1', 337, 344), '0000003')
  assert.equal(paxTime(1, 500_000_000), '1.5')
  assert.equal(paxTime(-2, 750_000_000), '-1.25')
})

/** Runs `head -c 100` as the reader and feeds it `items` through `make`; resolves with what head
 *  printed once the writer finished. */
async function intoHead(make: (out: Writable, closed: () => void) => Writable, items: Iterable<RestoreItem>): Promise<{ got: Buffer; closed: boolean }> {
  const head = spawn('head', ['-c', '100'], { stdio: ['pipe', 'pipe', 'inherit'] })
  const parts: Buffer[] = []
  head.stdout.on('data', (b: Buffer) => parts.push(b))
  let closed = false
  await pipeline(Readable.from(items), make(head.stdin, () => (closed = true)))
  await new Promise((r) => head.on('close', r))
  return { got: Buffer.concat(parts), closed }
}

function* bigFile(): Generator<RestoreItem> {
  yield rec('big', { size: 64 * 1024 * 1024 })
  const piece = seeded(1024 * 1024, 3)
  for (let i = 0; i < 64; i++) yield { kind: 'data', data: piece }
}

test('a reader that goes away (EPIPE) ends the tar writer quietly', async () => {
  const r = await intoHead((out, closed) => createTarWriter(out, { onOutputClosed: closed }), bigFile())
  assert.equal(r.got.length, 100)
  assert.equal(r.got.toString('latin1', 0, 3), 'big')
  assert.ok(r.closed, 'onOutputClosed was called')
})

test('the content writer writes only the content, and EPIPE is quiet too', async () => {
  const r = await intoHead((out, closed) => createContentWriter(out, { onOutputClosed: closed }), bigFile())
  assert.deepEqual(r.got, seeded(100, 3))
  assert.ok(r.closed)
  const chunks: Buffer[] = []
  const sink = new Writable({
    write(b: Buffer, _e, cb) {
      chunks.push(b)
      cb()
    },
  })
  await pipeline(Readable.from([rec('f', { size: 5 }), data('hel'), { kind: 'extents', extents: [] } as RestoreItem, data('lo')]), createContentWriter(sink))
  assert.equal(Buffer.concat(chunks).toString(), 'hello')
})
