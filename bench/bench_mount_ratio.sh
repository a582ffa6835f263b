#!/usr/bin/env bash
# bench_mount_ratio.sh [--quick] [--corpus DIR] [--build DIR] [--work DIR]
#
# Compression through the mount, end to end: each scenario of the public corpus is written into a
# fresh tpdefs mount (fresh, empty backing) in the order a trainer wrote it, then
# `tpdefs-admin flush`; stored bytes = `du -sb BACKING` (everything: objects, database, WAL).
# Side by side on the same sequence: zstd -3 (each file alone), zstd -3 --patch-from=PREV (first
# file of a family alone, each next against its predecessor) and `tpde encode` (first file
# standalone, each next with --base PREV): the codec's own result, the reference for the target
# "stored ratio through the mount >= 95% of tpde encode's ratio" (PASS/FAIL per scenario).
#
# Write order: numeric order of the file names; for hf_trainer_dirs, checkpoint-N directories in
# increasing N, each dir's files model.safetensors, optimizer.pt, trainer_state.json, and the
# oldest directory is deleted once more than 3 exist (save_total_limit=3). The corpus keeps only
# the newest 3 directories, so only those are written (older ones are not in the corpus).
# Families (for PREV): files with the same name once digits are ignored (flat scenarios); the same
# file name in consecutive checkpoint-N directories (hf_trainer_dirs).
#
# After the flush the mount is remounted and every file is read back and compared (cmp) with its
# source: any difference aborts the run. `tpdefs-admin stats --json` gives, per scenario, how many
# files are stored with a base and the deepest chain.
# --quick: only gpt_bf16_st and hf_trainer_dirs. Every mount is unmounted on exit, even on error.
set -euo pipefail

usage() { echo "usage: $0 [--quick] [--corpus DIR] [--build DIR] [--work DIR]" >&2; exit 2; }
die() { echo "bench_mount_ratio: FAIL: $*" >&2; exit 1; }

HERE=$(cd "$(dirname "$0")" && pwd)
CORPUS=/var/tmp/corpus/full
BUILD=""
WORKBASE=/var/tmp
QUICK=0
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--corpus) [ $# -ge 2 ] || usage; CORPUS=$2; shift ;;
	--build) [ $# -ge 2 ] || usage; BUILD=$2; shift ;;
	--work) [ $# -ge 2 ] || usage; WORKBASE=$2; shift ;;
	*) usage ;;
	esac
	shift
done
[ -d "$CORPUS" ] || die "no such corpus directory: $CORPUS"
if [ -z "$BUILD" ]; then
	for b in "$HERE"/../build*; do
		[ -x "$b/fs/mount.tpdefs" ] && [ -x "$b/tools/tpde" ] && [ -x "$b/tools/tpdefs-admin" ] &&
			BUILD=$b && break
	done
fi
[ -n "$BUILD" ] && [ -x "$BUILD/fs/mount.tpdefs" ] && [ -x "$BUILD/tools/tpde" ] &&
	[ -x "$BUILD/tools/tpdefs-admin" ] || die "mount.tpdefs/tpde/tpdefs-admin not found (--build DIR)"
for t in zstd cmp du fusermount3 mountpoint /usr/bin/python3; do
	command -v "$t" >/dev/null || die "$t is not installed"
done
[ -e /dev/fuse ] || die "/dev/fuse is missing"

WORK=$(mktemp -d "$WORKBASE/bench_mount_ratio.XXXXXX")
MNT=$WORK/mnt
DPID=""
cleanup() {
	set +e
	if mountpoint -q "$MNT" 2>/dev/null; then
		fusermount3 -u "$MNT" 2>/dev/null || { sleep 1; fusermount3 -u "$MNT" || fusermount3 -uz "$MNT"; }
	fi
	if [ -n "$DPID" ]; then
		for _ in $(seq 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$MNT" "$WORK/bin" "$WORK/obj"
# Private copies: a rebuild during the run cannot mix versions.
cp "$BUILD/fs/mount.tpdefs" "$BUILD/tools/tpdefs-admin" "$BUILD/tools/tpde" "$WORK/bin/"
DAEMON=$WORK/bin/mount.tpdefs
ADMIN=$WORK/bin/tpdefs-admin
TPDE=$WORK/bin/tpde

. "$(dirname "$0")/mount_lib.sh"   # mnt, umnt
fsize() { stat -c %s "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b > 0 ? 100 * a / b : 0) }'; }

# order SCENARIO_DIR: prints the files relative to SCENARIO_DIR, in write order.
order() {
	local dir=$1 d f
	if ls -d "$dir"/checkpoint-* >/dev/null 2>&1; then
		for d in $(cd "$dir" && ls -d checkpoint-* | sort -t- -k2,2n); do
			for f in model.safetensors optimizer.pt trainer_state.json; do
				[ -f "$dir/$d/$f" ] && echo "$d/$f"
			done
			# anything else a trainer put there, after the known files
			for f in $(cd "$dir/$d" && ls | sort -V); do
				case $f in model.safetensors | optimizer.pt | trainer_state.json) ;; *) [ -f "$dir/$d/$f" ] && echo "$d/$f" ;; esac
			done
		done
	else
		(cd "$dir" && find . -maxdepth 1 -type f -printf '%f\n' | sort -V)
	fi
}
# family REL: the key that groups versions of one file.
family() {
	case $1 in
	checkpoint-*/*) echo "hf:${1#*/}" ;;
	*) echo "$1" | sed 's/[0-9]\+/#/g' ;;
	esac
}

