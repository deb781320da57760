/**
 * A tar stream of many small entries for the `--tar` benchmarks, generated as it is written, so
 * the source of a 10M-entry backup takes no disk: `node --import tsx bench/gen-tar.ts ENTRIES
 * [PER_DIR] [SEED] | sluice backup --tar --stdin-filename t`. Directories of PER_DIR (default
 * 1000) files each, in canonical order; each file holds 0-64 bytes of text unique to it (so
 * every file is content of its own, as in the tree benchmarks). Each member is a plain ustar
 * header (and one block of content when not empty): about 1 KiB a file, ~10 GB for 10M
 * entries, at a few hundred MB/s, well above the backup it feeds. The same arguments give the
 * same bytes.
 */
const entries = Number(process.argv[2] ?? '100000')
const perDir = Number(process.argv[3] ?? '1000')
const seed = Number(process.argv[4] ?? '42')
if (!(entries > 0) || !(perDir > 0)) {
  process.stderr.write('usage: gen-tar.ts ENTRIES [PER_DIR] [SEED]\n')
  process.exit(2)
}

const BLOCK = 512
const MTIME = 1_700_000_000
/** A ustar header with everything but name, mode, size, typeflag and checksum filled in. */
const TEMPLATE = Buffer.alloc(BLOCK)
TEMPLATE.write('0001750\0', 108, 'latin1') // uid 1000
TEMPLATE.write('0001750\0', 116, 'latin1') // gid 1000
TEMPLATE.write(MTIME.toString(8).padStart(11, '0') + '\0', 136, 'latin1')
TEMPLATE.write('ustar\0' + '00', 257, 'latin1')
TEMPLATE.write('bench', 265, 'latin1')
TEMPLATE.write('bench', 297, 'latin1')

function header(out: Buffer, at: number, name: string, dir: boolean, size: number): void {
  TEMPLATE.copy(out, at)
  out.write(name, at, 100, 'latin1')
  out.write(dir ? '0000755\0' : '0000644\0', at + 100, 'latin1')
  out.write(size.toString(8).padStart(11, '0') + '\0', at + 124, 'latin1')
  out[at + 156] = dir ? 0x35 : 0x30
  out.fill(0x20, at + 148, at + 156)
  let sum = 0
  for (let i = at; i < at + BLOCK; i++) sum += out[i]!
  out.write(sum.toString(8).padStart(6, '0') + '\0 ', at + 148, 'latin1')
}

// mulberry32: the sizes and the text depend on the seed only.
let a = seed >>> 0
const rnd = (): number => {
  a = (a + 0x6d2b79f5) >>> 0
  let t = Math.imul(a ^ (a >>> 15), a | 1)
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296
}

const BATCH = 1 << 20
let buf = Buffer.alloc(BATCH + 4 * BLOCK)
let len = 0
let i = 0
let dirs = 0

function fill(): void {
  while (i < entries && len < BATCH) {
    if (i % perDir === 0) {
      header(buf, len, `d${String(dirs++).padStart(6, '0')}/`, true, 0)
      len += BLOCK
    }
    const name = `d${String(dirs - 1).padStart(6, '0')}/f-${String(i).padStart(8, '0')}.txt`
    const size = Math.floor(rnd() * 65)
    header(buf, len, name, false, size)
    len += BLOCK
    if (size > 0) {
      buf.fill(0, len, len + BLOCK)
      buf.write(`${i} ${seed} ${name}\n`.repeat(3), len, size, 'latin1')
      len += BLOCK
    }
    i++
  }
}

function write(): void {
  for (;;) {
    fill()
    if (len === 0) {
      // End of archive: two zero blocks.
      process.stdout.end(Buffer.alloc(2 * BLOCK))
      return
    }
    const out = buf.subarray(0, len)
    buf = Buffer.alloc(BATCH + 4 * BLOCK)
    len = 0
    if (!process.stdout.write(out)) {
      process.stdout.once('drain', write)
      return
    }
  }
}
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0)
  throw err
})
write()
