import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir, rm, stat, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, test } from 'node:test'
import { SluiceError } from '../../lib/errors.js'
import { createLocalStorage } from '../../lib/storage/local.js'
import { storageConformance } from './conformance.js'

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'sluice-local-'))
}

async function collect(it: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = []
  for await (const k of it) out.push(k)
  return out
}

storageConformance('local directory', async () => {
  const dir = await tempDir()
  // The repository directory need not exist before the first put.
  return { storage: createLocalStorage(join(dir, 'repo')), cleanup: () => rm(dir, { recursive: true, force: true }) }
})

describe('local storage', () => {
  test('putStaged: the caller may reuse its buffer at once; the object holds the bytes given, no temp files left', async () => {
    const dir = await tempDir()
    try {
      const s = createLocalStorage(dir)
      const buf = Buffer.alloc(256 * 1024, 7)
      const keys = Array.from({ length: 40 }, (_, i) => `chunks/${(i % 4).toString(16).padStart(2, '0')}/staged${i}`)
      const stored: Promise<boolean>[] = []
      for (const [i, key] of keys.entries()) {
        buf.fill(i)
        stored.push((await s.putStaged!(key, buf)).stored)
      }
      buf.fill(0xff)
      assert.deepEqual(await Promise.all(stored), keys.map(() => true))
      for (const [i, key] of keys.entries()) assert.ok((await s.get(key)).equals(Buffer.alloc(256 * 1024, i)), key)
      assert.equal((await (await s.putStaged!(keys[0]!, Buffer.from('other'))).stored), false)
      assert.ok((await s.get(keys[0]!)).equals(Buffer.alloc(256 * 1024, 0)))
      assert.deepEqual(await readdir(join(dir, 'tmp')), [])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('putStaged: a store that fails rejects `stored` with ERR_STORAGE naming the key, and leaves no temp file', async () => {
    const dir = await tempDir()
    try {
      const s = createLocalStorage(dir)
      // A plain file where the key's directory should be: the link fails after the write.
      await s.put('chunks/ab', Buffer.from('not a directory'))
      const { stored } = await s.putStaged!('chunks/ab/cdef', Buffer.from('data'))
      await assert.rejects(stored, (e: unknown) => e instanceof SluiceError && e.code === 'ERR_STORAGE' && e.message.includes('chunks/ab/cdef'))
      assert.deepEqual(await readdir(join(dir, 'tmp')), [])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('concurrent puts of one key: exactly one writes, and no temp files are left', async () => {
    const dir = await tempDir()
    try {
      const s = createLocalStorage(dir)
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => s.put('chunks/ab/abcdef', Buffer.from(`writer ${i}`))),
      )
      assert.equal(results.filter(Boolean).length, 1)
      const winner = results.indexOf(true)
      assert.equal((await s.get('chunks/ab/abcdef')).toString(), `writer ${winner}`)
      assert.deepEqual(await readdir(join(dir, 'tmp')), [])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('objects are plain files at the key path, and tmp/ is neither listed nor writable', async () => {
    const dir = await tempDir()
    try {
      const s = createLocalStorage(dir)
      await s.put('chunks/ab/abcd', Buffer.from('data'))
      assert.ok((await stat(join(dir, 'chunks', 'ab', 'abcd'))).isFile())
      await writeFile(join(dir, 'tmp', 'leftover-from-a-crash'), 'partial')
      assert.deepEqual(await collect(s.list('')), ['chunks/ab/abcd'])
      assert.deepEqual(await collect(s.list('tmp/')), [])
      assert.deepEqual(await collect(s.list('tmp')), [])
      await assert.rejects(s.put('tmp/x', Buffer.from('x')), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_ARGS')
      await assert.rejects(s.get('tmp'), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_ARGS')
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('list skips what Sluice never writes: odd names and symlinks', async () => {
    const dir = await tempDir()
    try {
      const s = createLocalStorage(dir)
      await s.put('snapshots/one', Buffer.from('1'))
      await writeFile(join(dir, 'snapshots', 'with space'), 'x')
      await writeFile(join(dir, 'snapshots', Buffer.from('caf\xe9', 'latin1').toString('latin1')), 'x')
      await symlink('/etc/passwd', join(dir, 'snapshots', 'link'))
      assert.deepEqual(await collect(s.list('snapshots/')), ['snapshots/one'])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('keys cannot escape the directory', async () => {
    const parent = await tempDir()
    try {
      const dir = join(parent, 'repo')
      await mkdir(dir)
      const s = createLocalStorage(dir)
      for (const bad of ['../outside', 'a/../../outside', '/etc/passwd', './x']) {
        await assert.rejects(s.put(bad, Buffer.from('x')), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_ARGS')
      }
      assert.deepEqual((await readdir(parent)).sort(), ['repo'])
    } finally {
      await rm(parent, { recursive: true, force: true })
    }
  })

  test('a file where a directory is needed is ERR_STORAGE with the cause kept', async () => {
    const dir = await tempDir()
    try {
      const s = createLocalStorage(dir)
      await s.put('a', Buffer.from('file'))
      await assert.rejects(s.put('a/b', Buffer.from('x')), (e: unknown) => {
        assert.ok(e instanceof SluiceError)
        assert.equal(e.code, 'ERR_STORAGE')
        assert.match(e.message, /a\/b/)
        assert.ok(e.cause)
        return true
      })
      // Reads under it are simply absent.
      await assert.rejects(s.get('a/b'), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_NOT_FOUND')
      assert.equal(await s.has('a/b'), false)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('a storage root that is a file gives ERR_STORAGE on put, ERR_NOT_FOUND on get', async () => {
    const dir = await tempDir()
    try {
      const file = join(dir, 'not-a-dir')
      await writeFile(file, 'x')
      const s = createLocalStorage(file)
      await assert.rejects(s.put('config', Buffer.from('x')), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_STORAGE')
      await assert.rejects(s.get('config'), (e: unknown) => e instanceof SluiceError && e.code === 'ERR_NOT_FOUND')
      assert.deepEqual(await collect(s.list('')), [])
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })

  test('describe is the absolute directory', async () => {
    const s = createLocalStorage('relative/repo')
    assert.equal(s.describe(), join(process.cwd(), 'relative/repo'))
  })
})
