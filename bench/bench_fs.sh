#!/usr/bin/env bash
# bench_fs.sh [--quick] [--corpus DIR] [--build DIR] [--work DIR] [--runs N] [--mem-gb N]
#             [--opts MOUNT_OPTS]
#
# Filesystem throughput of a real tpdefs mount next to the raw backing filesystem, measured side
# by side in one run (the machine is shared and noisy: only ratios within one run mean anything).
# Needs root (drop_caches) and /dev/fuse. Every mount is unmounted on exit, even on error.
#
#  write     cp of a checkpoint sequence into the mount + sync (through close and sync), vs cp of
#            the same files into a plain directory on the backing filesystem + sync. Sources are
#            read from the page cache. Encoding runs in the background: "encode" is the time from
#            the start of the copy until `tpdefs-admin flush` says every file is stored.
#  restore   cold: umount, remount, drop caches, cat every checkpoint of the chain (and, separately,
#            the newest checkpoint alone - what a resumed job loads - and the deepest file alone)
#            vs cat of the plain copies after dropping caches.
#  ceilings  what bounds the restore rows, same run: "transport alone" is the newest file read
#            again on the same mount after dropping the page cache (its decoded chunks are still in
#            the daemon's cache: FUSE and nothing else); "codec alone" is `tpde decode` of the same
#            objects from cold object files into /dev/shm (no FUSE): the newest one, and every
#            object of the store in chain order, each against its decoded base. The CLI also pays
#            for its process start, a hash of the base file and fresh tmpfs pages for its output,
#            which the daemon does not: a ceiling to compare with, not a bound.
#  mmap      cold: the newest checkpoint mmapped and copied out front to back (fs_lat walk: what
#            safetensors and numpy.memmap loaders do) vs the same walk over the plain copy.
#  random    N random 4 KiB pread()s / mmap reads of the deepest file: cold (fresh mount, dropped
#            caches) and warm (the same offsets again); percentiles in microseconds.
#  memory    the daemon's VmHWM while writing then reading back MEM_GB synthetic 1 GiB float32
#            checkpoints (bench/fs_lat.c gen) with cache_size=256M.
# --quick: fewer repetitions, 4 x 256 MiB for the memory test; under ~2 minutes.
set -euo pipefail

usage() { echo "usage: $0 [--quick] [--corpus DIR] [--build DIR] [--work DIR] [--runs N] [--mem-gb N] [--opts O]" >&2; exit 2; }
die() { echo "bench_fs: $*" >&2; exit 1; }

HERE=$(cd "$(dirname "$0")" && pwd)
CORPUS=/var/tmp/corpus/full/gpt_full_state
BUILD=""
WORKBASE=/var/tmp
QUICK=0
RUNS=3
MEMGB=10
MEMMB=1024
NLAT=2000
OPTS=""
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1; RUNS=1; MEMGB=4; MEMMB=256; NLAT=500 ;;
	--corpus) CORPUS=$2; shift ;;
	--build) BUILD=$2; shift ;;
	--work) WORKBASE=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	--mem-gb) MEMGB=$2; shift ;;
	--opts) OPTS=$2; shift ;;
	*) usage ;;
	esac
	shift
done
[ "$(id -u)" = 0 ] || die "needs root (drop_caches)"
[ -d "$CORPUS" ] || die "no such corpus directory: $CORPUS"
if [ -z "$BUILD" ]; then
	for b in "$HERE"/../build-perf "$HERE"/../build*; do
		[ -x "$b/fs/mount.tpdefs" ] && BUILD=$b && break
	done
fi
[ -n "$BUILD" ] && [ -x "$BUILD/fs/mount.tpdefs" ] || die "mount.tpdefs not found (--build DIR)"

