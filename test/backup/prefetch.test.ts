import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { Readable } from 'node:stream'
import { createWalk } from '../../transforms/backup/sources/walk.js'
import { createPrefetch } from '../../transforms/backup/prefetch.js'
import type { SourceEntry } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { PREFETCH_BATCH_FILES, PREFETCH_BATCHES, READ_BLOCK } from '../../lib/limits.js'
import { lstatNumbers, readFiles, readFilesStat, READ_FILES_STAT_FIELDS } from '../../lib/native.js'
import { seededBytes } from '../helpers/tree.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('prefetch-task')}/t`

before(() => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(BASE, { recursive: true })
})

async function walked(root: string): Promise<SourceEntry[]> {
  const out: SourceEntry[] = []
  for await (const e of createWalk([root], { onWarning: () => {} })) out.push(e as SourceEntry)
  return out
}

async function walkedStream(root: string): Promise<Readable> {
  return Readable.from(await walked(root), { objectMode: true })
}

async function prefetched(entries: SourceEntry[], opts = {}): Promise<SourceEntry[]> {
  const out: SourceEntry[] = []
  for await (const e of Readable.from(entries, { objectMode: true }).pipe(createPrefetch(opts))) out.push(e as SourceEntry)
  return out
}

async function contentOf(e: SourceEntry): Promise<Buffer> {
  const parts: Uint8Array[] = []
  for await (const p of e.content!()) parts.push(Buffer.from(p)) // a piece is ours only until the next
  return Buffer.concat(parts)
}

test('every file comes out in walk order with its exact bytes: many batches, directories, large and empty files, raw-byte names', async () => {
  const root = `${BASE}/mixed`
  const expected = new Map<string, Buffer>()
  // More files than several batches hold, in directories that cut batches short.
  for (let d = 0; d < 5; d++) {
    fs.mkdirSync(`${root}/d${d}`, { recursive: true })
    for (let i = 0; i < PREFETCH_BATCH_FILES + 7; i++) {
      const data = seededBytes(`${d}-${i}`, (i * 37) % 5000)
      fs.writeFileSync(`${root}/d${d}/f${String(i).padStart(3, '0')}`, data)
      expected.set(`${root}/d${d}/f${String(i).padStart(3, '0')}`, data)
    }
  }
  const big = seededBytes('big', READ_BLOCK + 12345)
  fs.writeFileSync(`${root}/d2/zz-big`, big)
  expected.set(`${root}/d2/zz-big`, big)
  const odd = Buffer.concat([Buffer.from(`${root}/d3/`), Buffer.from([0xff, 0xfe, 0x41])])
  fs.writeFileSync(odd, 'not utf-8 name')
  expected.set(odd.toString('latin1'), Buffer.from('not utf-8 name'))

  const input = await walked(root)
  const output = await prefetched(input)
  assert.deepEqual(output.map(e => e.path.toString('latin1')), input.map(e => e.path.toString('latin1')), 'order kept')
  let files = 0
  for (const e of output) {
    if (e.type !== 'file') continue
    files++
    const key = e.fsPath!.toString('latin1')
    const want = expected.get(key)
    assert.ok(want, `unexpected file ${key}`)
    assert.ok((await contentOf(e)).equals(want), `content of ${key}`)
  }
  assert.equal(files, expected.size)
})

test('consumed as they come (as the chunker does), files are read into a few reused arenas and keep their bytes', async () => {
  const root = `${BASE}/reuse`
  const expected: Buffer[] = []
  fs.mkdirSync(root, { recursive: true })
  // Enough bytes for many batches: each batch is cut at PREFETCH_BATCH_BYTES.
  for (let i = 0; i < 600; i++) {
    const data = seededBytes(`r${i}`, 9000 + ((i * 7919) % 30000))
    fs.writeFileSync(`${root}/f${String(i).padStart(4, '0')}`, data)
    expected.push(data)
  }
  const arenas = new Set<ArrayBufferLike>()
  let i = 0
  for await (const e of (await walkedStream(root)).pipe(createPrefetch())) {
    const entry = e as SourceEntry
    if (entry.type !== 'file') continue
    const parts: Buffer[] = []
    for await (const p of entry.content!()) {
      arenas.add(p.buffer)
      parts.push(Buffer.from(p))
    }
    assert.ok(Buffer.concat(parts).equals(expected[i]!), `content of f${i}`)
    i++
  }
  assert.equal(i, 600)
  assert.ok(arenas.size <= PREFETCH_BATCHES + 2, `${arenas.size} arenas for ${600} files of ~24 KB`)
})

