/**
 * prune's marking: markSnapshot gives the sorter exactly the ids snapshotIds names, also when it
 * spares metadata chunks an earlier snapshot shared (the same chunk met with its records framed
 * the same way), and decodes a shared chunk again when its records are framed differently
 * (crafted chunks). Snapshots of a tree of files with long paths, so that the metadata spans
 * several chunks and records straddle their boundaries.
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { createHash } from 'node:crypto'
import { backup, createLocalStorage, hex, IdSorter, initRepository, snapshotIds, treeOf, type Repository } from '../../index.js'
import { markSnapshot } from '../../transforms/gc/mark.js'
import { encodeExtentsRecord } from '../../lib/repo/record.js'
import type { ChunkLoader, TreeRef } from '../../transforms/restore/read-snapshot.js'
import { seededBytes } from '../helpers/tree.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('gc-mark')}/t`
const PW = 'correct horse'

before(() => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(BASE, { recursive: true })
})

async function expected(repo: Repository, ids: string[]): Promise<string[]> {
  const all = new Set<string>()
  for (const id of ids) for await (const c of snapshotIds(repo, treeOf(await repo.loadSnapshot(id)))) all.add(hex(c))
  return [...all].sort()
}

function sortedOut(sorter: IdSorter): string[] {
  const out: string[] = []
  for (const id of sorter.sorted()) out.push(hex(id))
  sorter.close()
  return out
}

test('marking snapshots that share metadata: the same ids as snapshotIds, shared chunks decoded once', async () => {
  const repo = await initRepository(createLocalStorage(`${BASE}/repo`), PW, { kdf: { opslimit: 1, memlimit: 8192 }, chunker: { min: 2048, avg: 8192, max: 32768 } })
  const src = `${BASE}/src`
  fs.mkdirSync(src, { recursive: true })
  // 2,000 files with long paths: records of ~600 bytes, 1.2 MB of metadata, so at least three
  // metadata chunks (512 KiB at most each).
  const deep = path.join(src, `d-${'y'.repeat(240)}`)
  fs.mkdirSync(deep)
  const name = (i: number) => path.join(deep, `f${String(i).padStart(4, '0')}-${'x'.repeat(240)}`)
  for (let i = 0; i < 2000; i++) fs.writeFileSync(name(i), seededBytes(`mark-${i}`, 1000))
  // Backed up as the relative path 'src' (from BASE): a snapshot of an absolute path also holds
  // its ancestors (the scratch folders, /tmp), whose times other tests running beside this one
  // change between the backups, and then no metadata would be shared.
  const cwd = process.cwd()
  process.chdir(BASE)
  const ids = [(await backup({ repo, paths: ['src'] })).snapshotId]
  // One file changed in the middle: the metadata before and after it is shared.
  fs.writeFileSync(name(100), seededBytes('mark-changed', 1000))
  ids.push((await backup({ repo, paths: ['src'] })).snapshotId)
  // A file that sorts first and shifts every record after it.
  fs.writeFileSync(path.join(src, 'a-first'), seededBytes('mark-first', 5000))
  ids.push((await backup({ repo, paths: ['src'] })).snapshotId)
  // And the first tree again.
  fs.rmSync(path.join(src, 'a-first'))
  fs.writeFileSync(name(100), seededBytes('mark-100', 1000))
  ids.push((await backup({ repo, paths: ['src'] })).snapshotId)
  // And the same tree once more, unchanged: every one of its metadata chunks is one the fourth
  // has, framed the same way. (Whether the changed snapshots share chunks with the ones before
  // depends on where the repository's random chunker key cuts: asserted only for this one.)
  ids.push((await backup({ repo, paths: ['src'] })).snapshotId)
  process.chdir(cwd)

  const want = await expected(repo, ids)
  const dir = fs.mkdtempSync(`${BASE}/sort-`)
  const shared = new IdSorter(dir)
  const spared: number[] = []
  for (const id of ids) spared.push(await markSnapshot(repo, treeOf(await repo.loadSnapshot(id)), shared, id))
  assert.deepEqual(sortedOut(shared), want)
  assert.equal(spared[0], 0, 'nothing to spare in the first snapshot')
  assert.ok(spared[4]! > 0, `shared metadata decoded again: ${spared}`)
  // What it spared is all of its metadata chunks: the fifth marked twice with a sorter of its
  // own spares as many the second time.
  const again = new IdSorter(fs.mkdtempSync(`${BASE}/sort-`))
  await markSnapshot(repo, treeOf(await repo.loadSnapshot(ids[4]!)), again, ids[4]!)
  assert.equal(await markSnapshot(repo, treeOf(await repo.loadSnapshot(ids[4]!)), again, ids[4]!), spared[4])
  sortedOut(again)
  // Each snapshot alone, with a sorter of its own: nothing spared, its own ids.
  for (const id of ids) {
    const own = new IdSorter(fs.mkdtempSync(`${BASE}/sort-`))
    assert.equal(await markSnapshot(repo, treeOf(await repo.loadSnapshot(id)), own, id), 0)
    assert.deepEqual(sortedOut(own), await expected(repo, [id]))
  }
  await repo.close()
})

/** Crafted metadata: chunks held in memory by id (marking reads through a ChunkLoader only). */
function crafted() {
  const chunks = new Map<string, Buffer>()
  const put = (data: Buffer): Buffer => {
    const id = createHash('sha256').update(data).digest()
    chunks.set(hex(id), data)
    return id
  }
  const loader = { loadChunk: async (id: Uint8Array) => chunks.get(hex(id))! }
  /** A snapshot tree of depth 1 over these metadata chunks; its ids with the extents named. */
  const snapshot = (metadata: Buffer[], named: number[]) => {
    const leaves = metadata.map(put)
    const root = put(Buffer.concat([Buffer.from([1]), ...leaves]))
    return { tree: { root, depth: 1 }, ids: [root, ...leaves, ...named.map(idOf)].map(b => hex(b)) }
  }
  return { loader, snapshot }
}
const idOf = (n: number) => Buffer.alloc(32, n)
const ext = (ns: number[]) => encodeExtentsRecord(ns.map(n => ({ id: idOf(n), offset: 0, length: 10 })))

