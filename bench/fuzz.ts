/**
 * More damage-fuzzing cases than `npm test` runs (test/helpers/fuzz.ts: what each command may
 * do): `node --import tsx bench/fuzz.ts [CASES] [FIRST_SEED] [--all]`. --all damages key files
 * and the config too; then CASES/4 crafted record streams. Prints the outcome counts; exits 1 at
 * the first case that breaks a rule.
 */
import { makeFuzzFixture, fuzzCase, craftedCase, summarize, type CaseResult } from '../test/helpers/fuzz.js'

const args = process.argv.slice(2)
const all = args.includes('--all')
const [cases = 2000, first = 100_000] = args.filter(a => !a.startsWith('--')).map(Number)
const fx = await makeFuzzFixture('/tmp/sluice-bench-fuzz', { all })
const results: CaseResult[] = []
const started = Date.now()
for (let seed = first; seed < first + cases; seed++) {
  try {
    results.push(await fuzzCase(fx, seed))
  } catch (err) {
    console.error(`seed ${seed}: ${err instanceof Error ? err.message : String(err)}`)
    process.exit(1)
  }
  if ((seed - first + 1) % 100 === 0) console.error(`${seed - first + 1} cases, ${((Date.now() - started) / 1000).toFixed(0)} s`)
}
// Then a quarter as many crafted record streams (bytes changed in the plaintext, sealed with the key).
for (let seed = first; seed < first + cases / 4; seed++) {
  try {
    results.push(await craftedCase(fx, seed))
  } catch (err) {
    console.error(`crafted seed ${seed}: ${err instanceof Error ? err.message : String(err)}`)
    process.exit(1)
  }
}
for (const line of summarize(results)) console.log(line)
console.log(`${cases} cases from seed ${first}${all ? ' (all objects)' : ''}: no rule broken, ${((Date.now() - started) / 1000).toFixed(1)} s`)
