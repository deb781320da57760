/**
 * Damage fuzzing (issue 13): seeded cases, each damaging one object of a small real repository
 * and running every reading command in-process (test/helpers/fuzz.ts says what each may do),
 * then half as many crafted record streams (bytes changed in the plaintext and sealed with the
 * key), then a handful through the CLI: exit 0, 3 (files left out, named) or 1 with one coded
 * line, never a stack trace. bench/fuzz.ts runs more cases.
 */
import { test, before } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import { mixedRng } from '../helpers/rng.js'
import { makeFuzzFixture, fuzzCase, craftedCase, damage, summarize, PW, type FuzzFixture, type CaseResult } from '../helpers/fuzz.js'
import { cliFor } from '../helpers/cli.js'
import { compareTrees } from '../helpers/tree.js'
import { scratch } from '../helpers/scratch.js'

const BASE = `${scratch('readers-test')}/fuzz`
const CASES = Number(process.env.SLUICE_FUZZ_CASES ?? 160)
let fx: FuzzFixture

before(async () => {
  fx = await makeFuzzFixture(BASE)
})

test(`${CASES} seeded damaged repositories: every reader ends with the right output or a coded error`, async (t) => {
  const results: CaseResult[] = []
  for (let seed = 1; seed <= CASES; seed++) results.push(await fuzzCase(fx, seed))
  const summary = summarize(results)
  t.diagnostic(summary.join('; '))
  // The cases reach each way of ending: damage found by check, files left out by restore,
  // commands that stop with a code, and damage a command never meets.
  assert.ok(summary.some(l => l.startsWith('check problems')), summary.join('\n'))
  assert.ok(summary.some(l => l.startsWith('restore warned')), summary.join('\n'))
  assert.ok(summary.some(l => /^restore ERR_/.test(l)), summary.join('\n'))
  assert.ok(summary.some(l => l.startsWith('cat ok')), summary.join('\n'))
})

test(`${CASES / 2} crafted record streams sealed with the key: every reader ends with success or a coded error`, async (t) => {
  const results: CaseResult[] = []
  for (let seed = 1; seed <= CASES / 2; seed++) results.push(await craftedCase(fx, seed))
  const summary = summarize(results)
  t.diagnostic(summary.join('; '))
  assert.ok(summary.some(l => /^restore ERR_(CORRUPT|UNSAFE_PATH)/.test(l)), summary.join('\n'))
})

test('a handful through the CLI: exit 0, 3 or 1, one coded line per message, no stack trace', async () => {
  const home = `${BASE}/home`
  fs.mkdirSync(home, { recursive: true })
  const cli = cliFor(home, fx.repoDir, PW)
  for (const seed of [1001, 1002, 1003]) {
    const d = damage(fx, mixedRng(seed))
    const tag = `seed ${seed}: ${d.how} ${d.key}`
    try {
      const target = `${BASE}/cli-target-${seed}`
      const runs = {
        ls: await cli(['ls', 'latest']),
        restore: await cli(['restore', fx.snapshots[1], '--target', target, '-q']),
        tar: await cli(['restore', fx.snapshots[1], '--tar', '-q']),
        cat: await cli(['cat', fx.snapshots[1], `/${fx.rel}/${fx.catFile}`]),
        check: await cli(['check', '--read-data']),
        diff: await cli(['diff', fx.snapshots[0], fx.snapshots[1]]),
      }
      for (const [name, r] of Object.entries(runs)) {
        // 3: files left out by restore, or a damaged snapshot root skipped (named) by any command.
        assert.ok(r.code === 0 || r.code === 1 || r.code === 3, `${tag}: ${name} exit ${r.code}: ${r.stderr}`)
        if (r.code === 3) assert.match(r.stderr, /^sluice: warning: ERR_/m, `${tag}: ${name}`)
        assert.doesNotMatch(r.stderr, /\n\s+at |ERR_INTERNAL/, `${tag}: ${name}`)
        for (const line of r.stderr.split('\n').filter(l => l.length > 0)) {
          assert.match(line, /^sluice: (warning: |problem: )?[A-Z_]+: \S/, `${tag}: ${name}: ${line}`)
        }
        if (r.code === 1) assert.match(r.stderr, /sluice: ERR_[A-Z_]+: [^\n]+\n$/, `${tag}: ${name}`)
      }
      if (runs.restore.code === 0) assert.deepEqual(compareTrees(fx.src, `${target}/${fx.rel}`), [], tag)
      if (runs.tar.code === 0) assert.ok(runs.tar.stdoutBytes.equals(fx.expected.tar), tag)
      if (runs.cat.code === 0) assert.ok(runs.cat.stdoutBytes.equals(fx.expected.cat), tag)
      if (d.key.startsWith('chunks/')) assert.equal(runs.check.code, 1, `${tag}: check --read-data passed`)
    } finally {
      d.undo()
    }
  }
})
