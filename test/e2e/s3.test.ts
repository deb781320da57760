/**
 * End to end on S3 (issue 4): every command that works on a local repository works on an
 * S3-compatible service with the same results. The built CLI is spawned against a real s3rver on
 * a loopback port (`-r s3:http://127.0.0.1:PORT/BUCKET/some/prefix`), and the same tree goes
 * into a local repository beside it: the two restores, listings and diffs must be identical.
 * Then the same through a proxy that drops connections and throttles, and the one-line errors a
 * user meets first (missing bucket, refused key, nothing listening, no credentials).
 *
 * Multipart uploads are not exercised here: Sluice's largest object is a chunk of at most
 * CHUNK_MAX (4 MiB) plus 42 bytes of framing, below S3_MULTIPART_THRESHOLD (8 MiB), so the CLI
 * only ever issues single PutObjects. test/storage-s3.test.ts covers the multipart path.
 */
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { createServer } from 'node:net'
import { lookup } from 'node:dns/promises'
import http from 'node:http'
import { cliFor, type CliOptions, type CliResult, backupSummary } from '../helpers/cli.js'
import { startS3rver, S3RVER_CREDENTIALS, type S3rverHandle } from '../helpers/s3rver.js'
import { startFaultProxy } from '../helpers/fault-proxy.js'
import { buildHostileTree, compareTrees, seededBytes } from '../helpers/tree.js'
import { createS3Storage } from '../../lib/storage/s3.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('e2e-s3')}/e2e`
const home = `${BASE}/home`
const PW = 'correct horse'
const TREE = `${BASE}/src/tree`
const TREE_REL = TREE.slice(1)
const LOCAL_REPO = `${BASE}/local-repo`
const BUCKET = 'sluice-e2e'
const PREFIX = 'some/prefix'

/** What the child needs to reach s3rver, and nothing that could reach beyond loopback. */
const AWS_ENV = {
  AWS_ACCESS_KEY_ID: S3RVER_CREDENTIALS.accessKeyId,
  AWS_SECRET_ACCESS_KEY: S3RVER_CREDENTIALS.secretAccessKey,
  AWS_REGION: 'us-east-1',
  AWS_EC2_METADATA_DISABLED: 'true',
}

let server: S3rverHandle
let s3Repo = ''

type Run = (args: string[], extra?: Partial<CliOptions>) => Promise<CliResult>
let s3: Run
let local: Run

/** How long each command took, printed with E2E_TIMES=1 (s3rver is slow; this says where). */
const times: string[] = []
function timed(run: Run, label: string): Run {
  return async (args, extra) => {
    const t0 = Date.now()
    const r = await run(args, extra)
    times.push(`${label} ${args.filter((a) => !a.startsWith('/')).join(' ')}: ${Date.now() - t0} ms`)
    return r
  }
}

/** Exit 0, with stderr shown when it is not. */
function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.code, 0, `${what}: exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  return r
}

/** Exit 1 with exactly one line on stderr that names `code`, and no stack trace. */
function assertFails(r: CliResult, code: string, message: RegExp): void {
  assert.equal(r.code, 1, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
  const lines = r.stderr.split('\n').filter((l) => l !== '')
  assert.equal(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`)
  assert.match(lines[0]!, new RegExp(`^sluice: ${code}: `))
  assert.match(lines[0]!, message)
  assert.ok(!r.stderr.includes('    at '), `stack trace on stderr:\n${r.stderr}`)
}

interface BackupJson {
  snapshot: string
  parent: string | null
  files: number
  filesNew: number
  filesChanged: number
  filesUnchanged: number
  bytesRead: number
  bytesStored: number
  chunksNew: number
  warnings: number
}

async function backupJson(run: Run, what: string): Promise<BackupJson> {
  const r = ok(await run(['backup', '--json', TREE]), what)
  return backupSummary(r.stdout) as BackupJson
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
  const { port } = srv.address() as { port: number }
  await new Promise<void>((r) => srv.close(() => r()))
  return port
}

