#!/usr/bin/env node
'use strict';
// gen-xattr-files.cjs N [DEST] [SEED]
// The xattr-heavy benchmark tree: N small files of 100-3072 bytes (text-like content with a
// unique header line), 1000 per directory, each carrying two user xattrs of ~1.9 KB
// (user.comment and user.checksum, 1850-1950 bytes of text-like bytes each), as a tree tagged
// by a desktop indexer or a sync tool looks. The xattrs are set with `setfattr --restore`
// (package `attr`), in hex so any byte survives. Deterministic for a given SEED.
// DEST defaults to ${BENCH_DIR:-/tmp/bench}/data/xattr-files-N. A sibling DEST.complete marks
// completion (and holds a JSON summary); a finished tree is not generated again.
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const { prng, fillText, WORDS } = require('./lib-gen.cjs');

const N = parseInt(process.argv[2], 10);
if (!(N > 0)) { console.error('usage: gen-xattr-files.cjs N [DEST] [SEED]'); process.exit(2); }
const DEST = path.resolve(process.argv[3] || `${process.env.BENCH_DIR || '/tmp/bench'}/data/xattr-files-${N}`);
const SEED = parseInt(process.argv[4] || '42', 10);
const PER_DIR = 1000;
// setfattr's input is written and applied in slices of this many files, so the generator's
// memory does not grow with N.
const SLICE = 5000;
if (fs.existsSync(DEST + '.complete')) { console.log(`${DEST} already complete`); process.exit(0); }
if (process.env.NO_XATTR) { console.error('gen-xattr-files: this tree is about xattrs; setfattr (package attr) is needed'); process.exit(2); }
fs.rmSync(DEST, { recursive: true, force: true });
fs.mkdirSync(DEST, { recursive: true });

const r = prng(SEED);
const POOL = 8 << 20;
const textPool = Buffer.alloc(POOL);
fillText(textPool, 0, POOL, prng(SEED ^ 0x5eed));
const word = () => WORDS[r.u32() % WORDS.length].replace(/[^A-Za-z]/g, 'x');
const slice = (n) => { const o = r.int(0, POOL - n); return textPool.subarray(o, o + n); };

const dumpFile = DEST + '.xattrs';
let dump = [];
const flush = () => {
  if (dump.length === 0) return;
  fs.writeFileSync(dumpFile, dump.join('\n'));
  execFileSync('setfattr', [`--restore=${dumpFile}`], { cwd: DEST, stdio: 'inherit' });
  dump = [];
};

let bytes = 0;
let xattrBytes = 0;
let dir = null;
const out = Buffer.alloc(4096);
const t0 = Date.now();
for (let i = 0; i < N; i++) {
  if (i % PER_DIR === 0) {
    dir = `docs-${word()}-${String(i / PER_DIR).padStart(4, '0')}`;
    fs.mkdirSync(path.join(DEST, dir), { recursive: true });
  }
  const name = `${word()}-${word()}-${String(i).padStart(6, '0')}.txt`;
  const size = r.int(100, 3072);
  const hdr = Buffer.from(`# ${i} ${name} seed=${SEED}\n`);
  let p = hdr.copy(out, 0, 0, Math.min(hdr.length, size));
  if (p < size) { slice(size - p).copy(out, p); p = size; }
  const rel = path.join(dir, name);
  fs.writeFileSync(path.join(DEST, rel), out.subarray(0, size));
  bytes += size;
  const a = Buffer.concat([Buffer.from(`${i}:`), slice(r.int(1850, 1950))]);
  const b = Buffer.concat([Buffer.from(`${i}:`), slice(r.int(1850, 1950))]);
  xattrBytes += a.length + b.length;
  dump.push(`# file: ${rel}\nuser.comment=0x${a.toString('hex')}\nuser.checksum=0x${b.toString('hex')}\n`);
  if (dump.length >= SLICE) flush();
}
flush();
fs.rmSync(dumpFile, { force: true });
const summary = { dest: DEST, files: N, dirs: Math.ceil(N / PER_DIR), bytes, xattrs: 2 * N, xattrBytes, seed: SEED,
                  total_s: (Date.now() - t0) / 1000 };
fs.writeFileSync(DEST + '.complete', JSON.stringify(summary) + '\n');
console.log(JSON.stringify(summary));
