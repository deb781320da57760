/**
 * check(): every snapshot's metadata decodes and every chunk it names exists; with readData,
 * every stored chunk decrypts and hashes to its id. Each problem is one message that starts
 * with its code (`ERR_CORRUPT: chunk ... failed authentication`); a snapshot whose records
 * break the rules read-snapshot enforces (unsafe paths, sizes that disagree with their extents,
 * a tree that repeats itself) is one problem, named.
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

/** The code of a failure; one without (a bug, a library's bare error) is ERR_INTERNAL. */
function codeOf(err: unknown): string {
  return err instanceof SluiceError ? err.code : 'ERR_INTERNAL'
}

export interface CheckOptions {
  repo: Repository
  /** Also decrypt every chunk and verify its id. */
  readData?: boolean
  /** Each problem found, as it is found: `ERR_CODE: what`. */
  onProblem: (message: string) => void
  onProgress?: (what: string) => void
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
  const problem = (m: string) => {
    problems++
    opts.onProblem(m)
  }
  const seen = new Lru<string, boolean>(KNOWN_IDS_CACHE)
  const exists = async (id: Buffer): Promise<boolean> => {
    const k = hex(id)
    const cached = seen.get(k)
    if (cached !== undefined) return cached
    const ok = await repo.hasChunk(id)
    seen.set(k, ok)
    if (!ok) problem(`ERR_MISSING: chunk ${k} is missing`)
    return ok
  }
  let snapshots = 0
  // An unreadable snapshot is a problem; the others are still checked.
  const unreadable = (id: string, err: SluiceError) => problem(`${err.code}: snapshot ${id} cannot be read: ${err.message}`)
  for await (const { id, snap } of repo.snapshots(unreadable)) {
    snapshots++
    opts.onProgress?.(`snapshot ${id.slice(0, 8)}`)
    try {
      let current: EntryMeta | undefined
      for await (const item of snapshotRecords(repo, treeOf(snap)) as AsyncIterable<RecordItem | ExtentsItem>) {
        if (item.kind === 'record') current = item.entry
        for (const e of item.extents) {
          if (!(await exists(e.id)) && current) problem(`ERR_MISSING: snapshot ${id.slice(0, 8)}: ${displayPath(current.path)} needs missing chunk ${hex(e.id)}`)
        }
      }
    } catch (err) {
      problem(`${codeOf(err)}: snapshot ${id.slice(0, 8)}: metadata cannot be read: ${(err as Error).message ?? String(err)}`)
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
        if (!repo.chunkId(plain).equals(id)) problem(`ERR_CORRUPT: chunk ${hex(id)} does not hash to its id`)
      } catch (err) {
        problem(`${codeOf(err)}: ${(err as Error).message ?? String(err)}`)
      }
    }
  }
  // Temp files of killed writers are no damage: reported, left for the next backup to remove.
  const leftovers = await repo.leftovers(false)
  return { problems, snapshots, chunks, leftovers }
}