before(async () => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(home, { recursive: true })
  fs.mkdirSync(`${BASE}/src`, { recursive: true })
  server = await startS3rver({ bucket: BUCKET })
  s3Repo = `s3:${server.endpoint}/${BUCKET}/${PREFIX}`
  s3 = timed((args, extra = {}) => cliFor(home, s3Repo, PW)(args, { ...extra, env: { ...AWS_ENV, ...extra.env } }), 's3')
  local = timed(cliFor(home, LOCAL_REPO, PW), 'local')

  // The hostile tree (every file type, odd names, hardlinks, xattrs; 8 MiB apparent, 3 MiB of
  // it random) plus a few hundred small random files, packed into shared chunks.
  buildHostileTree(TREE)
  fs.mkdirSync(`${TREE}/random/sub`, { recursive: true })
  for (let i = 0; i < 300; i++) {
    const size = (i * 7919) % 12_000
    fs.writeFileSync(`${TREE}/random/${i % 3 === 0 ? 'sub/' : ''}f-${String(i).padStart(4, '0')}`, seededBytes(`r${i}`, size))
  }
  fs.writeFileSync(`${TREE}/random/two-mib`, seededBytes('two-mib', 2 * 1024 * 1024 + 3))
})

after(async () => {
  await server?.stop()
  if (process.env.E2E_TIMES) console.log(times.join('\n'))
})

let s3First: BackupJson
let s3Second: BackupJson
let localSecond: BackupJson

test('init, backup and an incremental backup through the CLI on S3', { timeout: 60_000 }, async () => {
  // Each pair runs side by side: the two repositories share nothing.
  const [init, localInit] = await Promise.all([s3(['init']), local(['init'])])
  ok(init, 's3 init')
  ok(localInit, 'local init')
  assert.match(init.stdout, new RegExp(`^created sluice repository [0-9a-f]+ at ${s3Repo.replace(/[.:/]/g, '\\$&')}\n$`))

  const [s3b, localFirst] = await Promise.all([backupJson(s3, 's3 backup'), backupJson(local, 'local backup')])
  s3First = s3b
  assert.equal(s3First.warnings, 0)
  assert.ok(s3First.files > 300, `files: ${s3First.files}`)
  // Later links of a hardlink group count as files but are neither new, changed nor unchanged.
  assert.ok(s3First.filesNew > 300, `new: ${s3First.filesNew}`)
  assert.equal(s3First.filesChanged + s3First.filesUnchanged, 0)
  assert.ok(s3First.bytesStored > 5 * 1024 * 1024, `stored ${s3First.bytesStored}`)
  assert.equal(s3First.files, localFirst.files)
  assert.equal(s3First.bytesRead, localFirst.bytesRead)

  ;[s3Second, localSecond] = await Promise.all([backupJson(s3, 's3 incremental backup'), backupJson(local, 'local incremental backup')])
  assert.equal(s3Second.parent, s3First.snapshot)
  assert.equal(s3Second.files, s3First.files)
  assert.equal(s3Second.filesUnchanged, s3First.filesNew)
  assert.equal(s3Second.filesNew + s3Second.filesChanged, 0)
  assert.equal(s3Second.bytesRead, 0)
  // Not quite 0: the records of the ancestors (/tmp ...) hold their mtimes, which other
  // processes change, so the first metadata chunk may be stored again.
  assert.ok(s3Second.bytesStored < 64 * 1024, `the unchanged backup stored ${s3Second.bytesStored} bytes`)
  assert.equal(localSecond.filesUnchanged, s3First.filesNew)

  // Everything lives under the prefix, in the layout of a local repository.
  const whole = createS3Storage({ bucket: BUCKET, prefix: '', endpoint: server.endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS })
  try {
    const tops = new Set<string>()
    for await (const key of whole.list('')) {
      assert.ok(key.startsWith(`${PREFIX}/`), key)
      tops.add(key.slice(PREFIX.length + 1).split('/')[0]!)
    }
    assert.deepEqual([...tops].sort(), ['chunks', 'config', 'keys', 'snapshots'])
  } finally {
    await whole.close()
  }
})

