/**
 * Files that change while backup reads them (issue 13, item 8): as GNU tar does, each is named
 * in an ERR_CHANGED warning "file changed as we read it", the snapshot keeps the size lstat
 * gave, and the backup goes on. Changes are made at a fixed point of the read through a reader
 * injected into the walk (WalkOptions.readContent), so no timing decides the outcome.
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createWalk } from '../../transforms/backup/sources/walk.js'
import { readContent, type ContentReader } from '../../transforms/backup/sources/read-content.js'
import { backup } from '../../transforms/backup/backup.js'
import { listSnapshot, restore } from '../../transforms/restore/restore.js'
import { createLocalStorage } from '../../lib/storage/local.js'
import { initRepository } from '../../lib/repo/repository.js'
import type { SourceEntry } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { READ_BLOCK } from '../../lib/limits.js'
import { seededBytes } from '../helpers/tree.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('read-content-task')}/t`
const KDF = { kdf: { opslimit: 1, memlimit: 8192 } }

before(() => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(BASE, { recursive: true })
})

/** A reader that runs `change` once, after the first piece of a file it names was yielded. */
function changingAfterFirstPiece(victims: Map<string, () => void>): ContentReader {
  return async function* (file, onWarning) {
    const change = victims.get(file.fsPath.toString())
    let first = true
    for await (const piece of readContent(file, onWarning)) {
      yield piece
      if (first && change) change()
      first = false
    }
    // A file read in one piece changes after it: the probe for more bytes still sees it.
    if (first && change) change()
  }
}

async function walkAndRead(root: string, reader: ContentReader): Promise<{ contents: Map<string, Buffer>; warnings: SluiceError[] }> {
  const warnings: SluiceError[] = []
  const contents = new Map<string, Buffer>()
  for await (const e of createWalk([root], { onWarning: (w) => warnings.push(w), readContent: reader })) {
    const entry = e as SourceEntry
    if (entry.type !== 'file') continue
    const parts: Buffer[] = []
    for await (const p of entry.content!()) parts.push(Buffer.from(p))
    contents.set(entry.fsPath!.toString(), Buffer.concat(parts))
  }
  return { contents, warnings }
}

test('a file appended to while it is read: ERR_CHANGED naming it, the content cut at its lstat size', async () => {
  const root = `${BASE}/grow`
  fs.mkdirSync(root)
  const big = seededBytes('big', 2 * READ_BLOCK + 17)
  const small = seededBytes('small', 1000)
  fs.writeFileSync(`${root}/big`, big)
  fs.writeFileSync(`${root}/small`, small)
  fs.writeFileSync(`${root}/still`, 'still')
  const reader = changingAfterFirstPiece(
    new Map([
      [`${root}/big`, () => fs.appendFileSync(`${root}/big`, 'appended')],
      [`${root}/small`, () => fs.appendFileSync(`${root}/small`, 'appended')],
    ]),
  )
  const { contents, warnings } = await walkAndRead(root, reader)
  assert.ok(contents.get(`${root}/big`)!.equals(big))
  assert.ok(contents.get(`${root}/small`)!.equals(small))
  assert.equal(contents.get(`${root}/still`)!.toString(), 'still')
  assert.deepEqual(warnings.map((w) => [w.code, w.path!.toString()]).sort(), [
    ['ERR_CHANGED', `${root}/big`],
    ['ERR_CHANGED', `${root}/small`],
  ])
  for (const w of warnings) assert.match(w.message, /^file changed as we read it: .*grew past its \d+ bytes/)
})

test('a file rewritten in place while it is read (same size, new mtime): ERR_CHANGED', async () => {
  const root = `${BASE}/rewrite`
  fs.mkdirSync(root)
  fs.writeFileSync(`${root}/f`, seededBytes('f', 3 * READ_BLOCK))
  const reader = changingAfterFirstPiece(
    new Map([[`${root}/f`, () => fs.utimesSync(`${root}/f`, new Date(), new Date(Date.now() + 60_000))]]),
  )
  const { contents, warnings } = await walkAndRead(root, reader)
  assert.equal(contents.get(`${root}/f`)!.length, 3 * READ_BLOCK)
  assert.equal(warnings.length, 1)
  assert.equal(warnings[0]!.code, 'ERR_CHANGED')
  assert.match(warnings[0]!.message, /file changed as we read it: .*\/rewrite\/f \(modification time changed\)/)
})

