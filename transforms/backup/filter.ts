/**
 * The filter stage: drops the entries that the rules exclude, and everything below an excluded
 * directory. The walk prunes excluded directories itself (its `descend` option); this stage is
 * what filters sources that cannot prune, such as a tar stream.
 *
 * Memory: the path of the last excluded directory. Entries are expected in canonical or any
 * depth-first order (a directory's contents right after it); for other orders the rules' own
 * ancestor check (`FilterRules.excludes` is true below an excluded directory) still applies.
 */
import { Transform } from 'node:stream'
import { isUnder } from '../../lib/bytes.js'
import type { BackupItem } from '../../lib/entry.js'
import type { FilterRules } from '../../lib/filter-rules.js'
import { STAGE_HWM } from '../../lib/limits.js'

/** Creates the filter stage. Items other than `kind: 'entry'` pass through unchanged. */
export function createFilter(rules: FilterRules): Transform {
  let excludedDir: Buffer | null = null
  return new Transform({
    objectMode: true,
    readableHighWaterMark: STAGE_HWM,
    writableHighWaterMark: STAGE_HWM,
    transform(item: BackupItem, _enc, done) {
      if (item.kind !== 'entry') return done(null, item)
      if (excludedDir !== null) {
        if (isUnder(item.path, excludedDir)) return done()
        excludedDir = null
      }
      let drop: boolean
      try {
        drop = rules.excludes(item)
      } catch (err) {
        return done(err as Error)
      }
      if (!drop) return done(null, item)
      if (item.type === 'dir') excludedDir = item.path
      done()
    },
  })
}
