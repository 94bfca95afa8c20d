#!/usr/bin/env bash
# `dippas detect` against prnu-python doing the same work, side by side in one run: the whole
# process timed (start-up, image and fingerprint loading, residual, NCC, PCE, output), median of
# several repeats, alternating the two tools.
#
# Usage: scripts/bench_detect.sh [--prnu-python DIR] [--images DIR] [--fingerprint K.npy]
#                                [--count N] [--repeats R] [--threads T]
#   --prnu-python DIR  a prnu-python checkout (github.com/polimi-ispl/prnu-python; the folder
#                      holding prnu/); default $PRNU_PYTHON. Without one only dippas is timed.
#   --images DIR       the images (N of them are used, repeated when the folder has fewer);
#                      default: the bundled examples/natural then examples/flatfield (512×512)
#   --fingerprint K    K.npy to test against; default: estimated by `dippas fingerprint` from
#                      examples/flatfield before timing
#   --count N          images per run (default 12); --repeats R: runs of each tool (default 5)
#   --threads T        threads of both tools (default: all cores): dippas --threads T; Python's
#                      OMP/OpenBLAS/MKL thread counts (its FFTs and wavelets run on one thread)
# Python: $PYTHON, else /usr/bin/python3 (numpy, scipy, PyWavelets, Pillow: Debian's python3-numpy
# python3-scipy python3-pywt python3-pil python3-tqdm).
set -euo pipefail
export LC_ALL=C  # numbers written and read with a decimal point, whatever the user's locale
cd "$(dirname "$0")/.."
DIPPAS=${DIPPAS:-build/dippas}
PRNU_DIR=${PRNU_PYTHON:-}
IMAGES=""
K=""
COUNT=12
REPEATS=5
THREADS=$(nproc)
PYTHON=${PYTHON:-/usr/bin/python3}
while [ $# -gt 0 ]; do
  case $1 in
    --prnu-python) PRNU_DIR=$2; shift 2 ;;
    --images) IMAGES=$2; shift 2 ;;
    --fingerprint) K=$2; shift 2 ;;
    --count) COUNT=$2; shift 2 ;;
    --repeats) REPEATS=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "bench_detect: unknown argument $1 (--help)" >&2; exit 2 ;;
  esac
done
[ -x "$DIPPAS" ] || { echo "bench_detect: $DIPPAS not found: build dippas first" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# The image list: N files, repeated in order when there are fewer.
if [ -n "$IMAGES" ]; then
  mapfile -t pool < <(find "$IMAGES" -maxdepth 1 -type f \( -iname '*.png' -o -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.tif' -o -iname '*.tiff' -o -iname '*.bmp' \) | sort)
else
  mapfile -t pool < <(ls examples/natural/*.png; ls examples/flatfield/*.png)
fi
[ ${#pool[@]} -gt 0 ] || { echo "bench_detect: no images in ${IMAGES:-examples/}" >&2; exit 1; }
files=()
for ((i = 0; i < COUNT; i++)); do files+=("${pool[i % ${#pool[@]}]}"); done
if [ -z "$K" ]; then
  K=$T/K.npy
  "$DIPPAS" fingerprint --quiet --out "$K" examples/flatfield
fi

if [ -n "$PRNU_DIR" ] && [ ! -f "$PRNU_DIR/prnu/functions.py" ]; then
  echo "bench_detect: $PRNU_DIR/prnu/functions.py not found (want a prnu-python checkout)" >&2
  exit 1
fi
if [ -z "$PRNU_DIR" ]; then
  echo "bench_detect: no prnu-python checkout given (--prnu-python DIR or PRNU_PYTHON): timing dippas"
  echo "  only. To compare: git clone https://github.com/polimi-ispl/prnu-python and pass its folder."
fi

# One run of a command, whole process: wall seconds appended to a file.
timed() {
  local out=$1 log=$2
  shift 2
  local t0 t1
  t0=$(date +%s.%N)
  "$@" >"$log" 2>&1 || { echo "bench_detect: failed: $* (see below)" >&2; cat "$log" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t0 $t1" | awk '{printf "%.3f\n", $2 - $1}' >>"$out"
}
median() { sort -n "$1" | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

echo "bench_detect: ${#files[@]} images ($(basename "${files[0]}") …), fingerprint $(basename "$K"), $THREADS threads, $REPEATS repeats"
for ((r = 0; r < REPEATS; r++)); do
  timed "$T/dippas.t" "$T/dippas.out" "$DIPPAS" detect --quiet --threads "$THREADS" --prnu "$K" "${files[@]}"
  if [ -n "$PRNU_DIR" ]; then
    timed "$T/python.t" "$T/python.out" "$PYTHON" scripts/bench_detect_prnu_python.py "$PRNU_DIR" "$K" \
      "${files[@]}" --threads "$THREADS"
  fi
done

d=$(median "$T/dippas.t")
echo "dippas detect:          median $d s  (runs: $(tr '\n' ' ' <"$T/dippas.t"))"
if [ -n "$PRNU_DIR" ]; then
  p=$(median "$T/python.t")
  echo "prnu-python (same work): median $p s  (runs: $(tr '\n' ' ' <"$T/python.t"))"
  # Same work, same answer: the NCC columns agree (prnu-python's PCE variant differs by design).
  paste <(awk 'NR > 1 {print $3}' "$T/dippas.out") <(awk '{print $2}' "$T/python.out") |
    awk '{d = $1 - $2; d = d < 0 ? -d : d; if (d > m) m = d} END {printf "max |NCC difference|:    %.2g\n", m}'
  echo "$d $p" | awk '{printf "ratio dippas/prnu-python: %.3f  (prnu-python takes %.1fx as long)\n", $1 / $2, $2 / $1}'
fi
