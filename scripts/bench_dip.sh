#!/usr/bin/env bash
# Seconds per DIP iteration, dippas against the same network in PyTorch, side by side in one run.
# For each size: `dippas bench --what dip --loop-only` and scripts/bench_python.py (Debian's
# python3-torch, the same MultiRes U-Net, loss and AMSGrad step, the same thread count), each after
# its own warm-up iterations, then the ratio dippas / PyTorch (below 1 = dippas faster), and each
# process's peak memory. Both run as shipped: no allocator or threading variable is set for
# either. --rounds R runs the pair R times per size, alternating, and adds the median ratio: on a
# shared machine one pair moves by ±10 %.
# Usage: scripts/bench_dip.sh [--threads N] [--sizes "128 256 512"] [--iterations "20 8 3"]
#          [--rounds R]
#   needs build/dippas, /usr/bin/time and /usr/bin/python3 with torch (apt-get install time
#   python3-torch).
set -euo pipefail
export LC_ALL=C  # numbers written and read with a decimal point, whatever the user's locale
cd "$(dirname "$0")/.."
# The two programs compared; tests/bench_dip_test.sh puts stand-ins here.
dippas=${BENCH_DIP_DIPPAS:-build/dippas}
python=${BENCH_DIP_PYTHON:-/usr/bin/python3}
threads=$(nproc)
sizes=(128 256 512)
iters=(20 8 3)
rounds=1
while [ $# -gt 0 ]; do
  case "$1" in
    --threads) threads=$2; shift 2 ;;
    --sizes) read -r -a sizes <<<"$2"; shift 2 ;;
    --iterations) read -r -a iters <<<"$2"; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_dip.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "bench_dip.sh: --rounds needs a positive integer, got '$rounds'" >&2; exit 2; }
[ ${#iters[@]} -eq ${#sizes[@]} ] || { echo "bench_dip.sh: one --iterations value per size" >&2; exit 2; }
[ -x "$dippas" ] || { echo "bench_dip.sh: $dippas not found; build first" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench_dip.sh: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }
"$python" -c 'import torch' 2>/dev/null ||
  { echo "bench_dip.sh: $python has no torch (apt-get install python3-torch)" >&2; exit 1; }

printf '%-6s %-6s %14s %14s %8s %16s %16s\n' size iters "dippas s/it" "PyTorch s/it" ratio \
  "dippas peak MB" "PyTorch peak MB"
medians=()
for i in "${!sizes[@]}"; do
  n=${sizes[$i]} k=${iters[$i]}
  ratios=()
  for _ in $(seq "$rounds"); do
    d_log=$(mktemp) p_log=$(mktemp)
    /usr/bin/time -f 'peak %M' "$dippas" bench --what dip --size "$n" --iterations "$k" \
      --threads "$threads" --loop-only --quiet >"$d_log" 2>&1
    /usr/bin/time -f 'peak %M' "$python" scripts/bench_python.py --size "$n" --iters "$k" \
      --threads "$threads" >"$p_log" 2>&1
    d_ms=$(awk '/time per iteration/ {print $4}' "$d_log")
    p_its=$(awk '/python it\/s:/ {print $3}' "$p_log")
    d_peak=$(awk '/^peak/ {print $2}' "$d_log")
    p_peak=$(awk '/^peak/ {print $2}' "$p_log")
    if [ -z "$d_ms" ] || [ -z "$p_its" ]; then
      echo "bench_dip.sh: a benchmark failed at size $n:" >&2
      cat "$d_log" "$p_log" >&2
      exit 1
    fi
    ratio=$(awk -v d="$d_ms" -v p="$p_its" 'BEGIN { printf "%.4f", d / 1000 * p }')
    ratios+=("$ratio")
    awk -v n="$n" -v k="$k" -v d="$d_ms" -v p="$p_its" -v r="$ratio" -v dm="$d_peak" -v pm="$p_peak" \
      'BEGIN { printf "%-6s %-6s %14.3f %14.3f %8.3f %16.0f %16.0f\n", n, k, d / 1000, 1 / p, r,
                 dm / 1024, pm / 1024 }'
    rm -f "$d_log" "$p_log"
  done
  medians+=("$n: $(printf '%s\n' "${ratios[@]}" | sort -g | awk '{ r[NR] = $1 } END {
    m = NR % 2 ? r[(NR + 1) / 2] : (r[NR / 2] + r[NR / 2 + 1]) / 2
    printf "%.3f (min %.3f, max %.3f, %d rounds)", m, r[1], r[NR], NR }')")
done
if [ "$rounds" -gt 1 ]; then
  echo "median ratio dippas / PyTorch per size:"
  printf '  %s\n' "${medians[@]}"
fi
echo "threads: $threads; dippas $("$dippas" --version 2>/dev/null | head -1);" \
  "$("$python" -c 'import torch; print("torch", torch.__version__)')"
