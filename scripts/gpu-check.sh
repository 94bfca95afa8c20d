#!/usr/bin/env bash
# The CUDA checks, run on the GPU machine (PyTorch wheel with CUDA, nvcc,
# CMake, ninja; no OpenCV, nothing installable). Builds the core library, the
# OpenCV-free benchmark and the core tests against the wheel's LibTorch, runs
# the tests on CUDA, benchmarks the loop at 128/256/512, runs the Python
# comparison, and writes every figure to $OUT (or ./gpu-out).
#
# Every stage's status is checked: a failing build step, test binary or
# benchmark makes the script exit non-zero, and the end prints one line per
# stage (name, ok/FAILED/skipped, seconds). A failed build skips what follows.
#
# Header-only dependencies travel in .gpu-deps/ (made here by
# `scripts/gpu-check.sh --prepare`, which copies Debian's CLI11/nlohmann/
# GoogleTest sources; the folder is git-ignored and carried by the device tool).
#
# Knobs (for a local run on a CPU, and for tests/gpu_check_test.sh):
#   GPU_CHECK_STAGES  stages to run, in order (default: machine build tests bench_prnu bench_dip python)
#   GPU_CHECK_BUILD   build folder (default build-gpu)
#   GPU_CHECK_TESTS   test binaries under $GPU_CHECK_BUILD/tests (default: the CUDA and core tests)
#   GPU_CHECK_DEVICE  device of the benchmarks (default cuda)
#   GPU_CHECK_SIZES   DIP benchmark sizes (default "128 256 512"), GPU_CHECK_ITERS iterations (200)
#   GPU_CHECK_TORCH_PREFIX  LibTorch's CMake prefix (default: asked of python3's torch)
# e.g. on a CPU with the usual build:
#   GPU_CHECK_BUILD=build GPU_CHECK_STAGES="tests bench_dip" GPU_CHECK_DEVICE=cpu \
#     GPU_CHECK_SIZES=64 GPU_CHECK_ITERS=3 GPU_CHECK_TESTS="tf32_tests" scripts/gpu-check.sh
set -euo pipefail
export LC_ALL=C  # numbers written and read with a decimal point, whatever the user's locale
cd "$(dirname "$0")/.."
DEPS=$PWD/.gpu-deps

if [ "${1:-}" = "--prepare" ]; then
  rm -rf "$DEPS" && mkdir -p "$DEPS/include"
  cp -r /usr/include/nlohmann "$DEPS/include/"
  cp -r /usr/src/googletest "$DEPS/googletest"
  echo "prepared $DEPS ($(du -sh "$DEPS" | cut -f1))"
  exit 0
fi

OUT=${OUT:-$PWD/gpu-out}
BUILD=${GPU_CHECK_BUILD:-build-gpu}
STAGES=${GPU_CHECK_STAGES:-machine build tests bench_prnu bench_dip python}
TESTS=${GPU_CHECK_TESTS:-cuda_tests tf32_tests optimizer_tests iteration_tests loop_sync_tests core_tests loop_tests assembly_tests network_tests psnr_tests}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
SIZES=${GPU_CHECK_SIZES:-128 256 512}
ITERS=${GPU_CHECK_ITERS:-200}
mkdir -p "$OUT"
LOG=$OUT/gpu-check.log
exec > >(tee -a "$LOG") 2>&1
# tee runs asynchronously: at exit, close our end and wait for it, so that everything is printed
# before the script's caller reads its output (keeping the exit status).
TEE_PID=$!
trap 'rc=$?; exec 1>&- 2>&-; wait "$TEE_PID" 2>/dev/null; exit $rc' EXIT

# ---- the stages (each runs in a subshell under set -euo pipefail) ----
stage_machine() {
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "(no nvidia-smi)"
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'
}

