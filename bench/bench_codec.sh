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
#
# Scenarios that are a write sequence, not a corpus directory (bench/scenario_lib.sh), in a second
# table with the same columns, a row per kind of pair and one per scenario: Lightning's save_last
# (lightning_save_last, lightning_torchsave_path: made by bench/gen_lightning.py into --lightning
# DIR, default CORPUS_DIR/../lightning; pairs: each epoch file against the previous one, each
# version of last.ckpt against the epoch file written just before it), cp_r (each copy against its
# original; the run's own pairs are gpt_full_state's, not repeated), finetune_from_base (the first
# fine-tune checkpoint against the base it was trained from, then each against its predecessor).
# A run without --scenario includes them (the Lightning ones if DIR holds them, else a note says
# so); --scenario NAME (repeatable) runs only the named scenarios, old or new.
set -euo pipefail

usage() { echo "usage: $0 CORPUS_DIR [--quick] [--tpde PATH] [--runs N] [--scenario NAME]... [--lightning DIR] [--cpr-versions N]" >&2; exit 2; }
die() { echo "bench_codec: $*" >&2; exit 1; }

[ $# -ge 1 ] || usage
CORPUS=$1; shift
QUICK=0
RUNS=3
HERE=$(cd "$(dirname "$0")" && pwd)
TPDE=""
ONLY=()
LIGHTNING=$CORPUS/../lightning
CPR_VERSIONS=10
# shellcheck disable=SC2034  # LIGHTNING is read by scenario_lib.sh
while [ $# -gt 0 ]; do
	case $1 in
	--quick) QUICK=1; RUNS=1 ;;
	--tpde) TPDE=$2; shift ;;
	--runs) RUNS=$2; shift ;;
	--scenario) [ $# -ge 2 ] || usage; ONLY+=("$2"); shift ;;
	--lightning) [ $# -ge 2 ] || usage; LIGHTNING=$2; shift ;;
	--cpr-versions) [ $# -ge 2 ] || usage; CPR_VERSIONS=$2; shift ;;
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
. "$HERE/scenario_lib.sh"   # SCENARIOS_NEW, scenario_inputs, scenario_plan
[[ "$CPR_VERSIONS" =~ ^[1-9][0-9]*$ ]] || die "--cpr-versions needs a positive number"
ALLOLD=(gpt_full_state gpt_bf16_st gpt_finetune_frozen hf_trainer_dirs)
SCEN=()
NEWSCEN=()
SKIPNOTES=()
if [ ${#ONLY[@]} -gt 0 ]; then
	for n in "${ONLY[@]}"; do
		if [[ " ${ALLOLD[*]} " == *" $n "* ]]; then SCEN+=("$n")
		elif [[ " ${SCENARIOS_NEW[*]} " == *" $n "* ]]; then
			miss=$(scenario_inputs "$n")
			[ -z "$miss" ] || die "$n needs $miss"
			NEWSCEN+=("$n")
		else die "unknown scenario $n (known: ${ALLOLD[*]} ${SCENARIOS_NEW[*]})"; fi
	done
else
	SCEN=("${ALLOLD[@]}")
	for n in "${SCENARIOS_NEW[@]}"; do
		miss=$(scenario_inputs "$n")
		if [ -z "$miss" ]; then NEWSCEN+=("$n"); else SKIPNOTES+=("$n: not run, missing $miss"); fi
	done
fi

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
HEAD="| scenario | pairs | new MB | tpde | zstd -3 | zstd -3 --patch-from | xdelta3 -9 | tpde enc MB/s | tpde dec MB/s | zstd -3 enc MB/s | zstd -3 dec MB/s | tpde enc MB/CPU-s | tpde dec MB/CPU-s |"
SEP="|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
# row LABEL N LOG TP Z ZP X TE TD ZE ZD TEC TDC
row() {
	echo "| $1 | $2 | $(echo "scale=1; $3 / 1000000" | bc -l) | $(ratio "$3" "$4") | $(ratio "$3" "$5") | $(ratio "$3" "$6") | $(ratio "$3" "$7") | $(mbps "$3" "$8") | $(mbps "$3" "$9") | $(mbps "$3" "${10}") | $(mbps "$3" "${11}") | $(mbps "$3" "${12}") | $(mbps "$3" "${13}") |"
}
# run_pairs LABEL < "PRED<TAB>NEW" lines: codes every pair with each tool; sets the totals
# LOG TP Z ZP X TE TD ZE ZD N TEC TDC of these pairs.
run_pairs() {
	local sc=$1 pred new ns ps obj dec te tec td tdc tp ze zd z w zp x
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
		# a copy against its original: zstd refuses one file as both input and dictionary
		if [ "$pred" -ef "$new" ]; then cp "$pred" "$WORK/ref"; pred=$WORK/ref; fi
		zstd -q -f -3 --long=$w --patch-from="$pred" "$new" -o "$WORK/zp.zst"
		zp=$(fsize "$WORK/zp.zst")
		xdelta3 -9 -e -f -s "$pred" "$new" "$WORK/x.vcdiff"
		x=$(fsize "$WORK/x.vcdiff")
		rm -f "$WORK/ref"
		echo "bench_codec: $sc: $(basename "$(dirname "$new")")/$(basename "$new"): tpde $tp zstd $z patch $zp xdelta $x bytes; tpde enc ${te}s dec ${td}s" >&2
		LOG=$((LOG + ns)); TP=$((TP + tp)); Z=$((Z + z)); ZP=$((ZP + zp)); X=$((X + x)); N=$((N + 1))
		TE=$(echo "$TE + $te" | bc -l); TD=$(echo "$TD + $td" | bc -l)
		TEC=$(echo "$TEC + $tec" | bc -l); TDC=$(echo "$TDC + $tdc" | bc -l)
		ZE=$(echo "$ZE + $ze" | bc -l); ZD=$(echo "$ZD + $zd" | bc -l)
	done
}
# add_totals PREFIX: PREFIX_{LOG,...} += the totals of the last run_pairs.
add_totals() {
	local v
	for v in LOG TP Z ZP X N; do eval "${1}_$v=\$((${1}_$v + $v))"; done
	for v in TE TD ZE ZD TEC TDC; do eval "${1}_$v=\$(echo \"\$${1}_$v + \$$v\" | bc -l)"; done
}
zero_totals() { local v; for v in LOG TP Z ZP X N TE TD ZE ZD TEC TDC; do eval "${1}_$v=0"; done; }
totals_row() { local p=$2; eval "row \"\$1\" \$${p}_N \$${p}_LOG \$${p}_TP \$${p}_Z \$${p}_ZP \$${p}_X \$${p}_TE \$${p}_TD \$${p}_ZE \$${p}_ZD \$${p}_TEC \$${p}_TDC"; }

if [ ${#SCEN[@]} -gt 0 ]; then
	echo "$HEAD"
	echo "$SEP"
	zero_totals G
	for sc in "${SCEN[@]}"; do
		dir=$CORPUS/$sc
		[ -d "$dir" ] || { echo "bench_codec: skipping missing scenario $sc" >&2; continue; }
		run_pairs "$sc" < <(pairs "$dir")
		[ $N -gt 0 ] || { echo "bench_codec: no pairs in $sc" >&2; continue; }
		row "$sc" $N $LOG $TP $Z $ZP $X "$TE" "$TD" "$ZE" "$ZD" "$TEC" "$TDC"
		add_totals G
	done
	[ "$G_N" -gt 0 ] || die "no pairs found under $CORPUS"
	totals_row "**all**" G
	echo
	echo "All $G_N tpde decodes bit-exact (cmp)."
fi

# ---- scenarios that are a write sequence (bench/scenario_lib.sh) ----
if [ ${#NEWSCEN[@]} -gt 0 ]; then
	[ ${#SCEN[@]} -eq 0 ] || echo
	echo "Write-sequence scenarios (bench/scenario_lib.sh), a row per kind of pair:"
	echo
	echo "$HEAD"
	echo "$SEP"
	zero_totals H
	for sc in "${NEWSCEN[@]}"; do
		scenario_plan "$sc" >"$WORK/plan.all"
		awk -F'\t' '$1 == "pair"' "$WORK/plan.all" >"$WORK/plan"
		# kinds in the order of the files at the end (epoch files before last.ckpt)
		mapfile -t KINDS < <({ awk -F'\t' '$1 == "file" { print $5 }' "$WORK/plan.all"; cut -f4 "$WORK/plan"; } | awk '!seen[$0]++')
		zero_totals S
		nk=0
		for kind in "${KINDS[@]}"; do
			# cp_r: the run's own pairs are gpt_full_state's (its row above); only the copies here
			[ "$sc" = cp_r ] && [ "$kind" = run ] && continue
			run_pairs "$sc: $kind" < <(awk -F'\t' -v k="$kind" '$4 == k { print $2 "\t" $3 }' "$WORK/plan")
			[ $N -gt 0 ] || continue
			row "$sc: $kind" $N $LOG $TP $Z $ZP $X "$TE" "$TD" "$ZE" "$ZD" "$TEC" "$TDC"
			add_totals S
			nk=$((nk + 1))
		done
		[ "$nk" -gt 1 ] && totals_row "$sc" S
		[ "$S_N" -gt 0 ] || die "no pairs in $sc"
		for v in LOG TP Z ZP X N TE TD ZE ZD TEC TDC; do eval "$v=\$S_$v"; done
		add_totals H
	done
	totals_row "**all**" H
	echo
	echo "All $H_N tpde decodes bit-exact (cmp)."
fi
for n in "${SKIPNOTES[@]}"; do echo "$n"; done
