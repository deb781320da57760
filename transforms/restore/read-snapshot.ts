/**
 * read-snapshot: the source of every restore, ls, diff, check and incremental backup. Walks a
 * snapshot's metadata id tree depth first, loads each metadata chunk, and decodes the records
 * in order. Memory: one tree node per level (TREE_FANOUT ids each), the metadata chunk being
 * decoded and the next one being fetched (read-ahead of one), and at most one partial record;
 * a fork of the cursor (parent-join's look-ahead) adds as much again while it lives; and the
 * 8-byte prefixes of the tree's object ids seen so far (at most META_TREE_OBJECTS_MAX).
 *
 * Nothing a snapshot says is trusted (a repository shared between hosts: one of them may write
 * crafted snapshots). The walk refuses, with ERR_CORRUPT: a tree that names its objects over and
 * over (an honest tree names each once, unless a tar stream repeats whole runs of members; a
 * crafted one could fan out into itself and run for ever), so the work stays within
 * META_TREE_REPEATS times the stored metadata; a file whose extents do not add up to its size
 * (more at once, fewer when its records end: a backup pads a file that shrank or failed to read
 * with zeros, so an honest file's extents always hold its size); extents on an entry that is not
 * a content-carrying file. With ERR_UNSAFE_PATH: a path or hardlink target that is absolute,
 * empty, or has an empty, '.' or '..' component or a NUL byte. docs/FORMAT.md lists the rules.
 */
import type { Readable } from 'node:stream'
import { Readable as R } from 'node:stream'
import type { EntryMeta, ExtentsItem, RecordItem } from '../../lib/entry.js'
import { decodeTreeNode } from '../../lib/repo/objects.js'
import { RecordDecoder } from '../../lib/repo/record.js'
import { SluiceError } from '../../lib/errors.js'
import { displayPath, hex } from '../../lib/bytes.js'
import { META_TREE_OBJECTS_MAX, META_TREE_REPEATS } from '../../lib/limits.js'
import type { ChunkMemory, SnapshotRoot } from '../../lib/repo/repository.js'

/** Throws ERR_UNSAFE_PATH unless `p` is a relative path of plain components. */
export function checkSafePath(p: Buffer): void {
  const bad = (why: string) => new SluiceError('ERR_UNSAFE_PATH', `snapshot names an unsafe path "${displayPath(p)}" (${why}); refusing to restore`)
  if (p.length === 0) throw bad('empty')
  if (p[0] === 0x2f) throw bad('absolute')
  if (p.includes(0)) throw bad('NUL byte')
  // Component by component, without a Buffer for each (every record of every snapshot read).
  for (let start = 0, i = 0; i <= p.length; i++) {
    if (i < p.length && p[i] !== 0x2f) continue
    const len = i - start
    if (len === 0) throw bad('empty component')
    if (len === 1 && p[start] === 0x2e) throw bad("'.' component")
    if (len === 2 && p[start] === 0x2e && p[start + 1] === 0x2e) throw bad("'..' component")
    start = i + 1
  }
}

function corrupt(msg: string): SluiceError {
  return new SluiceError('ERR_CORRUPT', `snapshot metadata: ${msg}`)
}

/**
 * The rules every record of a snapshot must keep, checked in stream order (state: the file
 * whose records are being read). A size that the extents do not add up to would make a restore
 * write more (or, by a truncate, far more) than the snapshot stores.
 */
class RecordRules {
  private file: { path: Buffer; size: number; sum: number } | null = null
  private entries = 0

  clone(): RecordRules {
    const c = new RecordRules()
    c.file = this.file && { ...this.file }
    c.entries = this.entries
    return c
  }

  check(item: RecordItem | ExtentsItem): void {
    if (item.kind === 'extents') {
      if (this.entries === 0) throw corrupt('an extents record comes before any entry')
      this.add(item.extents, null)
      return
    }
    this.end()
    this.entries++
    const e = item.entry
    checkSafePath(e.path)
    if (e.hardlinkTo) checkSafePath(e.hardlinkTo)
    if (!Number.isSafeInteger(e.size) || e.size < 0) throw corrupt(`${displayPath(e.path)} has size ${e.size}`)
    this.file = e.type === 'file' && !e.hardlinkTo ? { path: e.path, size: e.size, sum: 0 } : null
    this.add(item.extents, e)
  }

  private add(extents: readonly { id: Buffer; length: number }[], e: EntryMeta | null): void {
    if (extents.length === 0) return
    const f = this.file
    if (!f) throw corrupt(e ? `${displayPath(e.path)} is a ${e.hardlinkTo ? 'hardlink' : e.type} but has extents` : 'extents follow an entry that has no content')
    for (const x of extents) f.sum += x.length
    if (f.sum > f.size) throw corrupt(`${displayPath(f.path)} records size ${f.size} but its extents hold more (${f.sum} bytes so far, last chunk ${hex(extents[extents.length - 1]!.id)})`)
  }

  /** At the next entry record and at the end of the stream. */
  end(): void {
    const f = this.file
    this.file = null
    if (f && f.sum !== f.size) throw corrupt(`${displayPath(f.path)} records size ${f.size} but its extents hold ${f.sum} bytes`)
  }
}

/** What reading a snapshot needs of a repository: chunk plaintexts by id. */
export interface ChunkLoader {
  /** With `pool`, the plaintext may lie in the pool's memory (restore's download gives it back). */
  loadChunk(id: Uint8Array, pool?: ChunkMemory): Promise<Buffer>
}