test('a file that vanished after the walk fails with ERR_READ naming it; a file that shrank gives what is left; the others are intact', async () => {
  const root = `${BASE}/trouble`
  fs.mkdirSync(root, { recursive: true })
  for (const n of ['a', 'b', 'c', 'd']) fs.writeFileSync(`${root}/${n}`, seededBytes(n, 3000))
  const input = await walked(root)
  fs.rmSync(`${root}/b`)
  fs.truncateSync(`${root}/c`, 1000)
  const output = await prefetched(input)
  const byName = new Map(output.filter(e => e.type === 'file').map(e => [e.fsPath!.toString(), e]))
  assert.ok((await contentOf(byName.get(`${root}/a`)!)).equals(seededBytes('a', 3000)))
  await assert.rejects(contentOf(byName.get(`${root}/b`)!), (err: unknown) => {
    assert.ok(err instanceof SluiceError)
    assert.equal(err.code, 'ERR_READ')
    assert.deepEqual(err.path, Buffer.from(`${root}/b`))
    assert.match(err.message, /cannot open .*trouble\/b: ENOENT/)
    return true
  })
  assert.ok((await contentOf(byName.get(`${root}/c`)!)).equals(seededBytes('c', 3000).subarray(0, 1000)))
  assert.ok((await contentOf(byName.get(`${root}/d`)!)).equals(seededBytes('d', 3000)))
})

test('a FIFO that replaced a file after the walk fails that file only, without hanging', async () => {
  const root = `${BASE}/fifo`
  fs.mkdirSync(root, { recursive: true })
  fs.writeFileSync(`${root}/p`, 'was a file')
  fs.writeFileSync(`${root}/q`, 'stays')
  const input = await walked(root)
  fs.rmSync(`${root}/p`)
  const { status } = await import('node:child_process').then(cp => cp.spawnSync('mkfifo', [`${root}/p`]))
  assert.equal(status, 0)
  const output = await prefetched(input)
  const p = output.find(e => e.fsPath?.toString() === `${root}/p`)!
  // O_NONBLOCK open of a FIFO with no writer succeeds; the read finds nothing (or EAGAIN).
  const got = await contentOf(p).catch((err: SluiceError) => err)
  assert.ok(got instanceof SluiceError ? got.code === 'ERR_READ' : got.length === 0)
  const q = output.find(e => e.fsPath?.toString() === `${root}/q`)!
  assert.equal((await contentOf(q)).toString(), 'stays')
})

test('a slow read at the head holds back the source: entries waiting behind it stay bounded', async () => {
  const root = `${BASE}/slow`
  fs.mkdirSync(root, { recursive: true })
  fs.writeFileSync(`${root}/first`, 'first file')
  const entries = await walked(root)
  const dirEntry = entries.find(e => e.type === 'dir')
  const fileEntry = entries.find(e => e.type === 'file')
  // The batched read of the first file takes its time...
  let release!: () => void
  const gate = new Promise<void>(r => (release = r))
  const slowReadFiles: typeof readFiles = async (...a) => {
    await gate
    return readFiles(...a)
  }
  // ...while the source could go on with 100,000 entries that need no reading.
  let pulled = 0
  async function* source(): AsyncGenerator<SourceEntry> {
    yield fileEntry!
    for (let i = 0; i < 100_000; i++) {
      pulled++
      yield { ...dirEntry!, path: Buffer.from(`d${i}`) }
    }
  }
  try {
    const out = Readable.from(source(), { objectMode: true }).pipe(createPrefetch({ readFiles: slowReadFiles }))
    const it = out[Symbol.asyncIterator]()
    const first = it.next()
    await new Promise(r => setTimeout(r, 200))
    const bound = PREFETCH_BATCH_FILES * (PREFETCH_BATCHES + 1)
    // Stream buffers on both sides of the stage add a few entries to the stage's own bound.
    assert.ok(pulled <= bound + 64, `pulled ${pulled} entries while the first read was pending (bound ${bound})`)
    release()
    const head = (await first).value as SourceEntry
    assert.equal((await contentOf(head)).toString(), 'first file')
    await it.return?.()
  } finally {
    release()
  }
})

