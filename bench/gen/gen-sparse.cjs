#!/usr/bin/env node
'use strict';
// gen-sparse.cjs [DEST] [SEED]
// Sparse files (issue 15): disk.img, 2 GiB holding 8 KiB of random data at 1 GiB (the issue's
// case), and vm.img, 4 GiB holding 64 random 1 MiB extents at seeded 1 MiB-aligned offsets (a
// thin-provisioned VM image), the rest holes. 6 GiB apparent, 64 MiB + 8 KiB of data.
// DEST defaults to ${BENCH_DIR:-/tmp/bench}/data/sparse. A sibling DEST.complete marks completion.
const fs = require('fs');
const path = require('path');
const { prng, randomStream } = require('./lib-gen.cjs');

const DEST = path.resolve(process.argv[2] || `${process.env.BENCH_DIR || '/tmp/bench'}/data/sparse`);
const SEED = parseInt(process.argv[3] || '42', 10);
if (fs.existsSync(DEST + '.complete')) { console.log(`${DEST} already complete`); process.exit(0); }
fs.rmSync(DEST, { recursive: true, force: true });
fs.mkdirSync(DEST, { recursive: true });
const t0 = Date.now();
const MiB = 1 << 20;
const rnd = randomStream(`sparse-${SEED}`);

let fd = fs.openSync(path.join(DEST, 'disk.img'), 'w');
fs.ftruncateSync(fd, 2048 * MiB);
fs.writeSync(fd, rnd(8192), 0, 8192, 1024 * MiB);
fs.closeSync(fd);

const r = prng(SEED >>> 0);
const slots = new Set();
while (slots.size < 64) slots.add(r.int(0, 4095));
fd = fs.openSync(path.join(DEST, 'vm.img'), 'w');
fs.ftruncateSync(fd, 4096 * MiB);
for (const s of [...slots].sort((a, b) => a - b)) fs.writeSync(fd, rnd(MiB), 0, MiB, s * MiB);
fs.closeSync(fd);

const summary = { dest: DEST, files: 2, bytes: 6144 * MiB, dataBytes: 64 * MiB + 8192, seed: SEED, total_s: (Date.now() - t0) / 1000 };
fs.writeFileSync(DEST + '.complete', JSON.stringify(summary) + '\n');
console.log(JSON.stringify(summary));