export interface TreeRef {
  root: Buffer
  depth: number
}

/** The tree a snapshot root names. */
export function treeOf(snap: Pick<SnapshotRoot, 'tree'>): TreeRef {
  const t = snap.tree as Partial<SnapshotRoot['tree']> | undefined
  if (typeof t?.root !== 'string' || !/^[0-9a-f]{64}$/.test(t.root) || !Number.isInteger(t.depth)) {
    throw new SluiceError('ERR_CORRUPT', 'snapshot root names no valid metadata tree')
  }
  return { root: Buffer.from(t.root, 'hex'), depth: t.depth! }
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
 * extent records with it). Memory: one tree node per level, the current metadata chunk (its
 * records decoded one at a time, as they are taken), the next chunk being fetched (read-ahead of
 * one), at most one partial record.
 * A fork shares all of that with its original until they part, then loads its own chunks.
 */
export class SnapshotCursor implements AsyncIterableIterator<RecordItem | ExtentsItem> {
  /** The decoder holds a metadata chunk whose records are not all taken (decoded one at a time,
   *  as they are asked for: RecordDecoder.next). */
  private fed = false
  /** The next chunk: undefined before the first read, null once the tree is exhausted. */
  private ahead: Promise<Step | null> | undefined
  private ended = false
  /** Visits of tree objects already seen (see visit()). */
  private repeats = 0

  /** @internal Use snapshotRecords(). */
  constructor(
    private readonly loader: ChunkLoader,
    private pos: TreePos,
    private decoder: RecordDecoder,
    private rules: RecordRules,
    /** 8-byte prefixes of the tree objects loaded so far; null for a fork (its original loads
     *  the same objects and checks them). */
    private readonly seen: Set<string> | null,
    private readonly onChunk?: (id: Buffer) => void,
  ) {}

  [Symbol.asyncIterator](): this {
    return this
  }

  /** The next record when its chunk is loaded (no promise made), or undefined: then next(). */
  take(): RecordItem | ExtentsItem | undefined {
    if (!this.fed) return undefined
    const item = this.decoder.next()
    if (item === undefined) {
      this.fed = false
      return undefined
    }
    this.rules.check(item)
    return item
  }

  async next(): Promise<IteratorResult<RecordItem | ExtentsItem, undefined>> {
    for (;;) {
      const item = this.take()
      if (item !== undefined) return { done: false, value: item }
      if (this.ended) return { done: true, value: undefined }
      this.ahead ??= this.fetch(this.pos) // invariant: `ahead` is the step after `pos`
      const step = await this.ahead
      if (!step) {
        this.ended = true
        this.ahead = Promise.resolve(null)
        this.decoder.end()
        this.rules.end()
        continue
      }
      this.pos = step.pos
      this.ahead = this.fetch(step.pos) // read-ahead of one chunk while this one is decoded
      this.ahead.catch(() => {})
      this.decoder.feed(step.data)
      this.fed = true
    }
  }

  async return(): Promise<IteratorResult<RecordItem | ExtentsItem, undefined>> {
    this.ended = true
    this.fed = false
    this.ahead = Promise.resolve(null)
    return { done: true, value: undefined }
  }

  /** A cursor at the same place that goes on independently (and reports no chunks). */
  fork(): SnapshotCursor {
    const copy = new SnapshotCursor(this.loader, this.pos, this.decoder.clone(), this.rules.clone(), null)
    copy.fed = this.fed
    copy.ended = this.ended
    if (this.ahead) copy.ahead = this.ahead
    return copy
  }

  /** Counts a visit of a tree object: repeats beyond META_TREE_REPEATS per distinct object, or
   *  more distinct objects than META_TREE_OBJECTS_MAX, refuse the tree. */
  private visit(id: Buffer): void {
    if (!this.seen) return
    const key = id.toString('latin1', 0, 8)
    if (this.seen.has(key)) {
      if (++this.repeats > META_TREE_REPEATS * this.seen.size) throw corrupt(`the metadata tree names its objects over and over (chunk ${hex(id)} again)`)
      return
    }
    if (this.seen.size >= META_TREE_OBJECTS_MAX) throw corrupt(`the metadata tree has more than ${META_TREE_OBJECTS_MAX} objects`)
    this.seen.add(key)
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
      this.visit(id)
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
 *  metadata chunk as it is loaded (prune's mark). With `keepRaw`, entry records stored exactly
 *  as RecordEncoder writes them carry their body (`raw`, lib/repo/record.ts), a view that keeps
 *  its metadata chunk's plaintext alive while the record lives (parent-join). */
export function snapshotRecords(loader: ChunkLoader, tree: TreeRef, onChunk?: (id: Buffer) => void, keepRaw = false): SnapshotCursor {
  checkDepth(tree)
  // Level 0 holds the root alone; levels 1..depth are tree nodes, depth being the one that
  // names metadata chunks. All start exhausted, so the first step descends from the root.
  const pos: TreePos = [{ ids: [tree.root], i: 0 }, ...Array.from({ length: tree.depth }, () => ({ ids: [], i: 0 }))]
  return new SnapshotCursor(loader, pos, new RecordDecoder(keepRaw), new RecordRules(), new Set(), onChunk)
}

export function createSnapshotReader(loader: ChunkLoader, tree: TreeRef): Readable {
  return R.from(snapshotRecords(loader, tree), { objectMode: true, highWaterMark: 16 })
}
