#!/bin/bash
# smoke.sh - quick end-to-end check of mount.tpdefs: copy the sample corpus in, flush, compare,
# remount, compare again. Usage: smoke.sh BUILD_DIR [CORPUS_DIR]
set -u
BUILD=${1:?build dir}
CORPUS=${2:-$(cd "$(dirname "$0")/../../.." && pwd)/shared/corpus/sample}
MNT=$(mktemp -d /tmp/tpdefs-smoke-m.XXXXXX)
B=$(mktemp -d /tmp/tpdefs-smoke-b.XXXXXX)
cleanup() { mountpoint -q "$MNT" && fusermount3 -u "$MNT"; rmdir "$MNT"; rm -rf "$B"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
"$BUILD/fs/mount.tpdefs" "$B" "$MNT" -o debounce_ms=100 || fail mount
cp -r "$CORPUS/." "$MNT/" || fail copy
"$BUILD/tools/tpdefs-admin" flush "$B" | tail -3 || fail flush
diff -r "$CORPUS" "$MNT" >/dev/null || fail "diff after write"
logical=$(du -sb --apparent-size "$CORPUS" | cut -f1)
echo "logical=$logical backing=$(du -sb "$B" | cut -f1) du-on-mount=$(du -sB1 "$MNT" | cut -f1)"
fusermount3 -u "$MNT" || fail umount
sleep 0.3
"$BUILD/fs/mount.tpdefs" "$B" "$MNT" || fail remount
diff -r "$CORPUS" "$MNT" >/dev/null || fail "diff after remount"
echo PASS
