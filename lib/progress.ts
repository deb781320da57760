/**
 * Where a long job that is not a backup or restore stands (prune's phases, check's passes), for
 * progress lines and JSON status messages. A stage updates one of these as it goes; the caller
 * only reads it. Memory: one object per job.
 */
export interface PhaseProgress {
  /** prune: `mark`, `collect`, `sweep`; check: `snapshots`, `read-data`. */
  phase: string
  /** What the phase is doing now, in words (`listing chunks`, `moving aside`, `deleting`). */
  step: string
  /** Items done in this step, and what they are (`snapshots`, `chunks`). */
  done: number
  unit: string
  /** Items the step will do, when known before it ends. */
  total?: number
  /** Bytes done (check: read; prune: deleted), and the bytes to do when known. */
  bytes?: number
  totalBytes?: number
  /** Problems found so far (check: its problems; prune: referenced chunks stored nowhere). */
  errors: number
  /** The item at hand: a snapshot's short id, or a chunk's. */
  current?: string
}
