/**
 * Sparse files (issue 15 item 2), end to end through the CLI: a 2 GiB file holding 8 KiB of
 * data is backed up by reading only its data (the summary's bytesRead), restored with the same
 * blocks on disk (st_blocks) and the same content, written whole with --no-sparse, extracted
 * sparse by GNU tar and bsdtar from `restore --tar`, and read by cat, ls, diff, check and stats.
 * Runs of zeros in a file that is not sparse are restored as holes too (restic's --sparse).
 *
 * Skipped where the test's temporary filesystem does not report holes (SEEK_HOLE) or stores the
 * file without them.
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { spawnSync } from 'node:child_process'
import { backupSummary, cliFor } from '../helpers/cli.js'
import { scratch } from '../helpers/scratch.js'
import { seededBytes } from '../helpers/tree.js'
import { seekData } from '../../lib/native.js'
import { createLocalStorage, initRepository } from '../../index.js'
import { encodeSparseMap, encodeTarHeader, tarPadding } from '../../lib/tar.js'

const BASE = scratch('sparse-e2e')
const PW = 'correct horse'
const home = `${BASE}/home`
const SRC = `${BASE}/src`
const REL = SRC.slice(1)
const cli = () => cliFor(home, `${BASE}/repo`, PW)
const GiB = 1024 ** 3
const MiB = 1024 ** 2

/** Why sparse files cannot be tested here, or null when they can. */
let unsupported: string | null = null

/** Writes `parts` ([offset, bytes]) into a new file of `size` bytes, leaving the rest holes. */
function sparseFile(path: string, size: number, parts: [number, Buffer][]): void {
  const fd = fs.openSync(path, 'w')
  try {
    fs.ftruncateSync(fd, size)
    for (const [at, b] of parts) fs.writeSync(fd, b, 0, b.length, at)
  } finally {
    fs.closeSync(fd)
  }
}

/** The data regions of a file ([start, end) pairs), as SEEK_DATA and SEEK_HOLE report them. */
function dataRegions(path: string): [number, number][] {
  const fd = fs.openSync(path, 'r')
  try {
    const size = fs.fstatSync(fd).size
    const out: [number, number][] = []
    for (let pos = 0; pos < size; ) {
      const data = seekData(fd, pos, false)
      if (data < 0) break
      const hole = seekData(fd, data, true)
      out.push([data, Math.min(hole, size)])
      pos = hole
    }
    return out
  } finally {
    fs.closeSync(fd)
  }
}

/** True when both files have the same size and bytes: compared over the data regions of
 *  either (everywhere else both are holes, which read as zeros). */
function sameContent(a: string, b: string): boolean {
  const size = fs.statSync(a).size
  if (fs.statSync(b).size !== size) return false
  const fa = fs.openSync(a, 'r'), fb = fs.openSync(b, 'r')
  try {
    for (const [start, end] of [...dataRegions(a), ...dataRegions(b)]) {
      for (let pos = start; pos < end; pos += MiB) {
        const n = Math.min(MiB, end - pos)
        const x = Buffer.alloc(n), y = Buffer.alloc(n)
        fs.readSync(fa, x, 0, n, pos)
        fs.readSync(fb, y, 0, n, pos)
        if (!x.equals(y)) return false
      }
    }
    return true
  } finally {
    fs.closeSync(fa)
    fs.closeSync(fb)
  }
}

const blocks = (p: string): number => fs.statSync(p).blocks

const data8k = seededBytes('sparse-8k', 8192)
const head = seededBytes('sparse-head', 100_000)
const mid = seededBytes('sparse-mid', 5000)
const zerosFileData = Buffer.concat([seededBytes('zeros-a', 64 * 1024), Buffer.alloc(4 * MiB), seededBytes('zeros-b', 64 * 1024)])

