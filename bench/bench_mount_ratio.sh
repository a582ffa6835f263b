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
#
# Scenarios that are a write sequence, not a corpus directory (bench/scenario_lib.sh): Lightning's
# save_last (lightning_save_last, lightning_torchsave_path; made by bench/gen_lightning.py into
# --lightning DIR, default /var/tmp/corpus/lightning), a `cp -r` of a run inside the mount (cp_r,
# the first --cpr-versions N of gpt_full_state, default 10) and a fine-tune whose base is stored
# first (finetune_from_base). Each is replayed into a fresh mount (with `tpdefs-admin flush` where
# time passes), remounted, every file present at the end read back (cmp); a second table gives
# per scenario and per file the stored bytes (du -sb, and each file's object from stats --json; a
# file sharing an object already counted costs 0) next to `tpde encode`, zstd -3 --patch-from and
# xdelta3 -9 against the predecessor a name-based tool would pick (the file itself with none).
# A full run includes them (the Lightning ones only if DIR holds them, else a note says so);
# --scenario NAME (repeatable) runs only the named scenarios, old or new; --quick none of them.
set -euo pipefail

usage() { echo "usage: $0 [--quick] [--corpus DIR] [--build DIR] [--work DIR] [--scenario NAME]... [--lightning DIR] [--cpr-versions N]" >&2; exit 2; }
die() { echo "bench_mount_ratio: FAIL: $*" >&2; exit 1; }

