#!/usr/bin/env node
// A plain `node` script that backs up with the library (dist/index.js), no CLI: the memory a
// library user gets. Run `npm run build` first, then compare its peak with the CLI's:
//   /usr/bin/time -f %M node bench/library-backup.mjs REPO_DIR PATH...
// The repository is created (password $SLUICE_PASSWORD, default "bench") when REPO_DIR has none.
import { backup, createLocalStorage, initRepository, openRepository } from '../dist/index.js'

const [dir, ...paths] = process.argv.slice(2)
if (!dir || paths.length === 0) {
  process.stderr.write('usage: node bench/library-backup.mjs REPO_DIR PATH...\n')
  process.exit(2)
}
const pw = process.env.SLUICE_PASSWORD ?? 'bench'
const storage = createLocalStorage(dir)
const repo = (await storage.has('config')) ? await openRepository(storage, pw) : await initRepository(storage, pw)
const started = Date.now()
const { snapshotId, stats } = await backup({ repo, paths, onWarning: e => process.stderr.write(`warning: ${e.message}\n`) })
await repo.close()
const s = ((Date.now() - started) / 1000).toFixed(2)
process.stdout.write(`snapshot ${snapshotId.slice(0, 8)}: ${stats.files} files in ${s} s, peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(1)} MB\n`)
