#!/usr/bin/env bash
# Builds the unit tests with AddressSanitizer and UndefinedBehaviorSanitizer (-DDIPPAS_SANITIZE=ON,
# in build-asan/ or $SANITIZE_BUILD) and runs them; any sanitizer report fails the run.
# LibTorch, OpenCV and yaml-cpp are Debian's uninstrumented builds: our code is what is checked.
#
# Usage: scripts/sanitize.sh [TEST...]   (GoogleTest binaries; default: the list below)
#        SANITIZE_E2E=1 scripts/sanitize.sh   also runs the end-to-end scripts on an ASan dippas
set -euo pipefail
cd "$(dirname "$0")/.."
out=${SANITIZE_BUILD:-build-asan}

# The GoogleTest suites of the parsers, the I/O, the method's stages and the input noise's kernel
# (its AVX2 and generic paths, ParallelFor's threads); the others run in the normal build only.
default=(npy_tests config_tests pool_tests robustness_tests psnr_tests assembly_tests core_tests
         network_tests loop_tests baselines_tests dataset_tests reference_tests input_noise_tests
         iteration_tests tiles_tests memory_tests)
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=("${default[@]}")

start=$(date +%s)
# -O1: a fraction of -O2's compile time, and still fast enough for the tests. -g1: line tables
# only, enough for file:line in every report, and it compiles a LibTorch unit in ~55 % of -g's
# time (src/dip/loop.cc: 52 s against 93 s on a 2-core machine).
cmake -S . -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" \
  -DDIPPAS_SANITIZE=ON >/dev/null
cmake --build "$out" -j "$(nproc)" --target "${tests[@]}"
built=$(date +%s)

# halt_on_error + no recover: the first report ends the test binary with a non-zero status.
# LeakSanitizer stays on, without suppressions (none are needed, LibTorch's included).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
for t in "${tests[@]}"; do
  log=$out/sanitize_$t.log
  t0=$(date +%s)
  if "$out/tests/$t" >"$log" 2>&1; then
    echo "sanitize: $t ok ($(grep -o '[0-9]* tests\? from [0-9]* test suites\? ran' "$log" | tail -1), $(($(date +%s) - t0)) s)"
  else
    status=1
    echo "sanitize: $t FAILED; the end of $log:" >&2
    tail -40 "$log" >&2
  fi
done
# Opt-in (6 to 12 more minutes on 2 cores): the dippas executable under the sanitizers, through the
# end-to-end scripts that need no DIP run of minutes (module_test: the LibTorch module dlopen()ed).
if [ "${SANITIZE_E2E:-0}" = 1 ]; then
  cmake --build "$out" -j "$(nproc)" --target dippas
  for script in cli_test module_test hardening_test assemble_test; do
    t0=$(date +%s)
    if tests/$script.sh "$PWD/$out/dippas" "$PWD" "${DIPPAS_SHARED:-$PWD/../shared}" >"$out/sanitize_$script.log" 2>&1; then
      echo "sanitize: $script ok ($(tail -1 "$out/sanitize_$script.log"), $(($(date +%s) - t0)) s)"
    else
      status=1
      echo "sanitize: $script FAILED; the end of $out/sanitize_$script.log:" >&2
      tail -40 "$out/sanitize_$script.log" >&2
    fi
  done
fi
# The kernels' other instruction sets under the sanitizers too: their vector widths read other
# spans of a row (tests/at_cpu_level.sh: each level this CPU has, below its best).
for level in generic avx2; do
  for t in network_tests input_noise_tests; do
    [[ " ${tests[*]} " == *" $t "* ]] || continue
    log=$out/sanitize_${t}_$level.log
    tests/at_cpu_level.sh "$level" "$out/tests/$t" >"$log" 2>&1
    rc=$?
    if [ $rc -eq 0 ]; then
      echo "sanitize: $t at CPU level $level ok"
    elif [ $rc -eq 77 ]; then
      echo "sanitize: $t at CPU level $level skipped: $(grep -m1 SKIP "$log")"
    else
      status=1
      echo "sanitize: $t at CPU level $level FAILED; the end of $log:" >&2
      tail -40 "$log" >&2
    fi
  done
done
echo "sanitize: build $((built - start)) s, tests $(($(date +%s) - built)) s"
exit $status
