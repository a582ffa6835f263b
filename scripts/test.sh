#!/usr/bin/env bash
# The whole test suite: unit tests (Criterion), integration tests on a real FUSE mount, PyTorch
# client tests, then the unit tests again under ASan+UBSan, then a short fuzz run of the decoders
# and parsers. Prints one closing summary line.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh || { echo "deps: install failed"; exit 1; }

pass=0; fail=0
run_suite() { # build-dir suite...
  local dir=$1; shift
  local args=()
  for s in "$@"; do args+=(--suite "$s"); done
  meson test -C "$dir" --print-errorlogs --num-processes 2 "${args[@]}" | tee "$dir/last-test.txt"
  local ok bad
  ok=$(awk '/^Ok:/{print $2}' "$dir/last-test.txt"); bad=$(awk '/^Fail:/{print $2}' "$dir/last-test.txt")
  to=$(awk '/^Timeout:/{print $2}' "$dir/last-test.txt")
  pass=$((pass + ${ok:-0})); fail=$((fail + ${bad:-0} + ${to:-0}))
}

[ -d build ] || meson setup build >/dev/null || exit 1
meson compile -C build || { echo "0 passed, 1 failed"; exit 1; }
run_suite build unit integration python

[ -d build-asan ] || meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false \
  -Dbuildtype=debug >/dev/null || exit 1
meson compile -C build-asan || { echo "$pass passed, $((fail + 1)) failed"; exit 1; }
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=detect_leaks=1 \
  run_suite build-asan unit

# Bounded fuzz run of the decoders and parsers (libFuzzer, clang): one test per target.
fuzz_out=$(FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash tests/fuzz/run-short.sh 2>&1); echo "$fuzz_out"
pass=$((pass + $(grep -c '^ok ' <<<"$fuzz_out"))); fail=$((fail + $(grep -c '^FAIL' <<<"$fuzz_out")))
grep -q '^ok \|^FAIL' <<<"$fuzz_out" || fail=$((fail + 1))

echo
echo "tests: $pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$pass" -gt 0 ]
