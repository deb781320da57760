/**
 * The tar sink: writes the records and contents of a restore stream as a POSIX (pax) tar that
 * GNU tar and bsdtar extract with raw-byte names, permissions, owners, nanosecond mtimes,
 * symlinks, hardlinks, FIFOs, devices and xattrs (`SCHILY.xattr.NAME`). Headers come from
 * lib/tar.ts (tar-stream's pack() cannot carry non-UTF-8 names or nanoseconds).
 *
 * A record's `entry.size` is what its header promises, so exactly that many bytes follow it:
 * content that falls short is padded with zeros and content beyond it is dropped, each reported
 * to `onWarning`. `ExtentsItem`s are ignored. Sockets cannot be stored in a tar: skipped, with a
 * warning.
 *
 * Sparse files: a file with holes whose record holds all its extents (up to EXTENTS_PER_RECORD,
 * so the map is known before its data) becomes a GNU sparse 1.0 member (lib/tar.ts): only its
 * data is stored, and GNU tar and bsdtar extract it with its holes. A file whose extents go on
 * in extents records is written as a plain member with its holes as zeros: the map would have
 * to precede data the sink has not seen the extents of, and holding them all is unbounded.
 *
 * Memory: one header (or sparse map of at most EXTENTS_PER_RECORD regions) and the one DataItem
 * being written; content goes to the output as it comes, with backpressure, so a 10 GB file is
 * never held. If the reader of the output goes away (EPIPE), the writer stops writing and
 * swallows the rest quietly.
 */
import { Writable } from 'node:stream'
import { displayPath } from '../../../lib/bytes.js'
import { isHole, type EntryMeta, type RecordItem, type RestoreItem } from '../../../lib/entry.js'
import { SluiceError } from '../../../lib/errors.js'
import { STAGE_HWM } from '../../../lib/limits.js'
import { OutputPort } from '../../../lib/output-port.js'
import { checkSafePath } from '../read-snapshot.js'
import { TAR_BLOCK, encodeSparseMap, encodeTarHeader, tarCanHold, tarPadding, type SparseRegion } from '../../../lib/tar.js'

/** Options of {@link createTarWriter}. */
export interface TarWriterOptions {
  /** Receives per-entry trouble (content shorter or longer than the recorded size, an entry a
   *  tar cannot hold); the archive goes on. */
  onWarning?: (err: SluiceError) => void
  /** Called once if the reader of the output goes away (EPIPE): a caller can then stop the
   *  restore instead of letting the writer swallow the rest. */
  onOutputClosed?: () => void
  /** Called for each entry written as a member (for progress and the summary). */
  onEntry?: (entry: EntryMeta) => void
}

const ZEROS = Buffer.alloc(64 * 1024)
const END_OF_ARCHIVE = Buffer.alloc(2 * TAR_BLOCK)

/**
 * The data regions of a file whose record holds all of its extents (they add up to its size)
 * and at least one hole, or null: the sparse map must precede the data, and the sink does not
 * hold extents beyond the record's own (at most EXTENTS_PER_RECORD).
 */
function sparseRegions(item: RecordItem): SparseRegion[] | null {
  const e = item.entry
  if (e.type !== 'file' || e.hardlinkTo || !item.extents.some(isHole)) return null
  const regions: SparseRegion[] = []
  let pos = 0
  for (const x of item.extents) {
    if (!isHole(x)) {
      const last = regions[regions.length - 1]
      if (last && last[0] + last[1] === pos) last[1] += x.length
      else regions.push([pos, x.length])
    }
    pos += x.length
  }
  if (pos !== e.size) return null
  // A file that ends in a hole ends its map with an empty region at its end, as GNU tar writes.
  const last = regions[regions.length - 1]
  if (!last || last[0] + last[1] < pos) regions.push([pos, 0])
  return regions
}

/** Creates the tar sink over `output` (objectMode Writable of `RestoreItem`). The output is
 *  ended after the end-of-archive blocks. */
export function createTarWriter(output: Writable, opts: TarWriterOptions = {}): Writable {
  const out = new OutputPort(output, opts.onOutputClosed)
  const warn = (entry: EntryMeta, msg: string): void => opts.onWarning?.(new SluiceError('ERR_WRITE', `${displayPath(entry.path)}: ${msg}`, { path: entry.path }))

  /** The member whose content is being written, its size and the bytes still owed. */
  let cur: EntryMeta | null = null
  let size = 0
  let left = 0
  let overflow = 0
  /** The member is a sparse one: holes are not written. */
  let holes = false

  async function zeros(n: number): Promise<void> {
    while (n > 0) {
      const k = Math.min(n, ZEROS.length)
      await out.write(ZEROS.subarray(0, k))
      n -= k
    }
  }

  async function closeMember(): Promise<void> {
    if (cur === null) return
    const entry = cur
    cur = null
    holes = false
    if (left > 0) {
      warn(entry, `content is ${left} bytes shorter than the recorded size ${size}; padded with zeros`)
      await zeros(left)
    }
    if (overflow > 0) warn(entry, `content is ${overflow} bytes longer than the recorded size ${size}; truncated`)
    await zeros(tarPadding(size))
  }

  async function handle(item: RestoreItem): Promise<void> {
    if (item.kind === 'record') {
      await closeMember()
      const entry = item.entry
      if (entry.path.length === 0) return
      // Extractors trust member names: never emit one that climbs out (read-snapshot refuses
      // them already; a sink fed by other code checks too).
      checkSafePath(entry.path)
      if (entry.hardlinkTo) checkSafePath(entry.hardlinkTo)
      if (!tarCanHold(entry)) {
        warn(entry, `a ${entry.type} cannot be stored in a tar; skipped`)
        cur = entry
        size = left = overflow = 0
        return
      }
      const regions = sparseRegions(item)
      const h = encodeTarHeader(entry, regions ?? undefined)
      await out.write(h.header)
      opts.onEntry?.(entry)
      cur = entry
      size = left = h.size
      overflow = 0
      holes = regions !== null
      if (regions) {
        const map = encodeSparseMap(regions)
        await out.write(map)
        left -= map.length
      }
      return
    }
    if (cur === null) return // content with no record before it: nothing to attach it to
    if (item.kind === 'hole') {
      // A sparse member leaves holes out (its map says where they are); a plain one has zeros.
      if (holes) return
      const n = Math.min(left, item.length)
      await zeros(n)
      left -= n
      overflow += item.length - n
      return
    }
    if (item.kind !== 'data' || item.data.length === 0) return
    const n = Math.min(left, item.data.length)
    if (n > 0) await out.write(n === item.data.length ? item.data : item.data.subarray(0, n))
    left -= n
    overflow += item.data.length - n
  }

  return new Writable({
    objectMode: true,
    highWaterMark: STAGE_HWM,
    write(item: RestoreItem, _enc, done) {
      handle(item).then(() => done(), done)
    },
    final(done) {
      closeMember()
        .then(() => out.write(END_OF_ARCHIVE))
        .then(() => out.end())
        .then(() => done(), done)
    },
  })
}
