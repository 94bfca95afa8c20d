#!/usr/bin/env bash
# The CUDA checks, run on the GPU machine (PyTorch wheel with CUDA, nvcc,
# CMake, ninja; no OpenCV, nothing installable). Builds the core library, the
# OpenCV-free benchmark and the core tests against the wheel's LibTorch, runs
# the tests on CUDA, benchmarks the loop at 128/256/512, runs the Python
# comparison, and writes every figure to $OUT (or ./gpu-out).
#
# Header-only dependencies travel in .gpu-deps/ (made here by
# `scripts/gpu-check.sh --prepare`, which copies Debian's CLI11/nlohmann/
# GoogleTest sources; the folder is git-ignored and carried by the device tool).
set -uo pipefail
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
mkdir -p "$OUT"
LOG=$OUT/gpu-check.log
exec > >(tee -a "$LOG") 2>&1
step() { echo; echo "=== $* ($(date +%T))"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available())'

step "configure and build (core, dippas-bench, core tests)"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DDIPPAS_WITH_OPENCV=OFF -DDIPPAS_GTEST_SOURCE="$DEPS/googletest" -DDIPPAS_JSON_INCLUDE="$DEPS/include" \
  -DCMAKE_CUDA_ARCHITECTURES=90 || exit 1
ninja -C build-gpu dippas-bench core_tests cuda_tests loop_tests assembly_tests network_tests psnr_tests || exit 1

step "tests (cuda_tests run on the GPU; the others on its CPU)"
for t in cuda_tests core_tests loop_tests assembly_tests network_tests psnr_tests; do
  DIPPAS_SHARED=${DIPPAS_SHARED:-$PWD/shared} ./build-gpu/tests/$t --gtest_brief=1 2>&1 | tail -n 3 | tee "$OUT/$t.txt"
done

step "benchmarks: PRNU stages on CUDA"
./build-gpu/dippas-bench prnu --device cuda --size 512 | tee "$OUT/bench_prnu_cuda.txt"

step "benchmarks: DIP loop on CUDA (default network)"
for s in 128 256 512; do
  ./build-gpu/dippas-bench dip --device cuda --size $s --iterations 200 | tee "$OUT/bench_dip_cuda_$s.txt"
done

step "Python PyTorch, same network, same GPU"
for s in 128 512; do
  python3 scripts/bench_python.py --device cuda --size $s --iters 200 | tee "$OUT/bench_python_cuda_$s.txt"
done

step "summary"
grep -H "iterations/s\|peak GPU\|python it/s" "$OUT"/bench_*.txt | tee "$OUT/summary.txt"
