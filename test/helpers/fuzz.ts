/**
 * Damage fuzzing of a small real repository (issue 13): each case damages one stored object
 * (bytes flipped, truncated, emptied, deleted, swapped with another of its kind, or replaced by
 * one from a foreign repository), runs every reading command through the library, puts the
 * object back, and says what it saw. What each command may do is checked here, once, for the
 * test (a few hundred seeded cases) and bench/fuzz.ts (as many as asked):
 *   - end within a time cap;
 *   - succeed with the right output (ls, tar bytes, cat bytes, diff lines, a restored tree equal
 *     to the source but for files named in a warning, each of which is absent), or
 *   - fail with a SluiceError (a code), having emitted only a prefix of the right bytes (tar,
 *     cat) and left no file in the target that differs from the source;
 *   - never write outside the target; check --read-data finds damage to a chunk.
 */
import fs from 'node:fs'
import { execFileSync } from 'node:child_process'
import { Writable } from 'node:stream'
import assert from 'node:assert/strict'
import {
  backup, check, createContentWriter, createDiff, createLocalStorage, createTarWriter, initRepository, listSnapshot,
  openRepository, restore, snapshotRecords, treeOf, displayPath, SluiceError, type DiffItem, type Repository,
} from '../../index.js'
import { compareTrees, listTree, seededBytes } from './tree.js'
import { craftSnapshot } from './craft.js'
import { mixedRng } from './rng.js'

export const PW = 'fuzz password'
const KDF = { opslimit: 1, memlimit: 8192 }


export interface FuzzFixture {
  base: string
  repoDir: string
  src: string
  /** The source tree's path inside the snapshots (no leading slash). */
  rel: string
  /** The file `cat` reads (relative to the tree), larger than one restore write. */
  catFile: string
  /** Every object of the repository (relative keys), and those of a foreign one. */
  objects: string[]
  foreign: string[]
  foreignDir: string
  snapshots: [string, string]
  expected: { ls: string[]; tar: Buffer; cat: Buffer; diff: string[] }
  /** The plaintext record stream of the second snapshot (for crafted cases). */
  records: Buffer
}

function writeTree(dir: string, version: number): void {
  fs.mkdirSync(`${dir}/a/b`, { recursive: true })
  for (let i = 0; i < 12; i++) fs.writeFileSync(`${dir}/a/s${i}`, seededBytes(`s${i}`, 500 + i * 300))
  fs.writeFileSync(`${dir}/a/b/mid`, seededBytes('mid', 300 * 1024))
  fs.writeFileSync(`${dir}/a/b/big`, Buffer.concat([seededBytes('big', 900 * 1024), Buffer.alloc(400 * 1024, 7)]))
  fs.writeFileSync(`${dir}/a/dup`, seededBytes('s3', 1400)) // the same bytes as a/s3
  fs.writeFileSync(`${dir}/empty`, '')
  fs.writeFileSync(`${dir}/changing`, `version ${version}\n`.repeat(100))
  fs.rmSync(`${dir}/link`, { force: true })
  fs.symlinkSync('a/b/mid', `${dir}/link`)
  fs.rmSync(`${dir}/a/hard2`, { force: true })
  fs.linkSync(`${dir}/a/s1`, `${dir}/a/hard2`)
  for (const p of ['a/s0', 'a/b', 'a', 'changing', '.']) fs.utimesSync(`${dir}/${p}`, 1_700_000_000 + version, 1_700_000_000 + version)
}

function collect(into: Buffer[]): Writable {
  return new Writable({ write(b, _e, cb) { into.push(Buffer.from(b)); cb() } })
}

