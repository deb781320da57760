import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import { PassThrough, Readable } from 'node:stream'
import type { SourceEntry } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { createCommandSource, createStdinSource } from '../../transforms/backup/sources/stdin.js'
import { seeded, sha256 } from '../helpers/tar-tree.js'
import { scratch } from '../helpers/scratch.js'

async function readAll(src: Readable): Promise<{ entries: SourceEntry[]; data: Buffer; pieces: number }> {
  const entries: SourceEntry[] = []
  const parts: Buffer[] = []
  for await (const e of src as AsyncIterable<SourceEntry>) {
    entries.push(e)
    if (e.content) for await (const p of e.content()) parts.push(Buffer.from(p))
  }
  return { entries, data: Buffer.concat(parts), pieces: parts.length }
}

/** `buf` in odd pieces, as a pipe would deliver it. */
function oddPieces(buf: Buffer): Readable {
  let at = 0
  let i = 0
  const sizes = [1, 65536, 7, 100_003, 4096, 3]
  return new Readable({
    read() {
      if (at >= buf.length) return this.push(null)
      const n = sizes[i++ % sizes.length]!
      this.push(buf.subarray(at, at + n))
      at += n
    },
  })
}

test('a few MB piped in odd pieces come out byte for byte as one file entry', async () => {
  const input = seeded(5 * 1024 * 1024 + 13, 11)
  const before = Math.floor(Date.now() / 1000)
  const { entries, data, pieces } = await readAll(createStdinSource(oddPieces(input), { name: Buffer.from('db/dump.sql') }))
  assert.equal(entries.length, 1)
  const e = entries[0]!
  assert.equal(sha256(data), sha256(input))
  assert.ok(pieces > 10, 'content is streamed as it comes, not gathered')
  assert.equal(e.path.toString(), 'db/dump.sql')
  assert.equal(e.type, 'file')
  assert.equal(e.mode, 0o644)
  assert.equal(e.size, -1, "the chunker's size-unknown mark")
  assert.equal(e.uid, process.getuid!())
  assert.ok(e.mtimeSec >= before && e.mtimeSec <= before + 5)
  assert.equal(e.ctimeSec, e.mtimeSec)
})

test('a file descriptor is read to its end: a file given as stdin', async () => {
  const dir = scratch('stdin-source-task')
  fs.mkdirSync(dir, { recursive: true })
  const input = seeded(3 * 1024 * 1024 + 77, 12)
  fs.writeFileSync(`${dir}/in.bin`, input)
  const fd = fs.openSync(`${dir}/in.bin`, 'r')
  try {
    const { entries, data, pieces } = await readAll(createStdinSource(fd, { name: Buffer.from('f.bin') }))
    assert.equal(entries.length, 1)
    assert.equal(sha256(data), sha256(input))
    assert.ok(pieces >= 4, 'read in pieces of at most READ_BLOCK')
  } finally {
    fs.closeSync(fd)
  }
})

test('a non-blocking descriptor with nothing to read yet (EAGAIN) is waited on, not taken for the end', async () => {
  const dir = scratch('stdin-source-task')
  fs.mkdirSync(dir, { recursive: true })
  const fifo = `${dir}/fifo`
  fs.rmSync(fifo, { force: true })
  spawnSync('mkfifo', [fifo])
  // The writer holds the FIFO open (read-write, which does not block) before we open it, then
  // waits before it writes: our first reads find a writer but no data.
  const writer = spawn('sh', ['-c', 'exec 3<>"$1"; echo ready; sleep 0.3; cat >&3', 'sh', fifo], { stdio: ['pipe', 'pipe', 'inherit'] })
  await new Promise<void>(resolve => writer.stdout.once('data', () => resolve()))
  const fd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK)
  const input = seeded(700_001, 13)
  writer.stdin.end(input)
  try {
    const { data } = await readAll(createStdinSource(fd))
    assert.equal(sha256(data), sha256(input))
  } finally {
    fs.closeSync(fd)
  }
})

test('the default name is stdin, and a mode can be given', async () => {
  const { entries, data } = await readAll(createStdinSource(Readable.from([Buffer.from('x')]), { mode: 0o600 }))
  assert.equal(entries[0]!.path.toString(), 'stdin')
  assert.equal(entries[0]!.mode, 0o600)
  assert.equal(data.toString(), 'x')
})

test('a name that is not a usable snapshot path is ERR_ARGS, a leading slash is dropped', async () => {
  for (const bad of ['', '/', 'a/../b', 'a//b', '.']) {
    assert.throws(() => createStdinSource(Readable.from([]), { name: Buffer.from(bad) }), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_ARGS', bad)
  }
  const { entries } = await readAll(createStdinSource(Readable.from([]), { name: Buffer.from('/srv/x') }))
  assert.equal(entries[0]!.path.toString(), 'srv/x')
})

test('a raw-byte name is kept as bytes', async () => {
  const name = Buffer.from([0x61, 0xff])
  const { entries } = await readAll(createStdinSource(Readable.from([]), { name }))
  assert.deepEqual(entries[0]!.path, name)
})

test('an input error makes the source error, not end', async () => {
  const input = new PassThrough()
  input.write('partial')
  setTimeout(() => input.destroy(new Error('EIO from the pipe')), 10)
  await assert.rejects(readAll(createStdinSource(input)), /EIO from the pipe/)
})

test('a command source streams the command stdout and resolves done', async () => {
  const { source, done } = createCommandSource(['sh', '-c', 'head -c 3000000 /dev/zero; printf end'], { name: Buffer.from('zeros') })
  const { entries, data } = await readAll(source)
  await done
  assert.equal(entries[0]!.path.toString(), 'zeros')
  assert.equal(data.length, 3_000_003)
  assert.equal(data.subarray(-3).toString(), 'end')
})

test('a command exiting non-zero makes the source error with ERR_COMMAND, stderr passed through', async () => {
  const stderr = new PassThrough()
  const seen: Buffer[] = []
  stderr.on('data', (b: Buffer) => seen.push(b))
  const { source, done } = createCommandSource(['sh', '-c', 'echo some output; echo oops >&2; exit 1'], { stderr })
  const isCmd = (e: unknown): boolean => e instanceof SluiceError && e.code === 'ERR_COMMAND' && /sh -c .*exited with code 1/.test(e.message)
  await assert.rejects(readAll(source), isCmd)
  await assert.rejects(done, isCmd)
  assert.equal(Buffer.concat(seen).toString(), 'oops\n')
})

test('a command that cannot be started is ERR_COMMAND', async () => {
  const { source, done } = createCommandSource(['/nonexistent/sluice-no-such-command'])
  await assert.rejects(readAll(source), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_COMMAND' && /cannot start command \/nonexistent/.test(e.message))
  await assert.rejects(done, /ERR_COMMAND|cannot start/)
})

test("by default the command's stderr goes straight to our stderr", () => {
  const script = `
    import { createCommandSource } from './transforms/backup/sources/stdin.ts'
    const { source } = createCommandSource(['sh', '-c', 'echo oops >&2; exit 3'])
    try { for await (const e of source) for await (const _ of e.content()) {} } catch (err) { console.log(err.code, err.message) }
  `
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: new URL('../..', import.meta.url).pathname, encoding: 'utf8' })
  assert.equal(r.stderr, 'oops\n')
  assert.match(r.stdout, /^ERR_COMMAND command sh -c 'echo oops >&2; exit 3' exited with code 3/)
})
