#!/usr/bin/env bash
# bench_codec.sh CORPUS_DIR [--quick] [--tpde PATH] [--runs N]
#
# Compression ratio and speed of `tpde encode --base PRED` next to zstd -3, zstd -3 --patch-from
# and xdelta3 -9, measured side by side in one run over every (predecessor, checkpoint) pair of
# each scenario (ratio definition of ../shared/corpus/README.md: logical bytes of the pairs'
# new files / stored bytes, summed over the pairs). Every tpde decode is checked with cmp.
#
# Families: in a flat scenario directory, files with the same name once digits are ignored,
# ordered by version (ckpt_000.pt, ckpt_001.pt, ...); in hf_trainer_dirs, the same file name in
# consecutive checkpoint-N directories.
# Speeds are wall clock, best of N runs per pair (N=3, 1 with --quick), summed over pairs, in MB/s
# (10^6 bytes) of logical (new file) bytes, whole CLI runs (process start, base hash, fsync).
# MB/CPU-s: the same bytes per CPU second (user + system) of those runs: on a machine shared with
# other work, wall clock drops while this stays put. tpde uses every CPU; zstd -3 runs single-threaded
# (its default). Work files live on /dev/shm so that tpde's fsync does not time the disk.
# --quick: at most 2 pairs per scenario, one run.
set -euo pipefail

usage() { echo "usage: $0 CORPUS_DIR [--quick] [--tpde PATH] [--runs N]" >&2; exit 2; }
die() { echo "bench_codec: $*" >&2; exit 1; }

[ $# -ge 1 ] || usage
CORPUS=$1; shift
QUICK=0
RUNS=3
HERE=$(cd "$(dirname "$0")" && pwd)
TPDE=""
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1; RUNS=1 ;;
	--tpde) TPDE=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	*) usage ;;
	esac
	shift
done
[ -d "$CORPUS" ] || die "no such directory: $CORPUS"
if [ -z "$TPDE" ]; then
	for c in "$HERE"/../build*/tools/tpde; do
		[ -x "$c" ] && TPDE=$c && break
	done
fi
[ -n "$TPDE" ] && [ -x "$TPDE" ] || die "tpde not found (build it, or pass --tpde PATH)"
for t in zstd xdelta3 cmp; do command -v $t >/dev/null || die "$t is not installed"; done