before(async () => {
  fs.mkdirSync(SRC, { recursive: true })
  fs.mkdirSync(home, { recursive: true })
  // big: 2 GiB, 8 KiB of data in the middle. mixed: data at the start, a hole, data, a hole to
  // the end. zeros: not sparse, but 4 MiB of written zeros between data.
  sparseFile(`${SRC}/big`, 2 * GiB, [[GiB, data8k]])
  sparseFile(`${SRC}/mixed`, 8 * MiB, [[0, head], [3 * MiB, mid]])
  fs.writeFileSync(`${SRC}/zeros`, zerosFileData)
  fs.writeFileSync(`${SRC}/small`, 'a small file\n')
  try {
    const fd = fs.openSync(`${SRC}/big`, 'r')
    try {
      seekData(fd, 0, true)
    } finally {
      fs.closeSync(fd)
    }
    if (blocks(`${SRC}/big`) * 512 >= MiB) unsupported = 'the filesystem stored the sparse file without holes'
  } catch (err) {
    unsupported = `the filesystem does not report holes: ${(err as Error).message}`
  }
  const repo = await initRepository(createLocalStorage(`${BASE}/repo`), PW, { kdf: { opslimit: 1, memlimit: 8192 } })
  await repo.close()
})

test('backup reads only the data of a 2 GiB sparse file, and restore gives the same blocks and content', async (t) => {
  if (unsupported) return t.skip(unsupported)
  const b = await cli()(['backup', '--json', SRC])
  assert.equal(b.code, 0, b.stderr)
  const s = backupSummary(b.stdout)
  // Of 2 GiB + 8 MiB + 4 MiB of files, only data is read: 8 KiB + ~105 KB + the zeros file
  // (4.1 MiB, not sparse: read whole) + a small file.
  assert.ok(s.bytesRead - zerosFileData.length < 1 * MiB, `bytesRead ${s.bytesRead}`)
  assert.equal(s.bytesTotal, 2 * GiB + 8 * MiB + zerosFileData.length + 13)

  const out = `${BASE}/restored`
  const r = await cli()(['restore', 'latest', '--target', out])
  assert.equal(r.code, 0, r.stderr)
  for (const name of ['big', 'mixed']) {
    const got = `${out}/${REL}/${name}`
    assert.equal(fs.statSync(got).size, fs.statSync(`${SRC}/${name}`).size)
    assert.equal(blocks(got), blocks(`${SRC}/${name}`), `${name}: st_blocks of the restored file equal the source's`)
    assert.ok(sameContent(`${SRC}/${name}`, got), `${name}: content`)
  }
  // Written zeros come back as a hole (restic's --sparse): fewer blocks, the same bytes.
  const zeros = `${out}/${REL}/zeros`
  assert.ok(fs.readFileSync(zeros).equals(zerosFileData))
  assert.ok(blocks(zeros) * 512 <= zerosFileData.length - 4 * MiB + 64 * 1024, `zeros: ${blocks(zeros)} blocks`)
  assert.equal(fs.readFileSync(`${out}/${REL}/small`, 'utf8'), 'a small file\n')
})

test('--no-sparse writes every block', async (t) => {
  if (unsupported) return t.skip(unsupported)
  const out = `${BASE}/no-sparse`
  const r = await cli()(['restore', `latest:${SRC}`, '--target', out, '--no-sparse', '--exclude', 'big'])
  assert.equal(r.code, 0, r.stderr)
  for (const name of ['mixed', 'zeros']) {
    const got = `${out}/${name}`
    assert.ok(sameContent(`${SRC}/${name}`, got), `${name}: content`)
    assert.ok(blocks(got) * 512 >= fs.statSync(got).size, `${name}: ${blocks(got)} blocks for ${fs.statSync(got).size} bytes`)
  }
})

test('restore --tar writes GNU sparse members that tar and bsdtar extract sparse', async (t) => {
  if (unsupported) return t.skip(unsupported)
  const r = await cli()(['restore', 'latest', '--tar', '-q'])
  assert.equal(r.code, 0, r.stderr)
  // The 2 GiB file costs its map and 8 KiB in the archive, not 2 GiB.
  assert.ok(r.stdoutBytes.length < 8 * MiB, `tar of ${r.stdoutBytes.length} bytes`)
  let ran = 0
  for (const tool of ['tar', 'bsdtar']) {
    if (spawnSync(tool, ['--version']).status !== 0) continue
    ran++
    const dir = `${BASE}/x-${tool}`
    fs.mkdirSync(dir)
    const x = spawnSync(tool, ['-x', '-f', '-', '-C', dir], { input: r.stdoutBytes })
    assert.equal(x.status, 0, `${tool}: ${x.stderr}`)
    for (const name of ['big', 'mixed', 'zeros', 'small']) {
      const got = `${dir}/${REL}/${name}`
      assert.ok(sameContent(`${SRC}/${name}`, got), `${tool}: ${name}: content`)
    }
    for (const name of ['big', 'mixed']) assert.equal(blocks(`${dir}/${REL}/${name}`), blocks(`${SRC}/${name}`), `${tool}: ${name}: st_blocks`)
  }
  if (ran === 0) t.diagnostic('neither tar nor bsdtar is installed: the archive was not extracted')
})

