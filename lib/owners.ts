/**
 * Owner and group names: uid → name at backup (recorded beside the numbers, as restic does) and
 * name → uid at restore (as root, a recorded name that exists here wins over the number, as GNU
 * tar and restic do; `--numeric-owner` forces numbers). Looked up in /etc/passwd and /etc/group,
 * which is what restic's static builds (Go's os/user without cgo) read too: names served only by
 * NSS modules (LDAP, sssd) are not seen.
 *
 * Memory: four LRU caches of OWNER_NAME_CACHE lookups each (hits and misses); a miss reads the
 * database file once (it is read whole: such files are small).
 */
import fs from 'node:fs'
import { Lru } from './flow.js'
import { OWNER_NAME_CACHE } from './limits.js'

/** A name that can be recorded and matched: what tar and useradd accept, no ':' or newline. */
const NAME = /^[^:\n\0]{1,255}$/

export class OwnerNames {
  private readonly caches = {
    user: new Lru<number, string | null>(OWNER_NAME_CACHE),
    group: new Lru<number, string | null>(OWNER_NAME_CACHE),
    uid: new Lru<string, number | null>(OWNER_NAME_CACHE),
    gid: new Lru<string, number | null>(OWNER_NAME_CACHE),
  }

  constructor(private readonly files = { passwd: '/etc/passwd', group: '/etc/group' }) {}

  /** [name, id] pairs of a database file (none when it cannot be read). */
  private *rows(file: string): Iterable<[string, number]> {
    let text: string
    try {
      text = fs.readFileSync(file, 'utf8')
    } catch {
      return
    }
    for (const line of text.split('\n')) {
      const f = line.split(':')
      if (f.length < 3 || !NAME.test(f[0]!) || !/^\d+$/.test(f[2]!)) continue
      yield [f[0]!, Number(f[2])]
    }
  }

  private byId(kind: 'user' | 'group', id: number): string | undefined {
    const cache = this.caches[kind]
    const hit = cache.get(id)
    if (hit !== undefined) return hit ?? undefined
    let found: string | null = null
    for (const [name, n] of this.rows(kind === 'user' ? this.files.passwd : this.files.group)) {
      if (n === id) {
        found = name
        break
      }
    }
    cache.set(id, found)
    return found ?? undefined
  }

  private byName(kind: 'uid' | 'gid', name: string): number | undefined {
    if (!NAME.test(name)) return undefined
    const cache = this.caches[kind]
    const hit = cache.get(name)
    if (hit !== undefined) return hit ?? undefined
    let found: number | null = null
    for (const [n, id] of this.rows(kind === 'uid' ? this.files.passwd : this.files.group)) {
      if (n === name) {
        found = id
        break
      }
    }
    cache.set(name, found)
    return found ?? undefined
  }

  userName(uid: number): string | undefined {
    return this.byId('user', uid)
  }

  groupName(gid: number): string | undefined {
    return this.byId('group', gid)
  }

  /** The uid and gid to restore: by name where the recorded name exists here, else the number. */
  owner(e: { uid: number; gid: number; user?: string; group?: string }): { uid: number; gid: number } {
    const uid = e.user !== undefined ? (this.byName('uid', e.user) ?? e.uid) : e.uid
    const gid = e.group !== undefined ? (this.byName('gid', e.group) ?? e.gid) : e.gid
    return { uid, gid }
  }
}

/** The system's databases, shared by every walk and restore of this process. */
export const systemOwners = new OwnerNames()
