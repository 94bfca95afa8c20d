#!/usr/bin/env bash
# Whole anonymizations, end to end, judged with an independent fingerprint: for each camera given,
# K_anon from its flat-fields 1-5 and K_judge from 6-10 (sorted by name); its first natural image
# is anonymized with K_anon (centre crop), and scored with K_judge. One row per configuration and
# image: wall time, iterations, stop reason, peak RSS, PSNR, |NCC| before and after (K_judge).
# Usage: scripts/bench_whole.sh DATA_DIR [--crop 512] [--threads N] [--config FILE]...
#          [--camera NAME]... [--out DIR]
#   DATA_DIR holds flatfield/<camera>_*.png and natural/<camera>_*.png (10 flat-fields each);
#   each --config is one configuration (default: the paper's, configs/default.yaml); default
#   cameras: three of different models found in DATA_DIR. Keeps the outputs in --out (default a
#   temporary folder, removed). At 512×512 on two cores expect one to a few hours per image.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] && [ -d "$1" ] || { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
data=$1
shift
crop=512 threads=$(nproc) out="" configs=() cameras=()
while [ $# -gt 0 ]; do
  case "$1" in
    --crop) crop=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --config) configs+=("$2"); shift 2 ;;
    --camera) cameras+=("$2"); shift 2 ;;
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
    /usr/bin/time -f '%e %M' -o "$stem.time" build/dippas anonymize --quiet --image "$image" \
      --crop "$crop" --prnu "$out/${cam}_anon.npy" --eval-prnu "$out/${cam}_judge.npy" \
      --config "$config" --threads "$threads" --out "$stem.png" --history "$stem.csv"
    read -r wall peak <"$stem.time"
    /usr/bin/python3 - "$stem.json" "$name" "$(basename "$image")" "$wall" "$peak" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
nb, na = abs(m["ncc_before"]), abs(m["ncc_after"])
print("%-22s %-26s %9.0f %6d %-14s %9.0f %7.2f %10.5f %10.5f %7.3f" % (
    sys.argv[2], sys.argv[3], float(sys.argv[4]), m["iterations"], m["stop_reason"],
    float(sys.argv[5]) / 1024, m["psnr"], nb, na, na / nb if nb else float("nan")))
EOF
  done
done
