/**
 * The one error class of Sluice. Every failure a caller can act on has a code; the original
 * error, when there is one, is kept as `cause`. The CLI prints `code: message` on one line.
 */

/** Codes a caller can act on. Append only: scripts match on them. */
export type ErrorCode =
  | 'ERR_ARGS' // bad command-line or API arguments
  | 'ERR_REPO_NOT_FOUND' // no repository at that location
  | 'ERR_REPO_EXISTS' // init over an existing repository
  | 'ERR_FORMAT' // a repository or object of a format version we do not know
  | 'ERR_WRONG_PASSWORD' // no key file opens with this password
  | 'ERR_CORRUPT' // an object failed authentication or does not decode
  | 'ERR_MISSING' // an object a snapshot needs is not in the storage
  | 'ERR_NOT_FOUND' // storage: no object under that key
  | 'ERR_SNAPSHOT_NOT_FOUND' // no snapshot matches the id prefix
  | 'ERR_AMBIGUOUS' // an id prefix matches more than one snapshot
  | 'ERR_PATH_NOT_FOUND' // a backup path, or a path inside a snapshot, does not exist
  | 'ERR_UNSAFE_PATH' // a snapshot record names a path that would escape the restore target
  | 'ERR_READ' // an entry could not be read during backup (a warning: the backup goes on)
  | 'ERR_WRITE' // an entry could not be written during restore
  | 'ERR_STORAGE' // the storage failed permanently (I/O, permissions, network)
  | 'ERR_ACCESS_DENIED' // the storage refused our credentials
  | 'ERR_TAR' // a tar stream on stdin is truncated or corrupt
  | 'ERR_COMMAND' // a command we ran for --stdin-from-command failed
  | 'ERR_CHECK' // check found problems
  | 'ERR_ABORTED' // the operation was interrupted
  | 'ERR_CHANGED' // a file changed while backup read it (a warning: the snapshot keeps what was read)
  | 'ERR_NATIVE' // the native addon (build/Release/sluice_native.node) is missing or cannot be loaded
  | 'ERR_KEY_NOT_FOUND' // no key file matches the id prefix
  | 'ERR_KEY_IN_USE' // refusing to remove the key in use (or possibly the last key)
  | 'ERR_LOCKED' // another prune holds the repository's prune lock
  | 'ERR_LEASE_LAPSED' // a backup's lease lapsed and a chunk it reused is gone: no snapshot
  | 'ERR_UNSAFE' // prune found something it cannot vouch for (an unreadable snapshot, a listing out of order) and deleted nothing
  | 'ERR_VERIFY' // restore --verify: a restored file's content is not the snapshot's

export class SluiceError extends Error {
  readonly code: ErrorCode
  /** For per-entry trouble: the path (raw bytes) the error is about. */
  readonly path?: Buffer

  constructor(code: ErrorCode, message: string, opts: { cause?: unknown; path?: Buffer } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause })
    this.name = 'SluiceError'
    this.code = code
    if (opts.path) this.path = opts.path
  }
}

/** True for a Node system error with one of the given codes (ENOENT, EACCES, ...). */
export function isErrno(err: unknown, ...codes: string[]): boolean {
  return typeof err === 'object' && err !== null && codes.includes((err as { code?: string }).code ?? '')
}

/** Wraps anything thrown into a SluiceError, keeping SluiceErrors as they are. */
export function asSluiceError(err: unknown, code: ErrorCode, message: string): SluiceError {
  if (err instanceof SluiceError) return err
  const detail = err instanceof Error ? err.message : String(err)
  return new SluiceError(code, `${message}: ${detail}`, { cause: err })
}
