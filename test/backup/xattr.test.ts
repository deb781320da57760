import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { after, before, test } from 'node:test'
import type { BackupItem, ChunkItem, RecordItem, SourceEntry, TreeItem } from '../../lib/entry.js'
import type { SluiceError } from '../../lib/errors.js'
import { lsetxattr } from '../../lib/native.js'
import { createXattrReader, defaultXattrFilter } from '../../transforms/backup/xattr.js'
import { scratch } from '../helpers/scratch.js'

const ROOT = scratch('native-task')
let dir: Buffer

before(() => {
  mkdirSync(ROOT, { recursive: true })
  dir = Buffer.from(mkdtempSync(`${ROOT}/xattr-`))
})
after(() => rmSync(dir, { recursive: true, force: true }))

function fsPath(name: Buffer | string): Buffer {
  return Buffer.concat([dir, Buffer.from('/'), Buffer.from(name)])
}

function entry(name: Buffer | string, opts: { walked?: boolean; type?: SourceEntry['type'] } = {}): SourceEntry {
  const path = Buffer.from(name)
  return {
    kind: 'entry',
    path,
    type: opts.type ?? 'file',
    mode: 0o644,
    uid: 0,
    gid: 0,
    size: 0,
    mtimeSec: 0,
    mtimeNsec: 0,
    ctimeSec: 0,
    ctimeNsec: 0,
    ino: 0,
    dev: 0,
    nlink: 1,
    ...(opts.walked === false ? {} : { fsPath: fsPath(name) }),
  }
}

/** Runs items through the stage; returns what came out and the warnings. */
async function run(
  items: Iterable<BackupItem> | AsyncIterable<BackupItem>,
  filter?: (name: Buffer) => boolean,
): Promise<{ out: BackupItem[]; warnings: SluiceError[] }> {
  const out: BackupItem[] = []
  const warnings: SluiceError[] = []
  await pipeline(
    Readable.from(items),
    createXattrReader({ onWarning: (w) => warnings.push(w), ...(filter ? { filter } : {}) }),
    new Writable({
      objectMode: true,
      write(item: BackupItem, _enc, done) {
        out.push(item)
        done()
      },
    }),
  )
  return { out, warnings }
}

function userAttrs(e: BackupItem): Array<[string, string]> | undefined {
  assert.equal(e.kind, 'entry')
  return (e as SourceEntry).xattrs?.map((a) => [a.name.toString('latin1'), a.value.toString('hex')])
}

test('sets sorted xattrs on walked entries, binary and empty values included', async () => {
  const name = Buffer.from([0x61, 0xff, 0xfe])
  writeFileSync(fsPath(name), 'x')
  lsetxattr(fsPath(name), Buffer.from('user.b'), Buffer.from([0, 255]))
  lsetxattr(fsPath(name), Buffer.from('user.a'), Buffer.alloc(0))
  mkdirSync(fsPath('sub'))
  lsetxattr(fsPath('sub'), Buffer.from('user.dir'), Buffer.from('d'))
  writeFileSync(fsPath('bare'), 'x')

  const { out, warnings } = await run([entry(name), entry('sub', { type: 'dir' }), entry('bare')])
  assert.deepEqual(warnings, [])
  assert.deepEqual(userAttrs(out[0]!), [
    ['user.a', ''],
    ['user.b', '00ff'],
  ])
  assert.deepEqual(userAttrs(out[1]!), [['user.dir', '64']])
  assert.equal('xattrs' in out[2]!, false, 'no xattrs property when there are none')
})

