/**
 * delete: restore --delete (restic 0.17's): removes what the target holds that the snapshot (as
 * selected) does not, so that the target ends as the snapshot, like `rsync --delete`. It merges
 * the record stream, in canonical order, with the sorted listing of each target directory as
 * the stream enters it: names before the next record's name in the same directory are not in
 * the snapshot and go; a directory's remaining names go when the stream leaves it.
 *
 * Safety: only names read from a listing of a directory under the target are removed, each by
 * its full path below the target, and a listing is read only of a directory that lstat shows to
 * be a real directory (never through a symlink); a symlink is removed as a link, a directory
 * with everything below it (fs.rm, which does not follow symlinks). The merge needs canonical
 * order: restore() first reads the selected records once (metadata only) with
 * `checkCanonical`, so a snapshot out of order (from a tar or stdin source) is refused with
 * ERR_ARGS before anything is removed; the stage checks again as it goes. Directories a tar
 * stream names only as parents are entered as if recorded. With `dryRun`, `onRemove` is called and nothing is
 * removed.
 *
 * Memory: the sorted listings of the target directories on the current path (the walk's bound),
 * one record.
 */
import fs from 'node:fs'
import type { Duplex } from 'node:stream'
import type { ExtentsItem, RecordItem } from '../../lib/entry.js'
import { stage } from '../../lib/flow.js'
import { comparePaths, displayPath, isUnder, joinPath, parentPath } from '../../lib/bytes.js'
import { SluiceError, asSluiceError } from '../../lib/errors.js'

export interface DeleteOptions {
  target: string
  dryRun?: boolean
  /** Each entry removed (or, dry, that would be): its path relative to the target. */
  onRemove?: (path: Buffer, isDir: boolean) => void
}

interface Frame {
  path: Buffer
  names: Buffer[]
  at: number
}

const outOfOrder = (p: Buffer) =>
  new SluiceError('ERR_ARGS', `--delete needs a snapshot in canonical order (a walked one); "${displayPath(p)}" comes out of order`)

/** Throws ERR_ARGS unless the records come in canonical order. Memory: the previous path. */
export async function checkCanonical(source: AsyncIterable<RecordItem | ExtentsItem>): Promise<void> {
  let prev: Buffer | undefined
  for await (const item of source) {
    if (item.kind !== 'record') continue
    if (prev && comparePaths(prev, item.entry.path) >= 0) throw outOfOrder(item.entry.path)
    prev = item.entry.path
  }
}

export function createDelete(opts: DeleteOptions): Duplex {
  return stage<RecordItem | ExtentsItem, RecordItem | ExtentsItem>(source => deleteExtra(source, opts))
}

export async function* deleteExtra(source: AsyncIterable<RecordItem | ExtentsItem>, opts: DeleteOptions): AsyncIterable<RecordItem | ExtentsItem> {
  const root = Buffer.from(opts.target.replace(/\/+$/, '') || '/')
  const abs = (p: Buffer) => (p.length === 0 ? root : Buffer.concat([root, Buffer.from('/'), p]))
  const listing = (dir: Buffer): Buffer[] => {
    const st = fs.lstatSync(abs(dir), { throwIfNoEntry: false })
    if (!st || !st.isDirectory()) return []
    return (fs.readdirSync(abs(dir), { encoding: 'buffer' }) as Buffer[]).sort(Buffer.compare)
  }
  const remove = (rel: Buffer) => {
    const p = abs(rel)
    const st = fs.lstatSync(p, { throwIfNoEntry: false })
    if (!st) return
    const isDir = st.isDirectory()
    if (!opts.dryRun) {
      try {
        fs.rmSync(p, { recursive: isDir, force: true })
      } catch (err) {
        throw asSluiceError(err, 'ERR_WRITE', `cannot remove ${displayPath(p)}`)
      }
    }
    opts.onRemove?.(rel, isDir)
  }
  // Removes the names of `f` before `name` (all of them without one).
  const sweep = (f: Frame, name?: Buffer) => {
    while (f.at < f.names.length && (!name || Buffer.compare(f.names[f.at]!, name) < 0)) remove(joinPath(f.path, f.names[f.at++]!))
  }
  // Removes the names of `f` before `name`, and passes `name` itself.
  const keep = (f: Frame, name: Uint8Array) => {
    sweep(f, Buffer.from(name.buffer, name.byteOffset, name.byteLength))
    if (f.at < f.names.length && f.names[f.at]!.equals(name)) f.at++
  }
  const stack: Frame[] = [{ path: Buffer.alloc(0), names: listing(Buffer.alloc(0)), at: 0 }]
  let prev: Buffer | undefined
  for await (const item of source) {
    if (item.kind === 'record') {
      const p = item.entry.path
      const parent = parentPath(p)
      // Checked before anything is removed for this record.
      if (prev && comparePaths(prev, p) >= 0) throw outOfOrder(p)
      prev = p
      while (stack.length > 1 && !isUnder(parent, stack[stack.length - 1]!.path)) sweep(stack.pop()!)
      let top = stack[stack.length - 1]!
      // Directories the snapshot has no record of (a tar stream's implicit parents) are entered
      // as if it had.
      while (!top.path.equals(parent)) {
        const rest = parent.subarray(top.path.length === 0 ? 0 : top.path.length + 1)
        const slash = rest.indexOf(0x2f)
        const name = Buffer.from(slash < 0 ? rest : rest.subarray(0, slash))
        keep(top, name)
        const path = joinPath(top.path, name)
        stack.push((top = { path, names: listing(path), at: 0 }))
      }
      keep(top, p.subarray(parent.length === 0 ? 0 : parent.length + 1))
      if (item.entry.type === 'dir' && !item.entry.hardlinkTo) stack.push({ path: p, names: listing(p), at: 0 })
    }
    yield item
  }
  while (stack.length > 0) sweep(stack.pop()!)
}
