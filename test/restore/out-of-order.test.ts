/**
 * Restoring a tar snapshot whose members are out of canonical order: an entry that comes after
 * its directory was finished must not leave that directory with the restore's time as mtime.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { execFileSync } from 'node:child_process'
import { cliFor } from '../helpers/cli.js'
import { scratch } from '../helpers/scratch.js'

const BASE = scratch('restore-order')

test('a directory finished before a later member lands in it keeps its recorded mtime', async () => {
  const src = `${BASE}/src`
  fs.mkdirSync(`${src}/a`, { recursive: true })
  fs.mkdirSync(`${src}/b`)
  fs.mkdirSync(`${BASE}/home`)
  for (const [p, c] of [['a/x', '1'], ['b/y', '2'], ['a/z', '3'], ['a/big', 'x'.repeat(300_000)]]) fs.writeFileSync(`${src}/${p}`, c)
  const old = new Date('2020-01-02T03:04:05Z')
  for (const p of ['a/x', 'b/y', 'a/z', 'a/big', 'a', 'b']) fs.utimesSync(`${src}/${p}`, old, old)
  // a is finished when b comes; a/z (small) and a/big (large) land in it afterwards.
  const tar = execFileSync('tar', ['c', '--no-recursion', '-C', src, 'a', 'a/x', 'b', 'b/y', 'a/z', 'a/big'])
  const sluice = cliFor(`${BASE}/home`, `${BASE}/repo`, 'pw')
  assert.equal((await sluice(['init'])).code, 0)
  const b = await sluice(['backup', '--tar', '--stdin-filename', 't'], { input: tar })
  assert.equal(b.code, 0, b.stderr)
  const r = await sluice(['restore', 'latest', '--target', `${BASE}/out`])
  assert.equal(r.code, 0, r.stderr)
  for (const p of ['a', 'b', 'a/z', 'a/big']) {
    assert.equal(fs.lstatSync(`${BASE}/out/t/${p}`).mtime.toISOString(), old.toISOString(), p)
  }
  assert.equal(fs.readFileSync(`${BASE}/out/t/a/big`, 'utf8').length, 300_000)
})

test('a tar snapshot naming a path as a file, then as a directory, restores as it did before directories were made first', async () => {
  const src = `${BASE}/dup-src`
  fs.mkdirSync(`${src}/x`, { recursive: true })
  fs.writeFileSync(`${src}/x/y`, 'inside')
  fs.writeFileSync(`${BASE}/dup-file-x`, 'a file named x')
  // Members: x (a file), x/ (a directory), x/y: the later entry at x wins, as each is created in turn.
  const asFile = execFileSync('tar', ['c', '--transform=s,^dup-file-x$,x,', '-C', BASE, 'dup-file-x'])
  const asDir = execFileSync('tar', ['c', '--no-recursion', '-C', src, 'x', 'x/y'])
  const tar = Buffer.concat([asFile.subarray(0, asFile.length - 512 * trailingZeroBlocks(asFile)), asDir])
  fs.mkdirSync(`${BASE}/dup-home`, { recursive: true })
  const sluice = cliFor(`${BASE}/dup-home`, `${BASE}/dup-repo`, 'pw')
  assert.equal((await sluice(['init'])).code, 0)
  const b = await sluice(['backup', '--tar', '--stdin-filename', 't'], { input: tar })
  assert.equal(b.code, 0, b.stderr)
  const r = await sluice(['restore', 'latest', '--target', `${BASE}/dup-out`])
  assert.equal(r.code, 0, r.stderr)
  assert.ok(fs.lstatSync(`${BASE}/dup-out/t/x`).isDirectory())
  assert.equal(fs.readFileSync(`${BASE}/dup-out/t/x/y`, 'utf8'), 'inside')
})

/** Whole 512-byte blocks of zeros at the end of a tar (its end-of-archive marker and padding). */
function trailingZeroBlocks(t: Buffer): number {
  let n = 0
  for (let at = t.length - 512; at >= 0 && t.subarray(at, at + 512).every(b => b === 0); at -= 512) n++
  return n
}