test('a file that vanished gives one ERR_READ warning and the stream goes on', async () => {
  writeFileSync(fsPath('gone'), 'x')
  unlinkSync(fsPath('gone'))
  writeFileSync(fsPath('after-gone'), 'x')
  lsetxattr(fsPath('after-gone'), Buffer.from('user.k'), Buffer.from('v'))

  const { out, warnings } = await run([entry('gone'), entry('after-gone')])
  assert.equal(warnings.length, 1)
  assert.equal(warnings[0]!.code, 'ERR_READ')
  assert.deepEqual(warnings[0]!.path, Buffer.from('gone'))
  assert.equal((warnings[0]!.cause as { code?: string }).code, 'ENOENT')
  assert.match(warnings[0]!.message, /gone/)
  assert.equal(out.length, 2)
  assert.equal((out[0] as SourceEntry).xattrs, undefined)
  assert.deepEqual(userAttrs(out[1]!), [['user.k', '76']])
})

test('items that are not walked entries pass through unchanged', async () => {
  const chunk: ChunkItem = { kind: 'chunk', id: Buffer.alloc(32, 1), data: Buffer.from('abc'), size: 3, meta: false }
  const record: RecordItem = { kind: 'record', entry: entry('r', { walked: false }), extents: [] }
  const tree: TreeItem = { kind: 'tree', root: Buffer.alloc(32, 2), depth: 0 }
  // A tar entry has no fsPath: its xattrs (if any) came from the archive and stay as they are.
  const tarEntry = entry('from-tar', { walked: false })
  tarEntry.xattrs = [{ name: Buffer.from('user.tar'), value: Buffer.from('1') }]
  const snapshot = structuredClone([chunk, record, tree, tarEntry])

  const { out, warnings } = await run([chunk, record, tree, tarEntry])
  assert.deepEqual(warnings, [])
  assert.equal(out.length, 4)
  out.forEach((item, i) => assert.equal(item, [chunk, record, tree, tarEntry][i]))
  assert.deepEqual(
    out.map((o) => structuredClone(o)),
    snapshot,
  )
})

test('the default filter keeps user, trusted and security names only', async () => {
  assert.equal(defaultXattrFilter(Buffer.from('user.x')), true)
  assert.equal(defaultXattrFilter(Buffer.from('trusted.x')), true)
  assert.equal(defaultXattrFilter(Buffer.from('security.capability')), true)
  assert.equal(defaultXattrFilter(Buffer.from('system.posix_acl_access')), false)
  assert.equal(defaultXattrFilter(Buffer.from('user.')), false)
  assert.equal(defaultXattrFilter(Buffer.from('users.x')), false)
})

test('a custom filter decides which names are kept', async () => {
  writeFileSync(fsPath('filtered'), 'x')
  lsetxattr(fsPath('filtered'), Buffer.from('user.keep'), Buffer.from('1'))
  lsetxattr(fsPath('filtered'), Buffer.from('user.drop'), Buffer.from('2'))
  const { out } = await run([entry('filtered')], (n) => n.toString() === 'user.keep')
  assert.deepEqual(userAttrs(out[0]!), [['user.keep', '31']])

  const { out: none } = await run([entry('filtered')], () => false)
  assert.equal((none[0] as SourceEntry).xattrs, undefined)
})

test('reads only the entries in flight, never the whole list up front', async () => {
  writeFileSync(fsPath('many'), 'x')
  let produced = 0
  function* source(): Generator<SourceEntry> {
    for (;;) {
      produced++
      yield entry('many')
    }
  }
  const stage = createXattrReader({ onWarning: () => assert.fail('no warning expected') })
  Readable.from(source()).pipe(stage)
  const seen: SourceEntry[] = []
  for await (const item of stage) {
    seen.push(item as SourceEntry)
    if (seen.length === 5) break
    await new Promise((r) => setImmediate(r))
  }
  assert.equal(seen.length, 5)
  // Readable.from's and the stage's buffers only: a few dozen at most, whatever the source.
  assert.ok(produced < 5 + 40, `source was drained ahead: ${produced} entries produced`)
})

test('an onWarning that throws fails the stream with that error', async () => {
  const boom = new Error('stop here')
  await assert.rejects(
    pipeline(
      Readable.from([entry('nope-missing')]),
      createXattrReader({
        onWarning: () => {
          throw boom
        },
      }),
      new Writable({ objectMode: true, write: (_i, _e, done) => done() }),
    ),
    boom,
  )
})
