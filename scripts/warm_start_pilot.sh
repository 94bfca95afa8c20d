#!/usr/bin/env bash
# Warm starts across tiles against cold ones, judged by a fingerprint the anonymizer never saw.
# For each photo: K_anon from the first 5 flat-fields of its camera, K_judge from the other 5
# (both on the photo's centre crop); the crop anonymized in tiles, cold (every tile from random
# weights, tiles two at once) and warm (warm_start: 1, one after another), same seed and settings.
# Prints per run: tile-iterations (each tile's), the lowest tile-core PSNR, the whole crop's PSNR,
# NCC and PCE with K_judge before → after, wall seconds; per-tile rows go to OUT/tiles.csv.
# Usage: scripts/warm_start_pilot.sh DATA OUT [--crop N] [--tile T] [--max-iterations M]
#          [--config YAML] [--threads N] [--photos "NAME.JPG ..."]
#   DATA holds flatfield/ and natural/ (camera = the name up to its last '_'), 10 flat-fields
#   per camera; defaults: crop 256, tiles of 128, 1500 iterations at most, the paper's config.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
data=$1 out=$2
shift 2
crop=256 tile=128 maxit=1500 config=configs/default.yaml threads=$(nproc) photos=""
while [ $# -gt 0 ]; do
  case "$1" in
    --crop) crop=$2; shift 2 ;;
    --tile) tile=$2; shift 2 ;;
    --max-iterations) maxit=$2; shift 2 ;;
    --config) config=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --photos) photos=$2; shift 2 ;;
    *) echo "warm_start_pilot.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
dippas=${DIPPAS:-build/dippas}  # tests/tile_scripts_test.sh gives its build
[ -x "$dippas" ] || { echo "warm_start_pilot.sh: $dippas not found; build first" >&2; exit 1; }
[ -d "$data/flatfield" ] && [ -d "$data/natural" ] ||
  { echo "warm_start_pilot.sh: $data has no flatfield/ and natural/ folders" >&2; exit 1; }
[ -n "$photos" ] || photos=$(cd "$data/natural" && ls | head -2 | tr '\n' ' ')
mkdir -p "$out"
# A file is reused only if it was made from the same inputs: its .key holds their digest (the
# dippas binary, the settings, the files' bytes), so a rerun with other settings redoes it.
digest() { { printf '%s\n' "$@"; for f in "$@"; do [ -f "$f" ] && sha1sum <"$f"; done; } | sha1sum | cut -c1-16; }
fresh() { [ -f "$1" ] && [ -f "$1.key" ] && [ "$(cat "$1.key")" = "$2" ]; }
for photo in $photos; do
  cam=${photo%_*}
  mapfile -t flats < <(ls "$data/flatfield/${cam}"_* | sort)
  [ ${#flats[@]} -ge 10 ] || { echo "warm_start_pilot.sh: $cam has ${#flats[@]} flat-fields, needs 10" >&2; exit 1; }
  for half in anon judge; do
    k="$out/${cam}_K_$half.npy"
    if [ $half = anon ]; then set -- "${flats[@]:0:5}"; else set -- "${flats[@]:5:5}"; fi
    key=$(digest "$dippas" "crop $crop" "$@")
    fresh "$k" "$key" && continue
    "$dippas" fingerprint --quiet --crop "$crop" --threads "$threads" --out "$k" "$@" 2>/dev/null
    echo "$key" >"$k.key"
  done
  for variant in cold warm; do
    o="$out/${photo%.*}.$variant.png"
    extra=(--concurrent-tiles 2)
    [ $variant = warm ] && extra=(--set warm_start=1)
    key=$(digest "$dippas" "crop $crop tile $tile max $maxit threads $threads ${extra[*]}" "$config" \
      "$data/natural/$photo" "$out/${cam}_K_anon.npy" "$out/${cam}_K_judge.npy")
    fresh "${o%.png}.json" "$key" && continue
    /usr/bin/time -f '%e' -o "${o%.png}.time" "$dippas" anonymize --quiet \
      --image "$data/natural/$photo" --crop "$crop" --prnu "$out/${cam}_K_anon.npy" \
      --eval-prnu "$out/${cam}_K_judge.npy" --config "$config" --tile-size "$tile" \
      --max-iterations "$maxit" --threads "$threads" "${extra[@]}" --out "$o" 2>"${o%.png}.err"
    echo "$key" >"${o%.png}.json.key"
  done
done
/usr/bin/python3 - "$out" $photos <<'EOF'
import json, sys
out, photos = sys.argv[1], sys.argv[2:]
rows = ["photo,variant,tile,iterations,stop_reason,core_psnr,pool_size"]
print("| photo | variant | tile-iterations (per tile) | min core PSNR | PSNR | NCC K_judge before → after | PCE K_judge before → after | wall s |")
print("|---|---|---|---|---|---|---|---|")
for p in photos:
    stem = p.rsplit(".", 1)[0]
    for v in ("cold", "warm"):
        m = json.load(open(f"{out}/{stem}.{v}.json"))
        wall = float(open(f"{out}/{stem}.{v}.time").read().split()[-1])
        t = m["tiles"]
        its = [x["iterations"] for x in t]
        for x in t:
            rows.append(f"{stem},{v},{x['index']},{x['iterations']},{x['stop_reason']},{x['psnr']:.3f},{x['pool_size']}")
        print(f"| {stem} | {v} | {sum(its)} ({', '.join(map(str, its))}) | {min(x['psnr'] for x in t):.2f} | "
              f"{m['psnr']:.2f} | {m['ncc_before']:.4f} → {m['ncc_after']:.4f} | {m['pce_before']:.1f} → {m['pce_after']:.1f} | {wall:.0f} |")
open(f"{out}/tiles.csv", "w").write("\n".join(rows) + "\n")
EOF
