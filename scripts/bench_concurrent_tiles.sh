#!/usr/bin/env bash
# Tiles one at a time against tiles at once (concurrent_tiles), side by side in one run, on the
# CPU: the same photo crop, tile grid and fixed iteration count per tile (no stop rule ends a tile
# early), so both runs do the same work. Prints wall seconds, tile-iterations per second, peak
# memory, and whether the concurrent output equals, bit for bit, the serial run with each tile's
# share of the threads (--threads / concurrent_tiles).
# Usage: scripts/bench_concurrent_tiles.sh [--image PNG] [--crop N] [--tile T] [--iterations I]
#          [--threads N] [--concurrent K] [--config YAML]
#   defaults: examples/natural/Nikon_D70s_0_21853.png, crop 512, tile 256 (4 tiles + 64 margin),
#   12 iterations per tile, all cores, K = threads; needs build/dippas and /usr/bin/time.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
dippas=${DIPPAS:-build/dippas}  # tests/tile_scripts_test.sh gives its build
image=examples/natural/Nikon_D70s_0_21853.png
crop=512 tile=256 iters=12 threads=$(nproc) k="" config=configs/default.yaml
while [ $# -gt 0 ]; do
  case "$1" in
    --image) image=$2; shift 2 ;;
    --crop) crop=$2; shift 2 ;;
    --tile) tile=$2; shift 2 ;;
    --iterations) iters=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --concurrent) k=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_concurrent_tiles.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
k=${k:-$threads}
share=$((threads / k)); [ "$share" -ge 1 ] || share=1
[ -x "$dippas" ] || { echo "bench_concurrent_tiles.sh: $dippas not found; build first" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench_concurrent_tiles.sh: /usr/bin/time not found (apt-get install time)" >&2; exit 1; }
[ -f "$image" ] || { echo "bench_concurrent_tiles.sh: $image: no such file" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/dippas_bench_tiles.XXXXXX")
trap 'rm -rf "$work"' EXIT

common=(anonymize --image "$image" --blind --crop "$crop" --config "$config" --set "tile_size=$tile"
  --set "max_iterations=$iters" --set psnr_stop=99 --set psnr_min=1 --set plateau_window=0
  --set restarts=0 -q)
# run NAME THREADS K: prints "seconds peak_MiB" for one run.
run() {
  /usr/bin/time -f '%e %M' -o "$work/$1.time" "$dippas" "${common[@]}" --out "$work/$1.png" \
    --threads "$2" --set "concurrent_tiles=$3" >/dev/null 2>"$work/$1.err" ||
    { echo "bench_concurrent_tiles.sh: run $1 failed:" >&2; cat "$work/$1.err" >&2; exit 1; }
  awk '{printf "%s %.0f\n", $1, $2 / 1024}' "$work/$1.time"
}
echo "crop ${crop}², tiles of ${tile} (+ margin), $iters iterations per tile, $threads threads;" \
  "concurrent: $k tiles × $share thread(s); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
read -r s_sec s_mem < <(run serial "$threads" 1)
read -r c_sec c_mem < <(run concurrent "$threads" "$k")
read -r r_sec r_mem < <(run share "$share" 1)
# Tile-iterations of the run (every tile runs exactly --iterations).
total=$(/usr/bin/python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['iterations'])" "$work/serial.json")
printf '%-34s %10s %18s %10s\n' run seconds "tile-iterations/s" "peak MiB"
for row in "serial, $threads threads:$s_sec:$s_mem" "concurrent, $k × $share:$c_sec:$c_mem" \
  "serial, $share thread(s) (reference):$r_sec:$r_mem"; do
  IFS=: read -r name sec mem <<<"$row"
  awk -v n="$name" -v s="$sec" -v m="$mem" -v t="$total" \
    'BEGIN { printf "%-34s %10.1f %18.3f %10s\n", n, s, t / s, m }'
done
awk -v a="$s_sec" -v b="$c_sec" 'BEGIN { printf "speed-up, concurrent over serial:  %.2f×\n", a / b }'
if cmp -s "$work/concurrent.png" "$work/share.png"; then
  echo "concurrent output = serial with $share thread(s): bit for bit"
else
  echo "concurrent output differs from serial with $share thread(s)"
  exit 1
fi