test('without prefetch, a file whose lstat size is 0 but has content is warned about, not silent', { skip: !fs.existsSync('/proc/version') && 'no /proc' }, async () => {
  const warnings: SluiceError[] = []
  for await (const e of createWalk(['/proc/version'], { onWarning: (w) => warnings.push(w) })) {
    const entry = e as SourceEntry
    if (entry.fsPath?.toString() !== '/proc/version') continue
    for await (const _ of entry.content!()) assert.fail('yielded bytes beyond the recorded size 0')
  }
  assert.equal(warnings.length, 1)
  assert.equal(warnings[0]!.code, 'ERR_CHANGED')
  assert.match(warnings[0]!.message, /\/proc\/version \(grew past its 0 bytes/)
})

test('backup() goes on after a file changed: the warning is counted, the snapshot holds the lstat size', async () => {
  const root = `${BASE}/backup`
  fs.mkdirSync(`${root}/src`, { recursive: true })
  const data = seededBytes('log', 5000)
  fs.writeFileSync(`${root}/src/app.log`, data)
  fs.writeFileSync(`${root}/src/other`, 'other')
  const repo = await initRepository(createLocalStorage(`${root}/repo`), 'pw', KDF)
  try {
    const warnings: SluiceError[] = []
    const reader = changingAfterFirstPiece(new Map([[`${root}/src/app.log`, () => fs.appendFileSync(`${root}/src/app.log`, 'line\n')]]))
    const result = await backup({
      repo,
      source: createWalk([`${root}/src`], { onWarning: (w) => warnings.push(w), readContent: reader }),
      sourcePaths: [`${root}/src`],
      onWarning: (w) => warnings.push(w),
    })
    assert.deepEqual(warnings.map((w) => w.code), ['ERR_CHANGED'])
    assert.ok(result.snapshotId)
    const sizes = new Map<string, number>()
    for await (const { entry } of listSnapshot(repo, result.snapshot)) sizes.set(entry.path.toString(), entry.size)
    assert.equal(sizes.get(`${root.slice(1)}/src/app.log`), data.length)
    await restore({ repo, snapshot: result.snapshotId, target: `${root}/out`, onWarning: assert.fail })
    assert.ok(fs.readFileSync(`${root}/out${root}/src/app.log`).equals(data))
  } finally {
    await repo.close()
  }
})

test('files over a read block, read one after another (one given up after its first piece), each keep their own bytes', async () => {
  // Readers hand their read blocks to the next file: a block must not be given back while a
  // read into it is in flight, nor be shared by two files at once.
  const root = `${BASE}/blocks`
  fs.mkdirSync(root)
  const sizes = [2 * READ_BLOCK + 17, READ_BLOCK + 1, 3 * READ_BLOCK, READ_BLOCK - 5, 2 * READ_BLOCK]
  sizes.forEach((size, i) => fs.writeFileSync(`${root}/f${i}`, seededBytes(`blocks-${i}`, size)))
  const contents = new Map<string, Buffer>()
  for await (const e of createWalk([root], { onWarning: (w) => assert.fail(w.message) })) {
    const entry = e as SourceEntry
    if (entry.type !== 'file') continue
    const name = entry.fsPath!.toString().slice(root.length + 1)
    const parts: Buffer[] = []
    for await (const p of entry.content!()) {
      parts.push(Buffer.from(p))
      if (name === 'f1') break
    }
    contents.set(name, Buffer.concat(parts))
  }
  assert.deepEqual([...contents.keys()], ['f0', 'f1', 'f2', 'f3', 'f4'])
  sizes.forEach((size, i) => {
    const want = seededBytes(`blocks-${i}`, size)
    assert.ok(contents.get(`f${i}`)!.equals(i === 1 ? want.subarray(0, READ_BLOCK) : want), `f${i}`)
  })
})
