import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { compileFilter, parseSize, type FilterRules } from '../../lib/filter-rules.js'
import { createFilter } from '../../transforms/backup/filter.js'
import { createWalk } from '../../transforms/backup/sources/walk.js'
import type { BackupItem, EntryMeta, EntryType, SourceEntry } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { lstatNumbers } from '../../lib/native.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('walk-task')}/f`

function entry(path: string | Buffer, type: EntryType = 'file', size = 0): SourceEntry {
  return {
    kind: 'entry',
    path: Buffer.isBuffer(path) ? path : Buffer.from(path),
    type,
    mode: 0o644,
    uid: 0,
    gid: 0,
    size,
    mtimeSec: 0,
    mtimeNsec: 0,
    ctimeSec: 0,
    ctimeNsec: 0,
    ino: 0,
    dev: 0,
    nlink: 1,
  }
}

/** Paths the rules keep, from a list where a trailing '/' marks a directory. */
function kept(rules: FilterRules, paths: string[]): string[] {
  return paths.filter((p) => !rules.excludes(entry(p.replace(/\/$/, ''), p.endsWith('/') ? 'dir' : 'file')))
}

before(() => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(BASE, { recursive: true })
})

test('a pattern without a leading slash matches a name at any depth, and all below it', () => {
  const rules = compileFilter({ exclude: ['*.o', 'node_modules', '.git'] })
  assert.deepEqual(
    kept(rules, ['a.o', 'src/x/a.o', 'a.oo', 'src/a.c', 'node_modules/', 'app/node_modules/', 'app/node_modules/x/y.js', 'node_modules2/', '.git/', 'r/.git/HEAD']),
    ['a.oo', 'src/a.c', 'node_modules2/'],
  )
})

test('a pattern with a slash inside matches that sub-path at any depth', () => {
  const rules = compileFilter({ exclude: ['build/*.tmp'] })
  assert.deepEqual(kept(rules, ['build/a.tmp', 'p/build/a.tmp', 'build/sub/a.tmp', 'a.tmp']), ['build/sub/a.tmp', 'a.tmp'])
})

test('a leading slash anchors the pattern at the snapshot root', () => {
  const rules = compileFilter({ exclude: ['/home/u/cache', '/tmp/*.log'] })
  assert.deepEqual(
    kept(rules, ['home/u/cache/', 'home/u/cache/x', 'home/v/home/u/cache/', 'tmp/a.log', 'tmp/sub/a.log', 'home/u/cache2/']),
    ['home/v/home/u/cache/', 'tmp/sub/a.log', 'home/u/cache2/'],
  )
})

test('globs match dot files, and ! or # are plain characters', () => {
  const rules = compileFilter({ exclude: ['*', '!keep', '#x'] })
  assert.deepEqual(kept(compileFilter({ exclude: ['*rc'] }), ['.bashrc', 'a/.vimrc', 'a/b']), ['a/b'])
  assert.equal(rules.excludes(entry('anything')), true)
  const bang = compileFilter({ exclude: ['!keep', '#x'] })
  assert.deepEqual(kept(bang, ['keep', '!keep', '#x', 'x']), ['keep', 'x'])
})

test('a pattern ending in a slash matches directories only', () => {
  const rules = compileFilter({ exclude: ['cache/'] })
  assert.deepEqual(kept(rules, ['a/cache/', 'a/cache/f', 'b/cache']), ['b/cache'])
})

test('names that are not UTF-8 are matched through their decoded form', () => {
  const rules = compileFilter({ exclude: ['f?'] })
  assert.equal(rules.excludes(entry(Buffer.from([0x64, 0x2f, 0x66, 0xff]))), true)
  assert.equal(rules.excludes(entry(Buffer.from([0x64, 0x2f, 0x67, 0xff]))), false)
})

test('include keeps matches, what lies below them, and the directories that lead to them', () => {
  const rules = compileFilter({ include: ['/r/docs/*.txt', '/r/photos'] })
  assert.deepEqual(
    kept(rules, ['r/', 'r/docs/', 'r/docs/a.txt', 'r/docs/a.md', 'r/docs/sub/', 'r/other/', 'r/other/a.txt', 'r/photos/', 'r/photos/2020/x.jpg', 'q/']),
    ['r/', 'r/docs/', 'r/docs/a.txt', 'r/photos/', 'r/photos/2020/x.jpg'],
  )
  assert.equal(rules.canDescend(entry('r/other', 'dir')), false)
  assert.equal(rules.canDescend(entry('r/docs', 'dir')), true)
})

test('an unanchored include keeps every directory (any could hold a match) and only matching files', () => {
  const rules = compileFilter({ include: ['*.txt'] })
  assert.deepEqual(kept(rules, ['a/', 'a/b.txt', 'a/b.md', 'c.txt']), ['a/', 'a/b.txt', 'c.txt'])
})

test('exclude wins over include', () => {
  const rules = compileFilter({ include: ['/r'], exclude: ['*.bak'] })
  assert.deepEqual(kept(rules, ['r/', 'r/a', 'r/a.bak', 's']), ['r/', 'r/a'])
})

test('exclude files: one pattern a line, comments and blank lines ignored', () => {
  const file = `${BASE}/excludes.txt`
  fs.writeFileSync(file, '# caches\n\n  *.tmp  \r\n/var/cache\n# /home\n')
  const rules = compileFilter({ excludeFile: [file], exclude: ['*.o'] })
  assert.deepEqual(kept(rules, ['a.tmp', 'var/cache/', 'var/cache/x', 'home/', 'x.o', 'x.c']), ['home/', 'x.c'])
  assert.throws(() => compileFilter({ excludeFile: [`${BASE}/missing.txt`] }), { code: 'ERR_ARGS' })
})

