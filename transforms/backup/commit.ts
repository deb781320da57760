/**
 * commit: the end of a backup pipeline. Receives the TreeItem (which upload passes on only
 * after every chunk is stored) and writes the snapshot root, the one object that makes a
 * snapshot exist. Nothing is written if the pipeline fails before its end.
 */
import { Writable } from 'node:stream'
import type { BackupItem, TreeItem } from '../../lib/entry.js'
import { SluiceError } from '../../lib/errors.js'

/** Writes the snapshot root naming `tree`; returns the snapshot id. */
export type SnapshotWriter = (tree: TreeItem) => Promise<string>

export function createCommit(write: SnapshotWriter, done: (snapshotId: string) => void): Writable {
  let tree: TreeItem | undefined
  return new Writable({
    objectMode: true,
    highWaterMark: 1,
    write(item: BackupItem, _enc, cb) {
      if (item.kind === 'tree') tree = item
      else return cb(new SluiceError('ERR_ABORTED', `commit received an unexpected ${item.kind} item`))
      cb()
    },
    final(cb) {
      if (!tree) return cb(new SluiceError('ERR_ABORTED', 'the backup stream ended without a metadata tree'))
      write(tree).then(id => {
        done(id)
        cb()
      }, cb)
    },
  })
}
