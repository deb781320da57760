/**
 * Named points where a test can freeze this process (SIGSTOP to itself) to script a race step
 * by step: SLUICE_TEST_STOP_AT=name[,name...]. The test sees the process stopped, acts, and
 * sends SIGCONT or SIGKILL. Unset (every real run), a point costs one property read.
 */
export type StopPoint =
  | 'backup-before-commit' // after the last lease check, before the snapshot root is written
  | 'prune-marked' // collect: every snapshot marked, nothing written yet
  | 'prune-recorded' // collect: the collection record written, nothing moved
  | 'prune-moving' // collect: the first batch of chunks moved aside
  | 'prune-collected' // collect: done record written
  | 'prune-tombstoned' // sweep: tombstones written, nothing deleted
  | 'prune-deleting' // sweep: the first batch of fossils deleted
  | 'prune-swept' // sweep: done, the collection's records not yet removed

export function stopPoint(name: StopPoint): void {
  const at = process.env.SLUICE_TEST_STOP_AT
  if (at && at.split(',').includes(name)) process.kill(process.pid, 'SIGSTOP')
}
