/**
 * Leases: how a running backup announces itself to prune, and prune's own lock (docs/DESIGN-
 * prune.md). Storage only has put-if-absent, so a lease is refreshed by writing a new object and
 * then removing the old one: at every moment at least one of a live lease's objects exists.
 *
 *   leases/<id>/<refreshed ms, 15 digits>   a backup's lease, one object per refresh
 *   leases/<id>/tombstone                   written by a sweep that found the lease lapsed
 *   locks/prune.<n, 8 digits>               the claim of prune lock generation n
 *   locks/prune.<n>.<refreshed ms>          its refreshes
 *
 * Memory: a lease holds its key names; listLeases holds one lease's objects at a time.
 */
import os from 'node:os'
import { randomBytes } from 'node:crypto'
import type { Storage } from '../storage/storage.js'
import { SluiceError } from '../errors.js'
import { LEASE_LIFETIME_MS, LEASE_REFRESH_MS } from '../limits.js'
import { openRecord, pad, sealRecord } from './gc-objects.js'

export const LEASES = 'leases/'
const LOCK_PREFIX = 'locks/prune.'

/** What a lease object says (sealed with the master key). Times are ms since the epoch. */
export interface LeaseInfo {
  version: 1
  kind: 'backup' | 'prune'
  host: string
  pid: number
  started: number
  refreshed: number
}

/** A lease as listed: its id, its newest object, whether a sweep tombstoned it. */
export interface LeaseState {
  id: string
  info?: LeaseInfo
  tombstone: boolean
  keys: string[]
}

/** What a lease needs of a repository: its storage and the key to seal with. */
export interface LeaseRepo {
  storage: Storage
  keys: { encKey: Uint8Array }
}

export interface LeaseTiming {
  refreshMs?: number
  lifetimeMs?: number
  /** The clock (tests move it instead of waiting). */
  now?: () => number
}

/** True when `info`'s holder can no longer be counted on: not refreshed for `lifetimeMs`, or a
 *  process of this host that no longer runs (restic's rule for stale locks). */
export function lapsed(info: LeaseInfo, now: number, lifetimeMs: number): boolean {
  if (now - info.refreshed > lifetimeMs) return true
  if (info.host === os.hostname() && info.pid !== process.pid) {
    try {
      process.kill(info.pid, 0)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ESRCH') return true
    }
  }
  return false
}

function newInfo(kind: LeaseInfo['kind'], host: string, now: number): LeaseInfo {
  return { version: 1, kind, host, pid: process.pid, started: now, refreshed: now }
}

async function readInfo(repo: LeaseRepo, key: string): Promise<LeaseInfo> {
  const info = openRecord<LeaseInfo>(repo.keys.encKey, key, await repo.storage.get(key))
  if (info?.version !== 1 || typeof info.started !== 'number' || typeof info.refreshed !== 'number' || typeof info.host !== 'string') {
    throw new SluiceError('ERR_CORRUPT', `${key} is not a lease`)
  }
  return info
}

/** Every backup lease, one at a time, in id order. An object that does not open is ERR_CORRUPT:
 *  prune must not guess who is running. A lease whose object vanished under us (its backup
 *  ended) is listed without info. */
export async function* listLeases(repo: LeaseRepo): AsyncIterable<LeaseState> {
  let cur: LeaseState | undefined
  const finish = async (s: LeaseState): Promise<LeaseState> => {
    const newest = s.keys.filter(k => !k.endsWith('/tombstone')).pop()
    if (newest) {
      try {
        s.info = await readInfo(repo, newest)
      } catch (err) {
        if (!(err instanceof SluiceError && err.code === 'ERR_NOT_FOUND')) throw err
      }
    }
    return s
  }
  for await (const key of repo.storage.list(LEASES)) {
    const m = /^leases\/([0-9a-f]{32})\/(\d{15}|tombstone)$/.exec(key)
    if (!m) continue
    if (cur && cur.id !== m[1]) {
      yield await finish(cur)
      cur = undefined
    }
    cur ??= { id: m[1]!, tombstone: false, keys: [] }
    cur.keys.push(key)
    if (m[2] === 'tombstone') cur.tombstone = true
  }
  if (cur) yield await finish(cur)
}

export function tombstoneKey(leaseId: string): string {
  return `${LEASES}${leaseId}/tombstone`
}

/** Refreshing by new object then removal of the old one, on a timer, one write at a time. */
abstract class Refreshed {
  protected readonly refreshMs: number
  protected readonly lifetimeMs: number
  protected readonly now: () => number
  /** Local time of the last refresh that reached the storage. */
  protected lastOk: number
  protected current: string
  private timer: NodeJS.Timeout | undefined
  private chain: Promise<void> = Promise.resolve()
  protected sticky = false

  constructor(protected readonly repo: LeaseRepo, protected info: LeaseInfo, firstKey: string, timing: LeaseTiming) {
    this.refreshMs = timing.refreshMs ?? LEASE_REFRESH_MS
    this.lifetimeMs = timing.lifetimeMs ?? LEASE_LIFETIME_MS
    this.now = timing.now ?? Date.now
    this.lastOk = info.started
    this.current = firstKey
  }

  protected startTimer(): void {
    this.timer = setInterval(() => void this.refresh().catch(() => {}), this.refreshMs)
    this.timer.unref()
  }

  protected abstract nextKey(now: number): string

  /** Writes a fresh object; notes a lapse first (a process stopped past its lifetime stays
   *  lapsed for good: it cannot know what happened meanwhile). */
  refresh(): Promise<void> {
    const run = async () => {
      const now = this.now()
      if (now - this.lastOk > this.lifetimeMs) this.sticky = true
      const key = this.nextKey(now)
      if (key === this.current) return
      this.info = { ...this.info, refreshed: now }
      await this.repo.storage.put(key, sealRecord(this.repo.keys.encKey, key, this.info))
      const old = this.current
      this.current = key
      this.lastOk = now
      if (old !== this.firstKey()) await this.repo.storage.delete(old)
    }
    this.chain = this.chain.then(run, run)
    return this.chain
  }

