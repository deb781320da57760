'use strict';
// The "real" benchmark tree: system directories of this machine copied into place (not
// generated), so the benchmark sees what users back up: tens of thousands of text files of
// 1-100 KB (docs, headers, Python sources), symlinks, and a few large shared libraries.
//   node gen-real-tree.cjs DEST
// Writes DEST.complete when done; the file count and bytes depend on the machine's packages,
// so BENCHMARKS.md records them with each run.
const { spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const SOURCES = ['/usr/share', '/usr/include', '/usr/lib/python3', '/usr/lib/x86_64-linux-gnu'];

const dest = process.argv[2];
if (!dest) {
  console.error('usage: gen-real-tree.cjs DEST');
  process.exit(2);
}
if (fs.existsSync(`${dest}.complete`)) process.exit(0);
fs.rmSync(dest, { recursive: true, force: true });
fs.mkdirSync(dest, { recursive: true });
for (const src of SOURCES) {
  if (!fs.existsSync(src)) continue;
  const to = path.join(dest, src.slice(1).replace(/\//g, '_'));
  // -a keeps symlinks as symlinks, modes and times; special files (sockets, fifos) are skipped.
  const r = spawnSync('cp', ['-a', src, to], { stdio: 'inherit' });
  if (r.status !== 0) console.error(`gen-real-tree: cp ${src} exited ${r.status} (partial copy kept)`);
}
// Drop what the tools treat differently (sockets, fifos, devices) so every tool sees one tree.
spawnSync('find', [dest, '(', '-type', 's', '-o', '-type', 'p', '-o', '-type', 'b', '-o', '-type', 'c', ')', '-delete']);
fs.writeFileSync(`${dest}.complete`, SOURCES.join('\n') + '\n');