test('a file that grew or was rewritten after the walk: ERR_CHANGED naming it, and its lstat size of content', async () => {
  const root = `${BASE}/changed`
  fs.mkdirSync(root, { recursive: true })
  for (const n of ['grows', 'rewritten', 'same']) fs.writeFileSync(`${root}/${n}`, seededBytes(n, 3000))
  fs.writeFileSync(`${root}/empty`, '')
  const input = await walked(root)
  fs.appendFileSync(`${root}/grows`, 'more')
  // Same size, other bytes and a later mtime, as an editor saving in place.
  fs.writeFileSync(`${root}/rewritten`, seededBytes('other', 3000))
  fs.utimesSync(`${root}/rewritten`, new Date(), new Date(Date.now() + 10_000))
  const warnings: SluiceError[] = []
  const output = await prefetched(input, { onWarning: (w: SluiceError) => warnings.push(w) })
  const byName = new Map(output.filter(e => e.type === 'file').map(e => [e.fsPath!.toString(), e]))
  assert.ok((await contentOf(byName.get(`${root}/grows`)!)).equals(seededBytes('grows', 3000)))
  assert.equal((await contentOf(byName.get(`${root}/rewritten`)!)).length, 3000)
  assert.ok((await contentOf(byName.get(`${root}/same`)!)).equals(seededBytes('same', 3000)))
  assert.equal((await contentOf(byName.get(`${root}/empty`)!)).length, 0)
  assert.equal(byName.get(`${root}/empty`)!.size, 0)
  const named = warnings.map(w => [w.code, w.path!.toString()]).sort()
  assert.deepEqual(named, [['ERR_CHANGED', `${root}/grows`], ['ERR_CHANGED', `${root}/rewritten`]])
  for (const w of warnings) assert.match(w.message, /^file changed as we read it: /)
})

test('a file whose lstat size is 0 but that has content (procfs) is read to its end, size -1 for the chunker', { skip: !fs.existsSync('/proc/version') && 'no /proc' }, async () => {
  const input: SourceEntry[] = []
  for await (const e of createWalk(['/proc/version'], { onWarning: assert.fail })) input.push(e as SourceEntry)
  const entry = input.find(e => e.fsPath?.toString() === '/proc/version')!
  assert.equal(entry.size, 0)
  const warnings: SluiceError[] = []
  const [out] = (await prefetched([entry], { onWarning: (w: SluiceError) => warnings.push(w) })) as SourceEntry[]
  assert.equal(out!.size, -1)
  assert.equal((await contentOf(out!)).toString(), fs.readFileSync('/proc/version', 'utf8'))
  assert.deepEqual(warnings, [])
})

test('readFiles lstats each file it read, on its thread: the numbers lstat gives; a failed read or lstat is named', async () => {
  const root = `${BASE}/poolstat`
  fs.mkdirSync(root, { recursive: true })
  fs.writeFileSync(`${root}/a`, seededBytes('a', 5000))
  fs.writeFileSync(`${root}/empty`, '')
  fs.utimesSync(`${root}/empty`, new Date(1_000_000), new Date(2_000_000))
  const paths = [`${root}/a`, `${root}/missing`, `${root}/empty`].map(p => Buffer.from(p))
  const sizes = [5001, 10, 1]
  const arena = Buffer.alloc(5012)
  const results = new Int32Array(2 * paths.length)
  const stats = new Float64Array(READ_FILES_STAT_FIELDS * paths.length).fill(-7)
  await readFiles(paths, sizes, arena, results, stats)
  assert.deepEqual([...results], [5000, 0, -2, 0, 0, 0])
  assert.deepEqual(readFilesStat(stats, 0, paths[0]!), lstatNumbers(paths[0]!))
  assert.deepEqual(readFilesStat(stats, 2, paths[2]!), lstatNumbers(paths[2]!))
  assert.equal(readFilesStat(stats, 2, paths[2]!).mtimeSec, 2000)
  // Not opened: nothing written there.
  assert.equal(stats[READ_FILES_STAT_FIELDS], -7)
  // An lstat that failed after the read is its errno, thrown fs-shaped naming the path.
  stats[0] = 2
  assert.throws(() => readFilesStat(stats, 0, paths[0]!), (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && e.syscall === 'lstat' && e.path === `${root}/a`)
  // Too short for the paths: a named error, nothing read.
  assert.throws(() => readFiles(paths, sizes, arena, results, new Float64Array(READ_FILES_STAT_FIELDS * 2)), (e: NodeJS.ErrnoException) => e instanceof RangeError && e.code === 'ERR_OUT_OF_RANGE' && /readFiles: stats is too short/.test(e.message))
  assert.throws(() => readFiles(paths, sizes, arena, results, new Int32Array(64) as unknown as Float64Array), (e: NodeJS.ErrnoException) => e instanceof TypeError && e.code === 'ERR_INVALID_ARG_TYPE' && /readFiles: stats/.test(e.message))
})
