/**
 * Restore errors say what failed and where (issue 13 item 9): one line `sluice: ERR_CODE:
 * message` naming the path, exit 1, no stack trace, and no partial file left behind. A full disk
 * is a 1 MiB tmpfs (needs root to mount; skipped with the reason otherwise).
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { execFileSync } from 'node:child_process'
import { backup, createLocalStorage, initRepository } from '../../index.js'
import { seededBytes } from '../helpers/tree.js'
import { cliFor } from '../helpers/cli.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('readers-test')}/errors`
const PW = 'correct horse'
const SRC = `${BASE}/src`
const REL = SRC.slice(1)
const FULL = `${BASE}/full`
let cli: ReturnType<typeof cliFor>
let mounted = false

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(`${SRC}/small`, { recursive: true })
  fs.writeFileSync(`${SRC}/big`, seededBytes('big', 3 * 1024 * 1024))
  for (let i = 0; i < 40; i++) fs.writeFileSync(`${SRC}/small/f${i}`, seededBytes(`f${i}`, 100 * 1024))
  const repo = await initRepository(createLocalStorage(`${BASE}/repo`), PW, { kdf: { opslimit: 1, memlimit: 8192 } })
  await backup({ repo, paths: [SRC] })
  fs.mkdirSync(`${BASE}/home`)
  cli = cliFor(`${BASE}/home`, `${BASE}/repo`, PW)
  fs.mkdirSync(FULL)
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', FULL], { stdio: 'ignore' })
    mounted = true
  } catch {
    // not root, or no mount in this container: the full-disk tests say so and skip
  }
})

after(() => {
  if (mounted) execFileSync('umount', [FULL])
})

test('a target that is a file, or lies below one: ERR_WRITE naming it', async () => {
  fs.writeFileSync(`${BASE}/afile`, 'x')
  for (const target of [`${BASE}/afile`, `${BASE}/afile/below`]) {
    const r = await cli(['restore', 'latest', '--target', target])
    assert.equal(r.code, 1)
    assert.equal(r.stderr, `sluice: ERR_WRITE: restore target ${target} is not a directory\n`)
  }
})

test('a full disk while a large file is written: ERR_WRITE naming the file, no partial file', async (t) => {
  if (!mounted) return t.skip('cannot mount a 1 MiB tmpfs (needs root)')
  const target = `${FULL}/large`
  const r = await cli(['restore', 'latest:' + REL + '/big', '--target', target])
  assert.equal(r.code, 1, r.stderr)
  assert.equal(r.stderr, `sluice: ERR_WRITE: cannot write ${target}/big: ENOSPC: no space left on device, write\n`)
  assert.deepEqual(fs.readdirSync(target), [])
})

test('a full disk while small files are written: ERR_WRITE naming one, no partial file', async (t) => {
  if (!mounted) return t.skip('cannot mount a 1 MiB tmpfs (needs root)')
  const target = `${FULL}/small`
  const r = await cli(['restore', 'latest:' + REL + '/small', '--target', target])
  assert.equal(r.code, 1, r.stderr)
  assert.match(r.stderr, new RegExp(`^sluice: ERR_WRITE: cannot (write|restore) ${target}/f\\d+: ENOSPC: no space left on device, \\w+\n$`))
  // Whatever was written is whole: no file shorter than its source.
  for (const name of fs.readdirSync(target)) {
    assert.ok(fs.readFileSync(`${target}/${name}`).equals(fs.readFileSync(`${SRC}/small/${name}`)), `${name} is partial`)
  }
})
