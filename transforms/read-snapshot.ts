/**
 * read-snapshot: the source of every restore, ls, diff and check. Walks a snapshot's metadata
 * id tree depth first, loads each metadata chunk, and decodes the records in order. Memory:
 * one tree node per level (TREE_FANOUT ids each), the metadata chunk being decoded and the
 * next one being fetched (read-ahead of one), and at most one partial record.
 */
import type { Readable } from 'node:stream'
import { Readable as R } from 'node:stream'
import type { ExtentsItem, RecordItem } from '../lib/entry.js'
import { decodeTreeNode } from '../lib/objects.js'
import { RecordDecoder } from '../lib/record.js'
import { SluiceError } from '../lib/errors.js'

/** What reading a snapshot needs of a repository: chunk plaintexts by id. */
export interface ChunkLoader {
  loadChunk(id: Uint8Array): Promise<Buffer>
}

export interface TreeRef {
  root: Buffer
  depth: number
}

/** The ids of the metadata chunks of a tree, in order. */
export async function* metadataChunkIds(loader: ChunkLoader, tree: TreeRef): AsyncIterable<Buffer> {
  if (tree.depth < 1 || tree.depth > 16) throw new SluiceError('ERR_CORRUPT', `metadata tree depth ${tree.depth} is out of range`)
  async function* walk(id: Buffer, depth: number): AsyncIterable<Buffer> {
    const ids = decodeTreeNode(await loader.loadChunk(id))
    if (depth === 1) yield* ids
    else for (const child of ids) yield* walk(child, depth - 1)
  }
  yield* walk(tree.root, tree.depth)
}

/** Every record of a snapshot, in stored order. `onChunk` sees each metadata chunk id (for check). */
export async function* snapshotRecords(
  loader: ChunkLoader,
  tree: TreeRef,
  onChunk?: (id: Buffer) => void,
): AsyncIterable<RecordItem | ExtentsItem> {
  const decoder = new RecordDecoder()
  const ids = metadataChunkIds(loader, tree)[Symbol.asyncIterator]()
  const fetchNext = async (): Promise<Buffer | undefined> => {
    const r = await ids.next()
    if (r.done) return undefined
    onChunk?.(r.value)
    return loader.loadChunk(r.value)
  }
  let current = fetchNext()
  for (;;) {
    const data = await current
    if (!data) break
    current = fetchNext() // read-ahead of one chunk while this one is decoded
    current.catch(() => {})
    for (const rec of decoder.push(data)) yield rec
  }
  decoder.end()
}

export function createSnapshotReader(loader: ChunkLoader, tree: TreeRef): Readable {
  return R.from(snapshotRecords(loader, tree), { objectMode: true, highWaterMark: 16 })
}
