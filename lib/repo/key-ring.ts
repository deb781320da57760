/**
 * A repository's key files as restic's `key list|add|remove|passwd` manage them: every key file
 * seals the same master keys, so adding, removing or replacing one never touches the data (a
 * password change does not rotate the master keys). docs/FORMAT.md "Key files".
 *
 * Memory: one key file at a time; the listing is streamed.
 */
import { SluiceError } from '../errors.js'
import { KDF_MEMLIMIT, KDF_OPSLIMIT, SMALL_OBJECT_MAX } from '../limits.js'
import { verifyConfig, peekConfig } from './config.js'
import { isKeyFileKey, openKeyFile, parseKeyFile, type KdfParams, type KeyOwner } from './keys.js'
import type { Repository } from './repository.js'

/** A key as `key list` shows it (restic's JSON field names). */
export interface KeyInfo {
  /** True for the key file this repository was opened with. */
  current: boolean
  id: string
  userName: string
  hostName: string
  created: string
}

export interface AddKeyOptions extends KeyOwner {
  kdf?: KdfParams
}

/**
 * Every key file, in id order. A damaged one (bytes that do not hash to its name, a malformed
 * field, another version) is named through `onWarning` and skipped, as restic's `key list`
 * reports a key it cannot load and goes on.
 */
export async function* listKeys(repo: Repository, onWarning: (err: SluiceError) => void): AsyncIterable<KeyInfo> {
  for await (const key of repo.storage.list('keys/')) {
    if (!isKeyFileKey(key)) continue
    let file
    try {
      file = parseKeyFile(key, await repo.storage.get(key, SMALL_OBJECT_MAX))
    } catch (err) {
      if (err instanceof SluiceError && err.code === 'ERR_NOT_FOUND') continue
      if (!(err instanceof SluiceError) || (err.code !== 'ERR_CORRUPT' && err.code !== 'ERR_FORMAT')) throw err
      onWarning(err)
      continue
    }
    const id = key.slice('keys/'.length)
    yield { current: id === repo.keyId, id, userName: file.username, hostName: file.host, created: file.created }
  }
}

/** The key id that `prefix` names: ERR_KEY_NOT_FOUND when none, ERR_AMBIGUOUS when several. */
export async function findKey(repo: Repository, prefix: string): Promise<string> {
  if (!/^[0-9a-f]{1,64}$/.test(prefix)) throw new SluiceError('ERR_ARGS', `"${prefix}" is not a key id`)
  let found: string | undefined
  for await (const key of repo.storage.list(`keys/${prefix}`)) {
    if (!isKeyFileKey(key)) continue
    if (found) throw new SluiceError('ERR_AMBIGUOUS', `key id prefix ${prefix} matches more than one key`)
    found = key.slice('keys/'.length)
  }
  if (!found) throw new SluiceError('ERR_KEY_NOT_FOUND', `no key matches ${prefix}`)
  return found
}

/**
 * Adds a key file for `pw` sealing this repository's master keys, then reads it back and opens
 * the repository with it (restic verifies a new key the same way): a key that does not work is
 * removed again and the command fails. Returns the new key's id.
 */
export async function addKey(repo: Repository, pw: string | Uint8Array, opts: AddKeyOptions = {}): Promise<string> {
  const id = await repo.addKey(pw, opts.kdf ?? { opslimit: KDF_OPSLIMIT, memlimit: KDF_MEMLIMIT }, opts)
  const key = `keys/${id}`
  try {
    const keys = await openKeyFile(parseKeyFile(key, await repo.storage.get(key, SMALL_OBJECT_MAX)), pw, key)
    if (!keys) throw new SluiceError('ERR_CORRUPT', `new key ${id} does not open with its password`)
    const where = repo.storage.describe()
    verifyConfig(peekConfig(await repo.storage.get('config', SMALL_OBJECT_MAX), where), keys.encKey, where)
  } catch (err) {
    if (id !== repo.keyId) await repo.storage.delete(key).catch(() => {})
    if (!(err instanceof SluiceError)) throw err
    throw new SluiceError(err.code, `failed to access repository with new key: ${err.message}`, { cause: err })
  }
  return id
}

/**
 * Removes the key `prefix` names. Refused for the key this repository was opened with (restic's
 * words), and when the key in use is itself gone (another process removed it), so the last key
 * that opens the repository is never removed.
 */
export async function removeKey(repo: Repository, prefix: string): Promise<string> {
  const id = await findKey(repo, prefix)
  if (id === repo.keyId) throw new SluiceError('ERR_KEY_IN_USE', 'refusing to remove key currently used to access repository')
  if (!repo.keyId || !(await repo.storage.has(`keys/${repo.keyId}`))) {
    throw new SluiceError('ERR_KEY_IN_USE', `refusing to remove key ${id}: the key used to open the repository is gone, and it may be the last one`)
  }
  await repo.storage.delete(`keys/${id}`)
  return id
}

/**
 * restic's `key passwd`: adds (and verifies) a key for `pw`, and only then removes the key the
 * repository was opened with. A kill before the new key is stored leaves the old one; between
 * the two steps, both; after, the new one: the repository always opens with the old password
 * or the new. Returns both ids.
 */
export async function changePassword(repo: Repository, pw: string | Uint8Array, opts: AddKeyOptions = {}): Promise<{ id: string; removed: string }> {
  if (!repo.keyId) throw new SluiceError('ERR_ARGS', 'the repository was not opened with a key file')
  const id = await addKey(repo, pw, opts)
  // The same password and parameters can make the same bytes only with the same salt: never,
  // but a key must not remove itself.
  if (id !== repo.keyId) await repo.storage.delete(`keys/${repo.keyId}`)
  return { id, removed: repo.keyId }
}
