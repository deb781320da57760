#!/usr/bin/env bash
# What a user installs: `npm pack` this checkout, check what the tarball ships, install it
# globally into a scratch prefix (which compiles zstd-napi and our addon), and run the installed
# `sluice` through init, backup and restore of a small tree. Slow (a minute or more: the
# compiles), so it is part of the bench setup, not of `npm test`.
#
#   bash bench/pack-install.sh            # scratch files under a fresh mktemp directory
#   PACK_DIR=/tmp/x bash bench/pack-install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
work=${PACK_DIR:-$(mktemp -d)}
mkdir -p "$work"
start=$(date +%s)

# `npm pack` runs the `prepare` script, which builds dist/.
tgz=$(npm pack --pack-destination "$work" --silent | tail -n 1)
tarball="$work/$tgz"
echo "packed $tarball ($(du -k "$tarball" | cut -f1) KiB)"

listing="$work/listing.txt"
tar -tzf "$tarball" > "$listing"
fail() { echo "pack-install: $*" >&2; exit 1; }
for must in package/package.json package/README.md package/binding.gyp package/dist/cli/main.js \
            package/dist/index.js package/dist/index.d.ts package/dist/transforms/backup/seal-worker.js \
            package/native/sluice_native.c package/native/fsbatch.c package/docs/FORMAT.md; do
  grep -qx "$must" "$listing" || fail "the tarball lacks $must"
done
# Nothing but what runs: no tests, bench, CI, fixtures or TypeScript sources (.d.ts are types).
if grep -E '^package/(test|bench|fixtures|\.ci|build|node_modules)/|\.ts$' "$listing" | grep -v '\.d\.ts$'; then
  fail 'the tarball ships the files above, which do not run'
fi
echo "tarball: $(wc -l < "$listing") files, dist/ and the addon's sources, no tests or sources"

# npm 11 runs install scripts but warns about each package not named in --allow-scripts; the
# two that compile are ours (binding.gyp) and zstd-napi. A tarball is named by its path (npm
# matches a file's resolved location, not the name in its package.json).
prefix="$work/prefix"
rm -rf "$prefix"
npm install -g --prefix "$prefix" --no-audit --no-fund --allow-scripts="zstd-napi,$tarball" "$tarball"
sluice="$prefix/bin/sluice"
[ -x "$sluice" ] || fail "no $sluice after the install"
"$sluice" --version

# A real round trip with the installed command, outside the checkout.
export SLUICE_PASSWORD=pack-install SLUICE_REPOSITORY="$work/repo"
rm -rf "$work/repo" "$work/restore" "$work/src"
mkdir -p "$work/src/sub"
cp -r "$root/docs" "$work/src/sub/docs"
printf 'hello\n' > "$work/src/hello.txt"
ln -s hello.txt "$work/src/link"
cd "$work"
"$sluice" init
"$sluice" backup -q "$work/src"
"$sluice" restore latest --target "$work/restore"
diff -r --no-dereference "$work/src" "$work/restore$work/src" || fail 'the restored tree differs'
"$sluice" check
echo "pack-install: ok in $(( $(date +%s) - start )) s (tarball, global install, init, backup, restore, check)"
