/**
 * read-snapshot: the source of every restore, ls, diff, check and incremental backup. Walks a
 * snapshot's metadata id tree depth first, loads each metadata chunk, and decodes the records
 * in order. Memory: one tree node per level (TREE_FANOUT ids each), the metadata chunk being
 * decoded and the next one being fetched (read-ahead of one), and at most one partial record;
 * a fork of the cursor (parent-join's look-ahead) adds as much again while it lives.
 */
import type { Readable } from 'node:stream'
import { Readable as R } from 'node:stream'
import type { ExtentsItem, RecordItem } from '../../lib/entry.js'
import { decodeTreeNode } from '../../lib/repo/objects.js'
import { RecordDecoder } from '../../lib/repo/record.js'
import { SluiceError } from '../../lib/errors.js'
import type { SnapshotRoot } from '../../lib/repo/repository.js'

/** What reading a snapshot needs of a repository: chunk plaintexts by id. */
export interface ChunkLoader {
  loadChunk(id: Uint8Array): Promise<Buffer>
}

export interface TreeRef {
  root: Buffer
  depth: number
}

/** The tree a snapshot root names. */
export function treeOf(snap: Pick<SnapshotRoot, 'tree'>): TreeRef {
  return { root: Buffer.from(snap.tree.root, 'hex'), depth: snap.tree.depth }
}

/** Where a walk of the id tree stands: per level, a node's ids and the index of the next one.
 *  Never changed in place (each step makes a new array), so cursors can share it. */
type TreePos = readonly { readonly ids: readonly Buffer[]; readonly i: number }[]

/** The next metadata chunk of a tree walk, loaded, and the position after it. */
interface Step {
  data: Buffer
  pos: TreePos
}

/**
 * The records of a snapshot, in stored order, as a cursor that can be forked: a fork reads on
 * from the same place without moving the original (parent-join looks ahead over one file's
 * extent records with it). Memory: one tree node per level, the decoded records of the current
 * metadata chunk, the next chunk being fetched (read-ahead of one), at most one partial record.
 * A fork shares all of that with its original until they part, then loads its own chunks.
 */
export class SnapshotCursor implements AsyncIterableIterator<RecordItem | ExtentsItem> {
  private batch: readonly (RecordItem | ExtentsItem)[] = []
  private at = 0
  /** The next chunk: undefined before the first read, null once the tree is exhausted. */
  private ahead: Promise<Step | null> | undefined
  private ended = false

  /** @internal Use snapshotRecords(). */
  constructor(
    private readonly loader: ChunkLoader,
    private pos: TreePos,
    private decoder: RecordDecoder,
    private readonly onChunk?: (id: Buffer) => void,
  ) {}

  [Symbol.asyncIterator](): this {
    return this
  }

  async next(): Promise<IteratorResult<RecordItem | ExtentsItem, undefined>> {
    for (;;) {
      if (this.at < this.batch.length) return { done: false, value: this.batch[this.at++]! }
      if (this.ended) return { done: true, value: undefined }
      this.ahead ??= this.fetch(this.pos) // invariant: `ahead` is the step after `pos`
      const step = await this.ahead
      if (!step) {
        this.ended = true
        this.ahead = Promise.resolve(null)
        this.decoder.end()
        continue
      }
      this.pos = step.pos
      this.ahead = this.fetch(step.pos) // read-ahead of one chunk while this one is decoded
      this.ahead.catch(() => {})
      this.batch = this.decoder.push(step.data)
      this.at = 0
    }
  }

  async return(): Promise<IteratorResult<RecordItem | ExtentsItem, undefined>> {
    this.ended = true
    this.batch = []
    this.ahead = Promise.resolve(null)
    return { done: true, value: undefined }
  }

  /** A cursor at the same place that goes on independently (and reports no chunks). */
  fork(): SnapshotCursor {
    const copy = new SnapshotCursor(this.loader, this.pos, this.decoder.clone())
    copy.batch = this.batch
    copy.at = this.at
    copy.ended = this.ended
    if (this.ahead) copy.ahead = this.ahead
    return copy
  }

  /** Walks the id tree on from `pos` to the next metadata chunk and loads it. */
  private async fetch(from: TreePos): Promise<Step | null> {
    const levels = from.slice()
    const leaf = levels.length - 1
    for (;;) {
      let d = leaf
      while (d >= 0 && levels[d]!.i >= levels[d]!.ids.length) d--
      if (d < 0) return null
      const { ids, i } = levels[d]!
      const id = ids[i]!
      levels[d] = { ids, i: i + 1 }
      if (d === leaf) {
        this.onChunk?.(id)
        return { data: await this.loader.loadChunk(id), pos: levels }
      }
      this.onChunk?.(id)
      levels[d + 1] = { ids: decodeTreeNode(await this.loader.loadChunk(id)), i: 0 }
      for (let k = d + 2; k <= leaf; k++) levels[k] = { ids: [], i: 0 }
    }
  }
}

function checkDepth(tree: TreeRef): void {
  if (tree.depth < 1 || tree.depth > 16) throw new SluiceError('ERR_CORRUPT', `metadata tree depth ${tree.depth} is out of range`)
}

/** Every record of a snapshot, in stored order. `onChunk` sees the id of each tree node and
 *  metadata chunk as it is loaded (prune's mark). */
export function snapshotRecords(loader: ChunkLoader, tree: TreeRef, onChunk?: (id: Buffer) => void): SnapshotCursor {
  checkDepth(tree)
  // Level 0 holds the root alone; levels 1..depth are tree nodes, depth being the one that
  // names metadata chunks. All start exhausted, so the first step descends from the root.
  const pos: TreePos = [{ ids: [tree.root], i: 0 }, ...Array.from({ length: tree.depth }, () => ({ ids: [], i: 0 }))]
  return new SnapshotCursor(loader, pos, new RecordDecoder(), onChunk)
}

export function createSnapshotReader(loader: ChunkLoader, tree: TreeRef): Readable {
  return R.from(snapshotRecords(loader, tree), { objectMode: true, highWaterMark: 16 })
}
