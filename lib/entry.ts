/**
 * The one entry shape shared by every source (walk, tar, stdin), the metadata record stream,
 * and every restore sink (directory, tar, stdout). Contracts only; no I/O here.
 */
import type { ChunkSlot } from './chunk-arena.js'

export type EntryType = 'file' | 'dir' | 'symlink' | 'fifo' | 'char' | 'block' | 'socket'

/** One extended attribute. Names are bytes too (Linux allows any byte but NUL). */
export interface Xattr {
  name: Buffer
  value: Buffer
}

/** A byte range of a stored chunk that holds part of a file's content, in file order; or a
 *  hole of a sparse file (`isHole`: id HOLE_ID, offset 0), `length` zero bytes stored nowhere. */
export interface Extent {
  /** Chunk id: keyed BLAKE2b-256 of the chunk's plaintext. */
  id: Buffer
  /** Offset of the range inside the chunk's plaintext. */
  offset: number
  length: number
}

/** The id of a hole extent: 32 zero bytes, which no keyed hash is expected to give. */
export const HOLE_ID: Buffer = Buffer.alloc(32)

/** True for a hole extent (no chunk: `length` zero bytes, a hole where the filesystem has them). */
export function isHole(e: { id: Uint8Array }): boolean {
  return e.id[0] === 0 && HOLE_ID.equals(e.id)
}

/** A hole in a file's content, as a source yields it between its data pieces: `hole` bytes of
 *  zeros that the filesystem does not store (found with SEEK_HOLE, or a sparse tar member). It
 *  is an empty Uint8Array, so content stays an iterable of Uint8Array: the chunker (the one
 *  consumer that records content) tells it apart with `instanceof Hole`. */
export class Hole extends Uint8Array {
  constructor(readonly hole: number) {
    super(0)
  }
}

/** What a snapshot records about one entry. Everything a restore needs but the content. */
export interface EntryMeta {
  /** Snapshot path: raw bytes, '/'-separated, relative (no leading slash), no '.' or '..'. */
  path: Buffer
  type: EntryType
  /** Permission bits including setuid, setgid and sticky (mode & 0o7777). */
  mode: number
  uid: number
  gid: number
  /** Owner and group names, when known: restore maps by number (as tar --numeric-owner). */
  user?: string
  group?: string
  /** Size from lstat (files); the content is what the extents hold. */
  size: number
  /** Times as seconds since the epoch and nanoseconds (0..999999999). */
  mtimeSec: number
  mtimeNsec: number
  ctimeSec: number
  ctimeNsec: number
  /** Inode, device and link count from lstat; 0 when the source has none (tar, stdin). */
  ino: number
  dev: number
  nlink: number
  /** Device number of a char or block device. */
  rdev?: number
  /** Symlink target, raw bytes. */
  linkTarget?: Buffer
  /** For the second and later links of a hardlinked file: the snapshot path of the first link,
   *  which carries the content. */
  hardlinkTo?: Buffer
  /** Extended attributes (user.* and others that could be read), sorted by name. */
  xattrs?: Xattr[]
  /** The content could not be read completely (read error, or the file shrank): the next
   *  backup must read it again instead of reusing these extents. */
  incomplete?: boolean
}

/** An entry on its way from a source into the chunker. */
export interface SourceEntry extends EntryMeta {
  kind: 'entry'
  /** For files: yields the content. Called at most once, by the chunker, when the entry's turn
   *  comes, so only entries in flight ever hold an open file. A piece is the consumer's only
   *  until it asks for the next one (or stops): sources may reuse one read buffer, so a
   *  consumer copies what it keeps (the chunker copies each piece into its chunk at once). */
  content?: () => AsyncIterable<Uint8Array>
  /** For walked entries: the absolute path on disk (raw bytes), for xattr-read and content. */
  fsPath?: Buffer
  /** Set by the merge-join with a parent snapshot: the file is unchanged and keeps these
   *  extents (followed by `ExtentsItem`s for files with more), so its content is not read. */
  reuse?: Extent[]
  /** Set by the merge-join: the parent snapshot has this path with other metadata. */
  changed?: boolean
  /** Set by the merge-join when this entry encodes to exactly the parent's record (a reused
   *  file with those extents, or a directory, symlink or device with every field unchanged,
   *  given the parent's xattrs): that record's body, which the metadata stage copies. */
  reuseRecord?: Buffer
}

/** More extents of the file just before, when they do not fit in one record. */
export interface ExtentsItem {
  kind: 'extents'
  extents: Extent[]
  /** The file's content could not be read completely, found out after its record was already
   *  written (a file spanning chunks): the same meaning as EntryMeta.incomplete, for the whole
   *  file. Such an item may carry no extents. */
  incomplete?: boolean
}

/** Metadata of an entry with (the first of) its extents, as stored in the record stream. */
export interface RecordItem {
  kind: 'record'
  entry: EntryMeta
  /** Files only: the file's first extents; more may follow as `ExtentsItem`s. */
  extents: Extent[]
  /** The record's body as RecordEncoder.entry writes it for `entry` and `extents`, when known
   *  already (a reused file's parent record, lib/repo/record.ts `raw`): copied, not encoded. */
  raw?: Buffer
}

/** A chunk of content or metadata, cut and identified, on its way to storage. */
export interface ChunkItem {
  kind: 'chunk'
  id: Buffer
  /** Plaintext, then compressed, then sealed, as it passes the stages. */
  data: Uint8Array
  /** Plaintext length. */
  size: number
  /** True for chunks of the metadata stream and the id tree. */
  meta: boolean
  /** Set by compress: 0 = stored, 1 = zstd. */
  compression?: number
  /** The arena region `data` lives in (lib/chunk-arena.ts), when the chunker or the metadata
   *  stage was given an arena:
   *  seal compresses and encrypts in place there, and the stage where the chunk ends (upload,
   *  or dedup when it is already stored) releases it. `data` must not be used after that. */
  slot?: ChunkSlot
}

/** The last item of a backup stream: where the metadata tree starts. Emitted after every chunk
 *  it depends on, and passed on by upload only once all of those are stored. */
export interface TreeItem {
  kind: 'tree'
  root: Buffer
  depth: number
}

export type BackupItem = SourceEntry | ExtentsItem | RecordItem | ChunkItem | TreeItem

/** Restore side: an entry read from a snapshot, followed (for files) by its content. */
export interface DataItem {
  kind: 'data'
  data: Uint8Array
  /** Restore's download: call once `data` is written (or copied) and no longer needed, so its
   *  memory is reused (transforms/restore/chunk-pool.ts). A sink that never calls it is correct,
   *  only slower. */
  done?: () => void
}
/** Restore side: a hole of the file's content (a hole extent), `length` zero bytes. */
export interface HoleItem {
  kind: 'hole'
  length: number
}
export type RestoreItem = RecordItem | ExtentsItem | DataItem | HoleItem