test('excludeLargerThan drops regular files above the size only', () => {
  const rules = compileFilter({ excludeLargerThan: 1024 })
  assert.equal(rules.excludes(entry('big', 'file', 1025)), true)
  assert.equal(rules.excludes(entry('edge', 'file', 1024)), false)
  assert.equal(rules.excludes(entry('dir', 'dir', 1 << 20)), false)
  assert.equal(rules.excludes(entry('link', 'symlink', 4096)), false)
})

test('an anchored pattern for the whole root is refused', () => {
  assert.throws(() => compileFilter({ exclude: ['/'] }), { code: 'ERR_ARGS' })
})

test('parseSize reads binary units and refuses garbage', () => {
  assert.equal(parseSize('100'), 100)
  assert.equal(parseSize('100b'), 100)
  assert.equal(parseSize('512k'), 512 * 1024)
  assert.equal(parseSize('10M'), 10 * 1024 * 1024)
  assert.equal(parseSize('10MiB'), 10 * 1024 * 1024)
  assert.equal(parseSize('10mb'), 10 * 1024 * 1024)
  assert.equal(parseSize('1.5G'), 1.5 * 1024 ** 3)
  assert.equal(parseSize('2T'), 2 * 1024 ** 4)
  for (const bad of ['', 'M', '10X', '-1', '1e3', '10 M M', '10ib', 'NaN', '1.2.3']) {
    assert.throws(() => parseSize(bad), (err: SluiceError) => err.code === 'ERR_ARGS', `accepted '${bad}'`)
  }
})

async function runStage(rules: FilterRules, items: BackupItem[]): Promise<BackupItem[]> {
  const out: BackupItem[] = []
  await pipeline(Readable.from(items), createFilter(rules), async function* (src) {
    for await (const x of src) out.push(x as BackupItem)
  })
  return out
}

test('the stage drops what lies below an excluded directory even when the rules alone would keep it', async () => {
  // Rules that judge each path alone, as a custom filter might: only the directory matches.
  const rules: FilterRules = {
    excludes: (e: EntryMeta) => e.path.toString() === 'a/skip',
    canDescend: () => true,
  }
  const chunk: BackupItem = { kind: 'chunk', id: Buffer.alloc(32), data: Buffer.alloc(1), size: 1, meta: false }
  const out = await runStage(rules, [
    entry('a', 'dir'),
    entry('a/skip', 'dir'),
    entry('a/skip/x'),
    chunk,
    entry('a/skip/y/z'),
    entry('a/skip-not'),
    entry('a/skipped'),
    entry('b'),
  ])
  assert.deepEqual(
    out.map((x) => (x.kind === 'entry' ? x.path.toString() : x.kind)),
    ['a', 'chunk', 'a/skip-not', 'a/skipped', 'b'],
  )
})

test('the stage with compiled rules filters a non-canonical order (tar) through the ancestor check', async () => {
  const rules = compileFilter({ exclude: ['tmp'] })
  const out = await runStage(rules, [entry('tmp', 'dir'), entry('x'), entry('tmp/late'), entry('y/tmp/z')])
  assert.deepEqual(out.map((x) => (x as SourceEntry).path.toString()), ['x'])
})

test('the stage passes errors of the rules to the pipeline', async () => {
  const rules: FilterRules = {
    excludes: () => {
      throw new SluiceError('ERR_ARGS', 'broken rule')
    },
    canDescend: () => true,
  }
  await assert.rejects(runStage(rules, [entry('a')]), { code: 'ERR_ARGS' })
})

test('with the walk, an excluded directory is not descended: nothing below it is lstat-ed', async () => {
  const root = `${BASE}/tree`
  fs.mkdirSync(`${root}/node_modules/pkg/lib`, { recursive: true })
  fs.mkdirSync(`${root}/src`, { recursive: true })
  for (let i = 0; i < 20; i++) fs.writeFileSync(`${root}/node_modules/pkg/lib/f${i}.js`, 'x')
  fs.writeFileSync(`${root}/src/main.ts`, 'x')
  fs.writeFileSync(`${root}/src/big.bin`, Buffer.alloc(5000))
  const rules = compileFilter({ exclude: ['node_modules'], excludeLargerThan: parseSize('4k') })
  // Every lstat of the walk goes through the one it is given.
  const seen: string[] = []
  const lstat = (p: Buffer) => {
    seen.push(p.toString())
    return lstatNumbers(p)
  }
  const out: string[] = []
  const walk = createWalk([root], { onWarning: (e) => assert.fail(e), descend: rules.canDescend, lstat })
  await pipeline(walk, createFilter(rules), async function* (src) {
    for await (const e of src) out.push((e as SourceEntry).path.toString())
  })
  const p = root.slice(1)
  assert.deepEqual(out.filter((x) => x.startsWith(p)), [p, `${p}/src`, `${p}/src/main.ts`])
  assert.ok(seen.includes(`${root}/node_modules`))
  assert.deepEqual(seen.filter((x) => x.startsWith(`${root}/node_modules/`)), [])
})

test('with the walk, exclude-if-present drops the marked directory', async () => {
  const root = `${BASE}/marked`
  fs.mkdirSync(`${root}/keep`, { recursive: true })
  fs.mkdirSync(`${root}/skip/inner`, { recursive: true })
  fs.writeFileSync(`${root}/skip/.nobackup`, '')
  const out: string[] = []
  for await (const e of createWalk([root], { onWarning: assert.fail, excludeIfPresent: ['.nobackup'] })) {
    out.push((e as SourceEntry).path.toString())
  }
  const p = root.slice(1)
  assert.deepEqual(out.filter((x) => x.startsWith(p)), [p, `${p}/keep`])
})