stage_build() {
  # CMake's CUDA toolkit lookup (through LibTorch's config) wants nvcc on the PATH.
  [ -x /usr/local/cuda/bin/nvcc ] && export PATH=/usr/local/cuda/bin:$PATH
  local prefix=${GPU_CHECK_TORCH_PREFIX:-}
  [ -n "$prefix" ] || prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
    -DDIPPAS_WITH_OPENCV=OFF -DDIPPAS_GTEST_SOURCE="$DEPS/googletest" -DDIPPAS_JSON_INCLUDE="$DEPS/include" \
    -DCMAKE_CUDA_ARCHITECTURES=90
  # -k 0: every unit that fails is reported in one run (a device call is too dear to learn them
  # one at a time).
  # shellcheck disable=SC2086  # the test names are words
  ninja -C "$BUILD" -k 0 dippas-bench $TESTS
}

# Every binary runs even when one fails; the stage fails if any did.
stage_tests() {
  local failed=0 t rc t0
  for t in $TESTS; do
    t0=$SECONDS
    rc=0
    DIPPAS_SHARED=${DIPPAS_SHARED:-$PWD/shared} "$BUILD/tests/$t" --gtest_brief=1 >"$OUT/$t.txt" 2>&1 || rc=$?
    tail -n 5 "$OUT/$t.txt"
    local skipped
    skipped=$(grep -Eo '\[  SKIPPED \] [0-9]+ test' "$OUT/$t.txt" | grep -Eo '[0-9]+' | head -n 1 || true)
    if [ "$rc" -eq 0 ]; then
      printf 'test %-20s ok      %4ds%s\n' "$t" $((SECONDS - t0)) "${skipped:+ ($skipped skipped)}" >>"$OUT/tests-summary.txt"
    else
      printf 'test %-20s FAILED  %4ds (exit %d)\n' "$t" $((SECONDS - t0)) "$rc" >>"$OUT/tests-summary.txt"
      failed=1
    fi
  done
  return "$failed"
}

stage_bench_prnu() {
  "$BUILD/dippas-bench" prnu --device "$DEVICE" --size 512 | tee "$OUT/bench_prnu_$DEVICE.txt"
}

stage_bench_dip() {
  local s
  for s in $SIZES; do
    "$BUILD/dippas-bench" dip --device "$DEVICE" --size "$s" --iterations "$ITERS" | tee "$OUT/bench_dip_${DEVICE}_$s.txt"
  done
}

stage_python() {
  local s
  for s in 128 512; do
    python3 scripts/bench_python.py --device "$DEVICE" --size "$s" --iters "$ITERS" | tee "$OUT/bench_python_${DEVICE}_$s.txt"
  done
}

# ---- the runner ----
SUMMARY=()
FAILED=0
ABORT=0
: >"$OUT/tests-summary.txt"
for name in $STAGES; do
  if ! declare -F "stage_$name" >/dev/null; then
    echo "gpu-check: unknown stage '$name'" >&2
    exit 2
  fi
  if [ "$ABORT" -eq 1 ]; then
    SUMMARY+=("$(printf 'stage %-12s skipped     -' "$name")")
    continue
  fi
  echo
  echo "=== $name ($(date +%T))"
  t0=$SECONDS
  # Not `( … ) || rc=$?`: bash ignores set -e inside a subshell that is the left of ||.
  set +e
  (
    set -euo pipefail
    "stage_$name"
  )
  rc=$?
  set -e
  secs=$((SECONDS - t0))
  if [ "$rc" -eq 0 ]; then
    SUMMARY+=("$(printf 'stage %-12s ok      %4ds' "$name" "$secs")")
  else
    SUMMARY+=("$(printf 'stage %-12s FAILED  %4ds (exit %d)' "$name" "$secs" "$rc")")
    FAILED=1
    [ "$name" = build ] && ABORT=1
  fi
done

echo
echo "=== summary"
{
  printf '%s\n' "${SUMMARY[@]}"
  cat "$OUT/tests-summary.txt"
  grep -H "iterations/s\|peak GPU\|peak resident\|python it/s" "$OUT"/bench_*.txt 2>/dev/null || true
} | tee "$OUT/summary.txt"
if [ "$FAILED" -ne 0 ]; then
  echo "gpu-check: FAILED"
  exit 1
fi
echo "gpu-check: all stages ok"