function listRepo(dir: string): string[] {
  const out: string[] = []
  const walk = (rel: string) => {
    for (const d of fs.readdirSync(`${dir}/${rel}`, { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name
      if (d.isDirectory()) walk(r)
      else out.push(r)
    }
  }
  walk('')
  return out.filter(k => !k.startsWith('tmp/') && !k.startsWith('locks/')).sort()
}

/** What the readers produce from `repo` (throws whatever they throw). */
async function lsOf(repo: Repository, snapshot: string): Promise<string[]> {
  const { snap } = await repo.findSnapshot(snapshot)
  const out: string[] = []
  for await (const { entry } of listSnapshot(repo, snap)) out.push(`${entry.type} ${entry.size} ${displayPath(entry.path)}`)
  return out
}

async function diffOf(repo: Repository, a: string, b: string): Promise<string[]> {
  const sa = await repo.findSnapshot(a), sb = await repo.findSnapshot(b)
  const out: string[] = []
  for await (const d of createDiff(snapshotRecords(repo, treeOf(sa.snap)), snapshotRecords(repo, treeOf(sb.snap)), { loader: repo }) as AsyncIterable<DiffItem>) {
    out.push(`${d.change} ${displayPath(d.path)} ${d.what.join(',')}`)
  }
  return out
}

/** The concatenated plaintexts of a snapshot's metadata chunks. */
async function recordStream(repo: Repository, snapshot: string): Promise<Buffer> {
  const { snap } = await repo.findSnapshot(snapshot)
  const leaves: Buffer[] = []
  for await (const _ of snapshotRecords(repo, treeOf(snap), id => leaves.push(id))) { /* drain */ }
  return Buffer.concat(await Promise.all(leaves.map(id => repo.loadChunk(id))))
}

/** Builds the fixture under `base` (removed first): a tree backed up twice, and a foreign
 *  repository (other keys) of the same tree. The objects damaged are the chunks and snapshot
 *  roots, which the readers own; with `all`, the key files and the config too (their
 *  validation is repository.ts's: issue 13 items 4 and 6). */
export async function makeFuzzFixture(base: string, opts: { all?: boolean } = {}): Promise<FuzzFixture> {
  fs.rmSync(base, { recursive: true, force: true })
  const src = `${base}/src/tree`
  fs.mkdirSync(src, { recursive: true })
  writeTree(src, 1)
  const repoDir = `${base}/repo`
  const repo = await initRepository(createLocalStorage(repoDir), PW, { kdf: KDF })
  const s1 = await backup({ repo, paths: [src] })
  writeTree(src, 2)
  const s2 = await backup({ repo, paths: [src] })
  const foreignDir = `${base}/foreign`
  const foreignRepo = await initRepository(createLocalStorage(foreignDir), PW, { kdf: KDF })
  await backup({ repo: foreignRepo, paths: [src] })
  const rel = src.slice(1)
  const tar: Buffer[] = []
  await restore({ repo, snapshot: s2.snapshotId, sink: createTarWriter(collect(tar)), onWarning: e => assert.fail(e.message) })
  const cat: Buffer[] = []
  await restore({ repo, snapshot: s2.snapshotId, path: Buffer.from(`${rel}/a/b/big`), sink: createContentWriter(collect(cat)), onWarning: e => assert.fail(e.message) })
  const fx: FuzzFixture = {
    base, repoDir, src, rel, catFile: 'a/b/big',
    objects: listRepo(repoDir).filter(k => opts.all || k.startsWith('chunks/') || k.startsWith('snapshots/')), foreign: listRepo(foreignDir).filter(k => k.startsWith('chunks/')), foreignDir,
    snapshots: [s1.snapshotId, s2.snapshotId],
    expected: { ls: await lsOf(repo, s2.snapshotId), tar: Buffer.concat(tar), cat: Buffer.concat(cat), diff: await diffOf(repo, s1.snapshotId, s2.snapshotId) },
    records: await recordStream(repo, s2.snapshotId),
  }
  assert.ok(fx.expected.cat.equals(fs.readFileSync(`${src}/a/b/big`)))
  assert.ok(fx.expected.diff.length > 0)
  return fx
}

export type Damage = 'flip' | 'truncate' | 'empty' | 'delete' | 'swap' | 'foreign' | 'append'
const DAMAGES: Damage[] = ['flip', 'flip', 'flip', 'flip', 'truncate', 'empty', 'delete', 'swap', 'foreign', 'append']

/** Damages one object of the fixture's repository, chosen by `rnd`; returns how to undo it. */
export function damage(fx: FuzzFixture, rnd: () => number): { key: string; how: Damage; undo: () => void } {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!
  const key = pick(fx.objects)
  const file = `${fx.repoDir}/${key}`
  const original = fs.readFileSync(file)
  const mode = fs.statSync(file).mode
  let how = pick(DAMAGES)
  if ((how === 'swap' || how === 'foreign') && !key.startsWith('chunks/')) how = 'flip'
  let bytes: Buffer | null = Buffer.from(original)
  switch (how) {
    case 'flip':
      for (let n = 1 + Math.floor(rnd() * 3); n > 0 && bytes.length > 0; n--) bytes[Math.floor(rnd() * bytes.length)]! ^= 1 + Math.floor(rnd() * 255)
      break
    case 'truncate':
      bytes = bytes.subarray(0, Math.floor(rnd() * bytes.length))
      break
    case 'empty':
      bytes = Buffer.alloc(0)
      break
    case 'delete':
      bytes = null
      break
    case 'append':
      bytes = Buffer.concat([bytes, seededBytes(String(rnd()), 1 + Math.floor(rnd() * 64))])
      break
    case 'swap': {
      const other = pick(fx.objects.filter(k => k.startsWith('chunks/') && k !== key))
      bytes = fs.readFileSync(`${fx.repoDir}/${other}`)
      break
    }
    case 'foreign':
      bytes = fs.readFileSync(`${fx.foreignDir}/${pick(fx.foreign)}`)
      break
  }
  fs.rmSync(file, { force: true })
  if (bytes) fs.writeFileSync(file, bytes)
  return {
    key, how,
    undo: () => {
      fs.rmSync(file, { force: true })
      fs.writeFileSync(file, original, { mode })
    },
  }
}

export interface CaseResult {
  key: string
  how: string
  /** Per command: 'ok', 'warned' (restore left files out) or the error code. */
  outcomes: Record<string, string>
}

const TIME_CAP_MS = 30_000

async function capped<T>(what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const cap = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not end within ${TIME_CAP_MS} ms`)), TIME_CAP_MS)
  })
  try {
    return await Promise.race([p, cap])
  } finally {
    clearTimeout(timer)
  }
}

/** A coded error, or an assertion failure naming the command and the damage. */
function codeOf(what: string, err: unknown): string {
  if (err instanceof SluiceError) return err.code
  throw new assert.AssertionError({ message: `${what}: not a SluiceError: ${err instanceof Error ? err.stack : String(err)}` })
}

/** Runs one seeded case: damage, every reader, checks, undo. */
export async function fuzzCase(fx: FuzzFixture, seed: number): Promise<CaseResult> {
  const rnd = mixedRng(seed)
  const d = damage(fx, rnd)
  const tag = `seed ${seed}: ${d.how} ${d.key}`
  const outcomes: Record<string, string> = {}
  const work = `${fx.base}/work`
  rmTree(work)
  fs.mkdirSync(`${work}/sentinel`, { recursive: true })
  fs.writeFileSync(`${work}/sentinel/victim`, 'untouched')
  try {
    let repo: Repository
    try {
      repo = await capped(`${tag}: open`, openRepository(createLocalStorage(fx.repoDir), PW))
    } catch (err) {
      outcomes.open = codeOf(`${tag}: open`, err)
      return { key: d.key, how: d.how, outcomes }
    }
    const [s1, s2] = fx.snapshots
    const run = async (name: string, fn: () => Promise<string>) => {
      try {
        outcomes[name] = await capped(`${tag}: ${name}`, fn())
      } catch (err) {
        if (err instanceof assert.AssertionError) throw err
        outcomes[name] = codeOf(`${tag}: ${name}`, err)
      }
    }
    await run('ls', async () => {
      assert.deepEqual(await lsOf(repo, s2), fx.expected.ls, `${tag}: ls succeeded with other output`)
      return 'ok'
    })
    const tar: Buffer[] = []
    await run('tar', async () => {
      await restore({ repo, snapshot: s2, sink: createTarWriter(collect(tar)), onWarning: e => assert.fail(`${tag}: tar warned ${e.message}`) })
      assert.ok(Buffer.concat(tar).equals(fx.expected.tar), `${tag}: restore --tar succeeded with other bytes`)
      return 'ok'
    })
    assert.ok(isPrefix(Buffer.concat(tar), fx.expected.tar), `${tag}: restore --tar emitted wrong bytes`)
    const cat: Buffer[] = []
    await run('cat', async () => {
      await restore({ repo, snapshot: s2, path: Buffer.from(`${fx.rel}/${fx.catFile}`), sink: createContentWriter(collect(cat)), onWarning: e => assert.fail(`${tag}: cat warned ${e.message}`) })
      assert.ok(Buffer.concat(cat).equals(fx.expected.cat), `${tag}: cat succeeded with other bytes`)
      return 'ok'
    })
    assert.ok(isPrefix(Buffer.concat(cat), fx.expected.cat), `${tag}: cat emitted wrong bytes`)
    await run('diff', async () => {
      assert.deepEqual(await diffOf(repo, s1, s2), fx.expected.diff, `${tag}: diff succeeded with other output`)
      return 'ok'
    })
    const target = `${work}/target`
    const warnings: SluiceError[] = []
    await run('restore', async () => {
      await restore({ repo, snapshot: s2, target, onWarning: e => warnings.push(e) })
      return warnings.length > 0 ? 'warned' : 'ok'
    })
    checkRestored(fx, tag, target, warnings, outcomes.restore!)
    await run('check', async () => {
      const r = await check({ repo, readData: true, onProblem: () => {} })
      // Damage to a chunk or a snapshot root is always found (a deleted root leaves nothing to find).
      if (d.key.startsWith('chunks/') || (d.key.startsWith('snapshots/') && d.how !== 'delete')) assert.ok(r.problems > 0, `${tag}: check --read-data found nothing`)
      return r.problems > 0 ? 'problems' : 'ok'
    })
    assert.deepEqual(fs.readdirSync(work).sort(), fs.existsSync(target) ? ['sentinel', 'target'] : ['sentinel'], `${tag}: something was written beside the target`)
    assert.deepEqual(listTree(`${work}/sentinel`).map(String), ['victim'], `${tag}: the sentinel changed`)
    await repo.close()
    return { key: d.key, how: d.how, outcomes }
  } finally {
    d.undo()
  }
}

function isPrefix(got: Buffer, whole: Buffer): boolean {
  return got.length <= whole.length && whole.subarray(0, got.length).equals(got)
}

/** A restore into a directory: what is there equals the source, but for files named in a
 *  warning (absent) or, after an error, files not reached (absent). */
function checkRestored(fx: FuzzFixture, tag: string, target: string, warnings: SluiceError[], outcome: string): void {
  const named = new Set<string>()
  for (const w of warnings) {
    assert.ok(['ERR_CORRUPT', 'ERR_MISSING', 'ERR_WRITE'].includes(w.code), `${tag}: warning ${w.code}: ${w.message}`)
    assert.ok(w.path, `${tag}: a warning names no path: ${w.message}`)
    named.add(w.path.toString().slice(fx.rel.length + 1))
  }
  for (const p of named) assert.equal(fs.existsSync(`${target}/${fx.rel}/${p}`), false, `${tag}: ${p} was warned about but is there`)
  const root = `${target}/${fx.rel}`
  if (!fs.existsSync(root)) return
  for (const line of compareTrees(fx.src, root)) {
    const p = line.slice(0, line.indexOf(':'))
    if (named.has(p)) continue
    if (outcome !== 'ok' && outcome !== 'warned') {
      // The restore stopped: entries not reached are absent, directories not finished keep
      // the restore's times and modes, and what is there of a file is all of it.
      if (/missing in second tree$|: mtimeNs |: mode /.test(line)) continue
    } else if (/: hardlink group /.test(line) && [...named].some(n => line.includes(n))) {
      continue
    }
    assert.fail(`${tag}: restore (${outcome}) left ${line}`)
  }
}

/**
 * A crafted case: the second snapshot's record stream with a few bytes changed (flipped,
 * dropped, repeated) and sealed with the key as a new snapshot, as a host holding the key could.
 * ls, restore, restore to tar and check must end in bounded time with success or a coded error,
 * never writing outside the target; what a restore writes is bounded by the stream's extents.
 */
export async function craftedCase(fx: FuzzFixture, seed: number): Promise<CaseResult> {
  const rnd = mixedRng(seed)
  const at = () => Math.floor(rnd() * fx.records.length)
  let bytes = Buffer.from(fx.records)
  const how = (['flip', 'flip', 'drop', 'repeat'] as const)[Math.floor(rnd() * 4)]!
  if (how === 'flip') for (let n = 1 + Math.floor(rnd() * 4); n > 0; n--) bytes[at()]! ^= 1 << Math.floor(rnd() * 8)
  else {
    const from = at(), len = 1 + Math.floor(rnd() * 64)
    const piece = bytes.subarray(from, from + len)
    bytes = how === 'drop' ? Buffer.concat([bytes.subarray(0, from), bytes.subarray(from + len)]) : Buffer.concat([bytes.subarray(0, from + len), piece, bytes.subarray(from + len)])
  }
  const tag = `crafted seed ${seed}: ${how}`
  const repo = await openRepository(createLocalStorage(fx.repoDir), PW)
  const snapshot = await craftSnapshot(repo, bytes)
  const work = `${fx.base}/work`
  rmTree(work)
  fs.mkdirSync(`${work}/sentinel`, { recursive: true })
  fs.writeFileSync(`${work}/sentinel/victim`, 'untouched')
  const outcomes: Record<string, string> = {}
  const run = async (name: string, fn: () => Promise<unknown>) => {
    try {
      await capped(`${tag}: ${name}`, fn())
      outcomes[name] = 'ok'
    } catch (err) {
      if (err instanceof assert.AssertionError) throw err
      outcomes[name] = codeOf(`${tag}: ${name}`, err)
    }
  }
  try {
    await run('ls', () => lsOf(repo, snapshot))
    await run('tar', () => restore({ repo, snapshot, sink: createTarWriter(new Writable({ write: (_b, _e, cb) => cb() })), onWarning: () => {} }))
    await run('restore', () => restore({ repo, snapshot, target: `${work}/target`, onWarning: () => {} }))
    await run('check', async () => {
      const r = await check({ repo, onProblem: () => {} })
      // A snapshot that ls refuses is a problem check reports.
      if (outcomes.ls !== 'ok') assert.ok(r.problems > 0, `${tag}: ls failed with ${outcomes.ls} but check found nothing`)
    })
    assert.deepEqual(listTree(`${work}/sentinel`).map(String), ['victim'], `${tag}: the sentinel changed`)
    assert.ok(fs.readdirSync(work).every(n => n === 'sentinel' || n === 'target'), `${tag}: something was written beside the target`)
    // Every byte restored comes from an extent of the stream: no more than the stream could name.
    if (fs.existsSync(`${work}/target`)) assert.ok(du(Buffer.from(`${work}/target`)) <= 64 * 1024 * 1024, `${tag}: restore wrote too much`)
  } finally {
    fs.rmSync(`${fx.repoDir}/snapshots/${snapshot}`)
    rmTree(work)
    await repo.close()
  }
  return { key: 'crafted', how, outcomes }
}

/** Bytes of regular files below `dir` (names are raw bytes: crafted ones need not be UTF-8). */
function du(dir: Buffer): number {
  let n = 0
  for (const d of fs.readdirSync(dir, { withFileTypes: true, encoding: 'buffer' })) {
    const p = Buffer.concat([dir, Buffer.from('/'), d.name])
    if (d.isDirectory()) n += du(p)
    else if (d.isFile()) n += fs.statSync(p).size
  }
  return n
}

/** rm -rf of a tree whose names may not be UTF-8 (fs.rmSync takes them as strings). */
function rmTree(dir: string): void {
  execFileSync('rm', ['-rf', dir])
}

/** For bench/fuzz.ts and the test: one line per outcome kind. */
export function summarize(results: CaseResult[]): string[] {
  const counts = new Map<string, number>()
  for (const r of results) for (const [cmd, o] of Object.entries(r.outcomes)) counts.set(`${cmd} ${o}`, (counts.get(`${cmd} ${o}`) ?? 0) + 1)
  return [...counts].sort().map(([k, n]) => `${k}: ${n}`)
}

