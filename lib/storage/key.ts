/**
 * Key and prefix rules shared by every storage backend. A key is a relative, '/'-separated ASCII
 * path; checking it here means no backend can be tricked into writing outside its root (a '..'
 * component on disk, a key that changes meaning under an S3 prefix).
 */
import { SluiceError } from '../errors.js'

/** Printable ASCII but space: keys are ids and fixed names, never user text. */
function badChar(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c <= 0x20 || c >= 0x7f) return true
  }
  return false
}

/** Throws ERR_ARGS unless `key` is a valid storage key: non-empty, relative, printable ASCII,
 *  no empty, '.' or '..' component. */
export function assertKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) throw new SluiceError('ERR_ARGS', 'storage key is empty')
  if (badChar(key)) throw new SluiceError('ERR_ARGS', `storage key ${JSON.stringify(key)} has a byte outside printable ASCII`)
  for (const part of key.split('/')) {
    if (part === '' || part === '.' || part === '..') {
      throw new SluiceError('ERR_ARGS', `storage key ${JSON.stringify(key)} is not a relative path of plain names`)
    }
  }
}

/** Throws ERR_ARGS unless `prefix` is '' or the start of a valid key (it may end in '/' or in
 *  the middle of a name). */
export function assertPrefix(prefix: string): void {
  if (typeof prefix !== 'string') throw new SluiceError('ERR_ARGS', 'storage prefix is not a string')
  if (prefix === '') return
  if (badChar(prefix)) throw new SluiceError('ERR_ARGS', `storage prefix ${JSON.stringify(prefix)} has a byte outside printable ASCII`)
  const parts = prefix.split('/')
  // The last part may be empty (prefix ends in '/') or partial ('.' could start '.foo').
  for (let i = 0; i < parts.length - 1; i++) {
    const part = parts[i]
    if (part === '' || part === '.' || part === '..') {
      throw new SluiceError('ERR_ARGS', `storage prefix ${JSON.stringify(prefix)} is not a relative path of plain names`)
    }
  }
}

/** The error of Storage.get for an object above its `maxBytes`: what a reader expects of that
 *  key bounds it, so a larger one was planted or damaged. */
export function tooLarge(key: string, size: number, maxBytes: number, where: string): SluiceError {
  return new SluiceError('ERR_CORRUPT', `object ${key} in ${where} is ${size} bytes, more than the ${maxBytes} it may be`)
}
