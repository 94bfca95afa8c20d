#!/usr/bin/env bash
# `dippas-bench whole` (the OpenCV-free whole-image run used on the GPU machine) must measure what
# `dippas anonymize` does: on the same synthetic photo, seed and threads, its PSNR, NCC before/after
# and iterations equal the CLI's metrics, untiled (aware) and tiled (blind); bad inputs fail
# naming the file. Usage: bench_whole_test.sh DIPPAS DIPPAS_BENCH
set -uo pipefail
DIPPAS=$1
BENCH=$2
source "$(dirname "$0")/cli_lib.sh"

if ! "$PY" -c 'import numpy, PIL' 2>/dev/null; then
  skip_all "/usr/bin/python3 with numpy and PIL absent: the test photos are made with them" \
    "(apt-get install python3-numpy python3-pil)"
fi

# Smooth photos with noise: s (64×64) and t (96×160, six 64-px tiles); the same pixels as a PNG
# for the CLI and as stacked R, G, B planes (.npy) for the bench; fingerprints K and a judge J.
"$PY" - "$T" <<'PY' || { echo "FAIL: could not make the test photos"; exit 1; }
import os, sys
import numpy as np
from PIL import Image
t = sys.argv[1]
rng = np.random.default_rng(3)
for name, (h, w) in {"s": (64, 64), "t": (96, 160)}.items():
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([100 + 60 * np.sin(x / 9.0), 120 + 50 * np.cos(y / 7.0), 90 + 40 * np.sin((x + y) / 11.0)], -1)
    a = np.clip(np.round(base + rng.normal(0, 4, (h, w, 3))), 0, 255).astype(np.uint8)
    Image.fromarray(a).save(os.path.join(t, name + ".png"))
    np.save(os.path.join(t, name + ".npy"), np.concatenate([a[..., 0], a[..., 1], a[..., 2]], 0))
    for k in ("k", "j"):
        np.save(os.path.join(t, f"{name}_{k}.npy"), rng.normal(0, 0.02, (h, w)).astype(np.float32))
PY

# same NAME METRICS BENCH_JSON: the bench line against the CLI's metrics (PSNR, NCC, iterations).
same() {
  check "$1" "
import json
m = json.load(open('$2'))
b = json.loads(open('$3').read())
assert b['iterations'] == m['iterations'], (b['iterations'], m['iterations'])
assert abs(b['psnr'] - m['psnr']) < 1e-3, (b['psnr'], m['psnr'])
if m.get('ncc_after') is not None:
    for k in ('ncc_before', 'ncc_after'):
        assert abs(b[k][0] - m[k]) <= 1e-6 * max(1e-3, abs(m[k])), (k, b[k][0], m[k])
print('ok')"
}

# Untiled, aware, scored with the judge fingerprint.
expect_ok "anonymize s" "$DIPPAS" anonymize -q --threads 1 --image "$T/s.png" --prnu "$T/s_k.npy" \
  --eval-prnu "$T/s_j.npy" --max-iterations 3 --out "$T/s_anon.png"
expect_ok "bench whole s" "$BENCH" whole --device cpu --threads 1 --image "$T/s.npy" --prnu "$T/s_k.npy" \
  --judge "$T/s_j.npy" --max-iterations 3
cp "$T/out" "$T/s_bench.json"
same "untiled aware: bench = anonymize" "$T/s_anon.json" "$T/s_bench.json"
check "one JSON line with the fields" "
import json
b = json.loads(open('$T/s_bench.json').read())
assert b['mode'] == 'aware' and b['tiles'] == 1 and b['height'] == b['width'] == 64, b
assert len(b['ncc_before']) == 1 and b['seconds_total'] >= b['seconds_dip'] > 0, b"

# --lr: the network's learning rate, as `--set lr=` of the CLI.
expect_ok "anonymize s, lr" "$DIPPAS" anonymize -q --threads 1 --image "$T/s.png" --prnu "$T/s_k.npy" \
  --eval-prnu "$T/s_j.npy" --max-iterations 3 --set lr=0.004 --out "$T/s_lr.png"
expect_ok "bench whole s, lr" "$BENCH" whole --device cpu --threads 1 --image "$T/s.npy" --prnu "$T/s_k.npy" \
  --judge "$T/s_j.npy" --max-iterations 3 --lr 0.004
cp "$T/out" "$T/s_lr_bench.json"
same "--lr: bench = anonymize --set lr" "$T/s_lr.json" "$T/s_lr_bench.json"
check "lr in the line, and it changed the run" "
import json
b = json.loads(open('$T/s_lr_bench.json').read())
d = json.loads(open('$T/s_bench.json').read())
assert b['lr'] == 0.004 and d['lr'] == 0.001, (b['lr'], d['lr'])
assert b['psnr'] != d['psnr'], b['psnr']"

# Tiled (6 tiles of 64), blind.
expect_ok "anonymize t" "$DIPPAS" anonymize -q --threads 1 --image "$T/t.png" --blind --tile-size 64 \
  --max-iterations 2 --out "$T/t_anon.png"
expect_ok "bench whole t" "$BENCH" whole --device cpu --threads 1 --image "$T/t.npy" --tile-size 64 \
  --max-iterations 2
cp "$T/out" "$T/t_bench.json"
same "tiled blind: bench = anonymize" "$T/t_anon.json" "$T/t_bench.json"
check "six tiles, blind" "
import json
b = json.loads(open('$T/t_bench.json').read())
assert b['tiles'] == 6 and b['mode'] == 'blind' and b['iterations'] == 12, b"

# Bad inputs: named, non-zero, no crash.
expect_error "missing image" "nothing\.npy" -- "$BENCH" whole --device cpu --image "$T/nothing.npy"
expect_error "rows not 3H" "R, G, B planes stacked" -- "$BENCH" whole --device cpu --image "$T/s_k.npy"
expect_error "fingerprint of another size" "t_k\.npy: fingerprint is 96x160, the image 64x64" -- \
  "$BENCH" whole --device cpu --image "$T/s.npy" --prnu "$T/t_k.npy"
"$PY" -c "
import numpy as np
k = np.zeros((64, 64), np.float32); np.save('$T/zero_k.npy', k)
k[3, 5] = np.nan; np.save('$T/nan_k.npy', k)"
expect_error "NaN fingerprint" "nan_k\.npy: fingerprint contains NaN or Inf" -- \
  "$BENCH" whole --device cpu --image "$T/s.npy" --prnu "$T/nan_k.npy"
expect_error "all-zero judge" "zero_k\.npy: fingerprint is all zeros" -- \
  "$BENCH" whole --device cpu --image "$T/s.npy" --judge "$T/zero_k.npy"
expect_error "bad number" "--prnu-weight expects a number" -- "$BENCH" whole --image "$T/s.npy" --prnu-weight x
expect_error "lr 0" "lr.*must be in \(0, 1\)" -- "$BENCH" whole --device cpu --image "$T/s.npy" --lr 0
expect_error "unknown benchmark" "unknown benchmark" -- "$BENCH" wholes

finish