WORK=$(mktemp -d /dev/shm/bench_codec.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# A private copy, so that a rebuild during the run cannot mix two versions.
cp "$TPDE" "$WORK/tpde"
TPDE=$WORK/tpde

now() { date +%s.%N; }
fsize() { stat -c %s "$1"; }

# best_time CMD...: runs CMD $RUNS times; prints "WALL CPU" (seconds) of the run with the
# shortest wall time (CPU = user + system, from bash's time: getrusage, ms resolution).
TIMEFORMAT='%3R %3U %3S'
best_time() {
	local best="" bcpu="" i w u s
	for ((i = 0; i < RUNS; i++)); do
		{ time "$@" 2>"$WORK/err"; } 2>"$WORK/time" ||
			die "command failed: $* ($(head -c 300 "$WORK/err"))"
		read -r w u s < "$WORK/time"
		if [ -z "$best" ] || [ "$(echo "$w < $best" | bc -l)" = 1 ]; then
			best=$w; bcpu=$(echo "$u + $s" | bc -l)
		fi
	done
	echo "$best $bcpu"
}

# pairs SCENARIO_DIR: prints "PRED<TAB>NEW" lines.
pairs() {
	local dir=$1
	if ls -d "$dir"/checkpoint-* >/dev/null 2>&1; then
		local prev="" d f
		for d in $(ls -d "$dir"/checkpoint-* | sort -V); do
			if [ -n "$prev" ]; then
				for f in "$d"/*; do
					[ -f "$f" ] && [ -f "$prev/$(basename "$f")" ] &&
						printf '%s\t%s\n' "$prev/$(basename "$f")" "$f"
				done
			fi
			prev=$d
		done
	else
		local key
		for key in $(ls "$dir" | sed 's/[0-9]\+/#/g' | sort -u); do
			local prev="" f
			for f in $(ls "$dir" | sort -V); do
				[ "$(echo "$f" | sed 's/[0-9]\+/#/g')" = "$key" ] || continue
				[ -n "$prev" ] && printf '%s\t%s\n' "$dir/$prev" "$dir/$f"
				prev=$f
			done
		done
	fi
}

ratio() { echo "scale=3; $1 / $2" | bc -l; }
mbps() { if [ "$(echo "$2 > 0" | bc -l)" = 1 ]; then echo "scale=1; $1 / $2 / 1000000" | bc -l; else echo "-"; fi; }

echo "# tpde codec benchmark: $CORPUS ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg), runs=$RUNS$([ $QUICK = 1 ] && echo ', quick'))"
echo
echo "| scenario | pairs | new MB | tpde | zstd -3 | zstd -3 --patch-from | xdelta3 -9 | tpde enc MB/s | tpde dec MB/s | zstd -3 enc MB/s | zstd -3 dec MB/s | tpde enc MB/CPU-s | tpde dec MB/CPU-s |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"

G_LOG=0 G_TP=0 G_Z=0 G_ZP=0 G_X=0 G_TE=0 G_TD=0 G_ZE=0 G_ZD=0 G_N=0 G_TEC=0 G_TDC=0
for sc in gpt_full_state gpt_bf16_st gpt_finetune_frozen hf_trainer_dirs; do
	dir=$CORPUS/$sc
	[ -d "$dir" ] || { echo "bench_codec: skipping missing scenario $sc" >&2; continue; }
	LOG=0 TP=0 Z=0 ZP=0 X=0 TE=0 TD=0 ZE=0 ZD=0 N=0 TEC=0 TDC=0
	while IFS=$'\t' read -r pred new; do
		[ $QUICK = 1 ] && [ $N -ge 2 ] && break
		ns=$(fsize "$new"); ps=$(fsize "$pred")
		obj=$WORK/obj dec=$WORK/dec
		read -r te tec < <(best_time "$TPDE" encode --base "$pred" "$new" -o "$obj")
		read -r td tdc < <(best_time "$TPDE" decode --base "$pred" "$obj" -o "$dec")
		cmp -s "$dec" "$new" || die "tpde decode of $new (base $pred) is NOT bit-exact"
		tp=$(fsize "$obj")
		read -r ze _ < <(best_time zstd -q -f -3 "$new" -o "$WORK/z.zst")
		read -r zd _ < <(best_time zstd -q -f -d "$WORK/z.zst" -o "$WORK/z.out")
		z=$(fsize "$WORK/z.zst")
		# --patch-from needs a window covering the reference: --long=W (decode needs the same).
		w=27
		while [ $((1 << w)) -lt $((ps + ns)) ]; do w=$((w + 1)); done
		zstd -q -f -3 --long=$w --patch-from="$pred" "$new" -o "$WORK/zp.zst"
		zp=$(fsize "$WORK/zp.zst")
		xdelta3 -9 -e -f -s "$pred" "$new" "$WORK/x.vcdiff"
		x=$(fsize "$WORK/x.vcdiff")
		echo "bench_codec: $sc: $(basename "$(dirname "$new")")/$(basename "$new"): tpde $tp zstd $z patch $zp xdelta $x bytes; tpde enc ${te}s dec ${td}s" >&2
		LOG=$((LOG + ns)); TP=$((TP + tp)); Z=$((Z + z)); ZP=$((ZP + zp)); X=$((X + x)); N=$((N + 1))
		TE=$(echo "$TE + $te" | bc -l); TD=$(echo "$TD + $td" | bc -l)
		TEC=$(echo "$TEC + $tec" | bc -l); TDC=$(echo "$TDC + $tdc" | bc -l)
		ZE=$(echo "$ZE + $ze" | bc -l); ZD=$(echo "$ZD + $zd" | bc -l)
	done < <(pairs "$dir")
	[ $N -gt 0 ] || { echo "bench_codec: no pairs in $sc" >&2; continue; }
	echo "| $sc | $N | $(echo "scale=1; $LOG / 1000000" | bc -l) | $(ratio $LOG $TP) | $(ratio $LOG $Z) | $(ratio $LOG $ZP) | $(ratio $LOG $X) | $(mbps $LOG $TE) | $(mbps $LOG $TD) | $(mbps $LOG $ZE) | $(mbps $LOG $ZD) | $(mbps $LOG $TEC) | $(mbps $LOG $TDC) |"
	G_LOG=$((G_LOG + LOG)); G_TP=$((G_TP + TP)); G_Z=$((G_Z + Z)); G_ZP=$((G_ZP + ZP)); G_X=$((G_X + X)); G_N=$((G_N + N))
	G_TE=$(echo "$G_TE + $TE" | bc -l); G_TD=$(echo "$G_TD + $TD" | bc -l)
	G_TEC=$(echo "$G_TEC + $TEC" | bc -l); G_TDC=$(echo "$G_TDC + $TDC" | bc -l)
	G_ZE=$(echo "$G_ZE + $ZE" | bc -l); G_ZD=$(echo "$G_ZD + $ZD" | bc -l)
done
[ $G_N -gt 0 ] || die "no pairs found under $CORPUS"
echo "| **all** | $G_N | $(echo "scale=1; $G_LOG / 1000000" | bc -l) | $(ratio $G_LOG $G_TP) | $(ratio $G_LOG $G_Z) | $(ratio $G_LOG $G_ZP) | $(ratio $G_LOG $G_X) | $(mbps $G_LOG $G_TE) | $(mbps $G_LOG $G_TD) | $(mbps $G_LOG $G_ZE) | $(mbps $G_LOG $G_ZD) | $(mbps $G_LOG $G_TEC) | $(mbps $G_LOG $G_TDC) |"
echo
echo "All $G_N tpde decodes bit-exact (cmp)."
