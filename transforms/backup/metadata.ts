/**
 * metadata: turns the record stream into metadata chunks, so the file list of a snapshot is
 * stored like content (chunked, deduplicated, compressed, encrypted) and never held whole.
 * Records are encoded (lib/repo/record.ts) into one byte stream cut by its own keyed FastCDC; the
 * ids of those chunks go into a tree of id-list nodes (TREE_FANOUT ids each) so the snapshot
 * root names one node. Content chunks pass through untouched; after the last item a TreeItem
 * names the root.
 *
 * Each record is encoded into this stage's RecordEncoder (no buffer per record; a reused file's
 * parent record that encoding would give again, RecordItem.raw, is copied as it is) and copied at once
 * into the open metadata chunk: a region of the chunk arena when one is given (lib/chunk-arena.ts;
 * seal and upload then work in place there and release it, as for content chunks, so a tree
 * whose metadata outweighs its content, such as one of small files with large xattrs, leaves
 * no chunk-sized garbage), else one reused buffer of params.max copied out at each cut.
 *
 * Memory: the open metadata chunk (at most params.max, in its region or the reused buffer), the
 * encoder's buffer (one record; kept up to 64 KiB), plus one partial node per tree level
 * (TREE_FANOUT × 32 bytes × depth, packed in an IdArena whose 64 KiB slabs live as long as an
 * id in them).
 */
import type { Duplex } from 'node:stream'
import type { ChunkItem, ExtentsItem, RecordItem, TreeItem } from '../../lib/entry.js'
import { Cdc, type ChunkerParams } from '../../lib/fastcdc.js'
import { RecordEncoder } from '../../lib/repo/record.js'
import { CHUNK_OBJECT_OVERHEAD, CHUNK_PLAIN_OFFSET, encodeTreeNode } from '../../lib/repo/objects.js'
import type { ChunkArena, ChunkSlot } from '../../lib/chunk-arena.js'
import type { IdHasher } from '../../lib/repo/crypto.js'
import { copyBytes } from '../../lib/native.js'
import { stage } from '../../lib/flow.js'
import { TREE_FANOUT } from '../../lib/limits.js'
import { IdArena } from '../../lib/bytes.js'
import type { ChunkerKeys } from './chunk.js'

type In = ChunkItem | RecordItem | ExtentsItem
type Out = ChunkItem | TreeItem

export interface MetadataPackerOptions {
  /** Assemble metadata chunks in this arena (the backup's, shared with the chunker) and hand
   *  them on with their slot. Without one, each chunk is a buffer of its own. */
  arena?: ChunkArena
}

export function createMetadataPacker(keys: ChunkerKeys, params: ChunkerParams, opts: MetadataPackerOptions = {}): Duplex {
  return stage<In, Out>(source => packStream(source, keys, params, opts.arena))
}

async function* packStream(source: AsyncIterable<In>, keys: ChunkerKeys, params: ChunkerParams, arena: ChunkArena | undefined): AsyncIterable<Out> {
  const cdc = new Cdc(keys.gear, params)
  // The open chunk: a region of the arena (plaintext at CHUNK_PLAIN_OFFSET, room for the sealed
  // object around it), or the reused buffer; and its length.
  let slot: ChunkSlot | null = null
  let own: Buffer | null = null
  let hasher: IdHasher | null = null
  let openLen = 0
  const encoder = new RecordEncoder()
  const levels: Buffer[][] = [[]]
  // The open nodes keep up to TREE_FANOUT ids per level: packed, not views pinning pool slabs
  // (measured: 1M files kept ~800 ids in level 0, up to 6 MB of pinned slabs).
  const kept = new IdArena()

  const metaChunk = (data: Buffer): ChunkItem => ({ kind: 'chunk', id: keys.chunkId(data), data, size: data.length, meta: true })

  /** Adds an id at `level`; a full node is written and its id goes one level up. */
  function* addId(level: number, id: Buffer): Generator<ChunkItem> {
    levels[level] ??= []
    const ids = levels[level]!
    ids.push(kept.copy(id))
    if (ids.length < TREE_FANOUT) return
    const node = metaChunk(encodeTreeNode(ids))
    levels[level] = []
    yield node
    yield* addId(level + 1, node.id)
  }

  /** Copies `piece` into the open chunk (opening one when none is). */
  const append = (piece: Uint8Array): void => {
    if (arena) {
      if (slot === null) {
        slot = arena.reserve(params.max + CHUNK_OBJECT_OVERHEAD, true)
        hasher = keys.idHasher?.() ?? null
      }
      copyBytes(slot.region, CHUNK_PLAIN_OFFSET + openLen, piece)
      hasher?.update(piece)
    } else {
      own ??= Buffer.allocUnsafeSlow(params.max)
      own.set(piece, openLen)
    }
    openLen += piece.length
  }

  function* cutMeta(): Generator<ChunkItem> {
    let chunk: ChunkItem
    if (slot !== null) {
      const data = slot.region.subarray(CHUNK_PLAIN_OFFSET, CHUNK_PLAIN_OFFSET + openLen)
      // Shared memory is not hashed directly: without a piecewise hasher, a copy is.
      const id = hasher ? hasher.digest() : keys.chunkId(Buffer.from(data))
      const cut = arena!.shrink(slot, openLen + CHUNK_OBJECT_OVERHEAD)
      arena!.handOff(cut)
      chunk = { kind: 'chunk', id, data, size: openLen, meta: true, slot: cut }
      slot = null
      hasher = null
    } else {
      chunk = metaChunk(Buffer.from(own!.subarray(0, openLen)))
    }
    openLen = 0
    cdc.reset()
    yield chunk
    yield* addId(0, chunk.id)
  }

  for await (const item of source) {
    if (item.kind === 'chunk') {
      yield item
      continue
    }
    // A view of this stage's encoder: copied into the open chunk before it encodes the next record
    // (its own encoder, so another packer in the process cannot overwrite it while this one waits).
    // A reused file's parent record, when it is what encoding would give, is copied as it is.
    const bytes = item.kind === 'extents' ? encoder.extents(item.extents, item.incomplete) : item.raw ? encoder.framed(item.raw) : encoder.entry(item.entry, item.extents)
    let pos = 0
    while (pos < bytes.length) {
      const at = cdc.next(bytes, pos)
      const end = at < 0 ? bytes.length : at
      append(bytes.subarray(pos, end))
      pos = end
      if (at >= 0) yield* cutMeta()
    }
  }
  if (openLen > 0) yield* cutMeta()
  // Close the tree bottom-up: every level with ids becomes a node, until one node remains.
  for (let level = 0; ; level++) {
    const ids = levels[level] ?? []
    const top = level === levels.length - 1
    if (top && level > 0 && ids.length === 1) {
      yield { kind: 'tree', root: ids[0]!, depth: level }
      return
    }
    const node = metaChunk(encodeTreeNode(ids))
    levels[level] = []
    yield node
    levels[level + 1] ??= []
    levels[level + 1]!.push(kept.copy(node.id))
  }
}
