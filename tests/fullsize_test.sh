#!/usr/bin/env bash
# A photo larger than a tile, anonymized end to end on a CPU by tiles, with a tiny network and few
# iterations per tile: the point is geometry, memory and attribution, not quality. With the
# reference data: a full-size Dresden photo (3008×2000 JPEG, as shot), K from its camera's ten
# full-size flat-fields, 24 tiles of 512. Without it: the bundled example photo as a JPEG with
# camera metadata (512×512), K from examples/flatfield, tiles of 192 (3×3, the last row and column
# 128 wide). Either way the output has the photo's size and no metadata, and the full-frame PCE
# falls from attributed (≥ 60) to below 60.
# Usage: fullsize_test.sh DIPPAS SOURCE_DIR SHARED_DIR
set -uo pipefail
DIPPAS=$1
SRC=$2
SHARED=${DIPPAS_SHARED-${3:-}}  # DIPPAS_SHARED (set, even empty) overrides the build's folder
source "$(dirname "$0")/cli_lib.sh"

FULL=$SHARED/data/dresden-full
TIME=()
[ -x /usr/bin/time ] && TIME=(/usr/bin/time -f "%e s wall, peak RSS %M kB")
if [ -n "$SHARED" ] && [ -d "$FULL/natural" ]; then
  PHOTO=$FULL/natural/Nikon_D70s_1_22824.JPG
  FLATS=("$FULL"/flatfield/Nikon_D70s_1_*.JPG)
  W=3008 H=2000 TILE=512 NTILES=24
else
  "$PY" -c "import PIL" 2>/dev/null ||
    skip_all "no reference data, and $PY without PIL cannot make the JPEG photo (apt-get install python3-pil)"
  echo "reference data absent: the example photo as a JPEG with camera metadata, tiles of 192"
  PHOTO=$T/Nikon_D70s_1_22824.JPG
  "$PY" -c "
from PIL import Image
ex = Image.Exif()
ex[0x010F], ex[0x0110], ex[0xA431] = 'NIKON CORPORATION', 'NIKON D70s', '0000000'
Image.open('$SRC/examples/natural/Nikon_D70s_1_22824.png').save('$PHOTO', quality=95, exif=ex.tobytes())
" || bad "could not write the JPEG photo"
  FLATS=("$SRC"/examples/flatfield/Nikon_D70s_1_*.png)
  W=512 H=512 TILE=192 NTILES=9
fi

expect_ok "fingerprint of ${#FLATS[@]} flat-fields" "$DIPPAS" fingerprint --quiet --out "$T/K.npy" "${FLATS[@]}"
"${TIME[@]}" "$DIPPAS" anonymize --quiet --image "$PHOTO" --prnu "$T/K.npy" --out "$T/anon.png" \
  --tile-size "$TILE" --set input_depth=4 --set filters=4,8 --set skips=4 --set lr=0.01 \
  --max-iterations 3 2>"$T/err"
rc=$?
[ $rc -eq 0 ] || bad "anonymize: exit $rc: $(tail -3 "$T/err")"
echo "tiled anonymization: $(tail -1 "$T/err")"
check "same size, $NTILES tiles, PCE from attributed to not" "
import json, struct
w, h = struct.unpack('>II', open('$T/anon.png', 'rb').read()[16:24])
assert (w, h) == ($W, $H), (w, h)
m = json.load(open('$T/anon.json'))
assert m['size'] == [$H, $W] and len(m['tiles']) == $NTILES and m['tile_size'] == $TILE, (m['size'], len(m['tiles']))
print('PCE before %.1f after %.2f, NCC before %.5f after %.5f, PSNR %.2f dB' % (
    m['pce_before'], m['pce_after'], m['ncc_before'], m['ncc_after'], m['psnr']))
assert m['pce_before'] >= 60, m['pce_before']
assert m['pce_after'] < 60, m['pce_after']
"
cat "$T/pyout"
if command -v exiftool >/dev/null; then
  tags=$(exiftool -s -s -s -Make -Model "$PHOTO" 2>/dev/null)
  [ -n "$tags" ] || bad "the input photo carries no camera metadata: the check below would prove nothing"
  tags=$(exiftool -s -s -s -EXIF:all -Make -Model -SerialNumber "$T/anon.png" 2>/dev/null)
  [ -z "$tags" ] && ok || bad "metadata in the output: $tags"
else
  skip "exiftool absent: the metadata check (apt-get install libimage-exiftool-perl)"
fi
[ -e "$T/anon.png.tiles" ] && bad "work folder left after success"
finish
