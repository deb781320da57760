import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { after, before, test } from 'node:test'
import type { BackupItem, ChunkItem, RecordItem, SourceEntry, TreeItem } from '../../lib/entry.js'
import type { SluiceError } from '../../lib/errors.js'
import { XATTR_BATCH_FILES, XATTR_BATCHES, XATTR_SYNC_BELOW } from '../../lib/limits.js'
import { lsetxattr, READ_XATTRS_RESULTS, readXattrs } from '../../lib/native.js'
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
  read?: typeof readXattrs,
): Promise<{ out: BackupItem[]; warnings: SluiceError[] }> {
  const out: BackupItem[] = []
  const warnings: SluiceError[] = []
  await pipeline(
    Readable.from(items),
    createXattrReader({ onWarning: (w) => warnings.push(w), ...(filter ? { filter } : {}), ...(read ? { readXattrs: read } : {}) }),
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
  // The batches in flight and Readable.from's and the stage's buffers only, whatever the source.
  const bound = 5 + XATTR_BATCH_FILES * (XATTR_BATCHES + 1) + 40
  assert.ok(produced < bound, `source was drained ahead: ${produced} entries produced`)
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

test('many entries keep their order and each its own attributes, reused ones in between', async () => {
  const items: SourceEntry[] = []
  for (let i = 0; i < 2 * XATTR_BATCH_FILES + 7; i++) {
    const name = `order-${i}`
    writeFileSync(fsPath(name), 'x')
    lsetxattr(fsPath(name), Buffer.from('user.i'), Buffer.from(String(i)))
    const e = entry(name)
    // A reused entry keeps the parent's attributes and is not read.
    if (i % 10 === 3) e.reuse = []
    items.push(e)
  }
  const { out, warnings } = await run(items)
  assert.deepEqual(warnings, [])
  assert.equal(out.length, items.length)
  out.forEach((o, i) => {
    assert.equal(o, items[i])
    assert.deepEqual(userAttrs(o), i % 10 === 3 ? undefined : [['user.i', Buffer.from(String(i)).toString('hex')]])
  })
})

test('a path that does not fit in the batch arena is read alone, with the same result', async () => {
  writeFileSync(fsPath('big-one'), 'x')
  lsetxattr(fsPath('big-one'), Buffer.from('user.v'), Buffer.alloc(1000, 7))
  writeFileSync(fsPath('small-one'), 'x')
  lsetxattr(fsPath('small-one'), Buffer.from('user.s'), Buffer.from('s'))
  // The batch read with an arena too small for the first path's value.
  const tight: typeof readXattrs = (paths, arena, results) => readXattrs(paths, arena.subarray(0, 200), results)
  const seen: Int32Array[] = []
  const spy: typeof readXattrs = async (paths, arena, results) => {
    await tight(paths, arena, results)
    seen.push(results.slice())
  }
  // Enough entries for a batch (fewer are read on the main thread).
  const items = [entry('big-one'), ...Array.from({ length: XATTR_SYNC_BELOW }, () => entry('small-one'))]
  const { out, warnings } = await run(items, undefined, spy)
  assert.deepEqual(warnings, [])
  assert.equal(seen[0]![1], 2, 'the first path was out of room in the batch')
  assert.equal(seen.length, 2, 'the paths after it were read by a second call')
  assert.deepEqual(userAttrs(out[0]!), [['user.v', Buffer.alloc(1000, 7).toString('hex')]])
  for (const o of out.slice(1)) assert.deepEqual(userAttrs(o), [['user.s', '73']])
})

test('the batched read reports each path: count, failing step and bytes', async () => {
  writeFileSync(fsPath('two'), 'x')
  lsetxattr(fsPath('two'), Buffer.from('user.a'), Buffer.from('12'))
  lsetxattr(fsPath('two'), Buffer.from('user.b'), Buffer.from('345'))
  const paths = [fsPath('two'), fsPath('missing-path'), Buffer.from('a\0b')]
  const results = new Int32Array(READ_XATTRS_RESULTS * paths.length)
  await readXattrs(paths, Buffer.alloc(4096), results)
  assert.equal(results[0], 2)
  // Two names of 6 bytes and values of 2 and 3 bytes, each with two u32 lengths.
  assert.equal(results[2], 2 * 8 + 12 + 5)
  assert.equal(results[3], -2, 'ENOENT')
  assert.equal(results[4], 0, 'at llistxattr')
  assert.equal(results[6], -22, 'a path holding a NUL is refused (EINVAL), not shortened')
  assert.throws(() => readXattrs([fsPath('two')], Buffer.alloc(16), new Int32Array(1)), RangeError)
})

test('a batched read that fails as a whole (a bug) fails the stream', async () => {
  const bug = new Error('misuse')
  const items = Array.from({ length: XATTR_SYNC_BELOW }, () => entry('bare'))
  await assert.rejects(run(items, undefined, () => Promise.reject(bug)), bug)
})

test('a batch that outgrows its arena is read by further calls, every entry in full', async () => {
  const names: string[] = []
  for (let i = 0; i < 9; i++) {
    const name = `fill-${i}`
    writeFileSync(fsPath(name), 'x')
    lsetxattr(fsPath(name), Buffer.from('user.v'), Buffer.alloc(1000, i))
    names.push(name)
  }
  // Room for two entries per call.
  let calls = 0
  const tight: typeof readXattrs = (paths, arena, results) => {
    calls++
    return readXattrs(paths, arena.subarray(0, 2100), results)
  }
  const { out, warnings } = await run(names.map(n => entry(n)), undefined, tight)
  assert.deepEqual(warnings, [])
  assert.equal(calls, 5)
  out.forEach((o, i) => assert.deepEqual(userAttrs(o), [['user.v', Buffer.alloc(1000, i).toString('hex')]]))
})
