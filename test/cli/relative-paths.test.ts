/**
 * A relative backup path behaves as restic 0.14's (issue 17 item 6): the snapshot lists the
 * absolute path, its tree holds the path as given (cleaned, leading '..' dropped), so a restore
 * of `sluice backup data` writes TARGET/data. The expected listings were taken from restic 0.14
 * run on the same layout. Spawns dist/cli/main.js (run `npm run build` first).
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { backupSummary, cliFor, type CliResult } from '../helpers/cli.js'
import { compareTrees } from '../helpers/tree.js'
import { scratch } from '../helpers/scratch.js'
import { createLocalStorage, initRepository } from '../../index.js'

const BASE = scratch('cli-relative')
const home = `${BASE}/home`
const PW = 'pw'
// BASE/w is the working directory; BASE/other and BASE/data lie beside it.
const W = `${BASE}/w`

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r
}

async function fresh(name: string): Promise<(args: string[]) => Promise<CliResult>> {
  const repo = await initRepository(createLocalStorage(`${BASE}/${name}`), PW, { kdf: { opslimit: 1, memlimit: 8192 } })
  await repo.close()
  const run = cliFor(home, `${BASE}/${name}`, PW)
  return args => run(args, { cwd: W })
}
const listing = (r: CliResult) => r.stdout.split('\n').filter(l => l !== '')

before(() => {
  fs.mkdirSync(home, { recursive: true })
  fs.mkdirSync(`${W}/data/sub`, { recursive: true })
  fs.writeFileSync(`${W}/data/sub/f`, 'hi\n')
  fs.writeFileSync(`${W}/top.txt`, 'top\n')
  fs.mkdirSync(`${BASE}/other`, { recursive: true })
  fs.writeFileSync(`${BASE}/other/g`, 'o\n')
  fs.mkdirSync(`${BASE}/data`, { recursive: true })
})

test('backup data: the snapshot lists the absolute path, stores /data, restores to TARGET/data', async () => {
  const run = await fresh('repo-1')
  const first = backupSummary<{ snapshot_id: string; files_new: number }>(ok(await run(['backup', '--json', 'data']), 'backup').stdout)
  assert.equal(first.files_new, 1)
  const snaps = JSON.parse(ok(await run(['snapshots', '--json']), 'snapshots').stdout) as { paths: string[] }[]
  assert.deepEqual(snaps.map(s => s.paths), [[`${W}/data`]])
  assert.deepEqual(listing(ok(await run(['ls', 'latest']), 'ls')), ['/data', '/data/sub', '/data/sub/f'])
  ok(await run(['restore', 'latest', '--target', `${BASE}/restored`, '-q']), 'restore')
  assert.deepEqual(fs.readdirSync(`${BASE}/restored`), ['data'])
  assert.deepEqual(compareTrees(`${W}/data`, `${BASE}/restored/data`), [])
  // The same paths from the same directory: the parent is found and nothing is read again.
  const again = backupSummary<{ files_unmodified: number; parent: string | null }>(ok(await run(['backup', '--json', 'data']), 'backup again').stdout)
  assert.equal(again.parent, first.snapshot_id)
  assert.equal(again.files_unmodified, 1)
  // `cat` and `SNAP:PATH` use the stored path.
  assert.equal(ok(await run(['cat', 'latest', '/data/sub/f']), 'cat').stdout, 'hi\n')
})

test('relative paths as restic stores them: .., ., nested, and mixed with absolute ones', async () => {
  const run = await fresh('repo-2')
  const cases: [string[], string[]][] = [
    [['data/sub'], ['/data', '/data/sub', '/data/sub/f']],
    [['../w/data/sub/f'], ['/w', '/w/data', '/w/data/sub', '/w/data/sub/f']],
    [['../other', './data'], ['/data', '/data/sub', '/data/sub/f', '/other', '/other/g']],
    [['data/../../other'], ['/other', '/other/g']],
    [['.'], ['/data', '/data/sub', '/data/sub/f', '/top.txt']],
    // A backup path inside another is dropped, relative or not.
    [['data', `${W}/data/sub/f`], ['/data', '/data/sub', '/data/sub/f']],
  ]
  for (const [paths, expected] of cases) {
    ok(await run(['backup', '-q', ...paths]), `backup ${paths.join(' ')}`)
    assert.deepEqual(listing(ok(await run(['ls', 'latest']), 'ls')), expected, paths.join(' '))
  }
  // Absolute paths keep their ancestors, beside the relative one's.
  ok(await run(['backup', '-q', `${BASE}/other`, 'data']), 'mixed')
  const ancestors = BASE.split('/').filter(s => s !== '').map((_, i, all) => '/' + all.slice(0, i + 1).join('/'))
  assert.deepEqual(listing(ok(await run(['ls', 'latest']), 'ls')), ['/data', '/data/sub', '/data/sub/f', ...ancestors, `${BASE}/other`, `${BASE}/other/g`])
})

test('two relative paths that would overlap in the snapshot are refused in one coded line', async () => {
  const run = await fresh('repo-3')
  for (const paths of [['data', '../data'], ['.', `${BASE}/other`]]) {
    const r = await run(['backup', ...paths])
    assert.equal(r.code, 1, r.stderr)
    assert.match(r.stderr, /^sluice: ERR_ARGS: backup paths \S+ and \S+ would overlap in the snapshot \(as \/\S* and \/\S+\): give them as absolute paths\n$/)
  }
  // Nothing was written: no snapshot.
  const snaps = `${BASE}/repo-3/snapshots`
  assert.deepEqual(fs.existsSync(snaps) ? fs.readdirSync(snaps) : [], [])
})