test('snapshots, ls, restore, check and cat on S3 give what they give on a local repository', { timeout: 90_000 }, async () => {
  const snaps = JSON.parse(ok(await s3(['snapshots', '--json']), 's3 snapshots').stdout) as { id: string; paths: string[]; parent?: string }[]
  assert.deepEqual(snaps.map((s) => s.id).sort(), [s3First.snapshot, s3Second.snapshot].sort())
  for (const s of snaps) assert.deepEqual(s.paths, [TREE])

  // ls --json prints every field of every entry: the two repositories must agree to the byte.
  // Below the tree only: its ancestors (/tmp ...) hold mtimes that other processes change
  // between the two backups.
  const [s3Ls, localLs] = await Promise.all([s3(['ls', '--json', `latest:${TREE}`]), local(['ls', '--json', `latest:${TREE}`])])
  ok(s3Ls, 's3 ls')
  ok(localLs, 'local ls')
  assert.ok(s3Ls.stdout.split('\n').length > 300)
  assert.ok(s3Ls.stdoutBytes.equals(localLs.stdoutBytes), 'ls --json differs between S3 and local')

  const s3Target = `${BASE}/restore-s3`
  const localTarget = `${BASE}/restore-local`
  const [s3Restore, localRestore] = await Promise.all([
    s3(['restore', 'latest', '--target', s3Target]),
    local(['restore', 'latest', '--target', localTarget]),
  ])
  ok(s3Restore, 's3 restore')
  ok(localRestore, 'local restore')
  assert.deepEqual(compareTrees(TREE, `${s3Target}/${TREE_REL}`, { root: true }), [])
  assert.deepEqual(compareTrees(`${localTarget}/${TREE_REL}`, `${s3Target}/${TREE_REL}`, { root: true }), [])

  const check = ok(await s3(['check']), 's3 check')
  assert.equal(check.stdout, 'checked 2 snapshots: no problems\n')
  const readData = ok(await s3(['check', '--read-data']), 's3 check --read-data')
  assert.match(readData.stdout, /^checked 2 snapshots and \d+ chunks: no problems\n$/)
  assert.equal(readData.stderr, '')

  const big = ok(await s3(['cat', s3First.snapshot.slice(0, 8), `${TREE}/random/two-mib`]), 's3 cat')
  assert.ok(big.stdoutBytes.equals(fs.readFileSync(`${TREE}/random/two-mib`)), 'cat of a 2 MiB file')
  const small = ok(await s3(['cat', `latest:${TREE}/random/sub/f-0003`]), 's3 cat SNAP:PATH')
  assert.ok(small.stdoutBytes.equals(fs.readFileSync(`${TREE}/random/sub/f-0003`)), 'cat of a packed small file')
})

test('diff on S3 reports the change that diff on a local repository reports', { timeout: 60_000 }, async () => {
  fs.writeFileSync(`${TREE}/random/added`, seededBytes('added', 5000))
  fs.writeFileSync(`${TREE}/random/f-0001`, seededBytes('changed', 4000))
  fs.rmSync(`${TREE}/random/f-0002`)
  const [s3Third, localThird] = await Promise.all([backupJson(s3, 's3 third backup'), backupJson(local, 'local third backup')])
  assert.equal(s3Third.filesNew, 1)
  assert.equal(s3Third.filesChanged, 1)
  assert.equal(s3Third.filesUnchanged, s3Second.filesUnchanged - 2)

  const [s3Diff, localDiff] = await Promise.all([
    s3(['diff', s3Second.snapshot.slice(0, 8), s3Third.snapshot.slice(0, 8)]),
    local(['diff', localSecond.snapshot, localThird.snapshot]),
  ])
  ok(s3Diff, 's3 diff')
  ok(localDiff, 'local diff')
  // The tree's lines only: the ancestors (/tmp ...) may show as modified in one repository and not
  // in the other, since other processes change their mtimes between the backups.
  const underTree = (out: string) => out.split('\n').filter((l) => l.includes(` ${TREE}/`))
  assert.deepEqual(underTree(s3Diff.stdout), underTree(localDiff.stdout))
  const lines = s3Diff.stdout.split('\n')
  assert.ok(lines.includes(`+    ${TREE}/random/added`), s3Diff.stdout)
  assert.ok(lines.includes(`-    ${TREE}/random/f-0002`), s3Diff.stdout)
  assert.ok(lines.some((l) => l.startsWith(`M    ${TREE}/random/f-0001  (`)), s3Diff.stdout)
})

