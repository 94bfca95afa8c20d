#!/usr/bin/env bash
# Runs a test binary as on a machine whose best CPU level is LEVEL: dippas's kernels capped by
# DIPPAS_CPU_LEVEL, LibTorch's own vector code (ATEN_CPU_CAPABILITY), oneDNN's convolutions
# (ONEDNN_MAX_CPU_ISA) and OpenBLAS's kernels (OPENBLAS_CORETYPE) likewise, so that comparisons
# with LibTorch meet the rounding they would meet there. Skips (77) where this CPU lacks LEVEL.
# Usage: at_cpu_level.sh LEVEL BINARY [ARGS...]
set -uo pipefail
level=$1
shift
flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null)
has() { [[ " $flags " == *" $1 "* ]]; }
case $level in
  generic) env=(ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 OPENBLAS_CORETYPE=Nehalem) ;;
  avx2)
    has avx2 && has fma || { echo "SKIP: this CPU lacks AVX2 and FMA"; exit 77; }
    env=(ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell) ;;
  avx512)
    has avx512f || { echo "SKIP: this CPU lacks AVX-512"; exit 77; }
    env=(ATEN_CPU_CAPABILITY=avx512 ONEDNN_MAX_CPU_ISA=AVX512_CORE OPENBLAS_CORETYPE=SkylakeX) ;;
  *) echo "at_cpu_level.sh: unknown level '$level' (generic, avx2 or avx512)" >&2; exit 2 ;;
esac
echo "at CPU level $level: DIPPAS_CPU_LEVEL=$level ${env[*]}"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
env DIPPAS_CPU_LEVEL="$level" "${env[@]}" "$@" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}
# GoogleTest's skips: the whole run reads as skipped only when every test of it was.
if [ "$rc" -eq 0 ] && grep -q '^\[  SKIPPED \]' "$out" && ! grep -q '^\[  PASSED  \] [1-9]' "$out"; then
  exit 77
fi
exit "$rc"
