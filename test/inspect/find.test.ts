/**
 * find (issue 18 item 3) on a real repository: restic's pattern rules (a name at any depth, a
 * path suffix with '/', the whole path with a leading '/', '/' at the end for directories),
 * --ignore-case, --oldest/--newest on mtimes set here, the snapshot choice; then the CLI's
 * restic-shaped text and JSON, and a bad time as one coded line.
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { cliFor } from '../helpers/cli.js'
import { backup, createLocalStorage, find, initRepository, parseFindTime, SluiceError, type FindOptions, type Repository } from '../../index.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('e2e-task')}/find`
const SRC = `${BASE}/src`
const REPO = `${BASE}/repo`
const PW = 'pw'
let repo: Repository
let first = ''
let second = ''

async function matches(opts: Omit<FindOptions, 'repo'>): Promise<string[]> {
  const found: string[] = []
  for await (const m of find({ repo, ...opts })) found.push(`${m.snapshotId === first ? 1 : 2}:/${m.entry.path.toString()}`)
  return found.sort()
}

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(`${SRC}/a/b`, { recursive: true })
  fs.mkdirSync(`${SRC}/docs`, { recursive: true })
  fs.mkdirSync(`${SRC}/b`, { recursive: true })
  fs.writeFileSync(`${SRC}/a/notes.txt`, 'one')
  fs.writeFileSync(`${SRC}/a/b/NOTES.txt`, 'two')
  fs.writeFileSync(`${SRC}/docs/readme.md`, 'three')
  fs.writeFileSync(`${SRC}/b/docs`, 'a file named docs')
  fs.utimesSync(`${SRC}/a/notes.txt`, new Date(2001, 0, 1), new Date(2001, 0, 1))
  fs.utimesSync(`${SRC}/a/b/NOTES.txt`, new Date(2020, 5, 15, 12), new Date(2020, 5, 15, 12))
  repo = await initRepository(createLocalStorage(REPO), PW, { kdf: { opslimit: 1, memlimit: 8192 } })
  first = (await backup({ repo, paths: [SRC] })).snapshotId
  fs.writeFileSync(`${SRC}/docs/later.md`, 'four')
  second = (await backup({ repo, paths: [SRC] })).snapshotId
})

test('a pattern without / matches names at any depth; with / a path suffix; leading / the whole path', async () => {
  assert.deepEqual(await matches({ patterns: ['notes.txt'] }), [`1:${SRC}/a/notes.txt`, `2:${SRC}/a/notes.txt`])
  assert.deepEqual(await matches({ patterns: ['*.md'], snapshots: [second] }), [`2:${SRC}/docs/later.md`, `2:${SRC}/docs/readme.md`])
  // '*' does not cross '/': a/* is a/notes.txt and a/b, not a/b/NOTES.txt.
  assert.deepEqual(await matches({ patterns: ['a/*'], snapshots: [first] }), [`1:${SRC}/a/b`, `1:${SRC}/a/notes.txt`])
  assert.deepEqual(await matches({ patterns: ['a/**/*.txt'], snapshots: [first] }), [`1:${SRC}/a/b/NOTES.txt`, `1:${SRC}/a/notes.txt`])
  assert.deepEqual(await matches({ patterns: [`${SRC}/docs/*`], snapshots: [first] }), [`1:${SRC}/docs/readme.md`])
  assert.deepEqual(await matches({ patterns: ['/docs/*'] }), [], 'anchored at the root, not at any depth')
  // A trailing '/' for directories only; without it the file named docs matches too.
  assert.deepEqual(await matches({ patterns: ['docs/'], snapshots: [first] }), [`1:${SRC}/docs`])
  assert.deepEqual(await matches({ patterns: ['docs'], snapshots: [first] }), [`1:${SRC}/b/docs`, `1:${SRC}/docs`])
  // Several patterns: any of them.
  assert.deepEqual(await matches({ patterns: ['readme.md', 'later.md'], snapshots: ['latest'] }), [`2:${SRC}/docs/later.md`, `2:${SRC}/docs/readme.md`])
})

test('--ignore-case, --oldest and --newest', async () => {
  assert.deepEqual(await matches({ patterns: ['notes.txt'], snapshots: [first], ignoreCase: true }), [`1:${SRC}/a/b/NOTES.txt`, `1:${SRC}/a/notes.txt`])
  const all = { patterns: ['*.txt'], snapshots: [first], ignoreCase: true }
  assert.deepEqual(await matches({ ...all, oldest: parseFindTime('2010-01-01', 'oldest') }), [`1:${SRC}/a/b/NOTES.txt`])
  assert.deepEqual(await matches({ ...all, newest: parseFindTime('2020-06-15 11:59', 'newest') }), [`1:${SRC}/a/notes.txt`])
  assert.deepEqual(await matches({ ...all, oldest: parseFindTime('2020-06-15 12:00:00', 'oldest'), newest: parseFindTime('2020-06-15 12:00:00', 'newest') }), [`1:${SRC}/a/b/NOTES.txt`])
  for (const bad of ['yesterday', '2020-13-01', '2020-02-30', '2020-01-01 25:00']) {
    assert.throws(() => parseFindTime(bad, 'newest'), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_ARGS')
  }
})

test('find on the command line: restic\'s text and JSON shapes, one coded line for a bad time', { timeout: 60_000 }, async () => {
  const run = cliFor(`${BASE}`, REPO, PW)
  const text = await run(['find', 'readme.md'])
  assert.equal(text.code, 0, text.stderr)
  const groups = text.stdout.trim().split('\n\n')
  assert.equal(groups.length, 2)
  for (const g of groups) {
    const [head, ...lines] = g.split('\n')
    assert.match(head!, /^Found matching entries in snapshot [0-9a-f]{8} from \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/)
    assert.deepEqual(lines, [`${SRC}/docs/readme.md`])
  }
  const json = await run(['find', '--json', '*.md'])
  assert.equal(json.code, 0, json.stderr)
  const parsed = JSON.parse(json.stdout) as { matches: { path: string; type: string }[]; hits: number; snapshot: string }[]
  assert.deepEqual(parsed.map(s => s.snapshot).sort(), [first, second].sort())
  const latest = parsed.find(s => s.snapshot === second)!
  assert.equal(latest.hits, 2)
  assert.deepEqual(latest.matches.map(m => m.path).sort(), [`${SRC}/docs/later.md`, `${SRC}/docs/readme.md`])
  const none = await run(['find', '--json', 'no-such-name'])
  assert.equal(none.stdout, '[]\n')
  const bad = await run(['find', 'x', '--newest', 'soon'])
  assert.equal(bad.code, 1)
  assert.match(bad.stderr, /^sluice: ERR_ARGS: --newest "soon": .*\n$/)
})
