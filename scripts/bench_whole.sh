#!/usr/bin/env bash
# Whole anonymizations, end to end, judged with an independent fingerprint: for each camera given,
# K_anon from its flat-fields 1-5 and K_judge from 6-10 (sorted by name); its first natural image
# is anonymized with K_anon (centre crop), and scored with K_judge. One row per configuration and
# image: wall time, iterations, stop reason, peak RSS, PSNR, |NCC| before and after (K_judge).
# Usage: scripts/bench_whole.sh DATA_DIR [--crop 512] [--threads N] [--config FILE]...
#          [--camera NAME]... [--pool-max M,...] [--out DIR]
#   DATA_DIR holds flatfield/<camera>_*.png and natural/<camera>_*.png (10 flat-fields each);
#   each --config is one configuration (default: the paper's, configs/default.yaml); default
#   cameras: three of different models found in DATA_DIR. --pool-max saves each run's pool and
#   adds a row per M: the same run stopped at its M-th candidate (pool_max = M), re-assembled with
#   `dippas assemble --pool-max` (wall time: the run's, scaled by the iterations). Keeps the
#   outputs in --out (default a temporary folder, removed). At 512×512 on two cores expect up to
#   an hour or more per image.
set -euo pipefail
export LC_ALL=C  # numbers written and read with a decimal point, whatever the user's locale
cd "$(dirname "$0")/.."
[ $# -ge 1 ] && [ -d "$1" ] || { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
data=$1
shift
crop=512 threads=$(nproc) out="" pool_max="" configs=() cameras=()
while [ $# -gt 0 ]; do
  case "$1" in
    --crop) crop=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --config) configs+=("$2"); shift 2 ;;
    --camera) cameras+=("$2"); shift 2 ;;
    --pool-max) pool_max=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "bench_whole.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ ${#configs[@]} -gt 0 ] || configs=(configs/default.yaml)
if [ ${#cameras[@]} -eq 0 ]; then
  # One camera per model (the name without its instance number), three at most.
  mapfile -t cameras < <(ls "$data/flatfield" | sed -E 's/_[0-9]+\.[A-Za-z]+$//' | sort -u |
    awk -F_ '{model = $1 "_" $2} !seen[model]++' | head -3)
fi
if [ -z "$out" ]; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out"

printf '%-22s %-26s %9s %6s %-14s %9s %7s %10s %10s %7s\n' config image wall_s iters stop \
  peak_MB psnr ncc_before ncc_after ratio
for cam in "${cameras[@]}"; do
  mapfile -t flats < <(ls "$data/flatfield/${cam}"_* | sort)
  [ ${#flats[@]} -ge 10 ] || { echo "bench_whole.sh: $cam has ${#flats[@]} flat-fields, needs 10" >&2; exit 1; }
  image=$(ls "$data/natural/${cam}"_* | sort | head -1)
  build/dippas fingerprint --quiet --crop "$crop" --out "$out/${cam}_anon.npy" "${flats[@]:0:5}"
  build/dippas fingerprint --quiet --crop "$crop" --out "$out/${cam}_judge.npy" "${flats[@]:5:5}"
  for config in "${configs[@]}"; do
    name=$(basename "$config" .yaml)
    stem="$out/${name}_$(basename "${image%.*}")"
    save=()
    [ -z "$pool_max" ] || save=(--save-pool "$stem.pool")
    /usr/bin/time -f '%e %M' -o "$stem.time" build/dippas anonymize --quiet --image "$image" \
      --crop "$crop" --prnu "$out/${cam}_anon.npy" --eval-prnu "$out/${cam}_judge.npy" \
      --config "$config" --threads "$threads" --out "$stem.png" --history "$stem.csv" "${save[@]}"
    read -r wall peak <"$stem.time"
    if [ -n "$pool_max" ]; then
      read -r b l tau < <(/usr/bin/python3 -c "import json, sys; c = json.load(open(sys.argv[1]))['config']
print(c['block_size'], c['top'], c['psnr_min'])" "$stem.json")
      rm -rf "$stem.sweep"
      build/dippas assemble --quiet --pool "$stem.pool" --image "$image" --crop "$crop" \
        --prnu "$out/${cam}_anon.npy" --eval-prnu "$out/${cam}_judge.npy" --block-size "$b" \
        --top "$l" --psnr-min "$tau" --pool-max "$pool_max" --threads "$threads" \
        --out-dir "$stem.sweep" || echo "bench_whole.sh: no --pool-max rows for $stem" >&2
    fi
    /usr/bin/python3 - "$stem" "$name" "$(basename "$image")" "$wall" "$peak" <<'EOF'
import json, os, sys
stem, name, image, wall, peak = sys.argv[1:]
m = json.load(open(stem + ".json"))
def row(config, wall, iters, stop, peak, psnr, nb, na):
    nb, na = abs(nb), abs(na)
    print("%-22s %-26s %9s %6d %-14s %9s %7.2f %10.5f %10.5f %7.3f" % (
        config, image, wall, iters, stop, peak, psnr, nb, na, na / nb if nb else float("nan")))
row(name, "%.0f" % float(wall), m["iterations"], m["stop_reason"], "%.0f" % (float(peak) / 1024),
    m["psnr"], m["ncc_before"], m["ncc_after"])
sweep = stem + ".sweep/sweep.json"
for r in (json.load(open(sweep))["rows"] if os.path.exists(sweep) else []):
    if not r["pool_max"] or r["psnr"] is None:
        continue
    full = r["pool_size"] < r["pool_max"]  # the run stopped before its M-th candidate
    iters = m["iterations"] if full else r["last_iteration"]
    row("%s M=%d" % (name, r["pool_max"]), "~%.0f" % (float(wall) * iters / m["iterations"]),
        iters, m["stop_reason"] if full else "pool_full", "-", r["psnr"], r["ncc_before"],
        r["ncc_after"])
EOF
  done
done
