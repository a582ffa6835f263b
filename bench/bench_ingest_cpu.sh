#!/usr/bin/env bash
# bench_ingest_cpu.sh [--corpus DIR] [--scenario NAME] [--runs N] [--work DIR] BUILD [BUILD...]
#
# What it costs the daemon to take a run in, against coding that run once. For each BUILD (a
# meson build dir; give the previous build too for an A/B in the same run) and each of N runs:
#   mount  a fresh mount (empty backing), `cp` of every file of the scenario in write order, then
#          `tpdefs-admin flush`; the daemon's CPU seconds (utime + stime from /proc/PID/stat,
#          read just before unmounting: every encode, re-code and layout pass is done by then).
#   tpde   `tpde encode` of the same files: the first alone, each next against its predecessor
#          (CPU seconds of the children, from bash's `times`).
# Prints a table: daemon CPU / tpde CPU per run and the median, plus the stored bytes (du -sb of
# the backing directory) so that a cheaper ingest cannot hide a worse ratio. The noise-free view
# on a shared machine: CPU seconds, not wall time; ratios taken within one run.
# Every file is compared with its source after a remount (cmp): any difference aborts.
set -euo pipefail

usage() { echo "usage: $0 [--corpus DIR] [--scenario NAME] [--runs N] [--work DIR] BUILD [BUILD...]" >&2; exit 2; }
die() { echo "bench_ingest_cpu: FAIL: $*" >&2; exit 1; }

HERE=$(cd "$(dirname "$0")" && pwd)
CORPUS=/var/tmp/corpus/full
SCEN=gpt_full_state
RUNS=3
WORKBASE=/var/tmp
BUILDS=()
while [ $# -gt 0 ]; do
	case $1 in
	--corpus) [ $# -ge 2 ] || usage; CORPUS=$2; shift ;;
	--scenario) [ $# -ge 2 ] || usage; SCEN=$2; shift ;;
	--runs) [ $# -ge 2 ] || usage; RUNS=$2; shift ;;
	--work) [ $# -ge 2 ] || usage; WORKBASE=$2; shift ;;
	-*) usage ;;
	*) BUILDS+=("$1") ;;
	esac
	shift
done
[ ${#BUILDS[@]} -gt 0 ] || usage
for b in "${BUILDS[@]}"; do
	for x in fs/mount.tpdefs tools/tpde tools/tpdefs-admin; do
		[ -x "$b/$x" ] || die "$b/$x not found (a meson build dir, built)"
	done
done
SRC=$CORPUS/$SCEN
[ -d "$SRC" ] || die "no such scenario directory: $SRC"
mapfile -t FILES < <(find "$SRC" -maxdepth 1 -type f | sort -V)
[ ${#FILES[@]} -ge 2 ] || die "$SRC holds fewer than 2 files"
[ -e /dev/fuse ] || die "/dev/fuse is missing"

WORK=$(mktemp -d "$WORKBASE/bench_ingest_cpu.XXXXXX")
MNT=$WORK/mnt
mkdir -p "$MNT"
PIDS=()
cleanup() {
	mountpoint -q "$MNT" && fusermount3 -u "$MNT" 2>/dev/null
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT
# shellcheck source=mount_lib.sh
. "$HERE/mount_lib.sh"

cpu_of() { # PID -> utime+stime in seconds
	awk -v hz="$(getconf CLK_TCK)" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' \
		"/proc/$1/stat"
}

tpde_cpu() { # BUILD -> CPU seconds (user + sys) of coding the run once
	local b=$1 TIMEFORMAT='%U %S'
	{ time (
		prev=""
		i=0
		for f in "${FILES[@]}"; do
			if [ -n "$prev" ]; then
				"$b/tools/tpde" encode --base "$prev" "$f" -o "$WORK/t$i.tpdo"
			else
				"$b/tools/tpde" encode "$f" -o "$WORK/t$i.tpdo"
			fi
			prev=$f
			i=$((i + 1))
		done
	) ; } 2>"$WORK/time.txt"
	rm -f "$WORK"/t*.tpdo
	awk '{ printf "%.2f", $1 + $2 }' "$WORK/time.txt"
}

mount_cpu() { # BUILD -> "daemon_cpu stored_bytes"
	local b=$1 cpu stored
	DAEMON=$b/fs/mount.tpdefs
	rm -rf "$WORK/backing"
	mnt "$WORK/backing"
	for f in "${FILES[@]}"; do cp "$f" "$MNT/"; done
	"$b/tools/tpdefs-admin" flush "$WORK/backing" >"$WORK/flush.log" 2>&1 ||
		{ cat "$WORK/flush.log" >&2; die "flush failed"; }
	cpu=$(cpu_of "$DPID")
	umnt
	stored=$(du -sb "$WORK/backing" | cut -f1)
	mnt "$WORK/backing"
	for f in "${FILES[@]}"; do cmp -s "$f" "$MNT/$(basename "$f")" || die "$(basename "$f") differs"; done
	umnt
	echo "$cpu $stored"
}

logical=0
for f in "${FILES[@]}"; do logical=$((logical + $(stat -c %s "$f"))); done
echo "scenario $SCEN: ${#FILES[@]} files, $logical bytes; $RUNS runs; builds: ${BUILDS[*]}"
printf '%-34s %4s %10s %10s %8s %12s %7s\n' build run daemon_s tpde_s ratio stored_B ratio_B
declare -A R
for run in $(seq "$RUNS"); do
	for b in "${BUILDS[@]}"; do
		read -r dcpu stored < <(mount_cpu "$b")
		tcpu=$(tpde_cpu "$b")
		ratio=$(awk -v d="$dcpu" -v t="$tcpu" 'BEGIN { printf "%.2f", (t > 0 ? d / t : 0) }')
		R[$b]+="$ratio "
		printf '%-34s %4s %10s %10s %8s %12s %7.3f\n' "$b" "$run" "$dcpu" "$tcpu" \
			"${ratio}x" "$stored" "$(awk -v l="$logical" -v s="$stored" 'BEGIN { print l / s }')"
	done
done
echo
for b in "${BUILDS[@]}"; do
	med=$(tr ' ' '\n' <<<"${R[$b]}" | grep . | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
	echo "median daemon CPU / tpde encode CPU, $b: ${med}x"
done
