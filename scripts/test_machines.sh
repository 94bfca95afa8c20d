#!/usr/bin/env bash
# Runs the tests whose results go through LibTorch, oneDNN or OpenBLAS under the kernels of other
# machines, on this one: each OpenBLAS core type and oneDNN instruction set this CPU can run, and
# each dippas dispatch level. Prints a line per combination: the tests' verdict, the network
# rewrites' error ratio to LibTorch's, and the md5 of a short anonymization (the same seed on
# other kernels gives other bits: what differs between machines).
# Usage: scripts/test_machines.sh [BUILD_DIR]   (default build; run scripts/setup.sh first)
set -uo pipefail
export LC_ALL=C  # numbers written and read with a decimal point, whatever the user's locale
cd "$(dirname "$0")/.."
B=${1:-build}
for t in network_tests input_noise_tests loop_tests optimizer_tests purpose_tests; do
  [ -x "$B/tests/$t" ] || { echo "test_machines.sh: $B/tests/$t not built (scripts/setup.sh)" >&2; exit 2; }
done
flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { [[ " $flags " == *" $1 "* ]]; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$B/dippas" fingerprint --quiet --crop 64 examples/flatfield --out "$T/K.npy" || exit 1

# core type : oneDNN ISA : ATen capability : dippas level — each a machine class.
combos=("Nehalem:SSE41:default:generic" "Sandybridge:AVX:default:generic" "Prescott:SSE41:default:generic")
has avx2 && has fma && combos+=("Haswell:AVX2:avx2:avx2" "Zen:AVX2:avx2:avx2")
has avx512f && combos+=("SkylakeX:AVX512_CORE:avx512:avx512" "Haswell:AVX2:avx2:avx512"
  "Prescott:AVX512_CORE:avx512:avx512")
printf '%-40s %-8s %-14s %s\n' "OPENBLAS:ONEDNN:ATEN:DIPPAS" "tests" "error ratios" "anonymize md5 (64², 150 it)"
for c in "${combos[@]}"; do
  IFS=: read -r core isa aten level <<<"$c"
  env=(OPENBLAS_CORETYPE="$core" ONEDNN_MAX_CPU_ISA="$isa" ATEN_CPU_CAPABILITY="$aten"
    DIPPAS_CPU_LEVEL="$level")
  verdict=pass
  for t in network_tests input_noise_tests loop_tests optimizer_tests purpose_tests; do
    env "${env[@]}" "$B/tests/$t" >"$T/$t.log" 2>&1 || verdict="FAIL:$t"
  done
  ratios=$(grep -o 'geometric mean over [0-9]* tensors: [0-9.]*' "$T/network_tests.log" |
    awk '{print $NF}' | paste -sd/)
  env "${env[@]}" "$B/dippas" anonymize --quiet --threads 1 --image examples/natural/Nikon_D70s_1_22824.png \
    --prnu "$T/K.npy" --crop 64 --config configs/smoke.yaml --max-iterations 150 --psnr-stop 99 \
    --out "$T/a.png" >/dev/null 2>&1 && md5=$(md5sum <"$T/a.png" | cut -c1-12) || md5=failed
  printf '%-40s %-8s %-14s %s\n' "$c" "$verdict" "$ratios" "$md5"
done
