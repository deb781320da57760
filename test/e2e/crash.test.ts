/**
 * SIGKILL at seeded moments (issue 13): `backup`, `restore` and `init` killed a seeded number of
 * milliseconds after they start. Whatever the moment, `check --read-data` passes, the rerun
 * completes, and the restore is byte-exact (test/helpers/crash.ts). bench/crash.ts runs 20 each.
 */
import { test, before } from 'node:test'
import { crashCase, makeCrashFixture, type CrashFixture } from '../helpers/crash.js'
import { scratch } from '../helpers/scratch.js'

let fx: CrashFixture
before(() => {
  fx = makeCrashFixture(`${scratch('readers-test')}/crash`)
})

const CASES: [Parameters<typeof crashCase>[1], number][] = [['backup', 2000], ['restore', 1500], ['init', 1200]]

for (const [cmd, maxMs] of CASES) {
  test(`${cmd} killed at two seeded moments: check passes, the rerun completes, restore is exact`, async (t) => {
    for (const seed of [5, 7]) {
      const r = await crashCase(fx, cmd, seed, maxMs)
      t.diagnostic(`${cmd} seed ${seed}: kill after ${r.ms} ms${r.killed ? '' : ' (it had finished)'}`)
    }
  })
}
