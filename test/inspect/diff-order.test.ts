/**
 * diff of snapshots out of canonical order (a tar stream keeps its archive's order): a side
 * given as a function is checked and, out of order, sorted on disk (lib/external-sort.ts) before
 * the join. The run size is lowered so the sort runs in many runs on a few thousand records.
 * The oracle is the join of the same records sorted in memory. A side given as a plain
 * iterable out of order is refused rather than diffed wrongly.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { execFileSync } from 'node:child_process'
import { backupSummary, cliFor } from '../helpers/cli.js'
import { diffRecords, type DiffItem } from '../../transforms/inspect/diff.js'
import { comparePaths } from '../../lib/bytes.js'
import type { EntryMeta, Extent, ExtentsItem, RecordItem } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { seededBytes } from '../helpers/tree.js'
import { scratch } from '../helpers/scratch.js'

const TMP = scratch('diff-order')
type Item = RecordItem | ExtentsItem
/** One entry with its extents records, kept together when shuffled. */
type Group = Item[]

function meta(path: Buffer, type: EntryMeta['type'], size: number, mtime: number): EntryMeta {
  return { path, type, mode: 0o644, uid: 1, gid: 1, size, mtimeSec: mtime, mtimeNsec: 0, ctimeSec: mtime, ctimeNsec: 0, ino: 0, dev: 0, nlink: 1 }
}

const ID = (n: number): Buffer => seededBytes(`chunk ${n}`, 32)

/** A tree of `n` entries: directories d0..d9 with files, some with further extents records. */
function tree(seed: string, n: number): Group[] {
  const rnd = seededBytes(seed, n * 4)
  const groups: Group[] = []
  for (let d = 0; d < 10; d++) groups.push([{ kind: 'record', entry: meta(Buffer.from(`d${d}`), 'dir', 0, 1), extents: [] }])
  for (let i = 0; i < n; i++) {
    const r = rnd.readUInt32LE(i * 4)
    const path = Buffer.from(`d${i % 10}/${r % 3 === 0 ? 'sub/' : ''}f${i % 997}-${Math.floor(i / 997)}`)
    const chunks = 1 + (r % 3)
    const extents: Extent[] = Array.from({ length: chunks }, (_, k) => ({ id: ID((r >>> 4) % 50 + k), offset: 0, length: 10 }))
    groups.push([
      { kind: 'record', entry: meta(path, 'file', chunks * 10, 1 + ((r >>> 8) % 2)), extents: extents.slice(0, 1) },
      ...extents.slice(1).map((e): ExtentsItem => ({ kind: 'extents', extents: [e] })),
    ])
  }
  for (let d = 0; d < 10; d += 3) groups.push([{ kind: 'record', entry: meta(Buffer.from(`d${d}/sub`), 'dir', 0, 1), extents: [] }])
  return groups
}

function shuffled(groups: Group[], seed: string): Item[] {
  const rnd = seededBytes(seed, groups.length * 4)
  const g = groups.slice()
  for (let i = g.length - 1; i > 0; i--) {
    const j = rnd.readUInt32LE(i * 4) % (i + 1)
    ;[g[i], g[j]] = [g[j]!, g[i]!]
  }
  return g.flat()
}

function sorted(groups: Group[]): Item[] {
  return groups.slice().sort((a, b) => comparePaths((a[0] as RecordItem).entry.path, (b[0] as RecordItem).entry.path)).flat()
}

async function* from(items: Item[]): AsyncIterable<Item> {
  yield* items
}

async function all(it: AsyncIterable<DiffItem>): Promise<string[]> {
  const out: string[] = []
  for await (const d of it) out.push(`${d.change} ${d.path.toString()} ${d.what.join(',')}`)
  return out
}