if [ $QUICK = 1 ]; then
	SCEN=(gpt_bf16_st hf_trainer_dirs)
else
	SCEN=(gpt_full_state gpt_bf16_st gpt_finetune_frozen hf_trainer_dirs)
fi

echo "# bench_mount_ratio: $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), corpus $CORPUS, build $BUILD$([ $QUICK = 1 ] && echo ', quick')"
echo
ROWS=()
NOTES=()
ALLPASS=1
for sc in "${SCEN[@]}"; do
	dir=$CORPUS/$sc
	[ -d "$dir" ] || die "missing scenario $sc in $CORPUS"
	mapfile -t FILES < <(order "$dir")
	[ ${#FILES[@]} -ge 1 ] || die "no files in $dir"
	echo "bench_mount_ratio: $sc: ${#FILES[@]} files" >&2
	BACK=$WORK/backing
	rm -rf "$BACK" "$WORK/obj"
	mkdir -p "$WORK/obj"

	# ---- through the mount, in write order ----
	mnt "$BACK"
	declare -A LASTF=()
	LOG=0 Z=0 ZP=0 TP=0 PLOG=0 PTP=0 NPAIR=0
	for rel in "${FILES[@]}"; do
		src=$dir/$rel
		case $rel in
		*/*)
			d=${rel%%/*}
			if [ ! -d "$MNT/$d" ]; then
				mkdir "$MNT/$d"
				# save_total_limit=3: drop the oldest checkpoint dir once more than 3 exist
				mapfile -t DIRS < <(cd "$MNT" && ls -d checkpoint-* 2>/dev/null | sort -t- -k2,2n)
				while [ ${#DIRS[@]} -gt 3 ]; do
					echo "bench_mount_ratio: $sc: save_total_limit: rm -r ${DIRS[0]}" >&2
					rm -r "${MNT:?}/${DIRS[0]}"
					DIRS=("${DIRS[@]:1}")
				done
			fi
			;;
		esac
		cp "$src" "$MNT/$rel"
	done
	sync
	"$ADMIN" flush "$BACK" >"$WORK/flush.out" || die "$sc: tpdefs-admin flush failed"
	umnt
	STORED=$(du -sb "$BACK" | cut -f1)

	# ---- read back after a remount: bit-exact or die ----
	mnt "$BACK"
	for rel in "${FILES[@]}"; do
		cmp "$dir/$rel" "$MNT/$rel" || die "$sc: $rel read back through the mount differs from its source"
	done
	umnt
	"$ADMIN" stats "$BACK" --json >"$WORK/stats.json" || die "$sc: tpdefs-admin stats failed"
	STATS=$(/usr/bin/python3 -c '
import json, sys
st = json.load(open(sys.argv[1]))
fs = st["files"]
for f in fs:  # per file: what the daemon chose (to stderr, for the log)
    print("bench_mount_ratio: stats: %s: stored %d of %d, base %s, depth %d, codecs %s" % (
        f["path"], f["stored"], f["size"], f.get("base"), f.get("depth") or 0,
        ",".join("%s=%d" % kv for kv in sorted(f.get("codecs", {}).items()))), file=sys.stderr)
based = sum(1 for f in fs if f.get("base") or f.get("base_object"))
depth = max([f.get("depth") or 0 for f in fs] or [0])
print(len(fs), based, depth, st.get("staged_files", 0), st.get("db_bytes", 0), st.get("stored_bytes", 0))' "$WORK/stats.json") ||
		die "$sc: cannot parse stats --json"
	read -r SFILES SBASED SDEPTH SSTAGED SDB SOBJ <<<"$STATS"
	[ "$SSTAGED" = 0 ] || die "$sc: $SSTAGED files still staged after tpdefs-admin flush"

	# ---- the same sequence through zstd -3, zstd --patch-from, tpde encode ----
	for rel in "${FILES[@]}"; do
		src=$dir/$rel
		ns=$(fsize "$src")
		k=$(family "$rel")
		prev=${LASTF[$k]:-}
		o=$WORK/obj/$(echo "$rel" | tr / _)
		zstd -q -f -3 "$src" -o "$o.zst"
		z=$(fsize "$o.zst")
		if [ -n "$prev" ]; then
			ps=$(fsize "$prev")
			# --patch-from needs a window covering the reference (--long=W; decode needs the same)
			w=27
			while [ $((1 << w)) -lt $((ps + ns)) ]; do w=$((w + 1)); done
			zstd -q -f -3 --long=$w --patch-from="$prev" "$src" -o "$o.zp"
			zp=$(fsize "$o.zp")
			"$TPDE" encode --base "$prev" "$src" -o "$o.tpde" 2>"$WORK/tpde.err" ||
				die "$sc: tpde encode --base $prev $src failed: $(head -c 300 "$WORK/tpde.err")"
		else
			zp=$z
			"$TPDE" encode "$src" -o "$o.tpde" 2>"$WORK/tpde.err" ||
				die "$sc: tpde encode $src failed: $(head -c 300 "$WORK/tpde.err")"
		fi
		tp=$(fsize "$o.tpde")
		rm -f "$o.zst" "$o.zp"
		LOG=$((LOG + ns)); Z=$((Z + z)); ZP=$((ZP + zp)); TP=$((TP + tp))
		if [ -n "$prev" ]; then
			PLOG=$((PLOG + ns)); PTP=$((PTP + tp)); NPAIR=$((NPAIR + 1))
		fi
		LASTF[$k]=$src
		echo "bench_mount_ratio: $sc: $rel: $ns bytes, zstd $z, patch-from $zp, tpde $tp${prev:+ (base $(basename "$(dirname "$prev")")/$(basename "$prev"))}" >&2
	done
	unset LASTF
	rm -rf "$WORK/obj" "$BACK"

	RM=$(ratio $LOG $STORED)
	RT=$(ratio $LOG $TP)
	P=$(pct "$RM" "$RT")
	V=$(awk -v p="$P" 'BEGIN { print (p >= 95 ? "PASS" : "FAIL") }')
	[ "$V" = PASS ] || ALLPASS=0
	ROWS+=("| $sc | ${#FILES[@]} | $LOG | $STORED | **$RM** | $(ratio $LOG $Z) | $(ratio $LOG $ZP) | $RT | $(ratio $PLOG $PTP) ($NPAIR) | $P% | $V | $SBASED/$SFILES | $SDEPTH | $SOBJ | $((STORED - SOBJ)) |")
	echo "bench_mount_ratio: $sc: mount $RM, tpde $RT ($P%) $V; flush: $(tr '\n' ' ' <"$WORK/flush.out")" >&2
	if [ "$sc" = hf_trainer_dirs ]; then
		NOTES+=("hf_trainer_dirs: the corpus keeps only the newest 3 checkpoint dirs (save_total_limit=3 deleted the older ones while it was made), so only those are written here; the deletion rule is applied but never fires with 3 dirs.")
	fi
done

echo "| scenario | files | logical bytes | stored bytes (du -sb) | mount ratio | zstd -3 | zstd -3 --patch-from | tpde encode | tpde, pairs only (pairs) | mount/tpde | >= 95% | files with a base | max depth | object bytes (stats) | other bytes (db, dirs) |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|--:|--:|--:|--:|"
for r in "${ROWS[@]}"; do echo "$r"; done
echo
echo "Ratios = logical bytes / stored bytes over the whole written sequence (first files included);"
echo "'pairs only' excludes each family's first file (the corpus README's definition)."
echo "Every file read back through the mount after a remount is bit-exact (cmp)."
for n in "${NOTES[@]}"; do echo "$n"; done
[ $ALLPASS = 1 ] || { echo "bench_mount_ratio: at least one scenario is below 95% of tpde encode" >&2; exit 1; }
