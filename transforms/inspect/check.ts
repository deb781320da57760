/**
 * check(): every snapshot's metadata decodes and every chunk it names exists; with readData,
 * every stored chunk decrypts and hashes to its id.
 */
import type { EntryMeta, ExtentsItem, RecordItem } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'
import { hex, displayPath } from '../../lib/bytes.js'
import { Lru } from '../../lib/flow.js'
import { KNOWN_IDS_CACHE } from '../../lib/limits.js'
import { idFromChunkKey } from '../../lib/repo/objects.js'
import type { Repository } from '../../lib/repo/repository.js'
import type { Leftovers } from '../../lib/storage/storage.js'
import { snapshotRecords, treeOf } from '../restore/read-snapshot.js'
import { paceMemory } from '../../lib/memory.js'

export interface CheckOptions {
  repo: Repository
  /** Also decrypt every chunk and verify its id. */
  readData?: boolean
  /** Each problem found, as it is found: a message, and what it is about (for check --json). */
  onProblem: (message: string, problem: Problem) => void
  onProgress?: (what: string) => void
}

/** What a problem is about: its kind, and the object, snapshot and path where known. */
export interface Problem {
  kind: 'missing_chunk' | 'unreadable_snapshot' | 'unreadable_metadata' | 'chunk_hash_mismatch' | 'unreadable_chunk'
  /** The chunk's id. */
  object?: string
  snapshot?: string
  /** The snapshot path of the file that needs the chunk. */
  path?: string
}

/**
 * Checks that every snapshot's metadata decodes and every chunk it names exists; with
 * `readData`, that every stored chunk decrypts and hashes to its id. Streams: memory is one
 * snapshot's reader plus a capped cache of ids already seen, under the memory policy for reading
 * (lib/memory.ts).
 */
export async function check(opts: CheckOptions): Promise<{ problems: number; snapshots: number; chunks: number; leftovers: Leftovers }> {
  paceMemory('read')
  const { repo } = opts
  let problems = 0
  const problem = (m: string, p: Problem) => {
    problems++
    opts.onProblem(m, p)
  }
  const seen = new Lru<string, boolean>(KNOWN_IDS_CACHE)
  const exists = async (id: Buffer): Promise<boolean> => {
    const k = hex(id)
    const cached = seen.get(k)
    if (cached !== undefined) return cached
    const ok = await repo.hasChunk(id)
    seen.set(k, ok)
    if (!ok) problem(`chunk ${k} is missing`, { kind: 'missing_chunk', object: k })
    return ok
  }
  let snapshots = 0
  // An unreadable snapshot is a problem; the others are still checked.
  const unreadable = (id: string, err: SluiceError) => problem(`snapshot ${id} cannot be read: ${err.code}: ${err.message}`, { kind: 'unreadable_snapshot', snapshot: id })
  for await (const { id, snap } of repo.snapshots(unreadable)) {
    snapshots++
    opts.onProgress?.(`snapshot ${id.slice(0, 8)}`)
    try {
      let current: EntryMeta | undefined
      for await (const item of snapshotRecords(repo, treeOf(snap)) as AsyncIterable<RecordItem | ExtentsItem>) {
        if (item.kind === 'record') current = item.entry
        for (const e of item.extents) {
          if (!(await exists(e.id)) && current) problem(`snapshot ${id.slice(0, 8)}: ${displayPath(current.path)} needs missing chunk ${hex(e.id)}`, { kind: 'missing_chunk', object: hex(e.id), snapshot: id, path: '/' + displayPath(current.path) })
        }
      }
    } catch (err) {
      problem(`snapshot ${id.slice(0, 8)}: metadata cannot be read: ${err instanceof SluiceError ? `${err.code}: ${err.message}` : String(err)}`, { kind: 'unreadable_metadata', snapshot: id })
    }
  }
  // The stored chunks are counted either way (a listing); with readData each is also verified.
  let chunks = 0
  for await (const key of repo.storage.list('chunks/')) {
    const id = idFromChunkKey(key)
    if (!id) continue
    chunks++
    if (opts.readData) {
      try {
        const plain = await repo.loadChunk(id)
        if (!repo.chunkId(plain).equals(id)) problem(`chunk ${hex(id)} does not hash to its id`, { kind: 'chunk_hash_mismatch', object: hex(id) })
      } catch (err) {
        problem(`chunk ${hex(id)}: ${err instanceof SluiceError ? err.message : String(err)}`, { kind: 'unreadable_chunk', object: hex(id) })
      }
    }
  }
  // Temp files of killed writers are no damage: reported, left for the next backup to remove.
  const leftovers = await repo.leftovers(false)
  return { problems, snapshots, chunks, leftovers }
}

