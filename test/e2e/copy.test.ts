/**
 * copy (issue 18 item 2) end to end through the CLI: a snapshot and its incremental go local →
 * S3 (s3rver) → local. The second copy stores only the chunks the first did not (bytes from its
 * summary), the last repository restores both snapshots byte-exact, and check --read-data
 * passes on every side. Also: into a repository made without --copy-chunker-params, copy
 * re-chunks (restored byte-exact too), and a copy cut off before its root is finished by the
 * next run without storing a chunk again. (bench/copy.ts does the same with 100,000 files and measures RSS.)
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { cliFor, type CliOptions, type CliResult, backupSummary } from '../helpers/cli.js'
import { startS3rver, S3RVER_CREDENTIALS, type S3rverHandle } from '../helpers/s3rver.js'
import { buildHostileTree, compareTrees, seededBytes } from '../helpers/tree.js'
import { scratch } from '../helpers/scratch.js'

const BASE = scratch('e2e-copy')
const home = `${BASE}/home`
const PW = 'correct horse'
const SRC_PW = 'source horse'
const TREE = `${BASE}/src/tree`
const TREE_REL = TREE.slice(1)
const REPO_A = `${BASE}/repo-a`
const REPO_C = `${BASE}/repo-c`
const BUCKET = 'sluice-copy'

const AWS_ENV = {
  AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
  AWS_REGION: 'us-east-1',
  AWS_EC2_METADATA_DISABLED: 'true',
}

type Run = (args: string[], extra?: Partial<CliOptions>) => Promise<CliResult>
let server: S3rverHandle
let s3Repo = ''
let a: Run
let s3: Run
let c: Run

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r
}

interface CopySummary {
  message_type: 'summary'
  snapshots_copied: number
  snapshots_skipped: number
  chunks_copied: number
  bytes_copied: number
  chunks_present: number
}
interface CopyLine {
  message_type: 'snapshot'
  id: string
  copied_to?: string
  skipped?: boolean
}

/** `copy --json` from `from` (password SRC_PW for A, PW for the S3 repository): its lines. */
async function copyJson(run: Run, from: string, fromPw: string, args: string[] = []): Promise<{ lines: CopyLine[]; summary: CopySummary }> {
  // A re-chunking copy reads and cuts everything again: more than the helper's default minute
  // on a loaded machine.
  const r = ok(await run(['copy', '--json', '--from-repo', from, ...args], { env: { ...AWS_ENV, SLUICE_FROM_PASSWORD: fromPw }, timeoutMs: 300_000 }), `copy from ${from}`)
  const all = r.stdout.trim().split('\n').map(l => JSON.parse(l) as CopyLine | CopySummary)
  return { lines: all.filter((l): l is CopyLine => l.message_type === 'snapshot'), summary: all.at(-1) as CopySummary }
}

/** Chunk objects of a local repository. */
function chunkFiles(repo: string): string[] {
  return fs.readdirSync(`${repo}/chunks`).flatMap(d => fs.readdirSync(`${repo}/chunks/${d}`))
}

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(home, { recursive: true })
  fs.mkdirSync(`${BASE}/src`, { recursive: true })
  server = await startS3rver({ bucket: BUCKET })
  s3Repo = `s3:${server.endpoint}/${BUCKET}/copied`
  a = cliFor(home, REPO_A, SRC_PW)
  s3 = (args, extra = {}) => cliFor(home, s3Repo, PW)(args, { ...extra, env: { ...AWS_ENV, ...extra.env } })
  c = cliFor(home, REPO_C, PW)
  // Every file type and odd names (hostile tree), plus 2,000 small random files packed into
  // shared chunks and one large file.
  buildHostileTree(TREE)
  for (let i = 0; i < 2000; i++) {
    fs.mkdirSync(`${TREE}/many/d${i % 20}`, { recursive: true })
    fs.writeFileSync(`${TREE}/many/d${i % 20}/f-${i}`, seededBytes(`m${i}`, (i * 7919) % 6000))
  }
  fs.writeFileSync(`${TREE}/big`, seededBytes('big', 3 * 1024 * 1024))
})