test('sides out of canonical order are sorted on disk and diffed as if sorted', async () => {
  const a = tree('a', 3000)
  // b: a with some files changed (another mtime or extents), some removed, some added.
  const b = tree('a', 3000).filter((_, i) => i % 101 !== 7)
  for (const g of b.filter((_, i) => i % 53 === 5)) (g[0] as RecordItem).entry.mtimeSec += 1000
  for (const g of b.filter((_, i) => i % 97 === 11)) if (g.length > 1) (g[1] as ExtentsItem).extents = [{ id: ID(999), offset: 0, length: 10 }]
  b.push([{ kind: 'record', entry: meta(Buffer.from('d3/new'), 'file', 0, 5), extents: [] }])
  const expected = await all(diffRecords(from(sorted(a)), from(sorted(b))))
  assert.ok(expected.length > 50, `${expected.length} changes`)
  assert.ok(expected.some((l) => l.startsWith('modified') && l.endsWith('content')))
  const xa = shuffled(a, 'sa'), xb = shuffled(b, 'sb')
  const got = await all(diffRecords(() => from(xa), () => from(xb), { tmpDir: TMP, sortRunBytes: 2048 }))
  assert.deepEqual(got, expected)
  // One side in order, the other not.
  assert.deepEqual(await all(diffRecords(() => from(sorted(a)), () => from(xb), { tmpDir: TMP, sortRunBytes: 2048 })), expected)
  assert.deepEqual(fs.readdirSync(TMP), [], 'the sort leaves nothing behind')
})

test('a side out of order given as a plain iterable is refused, not diffed wrongly', async () => {
  const a = tree('c', 50)
  await assert.rejects(all(diffRecords(from(shuffled(a, 'x')), from(sorted(a)))), (err: unknown) => {
    assert.ok(err instanceof SluiceError)
    assert.equal(err.code, 'ERR_CORRUPT')
    assert.match(err.message, /out of canonical order/)
    return true
  })
})

test('sluice diff of two tar backups of one tree in different member orders: no change', async () => {
  const base = scratch('diff-order-cli')
  fs.mkdirSync(`${base}/src/a`, { recursive: true })
  fs.mkdirSync(`${base}/src/b`)
  fs.mkdirSync(`${base}/home`)
  for (const [p, c] of [['a/x', '1'], ['b/y', '2'], ['a/z', '3']]) fs.writeFileSync(`${base}/src/${p}`, c)
  const tarOf = (order: string[]): Buffer => execFileSync('tar', ['c', '--no-recursion', '-C', `${base}/src`, ...order])
  const sluice = cliFor(`${base}/home`, `${base}/repo`, 'pw')
  assert.equal((await sluice(['init'])).code, 0)
  const ids: string[] = []
  for (const order of [['a', 'b', 'b/y', 'a/x', 'a/z'], ['b/y', 'a', 'a/x', 'b', 'a/z']]) {
    const r = await sluice(['backup', '--tar', '--stdin-filename', 't', '--json'], { input: tarOf(order) })
    assert.equal(r.code, 0, r.stderr)
    ids.push(backupSummary<{ snapshot_id: string }>(r.stdout).snapshot_id)
  }
  const r = await sluice(['diff', '--json', ids[0]!, ids[1]!])
  assert.equal(r.code, 0, r.stderr)
  assert.deepEqual(r.stdout.split('\n').filter((l) => l !== '' && JSON.parse(l).change !== undefined), [])
  // A real change is still found.
  fs.writeFileSync(`${base}/src/a/z`, 'changed')
  const c = await sluice(['backup', '--tar', '--stdin-filename', 't', '--json'], { input: tarOf(['a/z', 'b', 'a', 'b/y', 'a/x']) })
  const d = await sluice(['diff', '--json', ids[0]!, backupSummary<{ snapshot_id: string }>(c.stdout).snapshot_id])
  const changes = d.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l)).filter((x) => x.change !== undefined)
  assert.deepEqual(changes.map((x) => [x.change, x.path]), [['modified', '/t/a/z']])
})
