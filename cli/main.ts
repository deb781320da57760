#!/usr/bin/env node
/** The `sluice` command's entry point. V8's heap policy (lib/memory.ts) comes first, before the
 *  CLI's modules are even parsed: parsing them grows V8's young generation, which never shrinks
 *  back. No node flags are needed, so `sluice`, `node dist/cli/main.js` and a script calling
 *  backup() run under the same policy; backup(), restore() and check() apply the rest. The file
 *  pages Node's start left mapped go next (lib/memory.ts, `releaseFilePages`).
 *
 *  A budget below the default (`--memory`, $SLUICE_MEMORY) trades speed for memory, the bin's
 *  choice, never the library's: the process first replaces itself, once (same pid, descriptors,
 *  environment; native `execSelf`), by node run with LOW_MEMORY_NODE_FLAGS, which apply only
 *  when a heap is set up; SLUICE_LOW_MEMORY=1 in the environment marks the second run. Then the
 *  binary's file pages are dropped every LOW_MEMORY_RELEASE_MS (`releaseFilePagesEvery`). */
import { paceHeap, releaseFilePagesEvery } from '../lib/memory.js'
import { execSelf, releaseFilePages } from '../lib/native.js'
import { LOW_MEMORY_NODE_FLAGS, MEMORY_DEFAULT } from '../lib/limits.js'
import { parseSize } from '../lib/filter-rules.js'

const budget = memoryArg(process.argv.slice(2)) ?? process.env.SLUICE_MEMORY
const low = budget !== undefined && below(budget, MEMORY_DEFAULT)
if (low && process.env.SLUICE_LOW_MEMORY !== '1') {
  process.env.SLUICE_LOW_MEMORY = '1'
  execSelf(LOW_MEMORY_NODE_FLAGS) // returns only when it failed: then this run goes on as it is
}
paceHeap()
// Node's own start-up leaves ~36 MB of its binary's pages in RSS, most never run again: drop
// them before the CLI's modules load, whose parsing would otherwise peak on top of them.
releaseFilePages()
if (low) releaseFilePagesEvery()
await import('./run.js')

/** `--memory SIZE` or `--memory=SIZE` before any `--`; the last one wins, as in yargs. */
function memoryArg(argv: string[]): string | undefined {
  let text: string | undefined
  for (let i = 0; i < argv.length && argv[i] !== '--'; i++) {
    if (argv[i] === '--memory' && i + 1 < argv.length) text = argv[++i]
    else if (argv[i]!.startsWith('--memory=')) text = argv[i]!.slice('--memory='.length)
  }
  return text
}

/** Whether the size `text` is below `bytes`; false for a malformed one (the CLI reports it). */
function below(text: string, bytes: number): boolean {
  try {
    return parseSize(text) < bytes
  } catch {
    return false
  }
}
