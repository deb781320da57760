/**
 * createCompressor and createEncryptor, the two stages a script's own pipeline can use in place
 * of seal (the README names them; its example uses createSealer): a pipeline built from the
 * public API (walk → chunk → metadata → dedup → compress → encrypt → upload → commit) writes a
 * snapshot that restore() gives back byte for byte, that check --read-data accepts, and whose
 * compressible chunks are stored compressed.
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { pipeline } from 'node:stream/promises'
import {
  check, createChunker, createCommit, createCompressor, createDedup, createEncryptor, createLocalStorage, createMetadataPacker,
  createUploader, createWalk, initRepository, newStats, restore, type SluiceError,
} from '../../index.js'
import { COMPRESSION_NONE, COMPRESSION_ZSTD } from '../../lib/repo/objects.js'
import { compareTrees, seededBytes } from '../helpers/tree.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('compress-encrypt-task')}/t`

before(() => {
  fs.rmSync(BASE, { recursive: true, force: true })
  fs.mkdirSync(`${BASE}/src/sub`, { recursive: true })
})

test('chunk → compress → encrypt → upload, then restore: the same tree back; text stored compressed', async () => {
  const text = Array.from({ length: 30_000 }, (_, i) => `row ${i}, ${i % 7} apples and ${i % 11} pears\n`).join('')
  fs.writeFileSync(`${BASE}/src/text.txt`, text)
  fs.writeFileSync(`${BASE}/src/sub/random.bin`, seededBytes('random', 700_000))
  fs.writeFileSync(`${BASE}/src/sub/small`, 'small')
  const repo = await initRepository(createLocalStorage(`${BASE}/repo`), 'pw', { kdf: { opslimit: 1, memlimit: 8192 } })
  try {
    const keys = { gear: repo.gear, chunkId: (d: Uint8Array) => repo.chunkId(d) }
    const stats = newStats()
    const warnings: SluiceError[] = []
    let snapshotId = ''
    await pipeline(
      createWalk([`${BASE}/src`], { onWarning: (w) => warnings.push(w) }),
      createChunker(keys, { params: repo.config.chunker, onWarning: (w) => warnings.push(w), stats }),
      createMetadataPacker(keys, repo.config.metaChunker),
      createDedup(repo),
      createCompressor(),
      createEncryptor(repo.keys.encKey),
      createUploader(repo, { stats }),
      createCommit(
        (tree) =>
          repo.saveSnapshot({
            version: 1, time: new Date().toISOString(), host: 'test', username: 'me', paths: [`${BASE}/src`], tags: [],
            tree: { root: tree.root.toString('hex'), depth: tree.depth }, stats, program: 'compress-encrypt.test',
          }),
        (id) => (snapshotId = id),
      ),
    )
    assert.deepEqual(warnings, [])
    assert.match(snapshotId, /^[0-9a-f]{64}$/)
    assert.equal(stats.bytesRead, text.length + 700_000 + 5)

    // The compression byte each object records (docs/FORMAT.md): random data as is, text in zstd.
    const flags = new Set<number>()
    for (const d of fs.readdirSync(`${BASE}/repo/chunks`)) {
      for (const f of fs.readdirSync(`${BASE}/repo/chunks/${d}`)) flags.add(fs.readFileSync(`${BASE}/repo/chunks/${d}/${f}`)[1]!)
    }
    assert.ok(flags.has(COMPRESSION_ZSTD), 'no chunk stored compressed')
    assert.ok(flags.has(COMPRESSION_NONE), 'the random data was stored compressed')
    assert.ok(stats.bytesStored < text.length / 2 + 700_000 + 10_000, `stored ${stats.bytesStored}`)

    const problems: string[] = []
    await check({ repo, readData: true, onProblem: (p: string) => problems.push(p) })
    assert.deepEqual(problems, [])
    await restore({ repo, snapshot: snapshotId, target: `${BASE}/out`, onWarning: assert.fail })
    assert.deepEqual(compareTrees(`${BASE}/src`, `${BASE}/out${BASE}/src`), [])
  } finally {
    await repo.close()
  }
})