WORK=$(mktemp -d "$WORKBASE/bench_fs.XXXXXX")
MNT=$WORK/mnt
PIDS=()
cleanup() {
	set +e
	if mountpoint -q "$MNT" 2>/dev/null; then
		fusermount3 -u "$MNT" 2>/dev/null || { sleep 1; fusermount3 -u "$MNT" || fusermount3 -uz "$MNT"; }
	fi
	for p in "${PIDS[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	done
	rm -rf "$WORK"
	[ -n "${DECSHM:-}" ] && rm -rf "$DECSHM"
}
trap cleanup EXIT
mkdir -p "$MNT" "$WORK/bin"
# Private copies: a rebuild during the run cannot mix versions.
cp "$BUILD/fs/mount.tpdefs" "$BUILD/tools/tpdefs-admin" "$BUILD/tools/tpde" "$WORK/bin/"
cc -O2 -o "$WORK/bin/fs_lat" "$HERE/fs_lat.c" || die "cannot build fs_lat"
DAEMON=$WORK/bin/mount.tpdefs
ADMIN=$WORK/bin/tpdefs-admin
TPDE=$WORK/bin/tpde
LAT=$WORK/bin/fs_lat

now() { date +%s.%N; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
. "$(dirname "$0")/mount_lib.sh"   # mnt, umnt
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$DPID/status"; }
# CPU seconds (user + system) the daemon used so far
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$DPID/stat"; }
# best (minimum) of a list of numbers
best() { tr ' ' '\n' | grep . | sort -g | head -1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
mbs() { awk -v by="$1" -v t="$2" 'BEGIN { printf "%.0f", by / 1e6 / t }'; }
pass() { awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t ? "yes" : "**no**") }'; }

mapfile -t FILES < <(find "$CORPUS" -maxdepth 1 -type f | sort)
[ ${#FILES[@]} -ge 2 ] || die "need at least 2 files in $CORPUS"
BYTES=$(du -cb "${FILES[@]}" | tail -1 | cut -f1)
cat "${FILES[@]}" >/dev/null # sources come from the page cache in every run

echo "# bench_fs: $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), corpus $CORPUS (${#FILES[@]} files, $((BYTES / 1000000)) MB), opts '${OPTS:-default}', runs $RUNS" >&2

# ---- write ------------------------------------------------------------------------------------
TP=(); TM=(); TE=(); HW=()
# The side that writes second needs fresh memory for its page cache while the first side's files
# still hold theirs, and fresh memory is slow on a VM whose host reclaims what the guest frees
# (here DAMON pages out cold page cache): the order alternates from run to run, so with
# --runs >= 2 each side is timed in both positions.
write_plain() {
	rm -rf "$WORK/plain"; mkdir -p "$WORK/plain"; sync
	local t0; t0=$(now); cp "${FILES[@]}" "$WORK/plain/"; sync
	TP+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN{print b-a}')")
}
write_mount() {
	rm -rf "$WORK/backing"; sync
	mnt "$WORK/backing"
	local t0 t1; t0=$(now); cp "${FILES[@]}" "$MNT/"; sync; t1=$(now)
	"$ADMIN" flush "$WORK/backing" >/dev/null
	TM+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')")
	TE+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN{print b-a}')")
	HW+=("$(hwm_kb)")
	umnt
}
for r in $(seq "$RUNS"); do
	if [ $((r % 2)) = 1 ]; then write_plain; write_mount; else write_mount; write_plain; fi
done
tp=$(echo "${TP[*]}" | best); tm=$(echo "${TM[*]}" | best); te=$(echo "${TE[*]}" | best)
STORED=$(du -sb "$WORK/backing" | cut -f1)
echo "write: plain ${TP[*]} s, mount ${TM[*]} s, encoded ${TE[*]} s" >&2

# ---- cold restore: whole chain, deepest file --------------------------------------------------
DEEP=""
DEEPD=-1
# What the store holds, read once: the deepest stored file (ties: the later name), the newest
# file's depth and object, and the objects in decode order (bases first, "object base_object" per
# line) for the codec ceiling.
STATS=$WORK/stats.json
"$ADMIN" stats "$WORK/backing" --json >"$STATS"
read -r DEEP DEEPD < <(python3 -c '
import json, sys
fs = json.load(open(sys.argv[1]))["files"]
f = max(fs, key=lambda f: (f.get("depth") or 0, f["path"]))
print(f["path"].rsplit("/", 1)[-1], f.get("depth") or 0)' "$STATS")
NEWEST=$(basename "${FILES[-1]}") # the checkpoint a resumed job loads
read -r NEWD NEWOBJ < <(python3 -c '
import json, sys
n = sys.argv[2]
f = next(f for f in json.load(open(sys.argv[1]))["files"] if f["path"].endswith("/" + n))
print(f.get("depth") or 0, f.get("object") or 0)' "$STATS" "$NEWEST")
CP=(); CM=(); DP=(); DM=(); CCM=(); CDM=(); NP=(); NM=(); CNM=(); WP=(); WM=(); CWM=(); NT=(); XN=(); XA=()
mapfile -t ORDER < <(python3 -c '
import json, sys
fs = json.load(open(sys.argv[1]))["files"]
base = {f["object"]: f.get("base_object") or 0 for f in fs if f.get("object")}
done, out = set(), []
while len(done) < len(base):
    ready = [o for o in sorted(base) if o not in done and (base[o] == 0 or base[o] in done)]
    if not ready:
        break  # a base outside the files listed: leave the rest out
    for o in ready:
        out.append("%d %d" % (o, base[o])); done.add(o)
print("\n".join(out))' "$STATS")
objpath() { printf '%s/objects/%016x.tpdo' "$WORK/backing" "$1"; }
DECSHM=$(mktemp -d /dev/shm/bench_fs.XXXXXX)
# codec_all: decode every object in ORDER from cold files; seconds
codec_all() {
	rm -f "$DECSHM"/*; drop
	local t0 o b; t0=$(now)
	for l in "${ORDER[@]}"; do
		read -r o b <<<"$l"
		if [ "$b" = 0 ]; then "$TPDE" decode "$(objpath "$o")" -o "$DECSHM/$o"
		else "$TPDE" decode --base "$DECSHM/$b" "$(objpath "$o")" -o "$DECSHM/$o"; fi
	done
	awk -v a="$t0" -v b="$(now)" 'BEGIN{print b-a}'
	rm -f "$DECSHM"/*
}
# cold_pair FILE PLAIN_ARRAY MOUNT_ARRAY: cat of the plain copy, then of the mounted file on a
# fresh mount, each after dropping caches; seconds appended to the arrays; leaves it mounted.
cold_pair() {
	local -n _p=$2 _m=$3
	local t0
	drop
	t0=$(now); cat "$WORK/plain/$1" >/dev/null; _p+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN{print b-a}')")
	mnt "$WORK/backing"; drop
	t0=$(now); cat "$MNT/$1" >/dev/null; _m+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN{print b-a}')")
}
for r in $(seq "$RUNS"); do
	drop
	t0=$(now); cat "$WORK/plain/"* >/dev/null; t1=$(now)
	CP+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')")
	mnt "$WORK/backing"; drop
	t0=$(now); for f in "${FILES[@]}"; do cat "$MNT/$(basename "$f")"; done >/dev/null; t1=$(now)
	CM+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')")
	CCM+=("$(cpu_s)")
	umnt
	cold_pair "$DEEP" DP DM
	CDM+=("$(cpu_s)")
	HW+=("$(hwm_kb)")
	umnt
	cold_pair "$NEWEST" NP NM
	CNM+=("$(cpu_s)")
	drop # the page cache goes, the daemon's decoded chunks stay
	t0=$(now); cat "$MNT/$NEWEST" >/dev/null; NT+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN{print b-a}')")
	umnt
	if [ "$NEWD" = 0 ]; then
		drop; t0=$(now); "$TPDE" decode "$(objpath "$NEWOBJ")" -o "$DECSHM/new"
		XN+=("$(awk -v a="$t0" -v b="$(now)" 'BEGIN{print b-a}')"); rm -f "$DECSHM/new"
	fi
	[ ${#ORDER[@]} = ${#FILES[@]} ] && XA+=("$(codec_all)")
	# the same file through a cold mmap walk; the checksums must agree
	drop
	read -r t hp < <("$LAT" walk "$WORK/plain/$NEWEST"); WP+=("$t")
	mnt "$WORK/backing"; drop
	read -r t hm < <("$LAT" walk "$MNT/$NEWEST"); WM+=("$t")
	CWM+=("$(cpu_s)")
	[ "$hp" = "$hm" ] || die "mmap walk of $NEWEST: checksum $hm through the mount, $hp plain"
	umnt
done
cp_=$(echo "${CP[*]}" | best); cm=$(echo "${CM[*]}" | best)
dp=$(echo "${DP[*]}" | best); dm=$(echo "${DM[*]}" | best)
ccm=$(echo "${CCM[*]}" | best); cdm=$(echo "${CDM[*]}" | best)
np_=$(echo "${NP[*]}" | best); nm=$(echo "${NM[*]}" | best)
wp=$(echo "${WP[*]}" | best); wm=$(echo "${WM[*]}" | best)
cnm=$(echo "${CNM[*]}" | best); cwm=$(echo "${CWM[*]}" | best)
nt=$(echo "${NT[*]}" | best); xn=$(echo "${XN[*]}" | best); xa=$(echo "${XA[*]}" | best)
rmdir "$DECSHM" 2>/dev/null || true
NBYTES=$(stat -c %s "$WORK/plain/$NEWEST")
DBYTES=$(stat -c %s "$WORK/plain/$DEEP")
echo "restore: plain ${CP[*]} s, mount ${CM[*]} s (daemon CPU ${CCM[*]} s); deepest $DEEP (depth $DEEPD): plain ${DP[*]} s, mount ${DM[*]} s (daemon CPU ${CDM[*]} s); newest $NEWEST (depth $NEWD): plain ${NP[*]} s, mount ${NM[*]} s (daemon CPU ${CNM[*]} s); mmap walk of $NEWEST: plain ${WP[*]} s, mount ${WM[*]} s (daemon CPU ${CWM[*]} s); transport alone (newest, decoded chunks cached) ${NT[*]} s; codec alone: newest ${XN[*]:-n/a} s, all ${XA[*]:-n/a} s" >&2

# ---- backpressure: a staging limit far below the sequence, writers must wait, never fail -------
BPLIM=64
rm -rf "$WORK/backing"
mnt "$WORK/backing" "staging_limit=${BPLIM}M"
( peak=0; while [ ! -e "$WORK/bp.stop" ]; do
	b=$(du -sb "$WORK/backing/staging" 2>/dev/null | cut -f1); [ "${b:-0}" -gt "$peak" ] && peak=$b
	echo "$peak" >"$WORK/bp.peak"; sleep 0.1; done ) &
SAMPLER=$!
t0=$(now); bprc=0; cp "${FILES[@]}" "$MNT/" || bprc=$?; sync; t1=$(now)
"$ADMIN" flush "$WORK/backing" >/dev/null; t2=$(now)
touch "$WORK/bp.stop"; wait "$SAMPLER" || true
BPPEAK=$(cat "$WORK/bp.peak"); BPW=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}'); BPE=$(awk -v a="$t0" -v b="$t2" 'BEGIN{print b-a}')
umnt
rm -rf "$WORK/backing"
echo "backpressure: cp rc $bprc, cp+sync $BPW s, encoded $BPE s, peak staging $BPPEAK B" >&2
mnt "$WORK/backing"; cp "${FILES[@]}" "$MNT/"; "$ADMIN" flush "$WORK/backing" >/dev/null; umnt

# ---- random 4 KiB reads and mmap reads of the deepest file ------------------------------------
declare -A L
for mode in pread mmap; do
	drop
	L[plain_${mode}_cold]=$("$LAT" $mode "$WORK/plain/$DEEP" "$NLAT" 7)
	L[plain_${mode}_warm]=$("$LAT" $mode "$WORK/plain/$DEEP" "$NLAT" 7)
	mnt "$WORK/backing"; drop
	L[mnt_${mode}_cold]=$("$LAT" $mode "$MNT/$DEEP" "$NLAT" 7)
	L[cpu_${mode}_cold]=$(cpu_s)
	L[mnt_${mode}_warm]=$("$LAT" $mode "$MNT/$DEEP" "$NLAT" 7)
	HW+=("$(hwm_kb)")
	umnt
done
CORPUS_HWM=$(echo "${HW[*]}" | tr ' ' '\n' | sort -g | tail -1)
rm -rf "$WORK/plain" "$WORK/backing"

# ---- memory: MEMGB synthetic checkpoints written and read back --------------------------------
avail=$(df -B1M --output=avail "$WORKBASE" | tail -1)
need=$((MEMGB * MEMMB * 3 / 2 + 1024))
MEM_ROW=""
if [ "$MEMGB" -le 0 ]; then
	MEM_ROW="| daemon VmHWM | skipped (--mem-gb 0) | | | |"
elif [ "$avail" -gt "$need" ]; then
	mnt "$WORK/backing" cache_size=256M
	t0=$(now)
	for v in $(seq 0 $((MEMGB - 1))); do
		"$LAT" gen "$MNT/synth_$(printf %03d "$v").bin" "$MEMMB" "$v"
	done
	sync; "$ADMIN" flush "$WORK/backing" >/dev/null
	t1=$(now)
	hw_w=$(hwm_kb)
	umnt; mnt "$WORK/backing" cache_size=256M; drop
	t2=$(now); cat "$MNT"/synth_* >/dev/null; t3=$(now)
	hw_r=$(hwm_kb)
	umnt
	mstored=$(du -sb "$WORK/backing" | cut -f1)
	rm -rf "$WORK/backing"
	MEM_ROW="| daemon VmHWM, write ${MEMGB} x ${MEMMB} MiB synthetic (cache_size=256M) | $((hw_w / 1024)) MiB | <= 256 MiB + fixed overhead | write+encode $(mbs $((MEMGB * MEMMB * 1048576)) "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')") MB/s, stored $((mstored / 1000000)) MB | $(pass $((256 + 128)) $((hw_w / 1024))) |
| daemon VmHWM, cold read back of the same | $((hw_r / 1024)) MiB | <= 256 MiB + fixed overhead | read $(mbs $((MEMGB * MEMMB * 1048576)) "$(awk -v a="$t2" -v b="$t3" 'BEGIN{print b-a}')") MB/s | $(pass $((256 + 128)) $((hw_r / 1024))) |"
else
	MEM_ROW="| daemon VmHWM | skipped | | not enough space in $WORKBASE (${avail} MiB < ${need} MiB) | |"
fi

# ---- table ------------------------------------------------------------------------------------
lat_cell() { echo "${L[$1]}" | awk '{printf "%s / %s / %s / %s", $1, $2, $3, $4}'; }
wr=$(ratio "$tp" "$tm"); rr=$(ratio "$cp_" "$cm"); drr=$(ratio "$dp" "$dm"); nrr=$(ratio "$np_" "$nm")
wrr=$(ratio "$wp" "$wm")
echo
echo "Load average $(cut -d' ' -f1-3 /proc/loadavg); ${#FILES[@]} files of $(basename "$CORPUS"), $((BYTES / 1000000)) MB; best of $RUNS; mount options '${OPTS:-default}'."
echo
echo "| figure | tpdefs | raw disk (same run) | ratio | target | met |"
echo "|---|---|---|---|---|---|"
echo "| sequential write (cp + sync) | $(mbs "$BYTES" "$tm") MB/s | $(mbs "$BYTES" "$tp") MB/s | ${wr}x | >= 0.9x | $(pass "$wr" 0.9) |"
echo "| background encode done (from start of cp) | $(mbs "$BYTES" "$te") MB/s, $(awk -v a="$te" 'BEGIN{printf "%.1f", a}') s | | | keeps up | stored $((STORED / 1000000)) MB, ratio $(ratio "$BYTES" "$STORED") |"
echo "| cold restore, cat of all ${#FILES[@]} | $(mbs "$BYTES" "$cm") MB/s | $(mbs "$BYTES" "$cp_") MB/s | ${rr}x | >= 0.45x | $(pass "$rr" 0.45) |"
echo "| cold restore, newest checkpoint alone ($NEWEST, depth $NEWD) | $(mbs "$NBYTES" "$nm") MB/s | $(mbs "$NBYTES" "$np_") MB/s | ${nrr}x | >= 0.6x | $(pass "$nrr" 0.6) |"
echo "| cold mmap walk, newest checkpoint ($NEWEST: mmap, copied out front to back) | $(mbs "$NBYTES" "$wm") MB/s | $(mbs "$NBYTES" "$wp") MB/s | ${wrr}x | >= 0.5x | $(pass "$wrr" 0.5) |"
echo "| cold restore, deepest file alone ($DEEP, depth $DEEPD; no target) | $(mbs "$DBYTES" "$dm") MB/s | $(mbs "$DBYTES" "$dp") MB/s | ${drr}x | | |"
ceil_cell() { [ -n "$2" ] && echo "$(mbs "$1" "$2") MB/s | $3 | $(ratio "$4" "$2")x" || echo "n/a | | "; }
echo "| ceiling: transport alone (newest again, page cache dropped, decoded chunks in the daemon's cache) | $(ceil_cell "$NBYTES" "$nt" "$(mbs "$NBYTES" "$np_") MB/s" "$np_") | | |"
echo "| ceiling: codec alone, newest (\`tpde decode\` of its object from a cold file, no FUSE) | $(ceil_cell "$NBYTES" "$xn" "$(mbs "$NBYTES" "$np_") MB/s" "$np_") | | |"
echo "| ceiling: codec alone, all ${#FILES[@]} (every object from cold files, bases first, no FUSE) | $(ceil_cell "$BYTES" "$xa" "$(mbs "$BYTES" "$cp_") MB/s" "$cp_") | | |"
echo "| cold restore per daemon CPU second (noise-free view), all / deepest / newest / mmap walk | $(mbs "$BYTES" "$ccm") / $(mbs "$DBYTES" "$cdm") / $(mbs "$NBYTES" "$cnm") / $(mbs "$NBYTES" "$cwm") MB/s | | | | 2 CPUs shared |"
echo "| write with staging_limit=${BPLIM}M (encoder cannot keep up) | $(mbs "$BYTES" "$BPW") MB/s, cp exit $bprc | | | writers wait, never fail | peak staging $((BPPEAK / 1048576)) MiB, all encoded after $(awk -v a="$BPE" 'BEGIN{printf "%.1f", a}') s | $([ "$bprc" = 0 ] && echo yes || echo '**no**') |"
echo "| daemon VmHWM during the corpus runs | $((CORPUS_HWM / 1024)) MiB | | | cache 256 MiB + overhead | |"
echo
echo "Random 4 KiB reads of $DEEP ($NLAT reads, microseconds, p50 / p90 / p99 / max; target: cold p99 < 5000):"
echo
echo "| access | tpdefs cold | raw disk cold | tpdefs warm | raw disk warm | daemon CPU, cold |"
echo "|---|---|---|---|---|---|"
for mode in pread mmap; do
	echo "| $mode | $(lat_cell mnt_${mode}_cold) | $(lat_cell plain_${mode}_cold) | $(lat_cell mnt_${mode}_warm) | $(lat_cell plain_${mode}_warm) | ${L[cpu_${mode}_cold]} s |"
done
echo
echo "| memory | tpdefs | target | notes | met |"
echo "|---|---|---|---|---|"
echo "$MEM_ROW"
