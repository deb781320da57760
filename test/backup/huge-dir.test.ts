/**
 * Huge directories (issue 16): a directory whose listing does not fit the walk's listing budget
 * is sorted externally (lib/external-sort.ts). The budget and the run size are lowered through
 * options, so the spill path (many runs, merge passes) runs on a few thousand entries: the
 * order must be the canonical one, exactly as with the listing sorted in memory; backup,
 * incremental backup and restore of such a tree must give the tree back; the temporary files
 * must be gone afterwards, also when the walk is stopped early; the hardlink map's cap must
 * store the links it forgot as files with their content.
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { ExternalSorter } from '../../lib/external-sort.js'
import { comparePaths } from '../../lib/bytes.js'
import type { SourceEntry } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { createWalk, type WalkOptions, type WalkStats } from '../../transforms/backup/sources/walk.js'
import { backup, restore, createLocalStorage, initRepository, listSnapshot, type Repository } from '../../index.js'
import { compareTrees, seededBytes } from '../helpers/tree.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('huge-dir')}/t`
const TREE = `${BASE}/src/tree`
const TMP = `${BASE}/sorttmp`
const B = (s: string | Buffer): Buffer => (typeof s === 'string' ? Buffer.from(s) : s)
const cat = (...parts: (string | Buffer)[]): Buffer => Buffer.concat(parts.map(B))
/** Small enough that the big directories below spill, in runs of a few dozen names. */
const SMALL: Partial<WalkOptions> = { listingBytes: 16 * 1024, sortRunBytes: 4096, tmpDir: TMP }
const N = 3000

/** Names of raw bytes: some not UTF-8, some sharing long prefixes, some with bytes above '/'. */
function names(seed: string, n: number): Buffer[] {
  const rnd = seededBytes(seed, n * 8)
  const out: Buffer[] = []
  for (let i = 0; i < n; i++) {
    const r = rnd.subarray(i * 8, i * 8 + 8)
    const kind = r[0]! % 4
    if (kind === 0) out.push(cat('f-', String(i)))
    else if (kind === 1) out.push(cat('same-long-prefix-', String(r.readUInt32LE(1) % 100000), '-', String(i)))
    else if (kind === 2) out.push(cat(Buffer.from([0xc0 + (r[1]! % 63), 0xff, 0x80 + (r[2]! % 60)]), String(i)))
    else out.push(cat(String.fromCharCode(0x30 + (r[1]! % 70)), '.', String(i), '~'))
  }
  return out
}

async function walk(opts: Partial<WalkOptions> = {}) {
  const warnings: SluiceError[] = []
  const entries: SourceEntry[] = []
  const stats: WalkStats = { warnings: 0, pendingHardlinks: 0 }
  for await (const e of createWalk([B(TREE)], { onWarning: (e) => warnings.push(e), stats, ...opts })) entries.push(e)
  return { entries, warnings, stats }
}

function assertCanonical(entries: SourceEntry[]): void {
  for (let i = 1; i < entries.length; i++) {
    assert.ok(comparePaths(entries[i - 1]!.path, entries[i]!.path) < 0, `order broken at ${entries[i]!.path.toString()}`)
  }
}

before(() => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(TREE, { recursive: true })
  fs.mkdirSync(TMP)
  // big/: N files and two subdirectories that are big too (nested spills); small/: a few.
  const big = cat(TREE, '/big')
  fs.mkdirSync(big)
  names('big', N).forEach((n, i) => fs.writeFileSync(cat(big, '/', n), i % 7 === 0 ? '' : `${i}\n`))
  for (const sub of ['sub-a', 'sub-b']) {
    fs.mkdirSync(cat(big, '/', sub))
    names(sub, N / 3).forEach((n, i) => fs.writeFileSync(cat(big, '/', sub, '/', n), `${sub} ${i}\n`))
  }
  fs.mkdirSync(cat(TREE, '/small'))
  for (const n of ['b', 'a', 'c']) fs.writeFileSync(cat(TREE, '/small/', n), n)
  fs.writeFileSync(cat(TREE, '/big/f-3'), seededBytes('one larger file', 300_000))
  fs.symlinkSync('f-1', cat(TREE, '/big/link-to-f-1'))
})

