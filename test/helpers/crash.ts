/**
 * Crash cases (issue 13): a CLI `backup`, `restore` or `init` is SIGKILLed a seeded number of
 * milliseconds after it starts; whatever the moment (before it did anything, in the middle, after
 * it finished), the repository must pass `check --read-data`, the rerun must complete, and a
 * restore must give back the source byte for byte. Used by test/e2e/crash.test.ts (a few cases)
 * and bench/crash.ts (20 of each).
 */
import fs from 'node:fs'
import assert from 'node:assert/strict'
import { cliFor, type CliResult } from './cli.js'
import { compareTrees, seededBytes } from './tree.js'
import { mixedRng } from './rng.js'

export type CrashCommand = 'backup' | 'restore' | 'init'

export interface CrashFixture {
  base: string
  src: string
  rel: string
  home: string
}

const PW = 'crash password'

/** A source tree with many small files and a few larger ones, so a backup takes a while. */
export function makeCrashFixture(base: string): CrashFixture {
  fs.rmSync(base, { recursive: true, force: true })
  const src = `${base}/src/tree`
  fs.mkdirSync(`${src}/many`, { recursive: true })
  for (let i = 0; i < 300; i++) fs.writeFileSync(`${src}/many/f${i}`, seededBytes(`crash${i}`, 200 + (i % 97) * 40))
  for (let i = 0; i < 2; i++) fs.writeFileSync(`${src}/large${i}`, seededBytes(`large${i}`, 4 * 1024 * 1024))
  const home = `${base}/home`
  fs.mkdirSync(home, { recursive: true })
  return { base, src, rel: src.slice(1), home }
}

function ok(what: string, r: CliResult): void {
  assert.equal(r.code, 0, `${what}: exit ${r.code} ${r.signal ?? ''}\n${r.stderr}`)
}

/** Kills `sluice ...args` after `ms` (or lets it finish first); says whether it was killed. */
async function killed(run: ReturnType<typeof cliFor>, args: string[], ms: number): Promise<boolean> {
  const r = await run(args, { timeoutMs: Math.max(1, ms) })
  if (r.signal === 'SIGKILL') return true
  ok(`${args[0]} before the kill`, r)
  return false
}

/** One crash case: `cmd` killed after a delay drawn from `seed`; then the checks. Returns
 *  whether the kill landed before the command ended. */
export async function crashCase(fx: CrashFixture, cmd: CrashCommand, seed: number, maxMs: number): Promise<{ ms: number; killed: boolean }> {
  const rnd = mixedRng(seed)
  const ms = Math.floor(rnd() * maxMs)
  const dir = `${fx.base}/case-${cmd}-${seed}`
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir)
  const repo = `${dir}/repo`
  const run = cliFor(fx.home, repo, PW)
  let wasKilled = false
  if (cmd === 'init') {
    wasKilled = await killed(run, ['init'], ms)
    // The rerun creates the repository, or finds the one the killed run completed.
    const again = await run(['init'])
    if (again.code !== 0) assert.match(again.stderr, /^sluice: ERR_REPO_EXISTS: /, again.stderr)
    ok('backup after init', await run(['backup', '-q', fx.src]))
  } else {
    ok('init', await run(['init']))
    if (cmd === 'backup') {
      wasKilled = await killed(run, ['backup', '-q', fx.src], ms)
      ok('check --read-data after the kill', await run(['check', '--read-data']))
      ok('the rerun', await run(['backup', '-q', fx.src]))
    } else {
      ok('backup', await run(['backup', '-q', fx.src]))
      wasKilled = await killed(run, ['restore', 'latest', '--target', `${dir}/target`, '-q'], ms)
    }
  }
  ok('check --read-data', await run(['check', '--read-data']))
  // A restore into the target a killed restore left (or a fresh one) gives back the source.
  const target = `${dir}/target`
  ok('restore', await run(['restore', 'latest', '--target', target, '-q']))
  assert.deepEqual(compareTrees(fx.src, `${target}/${fx.rel}`), [], `${cmd} killed after ${ms} ms`)
  fs.rmSync(dir, { recursive: true, force: true })
  return { ms, killed: wasKilled }
}
