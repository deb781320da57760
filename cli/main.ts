#!/usr/bin/env node
/** The `sluice` command's entry point. V8's heap policy (lib/memory.ts) comes first, before the
 *  CLI's modules are even parsed: parsing them grows V8's young generation, which never shrinks
 *  back. No node flags are needed, so `sluice`, `node dist/cli/main.js` and a script calling
 *  backup() run under the same policy; backup(), restore() and check() apply the rest. The file
 *  pages Node's start left mapped go next (lib/memory.ts, `releaseFilePages`). */
import { paceHeap } from '../lib/memory.js'
import { releaseFilePages } from '../lib/native.js'

paceHeap()
// Node's own start-up leaves ~36 MB of its binary's pages in RSS, most never run again: drop
// them before the CLI's modules load, whose parsing would otherwise peak on top of them.
releaseFilePages()
await import('./run.js')
