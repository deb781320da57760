#!/bin/bash
# Hand-run bench of restore's options (docs/BENCHMARKS.md, "Restore over an existing tree"):
#   bench/restore-opts.sh DATA_DIR [WORK_DIR]
# Backs DATA_DIR up with sluice and restic (0.14: no --overwrite) into fresh repositories under
# WORK_DIR (default /tmp/bench-restore-opts), restores with both, then times sluice over the full
# target: --overwrite if-changed (a resume with nothing left), --delete --dry-run, and
# if-changed --verify (content compared, nothing written); then restic restore --verify and
# sluice restore --verify into empty targets. One line per command: wall, CPU, peak RSS, load.
set -u
DATA=$1
D=${2:-/tmp/bench-restore-opts}
S="node $(cd "$(dirname "$0")/.." && pwd)/dist/cli/main.js"
mkdir -p "$D"
export SLUICE_REPOSITORY=$D/sluice-repo SLUICE_PASSWORD=pw RESTIC_REPOSITORY=$D/restic-repo RESTIC_PASSWORD=pw
rm -rf "$D/sluice-repo" "$D/restic-repo" "$D"/t-*
t() { local name=$1; shift; sync; local l; l=$(cut -d' ' -f1 /proc/loadavg); /usr/bin/time -f "$name %e s wall, %U user %S sys, %M KB maxrss (load $l)" "$@" >"$D/$name.out" 2>"$D/$name.err"; tail -1 "$D/$name.err"; }
$S init -q; restic init -q >/dev/null
t sluice-backup $S backup -q "$DATA"
t restic-backup restic backup -q "$DATA"
t restic-restore restic restore latest --target "$D/t-restic"
t sluice-restore $S restore latest --target "$D/t-sluice" -q
t sluice-resume-nothing-left $S restore latest --target "$D/t-sluice" --overwrite if-changed -q
t sluice-delete-dry $S restore latest --target "$D/t-sluice" --overwrite if-changed --delete --dry-run -q
t sluice-ifchanged-verify $S restore latest --target "$D/t-sluice" --overwrite if-changed --verify -q
rm -rf "$D/t-restic" "$D/t-sluice"; sync
t restic-restore-verify restic restore latest --target "$D/t-restic" --verify
t sluice-restore-verify $S restore latest --target "$D/t-sluice" --verify -q
rm -rf "$D/t-restic" "$D/t-sluice" "$D/sluice-repo" "$D/restic-repo"
