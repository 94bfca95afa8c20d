#!/usr/bin/env bash
# The bundled example, end to end on a CPU (about 5 minutes on 2 cores):
#  1. estimate the fingerprint K of a Nikon D70s from its ten flat-fields;
#  2. test attribution of four natural images (two from that camera);
#  3. anonymize the 128×128 centre crop of one of its photos (PRNU-aware,
#     default network of the paper);
#  4. test the crop before and after anonymization.
set -euo pipefail
export LC_ALL=C  # numbers written and read with a decimal point, whatever the user's locale
cd "$(dirname "$0")/.."
mkdir -p out
./build/dippas fingerprint examples/flatfield --out out/K_Nikon_D70s_1.npy
echo "== attribution of the natural images (full 512x512)"
./build/dippas detect --prnu out/K_Nikon_D70s_1.npy examples/natural
echo "== anonymizing the 128x128 crop of Nikon_D70s_1_22824.png"
./build/dippas anonymize --image examples/natural/Nikon_D70s_1_22824.png --prnu out/K_Nikon_D70s_1.npy \
  --crop 128 --out out/Nikon_D70s_1_22824.anon.png --metrics out/Nikon_D70s_1_22824.anon.json
echo "== before (original crop) and after (anonymized)"
./build/dippas detect --crop 128 --prnu out/K_Nikon_D70s_1.npy \
  examples/natural/Nikon_D70s_1_22824.png out/Nikon_D70s_1_22824.anon.png
