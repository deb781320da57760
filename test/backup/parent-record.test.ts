/**
 * An incremental backup copies an unchanged file's parent record as it is stored (parent-join,
 * lib/repo/record.ts `raw`) instead of encoding it again: the snapshot's bytes must be exactly
 * what encoding gives. So an incremental of an unchanged tree has the parent's metadata tree
 * (same root id), and after changes (content, mode, a rename, an xattr, hostile names) each of
 * its records is what encoding it gives and says what a full backup of the same state says (the
 * extents differ: a full backup packs the small files' content into other chunks).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { backup } from '../../transforms/backup/backup.js'
import { initRepository, type Repository, type SnapshotRoot } from '../../lib/repo/repository.js'
import { createLocalStorage } from '../../lib/storage/local.js'
import { lsetxattr } from '../../lib/native.js'
import { encodeEntry } from '../../lib/repo/record.js'
import { snapshotRecords, treeOf } from '../../transforms/restore/read-snapshot.js'
import { scratch } from '../helpers/scratch.js'

const BASE = scratch('parent-record')

function makeTree(root: string): void {
  for (let d = 0; d < 5; d++) {
    const dir = path.join(root, `d${d}`)
    fs.mkdirSync(dir, { recursive: true })
    for (let f = 0; f < 60; f++) fs.writeFileSync(path.join(dir, `f${f}.txt`), `file ${d}/${f} `.repeat(f * 7 + 1))
  }
  // Hostile names: bytes that are not UTF-8, a newline, a name that sorts between others.
  fs.writeFileSync(Buffer.from(`${root}/d0/\xff\xfe-raw`, 'latin1'), 'raw name')
  fs.writeFileSync(path.join(root, 'd1', 'line\nbreak'), 'newline')
  fs.writeFileSync(path.join(root, 'd1', 'f1.txt-'), 'sorts after f1.txt')
  fs.symlinkSync('d0/f1.txt', path.join(root, 'link'))
  setXattr(path.join(root, 'd2'), 'user.dir', 'on a directory')
  setXattr(path.join(root, 'd0', 'f2.txt'), 'user.file', 'on a file')
}

/** Sets a user xattr where the filesystem has them (the other changes still count without). */
function setXattr(p: string, name: string, value: string): void {
  try {
    lsetxattr(Buffer.from(p), Buffer.from(name), Buffer.from(value))
  } catch {
    // No user xattrs here.
  }
}

/** A backup of `tree` (relative, so the snapshot holds no ancestor of it that other tests touch). */
async function treeAfter(repo: Repository, parent: false | undefined): Promise<SnapshotRoot['tree']> {
  const r = await backup({ repo, paths: ['tree'], host: 'h', ...(parent === false ? { parent: false as const } : {}) })
  return r.snapshot.tree
}

/** The entry records of the snapshot with metadata tree `root`, each checked to be stored as
 *  encoding it gives; as JSON without the extents. */
async function recordsOf(repo: Repository, tree: SnapshotRoot['tree']): Promise<string[]> {
  const out: string[] = []
  for await (const r of snapshotRecords(repo, treeOf({ tree }), undefined, true)) {
    if (r.kind !== 'record') continue
    const enc = encodeEntry(r.entry, r.extents)
    assert.ok(r.raw && enc.subarray(enc.length - r.raw.length).equals(r.raw), `${r.entry.path} is stored as encoding gives`)
    out.push(JSON.stringify({ ...r.entry, path: r.entry.path.toString('hex') }))
  }
  return out
}

test('an incremental keeps the parent tree when nothing changed, and a full backup\'s after changes', async () => {
  process.chdir(BASE)
  makeTree(path.join(BASE, 'tree'))
  const repo = await initRepository(createLocalStorage(`${BASE}/repo`), 'pw', { kdf: { opslimit: 1, memlimit: 8192 } })
  try {
    const full = await treeAfter(repo, false)
    assert.deepEqual(await treeAfter(repo, undefined), full, 'an unchanged tree gives the parent tree')
    assert.deepEqual(await treeAfter(repo, undefined), full, 'and again from an incremental parent')

    // Changes the parent's records must not survive: content with the same size, a mode, a
    // rename, xattrs of files and directories (where the filesystem has them), a directory's
    // mode, a symlink's target, a file added and one removed.
    const t = path.join(BASE, 'tree')
    const f = path.join(t, 'd2', 'f10.txt')
    fs.writeFileSync(f, fs.readFileSync(f).reverse())
    fs.chmodSync(path.join(t, 'd3', 'f4.txt'), 0o600)
    fs.renameSync(path.join(t, 'd4', 'f5.txt'), path.join(t, 'd4', 'f5-renamed.txt'))
    setXattr(path.join(t, 'd0', 'f7.txt'), 'user.note', 'set after')
    setXattr(path.join(t, 'd2'), 'user.dir', 'changed on a directory')
    setXattr(path.join(t, 'd3'), 'user.new', 'new on a directory')
    fs.chmodSync(path.join(t, 'd4'), 0o700)
    fs.rmSync(path.join(t, 'link'))
    fs.symlinkSync('d0/f2.txt', path.join(t, 'link'))
    fs.writeFileSync(path.join(t, 'd1', 'f30.txt-new'), 'new')
    fs.rmSync(path.join(t, 'd1', 'f31.txt'))
    const incremental = await treeAfter(repo, undefined)
    assert.notEqual(incremental.root, full.root)
    assert.deepEqual(await recordsOf(repo, incremental), await recordsOf(repo, await treeAfter(repo, false)), 'the incremental says what a full backup says')
  } finally {
    await repo.close()
  }
})
