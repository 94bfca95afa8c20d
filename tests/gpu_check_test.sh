#!/usr/bin/env bash
# scripts/gpu-check.sh must fail when a build step, a test binary or a benchmark
# fails, and pass only when all do: run it over stand-in binaries (shell
# scripts) and a stand-in cmake/ninja, no GPU or LibTorch needed.
#   gpu_check_test.sh <source dir>
set -u
SRC=${1:?usage: gpu_check_test.sh <source dir>}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() {
  fail=$((fail + 1))
  echo "FAIL: $*"
}

# A build folder with one passing, one skipping and one failing "test binary", and a benchmark.
B=$T/build
mkdir -p "$B/tests" "$T/bin"
printf '#!/bin/sh\necho "[  PASSED  ] 3 tests."\n' >"$B/tests/pass_tests"
printf '#!/bin/sh\necho "[  SKIPPED ] 2 tests, listed below:"\necho "[  PASSED  ] 0 tests."\n' >"$B/tests/skip_tests"
printf '#!/bin/sh\necho "[  FAILED  ] 1 test"\nexit 1\n' >"$B/tests/fail_tests"
printf '#!/bin/sh\necho "  iterations/s 1.0"\nexit ${BENCH_RC:-0}\n' >"$B/dippas-bench"
# cmake and ninja stand-ins: ninja fails when NINJA_RC says so.
printf '#!/bin/sh\nexit 0\n' >"$T/bin/cmake"
printf '#!/bin/sh\nexit ${NINJA_RC:-0}\n' >"$T/bin/ninja"
chmod +x "$B/tests/"* "$B/dippas-bench" "$T/bin/"*

# run NAME EXPECTED_RC PATTERN... -- env settings: runs gpu-check.sh, checks rc and summary lines.
run() {
  local name=$1 want=$2
  shift 2
  local patterns=()
  while [ "$1" != -- ]; do
    patterns+=("$1")
    shift
  done
  shift
  rm -rf "$T/out"
  env PATH="$T/bin:$PATH" OUT="$T/out" GPU_CHECK_BUILD="$B" GPU_CHECK_TORCH_PREFIX=/none \
    GPU_CHECK_DEVICE=cpu GPU_CHECK_SIZES=32 GPU_CHECK_ITERS=1 "$@" "$SRC/scripts/gpu-check.sh" >"$T/log" 2>&1
  local rc=$?
  if { [ "$want" -eq 0 ] && [ $rc -ne 0 ]; } || { [ "$want" -ne 0 ] && [ $rc -eq 0 ]; }; then
    bad "$name: exit $rc, expected $([ "$want" -eq 0 ] && echo 0 || echo non-zero)"
    sed 's/^/    /' "$T/log"
    return
  fi
  local p
  for p in "${patterns[@]}"; do
    if ! grep -qE -- "$p" "$T/log"; then
      bad "$name: no line matching '$p' in the output"
      sed 's/^/    /' "$T/log"
      return
    fi
  done
  ok
}

run "all pass" 0 '^stage tests +ok' '^test pass_tests +ok' '^test skip_tests +ok .*\(2 skipped\)' \
  '^stage bench_dip +ok' 'gpu-check: all stages ok' -- \
  GPU_CHECK_STAGES="tests bench_dip" GPU_CHECK_TESTS="pass_tests skip_tests"
run "a failing test" 1 '^stage tests +FAILED' '^test fail_tests +FAILED .*exit 1' '^test pass_tests +ok' \
  '^stage bench_dip +ok' 'gpu-check: FAILED' -- \
  GPU_CHECK_STAGES="tests bench_dip" GPU_CHECK_TESTS="fail_tests pass_tests"
run "a missing test binary" 1 '^test no_such_tests +FAILED' -- \
  GPU_CHECK_STAGES="tests" GPU_CHECK_TESTS="pass_tests no_such_tests"
run "a failing benchmark behind tee" 1 '^stage bench_dip +FAILED' -- \
  GPU_CHECK_STAGES="bench_dip" BENCH_RC=3
run "a failing build skips the rest" 1 '^stage build +FAILED' '^stage tests +skipped' -- \
  GPU_CHECK_STAGES="build tests" GPU_CHECK_TESTS="pass_tests" NINJA_RC=1
run "a passing build" 0 '^stage build +ok' '^stage tests +ok' -- \
  GPU_CHECK_STAGES="build tests" GPU_CHECK_TESTS="pass_tests"
run "an unknown stage" 2 'unknown stage' -- GPU_CHECK_STAGES="nonsense"

echo "gpu_check_test: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
