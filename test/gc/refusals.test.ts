/**
 * prune's building blocks and its refusals: the external sort gives every distinct id once, in
 * byte order, through several merge passes; and a listing out of order, a snapshot that does
 * not decrypt, a metadata chunk that does not, a tampered collection record or lease: prune
 * deletes and moves nothing and names the object (crafted fixtures, in-process).
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { randomBytes } from 'node:crypto'
import { keys, KiB, NO_MARGINS_API, SMALL_REPO, writeFiles, forgetRoot } from '../helpers/gc.js'
import { backup, createLocalStorage, initRepository, IdSorter, prune, type Repository, type Storage } from '../../index.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('gc-refusals')}/t`
const PW = 'correct horse'

before(() => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(BASE, { recursive: true })
})

test('the external sort yields each distinct id once, in byte order, across runs and merge passes', () => {
  const dir = fs.mkdtempSync(`${BASE}/sort-`)
  const sorter = new IdSorter(dir, { runIds: 100, fanIn: 3, block: 96 })
  const distinct = Array.from({ length: 700 }, () => randomBytes(32))
  // Ids sharing their first four bytes, to exercise the full comparison.
  for (let i = 0; i < 20; i++) distinct.push(Buffer.concat([Buffer.from('same'), randomBytes(28)]))
  for (let round = 0; round < 3; round++) for (const id of distinct) if (round === 0 || id[0]! % 3 === round) sorter.add(id)
  const out: string[] = []
  for (const id of sorter.sorted()) out.push(id.toString('hex'))
  sorter.close()
  const want = [...new Set(distinct.map(b => b.toString('hex')))].sort()
  assert.deepEqual(out, want)
  assert.deepEqual(fs.readdirSync(dir), [], 'runs removed')
})

/** A repository with a kept and a forgotten snapshot, and the keys of what prune could touch. */
async function fixture(name: string) {
  const dir = `${BASE}/${name}`
  const storage = createLocalStorage(dir)
  const repo = await initRepository(storage, PW, SMALL_REPO)
  writeFiles(`${dir}-tree`, name, 8, 16 * KiB)
  const first = await backup({ repo, paths: [`${dir}-tree`] })
  writeFiles(`${dir}-tree`, `${name}2`, 8, 16 * KiB)
  const kept = await backup({ repo, paths: [`${dir}-tree`] })
  await forgetRoot(storage, first.snapshotId)
  const state = async () => [...(await keys(storage, 'chunks/')), ...(await keys(storage, 'fossils/')), ...(await keys(storage, 'forgotten/'))]
  return { dir, storage, repo, kept: kept.snapshotId, state }
}

async function refuses(repo: Repository, state: () => Promise<string[]>, message: RegExp, code = 'ERR_UNSAFE') {
  const before = await state()
  await assert.rejects(prune({ repo, ...NO_MARGINS_API }), (err: Error & { code?: string }) => {
    assert.equal(err.code, code, err.message)
    assert.match(err.message, message)
    return true
  })
  assert.deepEqual(await state(), before, 'nothing moved or deleted')
}

test('a listing of chunks/ out of order: prune deletes nothing and says so', async () => {
  const { storage, repo, state } = await fixture('order')
  const swapped: Storage = {
    ...storage,
    async *list(prefix: string) {
      const all: string[] = []
      for await (const k of storage.list(prefix)) all.push(k)
      if (prefix === 'chunks/' && all.length > 2) [all[1], all[2]] = [all[2]!, all[1]!]
      yield* all
    },
  }
  const { Repository: R } = await import('../../lib/repo/repository.js')
  await refuses(new R(swapped, repo.config, repo.keys), state, /listed chunks\/.* after chunks\/.*out of order; prune deleted nothing/)
})

test('a snapshot root that does not decrypt: prune deletes nothing and names it', async () => {
  const { dir, repo, kept, state } = await fixture('root')
  const file = `${dir}/snapshots/${kept}`
  const b = fs.readFileSync(file)
  b[b.length - 1]! ^= 1
  fs.writeFileSync(file, b)
  await refuses(repo, state, new RegExp(`snapshot ${kept.slice(0, 8)} cannot be read .*failed authentication.*prune deleted nothing`))
})

test('a metadata chunk that does not decrypt: prune deletes nothing and names the snapshot', async () => {
  const { dir, repo, kept, state } = await fixture('meta')
  const snap = await repo.loadSnapshot(kept)
  const root = snap.tree.root
  const file = `${dir}/chunks/${root.slice(0, 2)}/${root}`
  const b = fs.readFileSync(file)
  b[b.length - 1]! ^= 1
  fs.writeFileSync(file, b)
  await refuses(repo, state, new RegExp(`snapshot ${kept.slice(0, 8)} cannot be read \\(ERR_CORRUPT: chunk ${root} failed authentication\\)`))
})

test('a tampered collection record or lease: prune deletes nothing and names the object', async () => {
  const { dir, repo, state } = await fixture('records')
  await prune({ repo, ...NO_MARGINS_API }) // collect: gc/00000001/done now exists
  const done = `${dir}/gc/00000001/done`
  const b = fs.readFileSync(done)
  b[b.length - 1]! ^= 1
  fs.writeFileSync(done, b)
  await refuses(repo, state, /gc\/00000001\/done does not open .*failed authentication/)
  fs.writeFileSync(done, Buffer.from(b.map((x, i) => (i === b.length - 1 ? x ^ 1 : x))))
  // A lease nobody could have sealed.
  fs.mkdirSync(`${dir}/leases/${'ab'.repeat(16)}`, { recursive: true })
  fs.writeFileSync(`${dir}/leases/${'ab'.repeat(16)}/${String(Date.now()).padStart(15, '0')}`, randomBytes(80))
  await refuses(repo, state, /leases\/abab.* (failed authentication|unknown format)/, 'ERR_CORRUPT')
})
