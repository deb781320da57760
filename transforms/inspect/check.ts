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
import { hasChunkOrFossil } from '../../lib/repo/fossils.js'
import type { Repository } from '../../lib/repo/repository.js'
import { snapshotRecords, treeOf } from '../restore/read-snapshot.js'

export interface CheckOptions {
  repo: Repository
  /** Also decrypt every chunk and verify its id. */
  readData?: boolean
  /** Each problem found, as it is found. */
  onProblem: (message: string) => void
  onProgress?: (what: string) => void
}

/**
 * Checks that every snapshot's metadata decodes and every chunk it names exists; with
 * `readData`, that every stored chunk decrypts and hashes to its id. Streams: memory is one
 * snapshot's reader plus a capped cache of ids already seen.
 */
export async function check(opts: CheckOptions): Promise<{ problems: number; snapshots: number; chunks: number }> {
  const { repo } = opts
  let problems = 0
  const problem = (m: string) => {
    problems++
    opts.onProblem(m)
  }
  const seen = new Lru<string, boolean>(KNOWN_IDS_CACHE)
  const exists = async (id: Buffer): Promise<boolean> => {
    const k = hex(id)
    const cached = seen.get(k)
    if (cached !== undefined) return cached
    // A chunk a prune moved aside still restores (lib/repo/fossils.ts).
    const ok = await hasChunkOrFossil(repo.storage, id)
    seen.set(k, ok)
    if (!ok) problem(`chunk ${k} is missing`)
    return ok
  }
  let snapshots = 0
  for await (const { id, snap } of repo.snapshots()) {
    snapshots++
    opts.onProgress?.(`snapshot ${id.slice(0, 8)}`)
    try {
      let current: EntryMeta | undefined
      for await (const item of snapshotRecords(repo, treeOf(snap)) as AsyncIterable<RecordItem | ExtentsItem>) {
        if (item.kind === 'record') current = item.entry
        for (const e of item.extents) {
          if (!(await exists(e.id)) && current) problem(`snapshot ${id.slice(0, 8)}: ${displayPath(current.path)} needs missing chunk ${hex(e.id)}`)
        }
      }
    } catch (err) {
      problem(`snapshot ${id.slice(0, 8)}: metadata cannot be read: ${err instanceof SluiceError ? `${err.code}: ${err.message}` : String(err)}`)
    }
  }
  let chunks = 0
  if (opts.readData) {
    for await (const key of repo.storage.list('chunks/')) {
      const id = idFromChunkKey(key)
      if (!id) continue
      chunks++
      try {
        const plain = await repo.loadChunk(id)
        if (!repo.chunkId(plain).equals(id)) problem(`chunk ${hex(id)} does not hash to its id`)
      } catch (err) {
        problem(`chunk ${hex(id)}: ${err instanceof SluiceError ? err.message : String(err)}`)
      }
    }
  }
  return { problems, snapshots, chunks }
}

