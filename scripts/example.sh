#!/usr/bin/env bash
# The bundled example, end to end on a CPU (about 8 minutes on 2 cores):
#  1. estimate the fingerprint K of a Nikon D70s from its ten flat-fields;
#  2. test attribution of four natural images (two from that camera);
#  3. anonymize the 384×384 centre crop of one of its photos — attributed to the camera before
#     (PCE ≈ 100 ≥ 60) — PRNU-aware, with the reduced network of configs/quick.yaml so that it
#     takes minutes (the paper's network, configs/default.yaml, takes about 3× as long here);
#  4. test the crop before and after, and draw original | anonymized | difference ×10.
set -euo pipefail
export LC_ALL=C  # numbers written and read with a decimal point, whatever the user's locale
cd "$(dirname "$0")/.."
[ -x build/dippas ] || { echo "example.sh: build/dippas not found: run scripts/setup.sh first" >&2; exit 1; }
NAME=Nikon_D70s_1_22824
CROP=384
mkdir -p out
./build/dippas fingerprint examples/flatfield --out out/K_Nikon_D70s_1.npy
echo "== attribution of the natural images (full 512x512)"
./build/dippas detect --prnu out/K_Nikon_D70s_1.npy examples/natural
echo "== anonymizing the ${CROP}x${CROP} crop of $NAME.png (configs/quick.yaml)"
./build/dippas anonymize --image "examples/natural/$NAME.png" --prnu out/K_Nikon_D70s_1.npy \
  --crop "$CROP" --config configs/quick.yaml --out "out/$NAME.anon.png" --metrics "out/$NAME.anon.json"
echo "== the crop before (original) and after (anonymized)"
./build/dippas detect --crop "$CROP" --prnu out/K_Nikon_D70s_1.npy --json out/detect_before_after.json \
  "examples/natural/$NAME.png" "out/$NAME.anon.png"
/usr/bin/python3 - "out/$NAME.anon.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
yes = lambda pce: "attributed" if pce >= 60 else "not attributed"
print("%s: %s (PCE %.1f) -> %s (PCE %.1f), PSNR %.2f dB" % (
    m["image"], yes(m["pce_before"]), m["pce_before"], yes(m["pce_after"]), m["pce_after"], m["psnr"]))
PY
/usr/bin/python3 scripts/side_by_side.py "examples/natural/$NAME.png" "out/$NAME.anon.png" \
  "out/$NAME.side_by_side.png" --crop "$CROP"
echo "== outputs in out/: $NAME.anon.png (anonymized), $NAME.anon.json (metrics),"
echo "   $NAME.side_by_side.png (original | anonymized | difference x10), K_Nikon_D70s_1.npy (fingerprint)"