test('a directory over the listing budget is sorted externally, in the same order as in memory', async () => {
  const inMemory = await walk()
  assert.equal(inMemory.stats.spilledDirs ?? 0, 0, 'the default budget holds a few thousand names')
  const spilled = await walk(SMALL)
  assert.deepEqual(spilled.warnings, [])
  assert.ok((spilled.stats.spilledDirs ?? 0) >= 3, `spilled ${spilled.stats.spilledDirs} directories`)
  assertCanonical(spilled.entries)
  assert.deepEqual(spilled.entries.map((e) => e.path.toString('hex')), inMemory.entries.map((e) => e.path.toString('hex')))
  // Each name's own lstat (spilled names are lstat'ed in chunks on the thread pool, too); only
  // TREE's entries (its ancestors, such as the scratch directory, may change in between).
  const under = B(TREE.slice(1))
  const meta = (es: SourceEntry[]) => es.filter((e) => e.path.subarray(0, under.length).equals(under))
    .map((e) => `${e.path.toString('hex')} ${e.type} ${e.size} ${e.ino} ${e.mtimeSec}.${e.mtimeNsec} ${e.linkTarget?.toString() ?? ''}`)
  assert.ok(meta(spilled.entries).length > N)
  assert.deepEqual(meta(spilled.entries), meta(inMemory.entries))
  assert.ok(spilled.entries.some((e) => e.type === 'symlink' && e.linkTarget?.toString() === 'f-1'))
  assert.ok(spilled.entries.length > N + 2 * (N / 3))
  assert.deepEqual(fs.readdirSync(TMP), [], 'the sorted runs are removed')
})

test('a walk stopped inside a spilled directory removes its temporary files', async () => {
  const w = createWalk([B(TREE)], { onWarning: assert.fail, ...SMALL })
  let seen = 0
  for await (const e of w as AsyncIterable<SourceEntry>) {
    if (e.path.includes(B('sub-a/')) && ++seen === 10) break
  }
  assert.equal(seen, 10)
  if (!w.closed) await new Promise((resolve) => w.on('close', resolve))
  assert.deepEqual(fs.readdirSync(TMP), [])
})

test('exclude-if-present finds its marker in a spilled listing', async () => {
  fs.writeFileSync(`${TREE}/big/sub-b/.nobackup`, '')
  try {
    const { entries } = await walk({ ...SMALL, excludeIfPresent: ['.nobackup'] })
    assert.ok(entries.some((e) => e.path.toString().endsWith('big/sub-a')))
    assert.ok(!entries.some((e) => e.path.includes(B('big/sub-b'))))
    assertCanonical(entries)
  } finally {
    fs.rmSync(`${TREE}/big/sub-b/.nobackup`)
  }
})

/** `input` through an ExternalSorter with `opts`, read back as hex. */
function sortedBySorter(dir: string, name: string, input: Buffer[], opts: ConstructorParameters<typeof ExternalSorter>[2]): string[] {
  const s = new ExternalSorter(dir, name, opts)
  for (const n of input) s.add(n)
  const r = s.finish()
  const got: string[] = []
  for (let x = r.next(); x !== null; x = r.next()) got.push(x.toString('hex'))
  r.close()
  s.close()
  return got
}

const sortedHex = (input: Buffer[]): string[] => input.slice().sort(Buffer.compare).map((x) => x.toString('hex'))

test('the external sorter merges many runs in passes, keeping equal strings and empty ones', () => {
  const dir = `${BASE}/sorter`
  fs.mkdirSync(dir)
  const input = [...names('sorter', 2000), B(''), B('dup'), B('dup'), Buffer.from([0xff, 0xff])]
  assert.deepEqual(sortedBySorter(dir, 'x', input, { runBytes: 512, fanIn: 3, block: 64 }), sortedHex(input))
  assert.deepEqual(fs.readdirSync(dir), [])
  assert.throws(() => new ExternalSorter(dir, 'y', { runBytes: 64 }).add(Buffer.alloc(100)), RangeError)
})

test('the external sorter orders by bytes where the first six bytes tie or run out', () => {
  const dir = `${BASE}/sorter-prefix`
  fs.mkdirSync(dir)
  // Prefixes of one another, zero bytes inside and at the end, strings shorter than six bytes,
  // and ties in the first six bytes decided further on (bytes above 0x7f too).
  const input = ['abcdefZ', 'abcdef', 'abcdefA', 'ab', 'ab\0', 'ab\0\0', 'a', '', 'abcdef\xff', 'abcdeg', 'abc\0ef', 'abcde\xff\xff']
    .map((x) => Buffer.from(x, 'latin1'))
  for (const runBytes of [64, 4096]) {
    assert.deepEqual(sortedBySorter(dir, `p${runBytes}`, input, { runBytes, fanIn: 2, block: 64 }), sortedHex(input))
  }
  assert.deepEqual(fs.readdirSync(dir), [])
})