  /** The object that must stay while the lease lives (a lock's claim); none for a backup. */
  protected firstKey(): string | undefined {
    return undefined
  }

  /** True once the lease has gone unrefreshed for its lifetime, now or at any time before. */
  isLapsed(): boolean {
    if (this.now() - this.lastOk > this.lifetimeMs) this.sticky = true
    return this.sticky
  }

  protected stopTimer(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
  }

  protected async settled(): Promise<void> {
    await this.chain.catch(() => {})
  }
}

/** A running backup's lease. Start it before the backup reads anything of the repository (its
 *  parent, a dedup lookup); release it after its snapshot root is written, or on failure. */
export class BackupLease extends Refreshed {
  readonly id: string

  private constructor(repo: LeaseRepo, info: LeaseInfo, id: string, timing: LeaseTiming) {
    super(repo, info, `${LEASES}${id}/${pad(info.refreshed, 15)}`, timing)
    this.id = id
  }

  static async start(repo: LeaseRepo, host: string, timing: LeaseTiming = {}): Promise<BackupLease> {
    const now = (timing.now ?? Date.now)()
    const lease = new BackupLease(repo, newInfo('backup', host, now), randomBytes(16).toString('hex'), timing)
    await repo.storage.put(lease.current, sealRecord(repo.keys.encKey, lease.current, lease.info))
    lease.startTimer()
    return lease
  }

  protected nextKey(now: number): string {
    return `${LEASES}${this.id}/${pad(now, 15)}`
  }

  /** True when a sweep found this lease lapsed: the backup must prove its chunks. */
  tombstoned(): Promise<boolean> {
    return this.repo.storage.has(tombstoneKey(this.id))
  }

  /** Stops refreshing and removes the lease's objects (a tombstone too: the sweep that wrote it
   *  has no more use for it). */
  async release(): Promise<void> {
    this.stopTimer()
    await this.settled()
    await this.repo.storage.delete(this.current)
    await this.repo.storage.delete(tombstoneKey(this.id))
  }
}

/** The prune lock: generation n is claimed by one put-if-absent of locks/prune.<n>; a later
 *  prune takes over a lapsed lock by claiming n+1, which the old holder sees and stops. */
export class PruneLock extends Refreshed {
  private constructor(repo: LeaseRepo, info: LeaseInfo, readonly generation: number, timing: LeaseTiming) {
    super(repo, info, `${LOCK_PREFIX}${pad(generation, 8)}`, timing)
  }

  protected override firstKey(): string {
    return `${LOCK_PREFIX}${pad(this.generation, 8)}`
  }

  protected nextKey(now: number): string {
    return `${LOCK_PREFIX}${pad(this.generation, 8)}.${pad(now, 15)}`
  }

  /** Takes the lock, or ERR_LOCKED naming who holds it and until when. */
  static async acquire(repo: LeaseRepo, timing: LeaseTiming = {}): Promise<PruneLock> {
    const now = (timing.now ?? Date.now)()
    const lifetime = timing.lifetimeMs ?? LEASE_LIFETIME_MS
    let top = 0
    let newest: string | undefined
    const stale: string[] = []
    for await (const key of repo.storage.list(LOCK_PREFIX)) {
      const m = /^locks\/prune\.(\d{8})(\.\d{15})?$/.exec(key)
      if (!m) continue
      const n = Number(m[1])
      if (n > top) {
        if (newest) stale.push(newest)
        top = n
      } else if (newest) stale.push(newest)
      newest = key
    }
    if (newest) {
      let holder: LeaseInfo | undefined
      try {
        holder = await readInfo(repo, newest)
      } catch (err) {
        if (!(err instanceof SluiceError && err.code === 'ERR_NOT_FOUND')) throw err
      }
      if (holder && !lapsed(holder, now, lifetime)) {
        throw new SluiceError(
          'ERR_LOCKED',
          `another prune is running (host ${holder.host}, pid ${holder.pid}, since ${new Date(holder.started).toISOString()}); its lock lapses at ${new Date(holder.refreshed + lifetime).toISOString()} unless refreshed`,
        )
      }
    }
    const lock = new PruneLock(repo, newInfo('prune', os.hostname(), now), top + 1, timing)
    const claim = lock.firstKey()
    if (!(await repo.storage.put(claim, sealRecord(repo.keys.encKey, claim, lock.info)))) {
      throw new SluiceError('ERR_LOCKED', 'another prune took the prune lock at the same moment')
    }
    if (newest) stale.push(newest)
    for (const key of stale) await repo.storage.delete(key)
    lock.startTimer()
    return lock
  }

  /** ERR_LOCKED when this prune may have lost its lock: it lapsed, or a later prune claimed the
   *  next generation. Checked before every batch of moves and deletes. */
  async assertHeld(): Promise<void> {
    if (this.isLapsed()) throw new SluiceError('ERR_LOCKED', 'this prune was stopped longer than the lock lifetime and may have lost its lock; run it again')
    if (await this.repo.storage.has(`${LOCK_PREFIX}${pad(this.generation + 1, 8)}`)) {
      throw new SluiceError('ERR_LOCKED', 'another prune took over the prune lock; this one stops')
    }
  }

  async release(): Promise<void> {
    this.stopTimer()
    await this.settled()
    for await (const key of this.repo.storage.list(`${LOCK_PREFIX}${pad(this.generation, 8)}`)) await this.repo.storage.delete(key)
  }
}
