#!/usr/bin/env bash
# Memory of a full-size photo by tiles against one 512×512 run, and full-frame detection at 6 MP.
# Prints wall time and peak RSS of: the fingerprint of ten 3008×2000 flat-fields, `detect` on a
# full-size photo, one 512² anonymization (a single tile), and the whole photo by tiles (24 tiles
# of 512), both with the same network and iterations per tile. The tiled run should stay within
# the 512² run's peak plus the image-sized arrays (a few tens of MB per 6 MP float array).
# Usage: scripts/bench_fullsize.sh [ITERATIONS] [NETWORK-SETTINGS...]
#   default: 8 iterations per tile, a tiny network (input_depth 4, filters 4,8); e.g.
#   scripts/bench_fullsize.sh 3 --set input_depth=512   for the paper's network.
set -euo pipefail
export LC_ALL=C  # numbers written and read with a decimal point, whatever the user's locale
cd "$(dirname "$0")/.."
FULL=${DIPPAS_SHARED:-../shared}/data/dresden-full
PHOTO=$FULL/natural/Nikon_D70s_1_22824.JPG
ITER=${1:-8}
shift || true
NET=("$@")
[ ${#NET[@]} -gt 0 ] || NET=(--set input_depth=4 --set filters=4,8 --set skips=4)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
t() { /usr/bin/time -f "$1: %e s wall, peak RSS %M kB" "${@:2}"; }
t "fingerprint, 10 full-size flat-fields" build/dippas fingerprint --quiet --out "$OUT/K.npy" \
  "$FULL"/flatfield/Nikon_D70s_1_*.JPG
t "detect, one 3008x2000 photo (full-frame NCC + PCE)" build/dippas detect --quiet --prnu "$OUT/K.npy" "$PHOTO" \
  | tail -1
t "anonymize 512x512 crop (1 tile)" build/dippas anonymize --quiet --image "$PHOTO" --crop 512 \
  --prnu "$OUT/K.npy" --out "$OUT/c.png" "${NET[@]}" --max-iterations "$ITER"
t "anonymize 3008x2000 by tiles of 512" build/dippas anonymize --quiet --image "$PHOTO" \
  --prnu "$OUT/K.npy" --out "$OUT/f.png" "${NET[@]}" --max-iterations "$ITER"
/usr/bin/python3 -c "
import json; m = json.load(open('$OUT/f.json'))
print('full size: %d tiles, PSNR %.2f dB, PCE %.1f -> %.2f, NCC %.5f -> %.5f, timings %s' % (len(m['tiles']),
      m['psnr'], m['pce_before'], m['pce_after'], m['ncc_before'], m['ncc_after'], m['timings_s']))"