async function markAll(loader: ChunkLoader, trees: TreeRef[]): Promise<{ ids: string[]; spared: number[] }> {
  const sorter = new IdSorter(fs.mkdtempSync(`${BASE}/sort-`))
  const spared: number[] = []
  for (const t of trees) spared.push(await markSnapshot(loader, t, sorter, 'crafted'))
  return { ids: sortedOut(sorter), spared }
}

test('a spared chunk: the record reaching into it from a changed chunk before is still read', async () => {
  const { loader, snapshot } = crafted()
  // r2 and r2' differ in their first extent only, which lies in the first chunk.
  const [r1, r2, r2b, r3, r4] = [ext([1, 2]), ext([3, 4, 5, 6]), ext([20, 4, 5, 6]), ext([7, 8]), ext([9, 10, 11])]
  const cut = (s: Buffer) => [s.subarray(0, r1.length + 45), s.subarray(r1.length + 45, r1.length + r2.length + r3.length + 10), s.subarray(r1.length + r2.length + r3.length + 10)]
  const a = snapshot(cut(Buffer.concat([r1, r2, r3, r4])), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
  const b = snapshot(cut(Buffer.concat([r1, r2b, r3, r4])), [1, 2, 20, 4, 5, 6, 7, 8, 9, 10, 11])
  const { ids, spared } = await markAll(loader, [a.tree, b.tree])
  // The second and third chunks are shared and spared; the records reaching into them (r2',
  // whose first extent differs, and r4) are decoded all the same.
  assert.deepEqual(spared, [0, 2])
  assert.deepEqual(ids, [...new Set([...a.ids, ...b.ids])].sort())
})

test('a shared chunk whose records are framed differently is decoded again', async () => {
  const { loader, snapshot } = crafted()
  // X: a record of a kind readers skip, whose body hides a record naming 30 and 31, then a
  // record naming 32. Framed from its start (snapshot a) X names 32 alone; framed from the
  // hidden record (snapshot b: the record before reaches exactly that far into X) it names 30,
  // 31 and 32.
  const hidden = ext([30, 31])
  const body = Buffer.concat([Buffer.from([99, 0, 0]), hidden])
  const u = Buffer.concat([Buffer.from([body.length]), body])
  const x = Buffer.concat([u, ext([32])])
  const k = 1 + 3 // where `hidden` starts in x
  const a = snapshot([ext([41]), x], [41, 32])
  const b = snapshot([Buffer.concat([ext([40]), Buffer.from([k + 1, 99])]), x], [40, 30, 31, 32])
  const { ids, spared } = await markAll(loader, [a.tree, b.tree])
  assert.deepEqual(spared, [0, 0])
  assert.deepEqual(ids, [...new Set([...a.ids, ...b.ids])].sort())
  // The same chunks met again framed the same way are spared.
  assert.deepEqual((await markAll(loader, [a.tree, a.tree, b.tree, b.tree])).spared, [0, 2, 0, 2])
})
