/**
 * SIGKILL crash cases beyond `npm test`'s few (test/helpers/crash.ts says what must hold):
 * `node --import tsx bench/crash.ts [CASES_EACH] [FIRST_SEED]`, default 20 each of backup,
 * restore and init. Build first (the cases run dist/cli/main.js). Exits 1 at the first failure.
 */
import { crashCase, makeCrashFixture, type CrashCommand } from '../test/helpers/crash.js'

const [each = 20, first = 1000] = process.argv.slice(2).map(Number)
const fx = makeCrashFixture('/tmp/sluice-bench-crash')
const windows: [CrashCommand, number][] = [['backup', 2000], ['restore', 1500], ['init', 1200]]
for (const [cmd, maxMs] of windows) {
  let hit = 0
  for (let seed = first; seed < first + each; seed++) {
    try {
      if ((await crashCase(fx, cmd, seed, maxMs)).killed) hit++
    } catch (err) {
      console.error(`${cmd} seed ${seed}: ${err instanceof Error ? err.message : String(err)}`)
      process.exit(1)
    }
  }
  console.log(`${cmd}: ${each} cases, ${hit} killed before the end, all passed`)
}
