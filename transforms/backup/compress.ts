/**
 * compress: zstd each chunk, or keep it as is when zstd does not make it smaller (already
 * compressed data). Before encrypt: ciphertext does not compress. Memory: one chunk and its
 * compressed copy. zstd-napi is synchronous, so this stage runs on the main thread. backup()
 * does not use it: its seal stage compresses and encrypts in one step (seal.ts); this and
 * encrypt.ts are that step as two stages for scripts that build their own pipeline.
 */
import type { Duplex } from 'node:stream'
import type { BackupItem } from '../../lib/entry.js'
import { stage } from '../../lib/flow.js'
import { compressPayload } from '../../lib/repo/objects.js'
import { ZSTD_LEVEL } from '../../lib/limits.js'

export function createCompressor(opts: { level?: number } = {}): Duplex {
  const level = opts.level ?? ZSTD_LEVEL
  return stage<BackupItem, BackupItem>(async function* (source) {
    for await (const item of source) {
      if (item.kind === 'chunk' && item.compression === undefined) {
        const c = compressPayload(item.data, level)
        item.data = c.data
        item.compression = c.compression
      }
      yield item
    }
  })
}
