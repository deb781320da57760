/**
 * encrypt: seals each chunk as a chunk object (XChaCha20-Poly1305, random nonce, the chunk id
 * as associated data; docs/FORMAT.md). Memory: one chunk and its sealed copy. The second half
 * of seal.ts as a stage of its own, after compress.ts (backup() uses seal.ts).
 */
import type { Duplex } from 'node:stream'
import type { BackupItem } from '../../lib/entry.js'
import { stage } from '../../lib/flow.js'
import { sealChunk, COMPRESSION_NONE } from '../../lib/repo/objects.js'

export function createEncryptor(encKey: Uint8Array): Duplex {
  return stage<BackupItem, BackupItem>(async function* (source) {
    for await (const item of source) {
      if (item.kind === 'chunk') item.data = sealChunk(encKey, item.id, item.compression ?? COMPRESSION_NONE, item.data)
      yield item
    }
  })
}
