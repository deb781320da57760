/**
 * A real S3-compatible server for tests: s3rver in a child node process on a free loopback port,
 * with its own temp directory and one pre-created bucket. Nothing needs to run beforehand.
 */
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Storage } from '../../lib/storage/storage.js'
import { createLocalStorage } from '../../lib/storage/local.js'
import { createS3Storage } from '../../lib/storage/s3.js'

/** s3rver's one account; it rejects any other access key id (InvalidAccessKeyId). */
export const S3RVER_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' }

export interface S3rverHandle {
  /** `http://127.0.0.1:PORT` */
  endpoint: string
  bucket: string
  /** The server's process (benches read its CPU time). */
  pid: number
  stop(): Promise<void>
}

const CHILD = fileURLToPath(new URL('./s3rver-child.cjs', import.meta.url))

/** Starts s3rver; resolves once it listens. */
export async function startS3rver(opts: { bucket?: string } = {}): Promise<S3rverHandle> {
  const bucket = opts.bucket ?? 'sluice-test'
  const dir = await mkdtemp(join(tmpdir(), 'sluice-s3rver-'))
  // NODE_OPTIONS cleared: the child is plain CommonJS and must not inherit loaders.
  const child = spawn(process.execPath, ['--openssl-legacy-provider', CHILD, dir, bucket], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NODE_OPTIONS: '' },
  })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (s: string) => {
    if (stderr.length < 10_000) stderr += s
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))

  const port = await new Promise<number>((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => fail(new Error('s3rver did not start within 20 s')), 20_000)
    function fail(err: Error): void {
      clearTimeout(timer)
      child.kill('SIGKILL')
      reject(new Error(`${err.message}\n${stderr}`))
    }
    child.stdout.setEncoding('utf8').on('data', (s: string) => {
      out += s
      const nl = out.indexOf('\n')
      if (nl < 0) return
      clearTimeout(timer)
      try {
        resolve((JSON.parse(out.slice(0, nl)) as { port: number }).port)
      } catch (err) {
        fail(err as Error)
      }
    })
    child.once('exit', (code) => fail(new Error(`s3rver exited with code ${code} before listening`)))
    child.once('error', fail)
  })

  return {
    endpoint: `http://127.0.0.1:${port}`,
    bucket,
    pid: child.pid!,
    async stop() {
      child.stdin.end()
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000)
      await exited
      clearTimeout(timer)
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** A fresh storage per call on local disk below `base` or on the server under a fresh prefix:
 *  for tests that run the same cases on both backends. */
export function storageMaker(base: string, server: () => S3rverHandle): (backend: 'local' | 's3', name: string) => Storage {
  let n = 0
  return (backend, name) => {
    if (backend === 'local') return createLocalStorage(`${base}/${name}-${n++}`)
    const s = server()
    return createS3Storage({ bucket: s.bucket, prefix: `${process.pid}/${name}-${n++}`, endpoint: s.endpoint, forcePathStyle: true, credentials: S3RVER_CREDENTIALS })
  }
}
