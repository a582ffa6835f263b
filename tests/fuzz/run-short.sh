#!/bin/bash
# Short bounded fuzz run of every libFuzzer target (what scripts/test.sh calls).
# Builds with clang into build-fuzz (or $FUZZ_BUILD) when needed, runs each target for
# $FUZZ_SECONDS (default 20) seconds over its seed corpus in tests/fuzz/corpus/<target>/ and exits
# non-zero when any target crashes or reports a sanitizer error. Crash inputs go to
# $FUZZ_ARTIFACTS (default <build>/fuzz-artifacts/). Long runs: see tests/fuzz/README.md.
set -u
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=${FUZZ_BUILD:-$src/build-fuzz}
secs=${FUZZ_SECONDS:-20}
targets=${FUZZ_TARGETS:-"fuzz_layout fuzz_codec fuzz_objfile fuzz_uri fuzz_s3xml fuzz_s3uri fuzz_dbvfs"}
art=${FUZZ_ARTIFACTS:-$build/fuzz-artifacts}

if [ ! -f "$build/build.ninja" ]; then
	command -v clang >/dev/null || { echo "run-short.sh: clang not found" >&2; exit 1; }
	CC=clang meson setup "$build" "$src" -Dfuzz=true >/dev/null ||
		{ echo "run-short.sh: meson setup $build failed" >&2; exit 1; }
fi
# Inside `meson test` the targets are already built (ninja is not reentrant there).
if [ -z "${MESON_BUILD_ROOT:-}" ] && [ -z "${FUZZ_NO_BUILD:-}" ]; then
	for t in $targets; do
		meson compile -C "$build" "tests/fuzz/$t" >/dev/null ||
			{ echo "run-short.sh: building $t failed" >&2; exit 1; }
	done
fi
mkdir -p "$art"
fail=0
for t in $targets; do
	bin=$build/tests/fuzz/$t
	[ -x "$bin" ] || { echo "run-short.sh: $bin missing" >&2; fail=1; continue; }
	# Work on a scratch copy so the checked-in seeds are never modified.
	work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-$t.XXXXXX")
	[ -d "$here/corpus/$t" ] && cp -r "$here/corpus/$t/." "$work/" 2>/dev/null
	dict=()
	[ "$t" = fuzz_layout ] && dict=(-dict="$here/layout.dict")
	[ "$t" = fuzz_s3xml ] && dict=(-dict="$here/s3xml.dict")
	log=$art/$t.log
	nice -n 10 "$bin" "$work" "${dict[@]}" -max_len=65536 -max_total_time="$secs" \
		-timeout=20 -rss_limit_mb=2048 -artifact_prefix="$art/$t-" -print_final_stats=1 \
		>"$log" 2>&1
	rc=$?
	runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$')
	if [ $rc -ne 0 ]; then
		echo "FAIL $t (exit $rc, ${runs:-?} runs); log $log, crash inputs $art/$t-*"
		grep -m5 -E 'ERROR|SUMMARY|runtime error' "$log"
		fail=1
	else
		echo "ok   $t: ${runs:-?} runs in ${secs}s"
	fi
	rm -rf "$work"
done
exit $fail
