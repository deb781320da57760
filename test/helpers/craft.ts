/**
 * Crafted snapshots, as a host holding the repository's key could write them: metadata chunks,
 * tree nodes and snapshot roots built with the library's own encoders, so a test can give a
 * reader exactly the bytes an attacker would.
 */
import type { EntryMeta, Extent } from '../../lib/entry.js'
import { hex } from '../../lib/bytes.js'
import { newStats } from '../../lib/stats.js'
import { COMPRESSION_NONE, encodeTreeNode, sealChunk } from '../../lib/repo/objects.js'
import { encodeEntry, encodeExtentsRecord } from '../../lib/repo/record.js'
import { FORMAT_VERSION, type Repository } from '../../lib/repo/repository.js'

/** Stores `data` as a chunk (metadata or content) and returns its id. */
export async function putChunk(repo: Repository, data: Uint8Array): Promise<Buffer> {
  const id = repo.chunkId(data)
  await repo.putChunk(id, sealChunk(repo.keys.encKey, id, COMPRESSION_NONE, data))
  return id
}

/** An entry with defaults for what does not matter. */
export function meta(path: string | Buffer, type: EntryMeta['type'], extra: Partial<EntryMeta> = {}): EntryMeta {
  return {
    path: Buffer.from(path), type, mode: type === 'dir' ? 0o755 : 0o644, uid: 0, gid: 0, size: 0,
    mtimeSec: 1_700_000_000, mtimeNsec: 0, ctimeSec: 1_700_000_000, ctimeNsec: 0, ino: 0, dev: 0, nlink: 1, ...extra,
  }
}

/** One record of a crafted stream: an entry with its first extents, or more extents. */
export type CraftRecord = { entry: EntryMeta; extents?: Extent[] } | { extents: Extent[]; incomplete?: boolean }

export function encodeRecords(records: CraftRecord[]): Buffer {
  return Buffer.concat(records.map(r => ('entry' in r ? encodeEntry(r.entry, r.extents ?? []) : encodeExtentsRecord(r.extents, r.incomplete))))
}

/** Saves a snapshot root over a tree (root id, depth) and returns its id. */
export async function saveRoot(repo: Repository, root: Buffer, depth: number): Promise<string> {
  return repo.saveSnapshot({
    version: FORMAT_VERSION, time: new Date().toISOString(), host: 'crafted', username: 'mallory', paths: ['/crafted'],
    tags: [], tree: { root: hex(root), depth }, stats: newStats(), program: 'test',
  })
}

/** A snapshot of the given records (or raw record stream bytes): one metadata chunk under one
 *  tree node (depth 1). */
export async function craftSnapshot(repo: Repository, records: CraftRecord[] | Buffer): Promise<string> {
  const leaf = await putChunk(repo, Buffer.isBuffer(records) ? records : encodeRecords(records))
  return saveRoot(repo, await putChunk(repo, encodeTreeNode([leaf])), 1)
}

/** A snapshot whose tree has `depth` levels, each node naming the one node below it `fanout`
 *  times: fanout^depth visits of one small metadata chunk, for a few hundred bytes stored. */
export async function craftFanOut(repo: Repository, records: CraftRecord[], depth: number, fanout: number): Promise<string> {
  let id = await putChunk(repo, encodeRecords(records))
  for (let d = 0; d < depth; d++) id = await putChunk(repo, encodeTreeNode(Array.from({ length: fanout }, () => id)))
  return saveRoot(repo, id, depth)
}