HERE=$(cd "$(dirname "$0")" && pwd)
CORPUS=/var/tmp/corpus/full
BUILD=""
WORKBASE=/var/tmp
QUICK=0
ONLY=()
LIGHTNING=/var/tmp/corpus/lightning
CPR_VERSIONS=10
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1 ;;
	--scenario) [ $# -ge 2 ] || usage; ONLY+=("$2"); shift ;;
	--lightning) [ $# -ge 2 ] || usage; LIGHTNING=$2; shift ;;
	--cpr-versions) [ $# -ge 2 ] || usage; CPR_VERSIONS=$2; shift ;;
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
for t in zstd xdelta3 cmp du fusermount3 mountpoint /usr/bin/python3; do
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
. "$(dirname "$0")/scenario_lib.sh"   # SCENARIOS_NEW, scenario_inputs, scenario_plan
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

ALLOLD=(gpt_full_state gpt_bf16_st gpt_finetune_frozen hf_trainer_dirs)
NEWSCEN=()
SKIPNOTES=()
if [ ${#ONLY[@]} -gt 0 ]; then
	SCEN=()
	for n in "${ONLY[@]}"; do
		if [[ " ${ALLOLD[*]} " == *" $n "* ]]; then SCEN+=("$n")
		elif [[ " ${SCENARIOS_NEW[*]} " == *" $n "* ]]; then
			miss=$(scenario_inputs "$n")
			[ -z "$miss" ] || die "$n needs $miss"
			NEWSCEN+=("$n")
		else die "unknown scenario $n (known: ${ALLOLD[*]} ${SCENARIOS_NEW[*]})"; fi
	done
elif [ $QUICK = 1 ]; then
	SCEN=(gpt_bf16_st hf_trainer_dirs)
else
	SCEN=("${ALLOLD[@]}")
	for n in "${SCENARIOS_NEW[@]}"; do
		miss=$(scenario_inputs "$n")
		if [ -z "$miss" ]; then NEWSCEN+=("$n"); else SKIPNOTES+=("$n: not run, missing $miss"); fi
	done
fi
[[ "$CPR_VERSIONS" =~ ^[1-9][0-9]*$ ]] || die "--cpr-versions needs a positive number"

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

if [ ${#ROWS[@]} -gt 0 ]; then
	echo "| scenario | files | logical bytes | stored bytes (du -sb) | mount ratio | zstd -3 | zstd -3 --patch-from | tpde encode | tpde, pairs only (pairs) | mount/tpde | >= 95% | files with a base | max depth | object bytes (stats) | other bytes (db, dirs) |"
	echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|--:|--:|--:|--:|"
	for r in "${ROWS[@]}"; do echo "$r"; done
	echo
	echo "Ratios = logical bytes / stored bytes over the whole written sequence (first files included);"
	echo "'pairs only' excludes each family's first file (the corpus README's definition)."
	echo "Every file read back through the mount after a remount is bit-exact (cmp)."
	for n in "${NOTES[@]}"; do echo "$n"; done
fi

# ---- scenarios that are a write sequence (bench/scenario_lib.sh) ----
# run_plan SCENARIO: replays its plan into a fresh mount, reads every file back after a remount,
# codes every file with the tools; appends to NROWS (summary) and FROWS (per file).
NROWS=()
FROWS=()
run_plan() {
	local sc=$1 line op a b c d t0 fl=()
	mapfile -t PLAN < <(scenario_plan "$sc")
	BACK=$WORK/backing
	rm -rf "$BACK" "$WORK/obj"
	mkdir -p "$WORK/obj"
	: >"$WORK/flush.out"
	t0=$(date +%s)
	mnt "$BACK"
	for line in "${PLAN[@]}"; do
		IFS=$'\t' read -r op a b c d <<<"$line"
		case $op in
		mkdir) mkdir "$MNT/$a" ;;
		write) cp "$a" "$MNT/$b" || die "$sc: cp $a $MNT/$b failed" ;;
		mv) mv "$MNT/$a" "$MNT/$b" || die "$sc: mv $a $b failed" ;;
		cpr) cp -r "$MNT/$a" "$MNT/$b" || die "$sc: cp -r $a $b failed" ;;
		flush) sync; "$ADMIN" flush "$BACK" >>"$WORK/flush.out" || die "$sc: tpdefs-admin flush failed" ;;
		file) fl+=("$a"$'\t'"$b"$'\t'"$c"$'\t'"$d") ;;
		pair) ;;
		*) die "$sc: bad plan line: $line" ;;
		esac
	done
	sync
	"$ADMIN" flush "$BACK" >>"$WORK/flush.out" || die "$sc: tpdefs-admin flush failed"
	umnt
	local stored
	stored=$(du -sb "$BACK" | cut -f1)
	# read back after a remount: every file present at the end, bit-exact, and nothing else there
	mnt "$BACK"
	local rel src pred kind nfound
	for line in "${fl[@]}"; do
		IFS=$'\t' read -r rel src pred kind <<<"$line"
		cmp "$src" "$MNT/$rel" || die "$sc: $rel read back through the mount differs from its source $src"
	done
	nfound=$(find "$MNT" -type f | wc -l)
	[ "$nfound" = ${#fl[@]} ] || die "$sc: $nfound files in the mount, expected ${#fl[@]}: $(cd "$MNT" && find . -type f | tr '\n' ' ')"
	umnt
	echo "bench_mount_ratio: $sc: written, flushed, read back bit-exact in $(($(date +%s) - t0))s; flush: $(tr '\n' ' ' <"$WORK/flush.out")" >&2
	"$ADMIN" stats "$BACK" --json >"$WORK/stats.json" || die "$sc: tpdefs-admin stats failed"
	# per file: PATH STORED OBJECT BASE DEPTH; then a line "= TOTALS"
	/usr/bin/python3 -c '
import json, sys
st = json.load(open(sys.argv[1]))
for f in st["files"]:
    base = (f.get("base") or "").lstrip("/") or ("object %d" % f["base_object"] if f.get("base_object") else "-")
    print("%s\t%d\t%s\t%s\t%d" % (f["path"].lstrip("/"), f["stored"], f.get("object"), base, f.get("depth") or 0))
print("=\t%d\t%d\t%d\t%d" % (st.get("stored_bytes", 0), st.get("unreferenced_objects", 0),
      st.get("unreferenced_bytes", 0), st.get("staged_files", 0)))' "$WORK/stats.json" >"$WORK/stats.tsv" ||
		die "$sc: cannot parse stats --json"
	local sobj unref unrefb staged
	IFS=$'\t' read -r _ sobj unref unrefb staged < <(grep '^=' "$WORK/stats.tsv")
	[ "$staged" = 0 ] || die "$sc: $staged files still staged after tpdefs-admin flush"

	declare -A seen=()
	local LOG=0 TP=0 ZP=0 X=0 based=0 maxd=0 ns o tp zp x w ps st obj base depth cost
	for line in "${fl[@]}"; do
		IFS=$'\t' read -r rel src pred kind <<<"$line"
		IFS=$'\t' read -r _ st obj base depth < <(awk -F'\t' -v p="$rel" '$1 == p' "$WORK/stats.tsv") ||
			die "$sc: $rel is not in tpdefs-admin stats"
		if [ -n "${seen[$obj]:-}" ]; then
			cost="0 (object of ${seen[$obj]})"
		else
			seen[$obj]=$rel
			cost=$st
		fi
		[ "$base" = - ] || based=$((based + 1))
		[ "$depth" -le "$maxd" ] || maxd=$depth
		ns=$(fsize "$src")
		o=$WORK/obj/x
		if [ "$pred" = - ]; then
			"$TPDE" encode "$src" -o "$o.tpde" 2>"$WORK/tpde.err" ||
				die "$sc: tpde encode $src failed: $(head -c 300 "$WORK/tpde.err")"
			zstd -q -f -3 "$src" -o "$o.zp"
			xdelta3 -9 -e -f "$src" "$o.x"
		else
			"$TPDE" encode --base "$pred" "$src" -o "$o.tpde" 2>"$WORK/tpde.err" ||
				die "$sc: tpde encode --base $pred $src failed: $(head -c 300 "$WORK/tpde.err")"
			ps=$(fsize "$pred")
			w=27
			while [ $((1 << w)) -lt $((ps + ns)) ]; do w=$((w + 1)); done
			# a copy against its original: zstd refuses one file as both input and dictionary
			if [ "$pred" -ef "$src" ]; then cp "$pred" "$o.ref"; pred=$o.ref; fi
			zstd -q -f -3 --long=$w --patch-from="$pred" "$src" -o "$o.zp"
			xdelta3 -9 -e -f -s "$pred" "$src" "$o.x"
		fi
		tp=$(fsize "$o.tpde") zp=$(fsize "$o.zp") x=$(fsize "$o.x")
		rm -f "$o.tpde" "$o.zp" "$o.x" "$o.ref"
		LOG=$((LOG + ns)) TP=$((TP + tp)) ZP=$((ZP + zp)) X=$((X + x))
		IFS=$'\t' read -r _ _ pred _ <<<"$line"
		FROWS+=("| $sc | $rel | $kind | $ns | $cost | $base | $([ "$pred" = - ] && echo - || echo "${pred#"$CORPUS"/}" | sed "s|^$LIGHTNING/||") | $tp | $zp | $x |")
		echo "bench_mount_ratio: $sc: $rel: $ns bytes, tpdefs $cost (base $base, depth $depth), tpde $tp, patch-from $zp, xdelta3 $x" >&2
	done
	unset seen
	rm -rf "$WORK/obj" "$BACK"
	local RM RT P V
	RM=$(ratio $LOG "$stored") RT=$(ratio $LOG $TP)
	P=$(pct "$RM" "$RT")
	V=$(awk -v p="$P" 'BEGIN { print (p >= 95 ? "PASS" : "FAIL") }')
	[ "$V" = PASS ] || ALLPASS=0
	NROWS+=("| $sc | ${#fl[@]} | $LOG | $stored | **$RM** | $sobj | $(ratio $LOG "$sobj") | $RT | $(ratio $LOG $ZP) | $(ratio $LOG $X) | $P% | $V | $based/${#fl[@]} | $maxd | $unref ($unrefb) |")
}
for sc in "${NEWSCEN[@]}"; do
	echo "bench_mount_ratio: $sc" >&2
	run_plan "$sc"
done
if [ ${#NROWS[@]} -gt 0 ]; then
	[ ${#ROWS[@]} -eq 0 ] || echo
	echo "| scenario | files | logical bytes | stored bytes (du -sb) | mount ratio | object bytes (stats) | ratio, objects only | tpde encode | zstd -3 --patch-from | xdelta3 -9 | mount/tpde | >= 95% | files with a base | max depth | unreferenced objects (bytes) |"
	echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|:-:|--:|--:|--:|"
	for r in "${NROWS[@]}"; do echo "$r"; done
	echo
	echo "Per file (tpdefs: the file's object from stats --json, 0 when an earlier file's object is shared;"
	echo "the tools code each file against the predecessor shown, alone where there is none):"
	echo
	echo "| scenario | file | kind | bytes | tpdefs stored | tpdefs base | tools' predecessor | tpde encode | zstd -3 --patch-from | xdelta3 -9 |"
	echo "|---|---|---|--:|--:|---|---|--:|--:|--:|"
	for r in "${FROWS[@]}"; do echo "$r"; done
	echo
	echo "Files = those present at the end (replaced versions of last.ckpt are not counted); logical bytes"
	echo "= their sizes. Every one read back through the mount after a remount is bit-exact (cmp)."
fi
for n in "${SKIPNOTES[@]}"; do echo "$n"; done
[ $ALLPASS = 1 ] || { echo "bench_mount_ratio: at least one scenario is below 95% of tpde encode" >&2; exit 1; }
