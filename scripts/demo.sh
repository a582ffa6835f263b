#!/usr/bin/env bash
# Quick start, step 1: install dependencies, build, mount a demo tpdefs store and let a real
# PyTorch trainer save checkpoints into it unmodified; then restore one with cp and compare.
# The demo stays mounted at $MNT for you to explore; unmount with: fusermount3 -u $MNT
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO=${TPDEFS_DEMO_DIR:-/var/tmp/tpdefs-demo}
BACK=$DEMO/backing
MNT=$DEMO/mnt

bash scripts/deps.sh
[ -d build ] || meson setup build >/dev/null
meson compile -C build >/dev/null
echo "built: build/fs/mount.tpdefs build/tools/tpdefs-admin build/tools/tpde"

if mountpoint -q "$MNT" 2>/dev/null; then fusermount3 -u "$MNT"; fi
rm -rf "$DEMO"; mkdir -p "$MNT"
build/fs/mount.tpdefs "$BACK" "$MNT"
echo "mounted: $BACK on $MNT"

echo "training a small transformer, saving every 20 steps into $MNT/run1 ..."
/usr/bin/python3 scripts/demo_train.py "$MNT"

echo "restoring the newest checkpoint with cp and loading it back ..."
newest=$(ls "$MNT"/run1/ckpt_*.pt | tail -n 1)
cp "$newest" "$DEMO/restored.pt"
cmp "$newest" "$DEMO/restored.pt"
/usr/bin/python3 -c "import torch,sys; s=torch.load(sys.argv[1]); print('  restored step', s['step'], 'bit-exact')" "$DEMO/restored.pt"

build/tools/tpdefs-admin flush "$BACK" >/dev/null
logical=$(du -sb --apparent-size "$MNT" | cut -f1)
stored=$(du -sb "$BACK" | cut -f1)
echo
build/tools/tpdefs-admin stats "$BACK" 2>/dev/null | head -n 20 || true
awk -v l="$logical" -v s="$stored" 'BEGIN { printf "logical %.1f MB, backing directory %.1f MB (database included): ratio %.2fx\n", l/1e6, s/1e6, l/s }'
echo "still mounted at $MNT; unmount with: fusermount3 -u $MNT"