test('through a proxy that drops 5% of connections and answers 10% with 503 SlowDown, backup, check and restore succeed', { timeout: 90_000 }, async () => {
  const proxy = await startFaultProxy(server.endpoint, { seed: 4, drop: 0.05, slowDown: 0.1 })
  try {
    const faulty = cliFor(home, `s3:${proxy.endpoint}/${BUCKET}/faulty/repo`, PW)
    const run = timed((args, extra = {}) => faulty(args, { ...extra, env: { ...AWS_ENV, ...extra.env } }), 'faulty')
    ok(await run(['init']), 'init through the proxy')
    const b = await backupJson(run, 'backup through the proxy')
    assert.equal(b.warnings, 0)
    assert.equal(b.filesChanged + b.filesUnchanged, 0)
    const check = ok(await run(['check', '--read-data']), 'check --read-data through the proxy')
    assert.match(check.stdout, /^checked 1 snapshots and \d+ chunks: no problems\n$/)
    const target = `${BASE}/restore-faulty`
    ok(await run(['restore', 'latest', '--target', target]), 'restore through the proxy')
    assert.deepEqual(compareTrees(TREE, `${target}/${TREE_REL}`, { root: true }), [])
    const { stats } = proxy
    assert.ok(stats.droppedBefore + stats.droppedAfter > 0 && stats.slowDown > 0, JSON.stringify(stats))
  } finally {
    await proxy.stop()
  }
})

test('credentials come from the profile AWS_PROFILE names in ~/.aws, not from the default profile', { timeout: 30_000 }, async () => {
  const profileHome = `${BASE}/home-profile`
  fs.mkdirSync(`${profileHome}/.aws`, { recursive: true })
  fs.writeFileSync(`${profileHome}/.aws/credentials`, `[default]\naws_access_key_id = NOT-A-KEY\naws_secret_access_key = nope\n\n[sluice]\naws_access_key_id = ${S3RVER_CREDENTIALS.accessKeyId}\naws_secret_access_key = ${S3RVER_CREDENTIALS.secretAccessKey}\n`)
  fs.writeFileSync(`${profileHome}/.aws/config`, '[profile sluice]\nregion = eu-west-1\n')
  const r = await timed(cliFor(profileHome, s3Repo, PW), 'profile')(['snapshots', '--json'], { env: { AWS_PROFILE: 'sluice', AWS_EC2_METADATA_DISABLED: 'true' } })
  ok(r, 'snapshots with AWS_PROFILE')
  assert.equal((JSON.parse(r.stdout) as unknown[]).length, 3)
})

/** A proxy to s3rver that answers a PUT carrying If-None-Match with 501 NotImplemented, as
 *  S3-compatible services without conditional writes do. */
async function noConditionalWrites(target: string): Promise<{ endpoint: string; rejected: () => number; stop: () => Promise<void> }> {
  const up = new URL(target)
  let rejected = 0
  const xml = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NotImplemented</Code>' +
    '<Message>A header you provided implies functionality that is not implemented</Message><Header>If-None-Match</Header></Error>'
  const srv = http.createServer((req, res) => {
    if (req.method === 'PUT' && req.headers['if-none-match'] !== undefined) {
      rejected++
      req.resume()
      req.on('end', () => res.writeHead(501, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(xml) }).end(xml))
      return
    }
    const fwd = http.request({ host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers)
      r.pipe(res)
    })
    fwd.on('error', () => req.socket.destroy())
    req.pipe(fwd)
  })
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()))
  const { port } = srv.address() as { port: number }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    rejected: () => rejected,
    stop: async () => {
      srv.closeAllConnections()
      await new Promise<void>((r) => srv.close(() => r()))
    },
  }
}

