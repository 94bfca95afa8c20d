#!/usr/bin/env bash
# Do tiles leave seams? Anonymizes the centre crop of a full-size Dresden photo by tiles with
# no margin and with a margin, then compares PSNR and |NCC| (judged with a fingerprint from the
# other five flat-fields) in the strips along the seams with the tile interiors, and writes a
# 4× crop of a seam crossing for each. A small network (configs/smoke.yaml) keeps it to minutes.
# Usage: scripts/seams.sh [PHOTO] [CROP] [TILE] [MARGIN] [OUTDIR]   (needs python3-pil)
set -euo pipefail
export LC_ALL=C  # numbers written and read with a decimal point, whatever the user's locale
cd "$(dirname "$0")/.."
FULL=${DIPPAS_SHARED:-../shared}/data/dresden-full
PHOTO=${1:-$FULL/natural/Nikon_D70s_1_22824.JPG}
CROP=${2:-512}
TILE=${3:-128}
MARGIN=${4:-32}
OUT=${5:-out/seams}
cam=$(basename "$PHOTO" | sed -E 's/_[0-9]+\.[A-Za-z]+$//')
mkdir -p "$OUT"
mapfile -t flats < <(ls "$FULL"/flatfield/"$cam"_*.* | sort)
build/dippas fingerprint --quiet --crop "$CROP" --out "$OUT/K_anon.npy" "${flats[@]:0:5}"
build/dippas fingerprint --quiet --crop "$CROP" --out "$OUT/K_judge.npy" "${flats[@]:5:5}"
# The original crop as PNG, for the comparison (denoise with no change would do too; a crop by
# the tool itself keeps the same pixels).
/usr/bin/python3 -c "
from PIL import Image; im = Image.open('$PHOTO').convert('RGB'); W, H = im.size; n = $CROP
x, y = (W - n) // 2, (H - n) // 2; im.crop((x, y, x + n, y + n)).save('$OUT/original.png')"
for m in 0 "$MARGIN"; do
  /usr/bin/time -f "margin $m: %e s wall, peak RSS %M kB" build/dippas anonymize --quiet \
    --image "$OUT/original.png" --prnu "$OUT/K_anon.npy" --eval-prnu "$OUT/K_judge.npy" \
    --config configs/smoke.yaml --set tile_size="$TILE" --set tile_margin="$m" --out "$OUT/anon_m$m.png"
  build/dippas residual --quiet --image "$OUT/anon_m$m.png" --out "$OUT/W_m$m.npy"
  echo "== margin $m"
  /usr/bin/python3 scripts/seam_stats.py "$OUT/original.png" "$OUT/anon_m$m.png" "$OUT/W_m$m.npy" \
    "$OUT/K_judge.npy" "$TILE" --crop-out "$OUT/seam_m$m.png"
  /usr/bin/python3 -c "
import json; m = json.load(open('$OUT/anon_m$m.json'))
print('whole image: PSNR %.2f dB, NCC %.5f -> %.5f, tiles %d, iterations %d' % (m['psnr'], m['ncc_before'], m['ncc_after'], len(m['tiles']), m['iterations']))"
done