test('the hardlink map forgets the oldest inode when full: its later links become files', async () => {
  const root = `${BASE}/links`
  fs.mkdirSync(root)
  // Four inodes with two links each, the second links all after every first one.
  for (const k of ['1', '2', '3', '4']) fs.writeFileSync(`${root}/a${k}`, `content ${k}\n`)
  for (const k of ['1', '2', '3', '4']) fs.linkSync(`${root}/a${k}`, `${root}/b${k}`)
  const run = async (hardlinkGroups?: number) => {
    const out: SourceEntry[] = []
    const stats: WalkStats = { warnings: 0, pendingHardlinks: 0 }
    for await (const e of createWalk([root], { onWarning: assert.fail, stats, ...(hardlinkGroups ? { hardlinkGroups } : {}) })) out.push(e)
    return { out, stats }
  }
  const all = await run()
  assert.deepEqual(all.out.filter((e) => e.hardlinkTo).map((e) => e.path.toString().slice(-2)), ['b1', 'b2', 'b3', 'b4'])
  // Room for two: a3 and a4 push a1 and a2 out, and so on; every b is then a file of its own.
  const capped = await run(2)
  assert.ok((capped.stats.forgottenHardlinks ?? 0) >= 2)
  const b = capped.out.filter((e) => /\/b\d$/.test(e.path.toString()))
  assert.equal(b.length, 4)
  assert.ok(b.every((e) => e.hardlinkTo === undefined && e.content !== undefined))
  for (const e of b.filter((x) => !x.hardlinkTo)) {
    const parts: Buffer[] = []
    for await (const p of e.content!()) parts.push(Buffer.from(p))
    assert.equal(Buffer.concat(parts).toString(), `content ${e.path.toString().slice(-1)}\n`)
  }
})

test('backup, incremental backup and restore of spilled directories give the tree back', async () => {
  const repo: Repository = await initRepository(createLocalStorage(`${BASE}/repo`), 'pw', { kdf: { opslimit: 1, memlimit: 8192 } })
  const warnings: SluiceError[] = []
  const onWarning = (e: SluiceError) => warnings.push(e)
  const first = await backup({ repo, paths: [TREE], onWarning, walk: SMALL })
  assert.deepEqual(warnings, [])
  // The listing shows the snapshot in canonical order too.
  const listed: Buffer[] = []
  for await (const r of listSnapshot(repo, first.snapshot)) listed.push(r.entry.path)
  for (let i = 1; i < listed.length; i++) assert.ok(comparePaths(listed[i - 1]!, listed[i]!) < 0)
  // Incremental: everything reused (the join merges two spilled walks' orders).
  const second = await backup({ repo, paths: [TREE], onWarning, walk: SMALL })
  assert.equal(second.parent, first.snapshotId)
  assert.equal(second.stats.filesChanged + second.stats.filesNew, 0, JSON.stringify(second.stats))
  // The same tree sorted in memory is stored as the same records (the ancestors of TREE, such
  // as the scratch directory, may change between backups: only TREE's own records are compared).
  const third = await backup({ repo, paths: [TREE], onWarning, parent: false })
  const records = async (snap: typeof first.snapshot) => {
    const out: string[] = []
    const under = Buffer.from(TREE.slice(1))
    for await (const r of listSnapshot(repo, snap)) {
      if (r.entry.path.subarray(0, under.length).equals(under)) out.push(JSON.stringify(r.entry, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)))
    }
    return out
  }
  const spilledRecords = await records(first.snapshot)
  assert.ok(spilledRecords.length > N)
  assert.deepEqual(await records(third.snapshot), spilledRecords)
  const target = `${BASE}/restored`
  await restore({ repo, snapshot: second.snapshotId, target, onWarning })
  assert.deepEqual(warnings, [])
  assert.deepEqual(compareTrees(TREE, `${target}${TREE}`), [])
  assert.deepEqual(fs.readdirSync(TMP), [])
})

test('a huge directory that cannot be sorted on disk stops the walk with ERR_WRITE naming it', async () => {
  const missing = `${BASE}/no-such-dir/tmp`
  await assert.rejects(walk({ ...SMALL, tmpDir: missing }), (err: unknown) => {
    assert.ok(err instanceof SluiceError)
    assert.equal(err.code, 'ERR_WRITE')
    assert.match(err.message, /cannot sort the listing of .*\/big in .*no-such-dir/)
    return true
  })
})