test('a service that answers If-None-Match with 501 NotImplemented still takes backups', { timeout: 60_000 }, async () => {
  const proxy = await noConditionalWrites(server.endpoint)
  try {
    const repo = cliFor(home, `s3:${proxy.endpoint}/${BUCKET}/no-conditional`, PW)
    const run = timed((args, extra = {}) => repo(args, { ...extra, env: { ...AWS_ENV, ...extra.env } }), 'no-conditional')
    ok(await run(['init']), 'init without conditional writes')
    const b = await backupJson(run, 'backup without conditional writes')
    assert.equal(b.warnings, 0)
    const check = ok(await run(['check', '--read-data']), 'check --read-data without conditional writes')
    assert.match(check.stdout, /^checked 1 snapshots and \d+ chunks: no problems\n$/)
    assert.ok(proxy.rejected() > 0)
  } finally {
    await proxy.stop()
  }
})

test('a missing bucket, a refused key, nothing listening and no credentials each end in one line with a code, within seconds', { timeout: 60_000 }, async () => {
  const port = await closedPort()
  const cases: { name: string; args: string[]; repo?: string; env?: Record<string, string>; code: string; message: RegExp }[] = [
    { name: 'init in a missing bucket', args: ['init'], repo: `s3:${server.endpoint}/no-such-bucket/p`, code: 'ERR_REPO_NOT_FOUND', message: /bucket "no-such-bucket" does not exist/ },
    { name: 'snapshots in a missing bucket', args: ['snapshots'], repo: `s3:${server.endpoint}/no-such-bucket/p`, code: 'ERR_REPO_NOT_FOUND', message: /bucket "no-such-bucket" does not exist/ },
    { name: 'a prefix with no repository', args: ['snapshots'], repo: `s3:${server.endpoint}/${BUCKET}/nothing/here`, code: 'ERR_REPO_NOT_FOUND', message: /no repository at s3:.*\/nothing\/here/ },
    { name: 'an unknown access key', args: ['snapshots'], env: { AWS_ACCESS_KEY_ID: 'NOT-A-KEY' }, code: 'ERR_ACCESS_DENIED', message: /refused our credentials.*InvalidAccessKeyId/ },
    { name: 'a closed port', args: ['snapshots'], repo: `s3:http://127.0.0.1:${port}/${BUCKET}/p`, code: 'ERR_STORAGE', message: new RegExp(`cannot reach S3 at http://127.0.0.1:${port}.*ECONNREFUSED`) },
    { name: 'no credentials at all', args: ['snapshots'], env: { AWS_ACCESS_KEY_ID: '', AWS_SECRET_ACCESS_KEY: '' }, code: 'ERR_ACCESS_DENIED', message: /no AWS credentials found.*AWS_ACCESS_KEY_ID.*AWS_PROFILE/ },
  ]
  // --no-s3-path-style reaches a custom endpoint: the bucket moves into the host name. Where
  // *.localhost does not resolve (most resolvers), the error names that host.
  if (await lookup(`${BUCKET}.localhost`).then(() => false, () => true)) {
    cases.push({
      name: '--no-s3-path-style', args: ['snapshots', '--no-s3-path-style'], repo: `s3:http://localhost:${new URL(server.endpoint).port}/${BUCKET}/${PREFIX}`,
      code: 'ERR_STORAGE', message: new RegExp(`cannot reach S3 .*ENOTFOUND.*${BUCKET}\\.localhost`),
    })
  }
  for (const c of cases) {
    const env: Record<string, string> = { ...AWS_ENV, SLUICE_REPOSITORY: c.repo ?? s3Repo, SLUICE_PASSWORD: PW, ...c.env }
    // No credentials: the variables are absent, not empty (HOME has no ~/.aws either).
    for (const [k, v] of Object.entries(env)) if (v === '') delete env[k]
    const t0 = Date.now()
    const r = await cliFor(home, env.SLUICE_REPOSITORY!, PW)(c.args, { env, timeoutMs: 30_000 })
    const ms = Date.now() - t0
    times.push(`error ${c.name}: ${ms} ms`)
    assertFails(r, c.code, c.message)
  }
})
