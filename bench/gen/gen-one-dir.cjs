#!/usr/bin/env node
'use strict';
// gen-one-dir.cjs N DEST [SEED] [MAXBYTES]
// Writes N files into ONE directory (DEST/dir): the huge-directory benchmark. Names are words
// and a number, so that neither creation nor the filesystem's listing order is the sorted
// order. Each file holds 0..MAXBYTES bytes (default 32; 0 = every file empty, which takes an
// inode but no data block: 5M files of even a few bytes would take 20 GB of 4 KiB blocks).
// A sibling DEST.complete marks completion.
const fs = require('fs');
const path = require('path');
const { prng, WORDS } = require('./lib-gen.cjs');

const N = parseInt(process.argv[2], 10);
const DEST = process.argv[3] && path.resolve(process.argv[3]);
if (!(N > 0) || !DEST) { console.error('usage: gen-one-dir.cjs N DEST [SEED] [MAXBYTES]'); process.exit(2); }
const SEED = parseInt(process.argv[4] || '42', 10);
const MAX = parseInt(process.argv[5] || '32', 10);
if (fs.existsSync(DEST + '.complete')) { console.log(`${DEST} already complete`); process.exit(0); }
fs.rmSync(DEST, { recursive: true, force: true });
const dir = path.join(DEST, 'dir');
fs.mkdirSync(dir, { recursive: true });
const r = prng(SEED);
const word = () => WORDS[r.u32() % WORDS.length].replace(/[^A-Za-z]/g, 'x');
const t0 = Date.now();
let bytes = 0;
const empty = Buffer.alloc(0);
for (let i = 0; i < N; i++) {
  const name = `${word()}-${word()}-${(r.u32() % 1e6).toString(36)}-${i}`;
  const size = MAX > 0 ? r.int(0, MAX) : 0;
  const body = size > 0 ? Buffer.from(`${i} ${name}\n`.repeat(2)).subarray(0, size) : empty;
  const fd = fs.openSync(path.join(dir, name), 'wx');
  if (body.length > 0) fs.writeSync(fd, body);
  fs.closeSync(fd);
  bytes += body.length;
  if (i % 500000 === 0 && i > 0) console.log(`${i} files, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
}
const summary = { dest: DEST, files: N, dirs: 2, bytes, seed: SEED, maxBytes: MAX, total_s: (Date.now() - t0) / 1000 };
fs.writeFileSync(DEST + '.complete', JSON.stringify(summary) + '\n');
console.log(JSON.stringify(summary));