test('cat gives the zeros of holes; ls, diff, check --read-data and stats read hole extents', async (t) => {
  if (unsupported) return t.skip(unsupported)
  const c = await cli()(['cat', `latest:${SRC}/mixed`])
  assert.equal(c.code, 0, c.stderr)
  assert.ok(c.stdoutBytes.equals(fs.readFileSync(`${SRC}/mixed`)))

  const ls = await cli()(['ls', '-l', 'latest', SRC])
  assert.equal(ls.code, 0, ls.stderr)
  assert.match(ls.stdout, /2147483648 .*\/big\n/)

  const ck = await cli()(['check', '--read-data'])
  assert.equal(ck.code, 0, ck.stderr)

  for (const mode of ['restore-size', 'raw-data']) {
    const st = await cli()(['stats', '--json', '--mode', mode])
    assert.equal(st.code, 0, st.stderr)
    if (mode === 'restore-size') assert.equal(JSON.parse(st.stdout).total_size, 2 * GiB + 8 * MiB + zerosFileData.length + 13)
  }

  // A byte of data changed inside the hole of `mixed`: diff sees it; the unchanged ones are equal.
  sparseFile(`${SRC}/mixed`, 8 * MiB, [[0, head], [3 * MiB, mid], [6 * MiB, Buffer.from('x')]])
  const b = await cli()(['backup', '--json', SRC])
  assert.equal(b.code, 0, b.stderr)
  const snaps = JSON.parse((await cli()(['snapshots', '--json'])).stdout) as { id: string }[]
  assert.equal(snaps.length, 2)
  const d = await cli()(['diff', snaps[0]!.id, snaps[1]!.id])
  assert.equal(d.code, 0, d.stderr)
  assert.match(d.stdout, /M +\/.*\/src\/mixed +\(content, mtime\)\n/)
  assert.doesNotMatch(d.stdout, /\/(big|zeros|small) /)
  const same = await cli()(['diff', snaps[1]!.id, snaps[1]!.id])
  assert.equal(same.code, 0, same.stderr)
  assert.doesNotMatch(same.stdout, /\/src\//)
  // The parent's hole extents are reused by the second backup: its restore is the same file.
  const out = `${BASE}/second`
  const r = await cli()(['restore', 'latest', '--target', out, '--include', '*/big'])
  assert.equal(r.code, 0, r.stderr)
  assert.ok(sameContent(`${SRC}/big`, `${out}/${REL}/big`))
  assert.equal(blocks(`${out}/${REL}/big`), blocks(`${SRC}/big`))
})

test('backup --tar reads GNU sparse 1.0 members (GNU tar, bsdtar, restore --tar) with their holes', async (t) => {
  if (unsupported) return t.skip(unsupported)
  const first = (JSON.parse((await cli()(['snapshots', '--json'])).stdout) as { id: string }[])[0]!.id
  const makers: [string, () => Buffer | null][] = [
    ['gnu', () => tarOf('tar', ['-c', '--sparse', '--sparse-version=1.0', '--format=pax', '-C', SRC, 'big', 'mixed'])],
    ['bsd', () => tarOf('bsdtar', ['-c', '--format=pax', '-C', SRC, '-f', '-', 'big', 'mixed'])],
    ['ours', () => null],
  ]
  for (const [name, make] of makers) {
    let input = make()
    if (name === 'ours') {
      const r = await cli()(['restore', `${first}:${SRC}`, '--tar', '-q', '--include', '*/big'])
      assert.equal(r.code, 0, r.stderr)
      input = r.stdoutBytes
    }
    if (input === null) {
      t.diagnostic(`${name}: no tar program to write the archive`)
      continue
    }
    const b = await cli()(['backup', '--tar', '--stdin-filename', name, '--json'], { input })
    assert.equal(b.code, 0, b.stderr)
    assert.ok(backupSummary(b.stdout).bytesRead < MiB, `${name}: bytesRead ${backupSummary(b.stdout).bytesRead}`)
    const out = `${BASE}/from-tar-${name}`
    const r = await cli()(['restore', `latest:${name}`, '--target', out])
    assert.equal(r.code, 0, r.stderr)
    // The first snapshot's big file is the one in the archive (mixed has changed since).
    assert.ok(sameContent(`${BASE}/restored/${REL}/big`, `${out}/${name}/big`), `${name}: big`)
    assert.equal(blocks(`${out}/${name}/big`), blocks(`${BASE}/restored/${REL}/big`), `${name}: big st_blocks`)
  }
})

test('backup --tar refuses a sparse member whose map overlaps, overruns or disagrees with its data', async () => {
  const entry = { path: Buffer.from('f'), type: 'file' as const, mode: 0o644, uid: 0, gid: 0, size: 1000, mtimeSec: 0, mtimeNsec: 0, ctimeSec: 0, ctimeNsec: 0, ino: 0, dev: 0, nlink: 1 }
  const member = (regions: [number, number][], map: Buffer, data: Buffer): Buffer => {
    const h = encodeTarHeader(entry, regions)
    // The header promises the map of `regions` and their data; the crafted map and data replace them.
    const body = Buffer.concat([map, data])
    assert.equal(body.length, h.size, 'crafted body keeps the promised size')
    return Buffer.concat([h.header, body, Buffer.alloc(tarPadding(body.length)), Buffer.alloc(1024)])
  }
  const honest: [number, number][] = [[0, 10], [500, 10]]
  const cases: [Buffer, RegExp][] = [
    [member(honest, encodeSparseMap([[0, 10], [5, 10]]), Buffer.alloc(20, 1)), /region 5\+10 overlaps another/],
    [member(honest, encodeSparseMap([[0, 10], [995, 10]]), Buffer.alloc(20, 1)), /region 995\+10 overlaps another or lies past the file's 1000 bytes/],
    [member(honest, encodeSparseMap([[0, 10], [500, 5]]), Buffer.alloc(20, 1)), /stores more data than its map says/],
    [member(honest, Buffer.concat([Buffer.from('2\n0\nten\n10\n'), Buffer.alloc(512 - 11)]), Buffer.alloc(20, 1)), /not a number/],
  ]
  for (const [input, what] of cases) {
    const b = await cli()(['backup', '--tar', '--stdin-filename', 'crafted'], { input })
    assert.equal(b.code, 1, b.stderr)
    assert.match(b.stderr, /^sluice: ERR_TAR: tar stream on stdin is corrupt: /m)
    assert.match(b.stderr, what)
  }
})

/** The archive a tar program writes to stdout, or null when it is not installed. */
function tarOf(tool: string, args: string[]): Buffer | null {
  const r = spawnSync(tool, args, { maxBuffer: 64 * MiB })
  if (r.error) return null
  assert.equal(r.status, 0, `${tool}: ${r.stderr}`)
  return r.stdout
}

test('restore --verify reads holes back as zeros; if-changed --verify rewrites a hole written into', async (t) => {
  if (unsupported) return t.skip(unsupported)
  const out = `${BASE}/verify`
  const r = await cli()(['restore', `latest:${SRC}`, '--path', SRC, '--target', out, '--verify', '--exclude', 'big', '--json'])
  assert.equal(r.code, 0, r.stderr)
  const s = JSON.parse(r.stdout.trim().split('\n').at(-1)!)
  assert.equal(s.verify_errors, 0)
  assert.equal(s.files_verified, 3)
  // A byte written into mixed's hole (at 2 MiB), its mtime put back: it looks unchanged.
  const mixed = `${out}/mixed`
  const st = fs.statSync(mixed)
  const fd = fs.openSync(mixed, 'r+')
  fs.writeSync(fd, Buffer.from([0x55]), 0, 1, 2 * MiB)
  fs.closeSync(fd)
  fs.utimesSync(mixed, st.atime, st.mtime)
  const again = await cli()(['restore', `latest:${SRC}`, '--path', SRC, '--target', out, '--overwrite', 'if-changed', '--verify', '--exclude', 'big', '--json'])
  assert.equal(again.code, 0, again.stderr)
  const s2 = JSON.parse(again.stdout.trim().split('\n').at(-1)!)
  assert.equal(s2.files_restored, 1, 'only mixed is rewritten')
  assert.ok(sameContent(`${SRC}/mixed`, mixed), 'mixed: content after the rewrite')
})
