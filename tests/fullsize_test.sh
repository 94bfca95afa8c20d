#!/usr/bin/env bash
# A full-size Dresden photo (3008×2000 JPEG, as shot) anonymized end to end on a CPU, by tiles,
# with a tiny network and few iterations per tile: the point is geometry, memory and
# attribution, not quality. K from `dippas fingerprint` on the camera's ten full-size
# flat-fields. The output has the photo's size and no metadata, and the full-frame PCE falls
# from attributed (≥ 60) to below 60. Skips (code 77) without the Dresden data beside the clone.
# Usage: fullsize_test.sh DIPPAS SOURCE_DIR SHARED_DIR
set -uo pipefail
DIPPAS=$1
SHARED=${DIPPAS_SHARED-${3:-}}  # DIPPAS_SHARED (set, even empty) overrides the build's folder
source "$(dirname "$0")/cli_lib.sh"

FULL=$SHARED/data/dresden-full
if [ ! -d "$FULL/natural" ]; then
  echo "SKIP: $FULL not found (the full-size Dresden photos beside the clone)"
  exit 77
fi
PHOTO=$FULL/natural/Nikon_D70s_1_22824.JPG
TIME=()
[ -x /usr/bin/time ] && TIME=(/usr/bin/time -f "%e s wall, peak RSS %M kB")

expect_ok "fingerprint of 10 full-size flat-fields" "$DIPPAS" fingerprint --quiet --out "$T/K.npy" \
  "$FULL"/flatfield/Nikon_D70s_1_*.JPG
"${TIME[@]}" "$DIPPAS" anonymize --quiet --image "$PHOTO" --prnu "$T/K.npy" --out "$T/anon.png" \
  --set input_depth=4 --set filters=4,8 --set skips=4 --set lr=0.01 --max-iterations 3 2>"$T/err"
rc=$?
[ $rc -eq 0 ] || bad "anonymize: exit $rc: $(tail -3 "$T/err")"
echo "full-size anonymization: $(tail -1 "$T/err")"
check "same size, 24 tiles, PCE from attributed to not" "
import json, struct
w, h = struct.unpack('>II', open('$T/anon.png', 'rb').read()[16:24])
assert (w, h) == (3008, 2000), (w, h)
m = json.load(open('$T/anon.json'))
assert m['size'] == [2000, 3008] and len(m['tiles']) == 24 and m['tile_size'] == 512, (m['size'], len(m['tiles']))
print('PCE before %.1f after %.2f, NCC before %.5f after %.5f, PSNR %.2f dB' % (
    m['pce_before'], m['pce_after'], m['ncc_before'], m['ncc_after'], m['psnr']))
assert m['pce_before'] >= 60, m['pce_before']
assert m['pce_after'] < 60, m['pce_after']
"
cat "$T/pyout"
if command -v exiftool >/dev/null; then
  tags=$(exiftool -s -s -s -EXIF:all -Make -Model -SerialNumber "$T/anon.png" 2>/dev/null)
  [ -z "$tags" ] && ok || bad "metadata in the output: $tags"
fi
[ -e "$T/anon.png.tiles" ] && bad "work folder left after success"
finish
