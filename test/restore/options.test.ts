/**
 * restore's options a restic user reaches for (issues 15 and 17): `--include` creating only the
 * directories on the way to what matched; `--overwrite` (restic 0.17's modes) and resuming a
 * restore SIGKILLed at seeded points; `--delete`; `--verify`; `--dry-run`; owners by name.
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { cliFor } from '../helpers/cli.js'
import { scratch } from '../helpers/scratch.js'
import { listTree, seededBytes } from '../helpers/tree.js'

const BASE = `${scratch('restoreopts')}/opts`
const SRC = `${BASE}/src`
const REL = SRC.slice(1)
let cli: ReturnType<typeof cliFor>

const ok = (what: string, r: { code: number | null; stderr: string }) => assert.equal(r.code, 0, `${what}: ${r.stderr}`)

before(async () => {
  fs.mkdirSync(`${SRC}/a/b/c`, { recursive: true })
  fs.mkdirSync(`${SRC}/d/e`, { recursive: true })
  fs.mkdirSync(`${SRC}/empty`, { recursive: true })
  fs.mkdirSync(`${SRC}/keep/sub`, { recursive: true })
  fs.writeFileSync(`${SRC}/a/b/c/newfile.txt`, 'new\n')
  fs.writeFileSync(`${SRC}/d/e/other.txt`, 'other\n')
  fs.writeFileSync(`${SRC}/keep/sub/k`, 'k\n')
  fs.writeFileSync(`${SRC}/top`, seededBytes('top', 5000))
  fs.mkdirSync(`${BASE}/home`)
  cli = cliFor(`${BASE}/home`, `${BASE}/repo`)
  ok('init', await cli(['init']))
  ok('backup', await cli(['backup', '-q', SRC]))
})

test('--include creates only the directories on the way to what matched (restic)', async () => {
  const target = `${BASE}/include`
  ok('restore', await cli(['restore', 'latest', '--include', 'newfile.txt', '--target', target, '-q']))
  const got = listTree(target).map(String).sort()
  const want = ['tmp', ...REL.split('/').map((_, i, a) => a.slice(0, i + 1).join('/')), `${REL}/a`, `${REL}/a/b`, `${REL}/a/b/c`, `${REL}/a/b/c/newfile.txt`]
  assert.deepEqual(got, [...new Set(want)].sort())
  // The directories on the way keep their recorded metadata (mode and mtime).
  const src = fs.statSync(`${SRC}/a/b`, { bigint: true })
  const out = fs.statSync(`${target}/${REL}/a/b`, { bigint: true })
  assert.equal(out.mtimeNs, src.mtimeNs)
  assert.equal(out.mode, src.mode)
  // A directory that matches itself is restored with what it holds, even an empty one.
  const t2 = `${BASE}/include2`
  ok('restore', await cli(['restore', 'latest', '--include', 'keep', '--include', 'empty', '--target', t2, '-q']))
  const got2 = listTree(t2).map(String).filter(p => p.startsWith(`${REL}/`)).sort()
  assert.deepEqual(got2, [`${REL}/empty`, `${REL}/keep`, `${REL}/keep/sub`, `${REL}/keep/sub/k`])
})

test('--tar with --target: one line saying to give one of them', async () => {
  const r = await cli(['restore', 'latest', '--tar', '--target', `${BASE}/x`])
  assert.equal(r.code, 1)
  assert.equal(r.stderr, 'sluice: ERR_ARGS: give one of --target or --tar, not both\n')
  assert.equal(fs.existsSync(`${BASE}/x`), false)
})
