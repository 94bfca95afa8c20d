#!/usr/bin/env bash
# The bundled example: estimate a Nikon D70s fingerprint from its ten
# flat-fields, then test which natural images it attributes.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p out
./build/dippas fingerprint examples/flatfield --out out/K_Nikon_D70s_1.npy
./build/dippas detect --prnu out/K_Nikon_D70s_1.npy --json out/detect.json examples/natural
