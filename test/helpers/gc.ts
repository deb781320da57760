/**
 * Helpers of the prune tests (test/gc): seeded trees whose halves change, "forget" as the forget
 * command does it until it lands (the root's sealed bytes moved to forgotten/<id>), the stored
 * size of a repository, and a process frozen at a named stop point (lib/test-point.ts).
 */
import fs from 'node:fs'
import path from 'node:path'
import { spawn, type ChildProcess } from 'node:child_process'
import { seededBytes } from './tree.js'
import { CLI } from './cli.js'
import type { Storage } from '../../lib/storage/storage.js'

export const KiB = 1024
/** Cheap key derivation and small chunks: many chunks from a small tree. */
export const SMALL_REPO = { kdf: { opslimit: 1, memlimit: 8192 }, chunker: { min: 2 * KiB, avg: 8 * KiB, max: 32 * KiB } }
/** Every margin at zero: the tests know no backup runs unless they start one. */
export const NO_MARGINS = ['--min-age', '0', '--lease-lifetime', '0', '--sweep-gap', '0']
export const NO_MARGINS_API = { minChunkAgeMs: 0, leaseLifetimeMs: 0, sweepGapMs: 0 }

/** `n` files of `size` random bytes (seeded by `seed` and the index) in `dir`. */
export function writeFiles(dir: string, seed: string, n: number, size: number, from = 0): void {
  fs.mkdirSync(dir, { recursive: true })
  for (let i = from; i < n; i++) fs.writeFileSync(path.join(dir, `f${String(i).padStart(4, '0')}`), seededBytes(`${seed}-${i}`, size))
}

/** What `sluice forget <id>` does (the forget branch's contract): root to forgotten/<id>. */
export async function forgetRoot(storage: Storage, id: string): Promise<void> {
  await storage.put(`forgotten/${id}`, await storage.get(`snapshots/${id}`))
  await storage.delete(`snapshots/${id}`)
}

/** What `sluice forget --undo <id>` does. */
export async function undoForget(storage: Storage, id: string): Promise<void> {
  await storage.put(`snapshots/${id}`, await storage.get(`forgotten/${id}`))
  await storage.delete(`forgotten/${id}`)
}

/** Bytes of every object in the storage. */
export async function storedBytes(storage: Storage): Promise<number> {
  let n = 0
  for await (const key of storage.list('')) n += (await storage.stat!(key))?.size ?? 0
  return n
}

/** Keys under a prefix. */
export async function keys(storage: Storage, prefix: string): Promise<string[]> {
  const out: string[] = []
  for await (const k of storage.list(prefix)) out.push(k)
  return out
}

/** A spawned `sluice` that stops itself at `stopAt`; `stopped` resolves once it has. */
export interface Frozen {
  child: ChildProcess
  stopped: Promise<void>
  /** Resolves with the exit code, stdout and stderr. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>
}

export function spawnFrozen(args: string[], env: Record<string, string>, stopAt: string): Frozen {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env, SLUICE_TEST_STOP_AT: stopAt },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (b: Buffer) => (stdout += b))
  child.stderr!.on('data', (b: Buffer) => (stderr += b))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(resolve =>
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  )
  // The kernel's word on the process state ('T' = stopped): polled, never guessed from time.
  const stopped = new Promise<void>((resolve, reject) => {
    const poll = () => {
      if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`exited before ${stopAt}: ${stderr}`))
      let state = ''
      try {
        state = fs.readFileSync(`/proc/${child.pid}/stat`, 'utf8').split(') ')[1]?.[0] ?? ''
      } catch {}
      if (state === 'T') resolve()
      else setTimeout(poll, 20)
    }
    poll()
  })
  return { child, stopped, exited }
}