after(async () => {
  await server?.stop()
})

let snap1 = ''
let snap2 = ''
/** Bytes of new, incompressible content the incremental adds. */
let added = 0

test('local → S3 → local: a snapshot, then its incremental, chunks moved once', { timeout: 900_000 }, async () => {
  ok(await a(['init']), 'init A')
  snap1 = (backupSummary(ok(await a(['backup', '--json', TREE]), 'backup 1').stdout) as { snapshot: string }).snapshot
  for (let i = 0; i < 200; i++) {
    const data = seededBytes(`n${i}`, 2000 + i)
    fs.writeFileSync(`${TREE}/many/d${i % 20}/new-${i}`, data)
    added += data.length
  }
  fs.writeFileSync(`${TREE}/big-2`, seededBytes('big-2', 1024 * 1024))
  added += 1024 * 1024
  snap2 = (backupSummary(ok(await a(['backup', '--json', TREE]), 'backup 2').stdout) as { snapshot: string }).snapshot

  // A destination with its own chunker key: every snapshot re-chunked through its backup
  // pipeline (restored byte-exact in the next test), and nothing done a second time.
  ok(await s3(['init']), 'init S3 (own params)')
  const own = await copyJson(s3, REPO_A, SRC_PW)
  assert.equal(own.summary.snapshots_copied, 2)
  assert.ok(own.summary.bytes_copied > 3 * 1024 * 1024, `re-chunked copy stored ${own.summary.bytes_copied}`)
  const ownAgain = await copyJson(s3, REPO_A, SRC_PW)
  assert.deepEqual([ownAgain.summary.snapshots_copied, ownAgain.summary.snapshots_skipped, ownAgain.summary.bytes_copied], [0, 2, 0])

  s3Repo = `s3:${server.endpoint}/${BUCKET}/same-params`
  ok(await s3(['init', '--copy-chunker-params', '--from-repo', REPO_A], { env: { SLUICE_FROM_PASSWORD: SRC_PW } }), 'init S3 --copy-chunker-params')

  // The first snapshot alone, by id prefix.
  const first = await copyJson(s3, REPO_A, SRC_PW, [snap1.slice(0, 8)])
  assert.deepEqual(first.lines.map(l => l.id), [snap1])
  assert.equal(first.summary.snapshots_copied, 1)
  assert.ok(first.summary.bytes_copied > 3 * 1024 * 1024, `first copy stored ${first.summary.bytes_copied}`)

  // Then everything: the first is skipped, the incremental moves its new chunks only: the new
  // content (incompressible) plus its changed metadata.
  const second = await copyJson(s3, REPO_A, SRC_PW)
  assert.deepEqual(second.lines.filter(l => l.skipped).map(l => l.id), [snap1])
  assert.deepEqual(second.lines.filter(l => l.copied_to).map(l => l.id), [snap2])
  assert.ok(second.summary.bytes_copied >= added, `second copy stored ${second.summary.bytes_copied} < ${added} new`)
  assert.ok(second.summary.bytes_copied < added + 256 * 1024, `second copy stored ${second.summary.bytes_copied} for ${added} new bytes`)
  assert.ok(second.summary.chunks_present > 0)

  // S3 → a local repository (made from the S3 one's parameters, which are A's).
  ok(await c(['init', '--copy-chunker-params', '--from-repo', s3Repo], { env: { ...AWS_ENV, SLUICE_FROM_PASSWORD: PW } }), 'init C')
  const third = await copyJson(c, s3Repo, PW)
  assert.equal(third.summary.snapshots_copied, 2)
  // Every chunk of A, each stored once: C holds exactly A's chunk ids.
  assert.equal(third.summary.chunks_copied, chunkFiles(REPO_A).length)
  assert.deepEqual(chunkFiles(REPO_C).sort(), chunkFiles(REPO_A).sort())
  assert.equal(third.summary.chunks_copied, first.summary.chunks_copied + second.summary.chunks_copied)

  // Nothing left to do: both skipped (their original ids are A's), nothing stored.
  const again = await copyJson(c, s3Repo, PW)
  assert.equal(again.summary.snapshots_skipped, 2)
  assert.equal(again.summary.bytes_copied, 0)
  const originals = (JSON.parse(ok(await c(['snapshots', '--json']), 'snapshots C').stdout) as { original?: string; parent?: string }[])
  assert.deepEqual(originals.map(s => s.original).sort(), [snap1, snap2].sort())
  assert.ok(originals.every(s => s.parent === undefined))
})

