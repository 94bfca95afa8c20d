#!/usr/bin/env bash
# scripts/gamma_optimum.py (README "Measuring quality"): its closed-form γ* must recover the γ a
# synthetic image was made with and stay near 0 for noise independent of the pattern.
# Skipped (77) where /usr/bin/python3 lacks numpy or PIL.
set -u
SRC=${1:?usage: gamma_optimum_test.sh SOURCE_DIR}
if ! /usr/bin/python3 -c 'import numpy, PIL' 2>/dev/null; then
  echo "SKIP: /usr/bin/python3 with numpy and PIL absent (apt-get install python3-numpy python3-pil)"
  exit 77
fi
exec /usr/bin/python3 "$SRC/scripts/gamma_optimum.py" --self-test
