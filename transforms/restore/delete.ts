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
 * with everything below it (fs.rm, which does not follow symlinks). A snapshot whose records are
 * not in canonical order (from a tar or stdin source) stops the restore with ERR_ARGS at the
 * first record out of order, before anything is removed for it. With `dryRun`, `onRemove` is called and nothing is
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
  const stack: Frame[] = [{ path: Buffer.alloc(0), names: listing(Buffer.alloc(0)), at: 0 }]
  let prev: Buffer | undefined
  for await (const item of source) {
    if (item.kind === 'record') {
      const p = item.entry.path
      const parent = parentPath(p)
      // Checked before anything is removed for this record.
      if ((prev && comparePaths(prev, p) >= 0) || !stack.some(f => f.path.equals(parent))) {
        throw new SluiceError('ERR_ARGS', `--delete needs a snapshot in canonical order (a walked one); "${displayPath(p)}" comes out of order`)
      }
      prev = p
      while (stack.length > 1 && !isUnder(parent, stack[stack.length - 1]!.path)) sweep(stack.pop()!)
      const top = stack[stack.length - 1]!
      const name = p.subarray(parent.length === 0 ? 0 : parent.length + 1)
      sweep(top, name)
      if (top.at < top.names.length && top.names[top.at]!.equals(name)) top.at++
      if (item.entry.type === 'dir' && !item.entry.hardlinkTo) stack.push({ path: p, names: listing(p), at: 0 })
    }
    yield item
  }
  while (stack.length > 0) sweep(stack.pop()!)
}