test('the last repository restores both snapshots byte-exact; check --read-data passes everywhere', { timeout: 600_000 }, async () => {
  assert.ok(snap2, 'needs the copy test')
  const ids = JSON.parse(ok(await c(['snapshots', '--json']), 'snapshots C').stdout) as { id: string; original: string }[]
  const inC = (original: string) => ids.find(s => s.original === original)!.id
  // The incremental against the tree itself; the first against A's own restore of it.
  ok(await c(['restore', inC(snap2), '--target', `${BASE}/r2`]), 'restore 2 from C')
  assert.deepEqual(compareTrees(TREE, `${BASE}/r2/${TREE_REL}`, { root: true }), [])
  ok(await c(['restore', inC(snap1), '--target', `${BASE}/r1c`]), 'restore 1 from C')
  ok(await a(['restore', snap1, '--target', `${BASE}/r1a`]), 'restore 1 from A')
  assert.deepEqual(compareTrees(`${BASE}/r1a/${TREE_REL}`, `${BASE}/r1c/${TREE_REL}`, { root: true }), [])
  assert.ok(!fs.existsSync(`${BASE}/r1c/${TREE_REL}/big-2`))
  // The re-chunked copy in the S3 repository with its own parameters.
  const ownS3: Run = (args, extra = {}) => cliFor(home, `s3:${server.endpoint}/${BUCKET}/copied`, PW)(args, { ...extra, env: { ...AWS_ENV, ...extra.env } })
  const ownIds = JSON.parse(ok(await ownS3(['snapshots', '--json']), 'snapshots own').stdout) as { id: string; original: string; time: string }[]
  ok(await ownS3(['restore', ownIds.find(s => s.original === snap2)!.id, '--target', `${BASE}/r2own`]), 'restore 2 from the re-chunked copy')
  assert.deepEqual(compareTrees(TREE, `${BASE}/r2own/${TREE_REL}`, { root: true }), [])
  ok(await ownS3(['check', '--read-data']), 'check the re-chunked copy')
  for (const [name, run] of [['A', a], ['S3', s3], ['C', c]] as const) {
    const r = ok(await run(['check', '--read-data', '--json']), `check ${name}`)
    assert.equal(backupSummary<{ problems: number }>(r.stdout).problems, 0)
  }
})

test('a copy cut off before its root is finished by the next one, no chunk stored twice', { timeout: 300_000 }, async () => {
  assert.ok(snap2, 'needs the copy test')
  const d = cliFor(home, `${BASE}/repo-d`, PW)
  ok(await d(['init', '--copy-chunker-params', '--from-repo', REPO_A], { env: { SLUICE_FROM_PASSWORD: SRC_PW } }), 'init D')
  const whole = await copyJson(d, REPO_A, SRC_PW, [snap1])
  // What a kill just before the root leaves: every chunk, no snapshot.
  fs.rmSync(`${BASE}/repo-d/snapshots`, { recursive: true })
  fs.mkdirSync(`${BASE}/repo-d/snapshots`)
  const resumed = await copyJson(d, REPO_A, SRC_PW, [snap1])
  assert.equal(resumed.summary.snapshots_copied, 1)
  assert.equal(resumed.summary.chunks_copied, 0)
  assert.equal(resumed.summary.chunks_present, whole.summary.chunks_copied)
  ok(await d(['check', '--read-data']), 'check D')
})
