#!/usr/bin/env node
/** The `sluice` command's entry point. V8's heap policy (lib/memory.ts) comes first, before the
 *  CLI's modules are even parsed: parsing them grows V8's young generation, which never shrinks
 *  back. No node flags are needed, so `sluice`, `node dist/cli/main.js` and a script calling
 *  backup() run under the same policy; backup(), restore() and check() apply the rest. */
import { paceHeap } from '../lib/memory.js'

paceHeap()
await import('./run.js')
