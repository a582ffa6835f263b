#!/usr/bin/env bash
# The whole test suite: unit tests (Criterion), integration tests on a real FUSE mount, PyTorch
# client tests, then the unit tests again under ASan+UBSan, then a short fuzz run of the decoders
# and parsers. Prints one closing summary line.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh || { echo "deps: install failed"; exit 1; }

pass=0; fail=0; skip=0
# Count test cases, not meson tests: Criterion's "Synthesis" lines and pytest's summary lines in
# the meson log; a meson test that failed without such a line (a crash) counts as one failure.
run_suite() { # build-dir suite...
  local dir=$1; shift
  local args=()
  for s in "$@"; do args+=(--suite "$s"); done
  meson test -C "$dir" --print-errorlogs --num-processes 2 "${args[@]}" | tee "$dir/last-test.txt"
  local log=$dir/meson-logs/testlog.txt counts mfail
  counts=$(/usr/bin/python3 - "$log" <<'PY'
import re, sys
t = open(sys.argv[1], errors='replace').read()
p = f = s = 0
for m in re.finditer(r'Synthesis: Tested: \d+ \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)', t):
    p += int(m[1]); f += int(m[2]) + int(m[3])
for line in re.findall(r'^=*\s*(\d+ (?:passed|failed|skipped|errors?)(?:, \d+ (?:passed|failed|skipped|errors?|deselected|xfailed|xpassed|warnings?))*) in [\d.]+s', t, re.M):
    for n, what in re.findall(r'(\d+) (passed|failed|skipped|errors?)', line):
        if what == 'passed': p += int(n)
        elif what == 'skipped': s += int(n)
        else: f += int(n)
print(p, f, s)
PY
)
  read -r cp cf cs <<<"$counts"
  mfail=$(awk '/^(Fail|Timeout):/{n+=$2} END{print n+0}' "$dir/last-test.txt")
  [ "${cf:-0}" -eq 0 ] && [ "$mfail" -gt 0 ] && cf=$mfail
  pass=$((pass + ${cp:-0})); fail=$((fail + ${cf:-0})); skip=$((skip + ${cs:-0}))
}

[ -d build ] || meson setup build >/dev/null || exit 1
meson compile -C build || { echo "0 passed, 1 failed"; exit 1; }
run_suite build unit integration python

[ -d build-asan ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
  -Dbuildtype=debug >/dev/null || exit 1
meson compile -C build-asan || { echo "$pass passed, $((fail + 1)) failed"; exit 1; }
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
  run_suite build-asan unit

# The optimised build the benchmarks use must compile too (-O3 finds warnings -O2 does not).
[ -d build-release ] || meson setup build-release -Dbuildtype=release -Dtests=disabled \
  >/dev/null || exit 1
if meson compile -C build-release >/dev/null; then
  pass=$((pass + 1)); echo "ok release build"
else
  fail=$((fail + 1)); echo "FAIL release build (meson compile -C build-release)"
fi

# Bounded fuzz run of the decoders and parsers (libFuzzer, clang): one test per target.
fuzz_out=$(FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash tests/fuzz/run-short.sh 2>&1); echo "$fuzz_out"
pass=$((pass + $(grep -c '^ok ' <<<"$fuzz_out"))); fail=$((fail + $(grep -c '^FAIL' <<<"$fuzz_out")))
grep -q '^ok \|^FAIL' <<<"$fuzz_out" || fail=$((fail + 1))

echo
echo "tests: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
