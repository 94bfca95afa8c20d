#!/usr/bin/env bash
# End-to-end checks of the dippas executable: good runs on the bundled example,
# and every bad input failing cleanly (non-zero exit, one message naming the
# file, nothing overwritten). Usage: cli_test.sh DIPPAS SOURCE_DIR SHARED_DIR
set -uo pipefail
DIPPAS=$1
SRC=$2
SHARED=${DIPPAS_SHARED-${3:-}}  # DIPPAS_SHARED (set, even empty) overrides the build's folder
source "$(dirname "$0")/cli_lib.sh"

EX=$SRC/examples
NAT=$EX/natural/Nikon_D70s_1_22824.png

# --- interface -------------------------------------------------------------
expect_ok "version" "$DIPPAS" --version
grep -q "dippas" "$T/out" || bad "version output"
for cmd in residual fingerprint detect bench; do
  expect_ok "$cmd --help" "$DIPPAS" $cmd --help
  grep -q -- "--threads" "$T/out" || bad "$cmd --help lacks --threads"
done
expect_error "unknown command" "unknown command" -- "$DIPPAS" frobnicate

# --- good runs -------------------------------------------------------------
expect_ok "fingerprint" "$DIPPAS" fingerprint --quiet "$EX/flatfield" --out "$T/K.npy"
[ -s "$T/K.npy" ] || bad "fingerprint wrote nothing"
# Its quality: printed even with --quiet, and kept beside K (the halves of these 10 Dresden
# flat-fields agree weakly: a warning, and how many would do better).
grep -q "fingerprint quality: its two halves (5 and 5 flat-fields) agree at r = 0\.[0-9]*; estimated correlation with the camera's pattern ρ ≈ 0\.[0-9]*" "$T/err" &&
  grep -q "warning: a weak fingerprint.*about [0-9]* flat-fields of this kind would give ρ ≈ 0.9" "$T/err" && ok ||
  bad "fingerprint: no quality line: $(cat "$T/err")"
check "fingerprint quality file" "
import json, math
q = json.load(open('$T/K.npy.quality.json'))
assert q['images'] == 10 and q['size'] == [512, 512], q
r = q['halves_corr']
assert 0 < r < 0.5 and abs(q['true_corr_estimate'] - math.sqrt(2 * r / (1 + r))) < 1e-12, q
"
A64=(anonymize --quiet --image "$NAT" --prnu "$T/K.npy" --crop 64 --config "$SRC/configs/smoke.yaml" --max-iterations 5)
expect_ok "anonymize with a weak fingerprint" "$DIPPAS" "${A64[@]}" --out "$T/weak.png"
grep -q "warning: .*K.npy is a weak fingerprint (10 flat-fields, estimated correlation with the camera's pattern ρ ≈ 0\.[0-9]*).*(--set select_residual=1, or --config configs/robust.yaml)" "$T/err" && ok ||
  bad "anonymize: no weak-fingerprint warning with its advice: $(cat "$T/err")"
# Already ranking by the residual: the warning stands, the advice goes.
expect_ok "anonymize with a weak fingerprint, select_residual 1" "$DIPPAS" "${A64[@]}" --set select_residual=1 --out "$T/weak1.png"
grep -q "warning: .*K.npy is a weak fingerprint" "$T/err" && ! grep -q "select_residual=1" "$T/err" && ok ||
  bad "anonymize, select_residual 1: the weak-fingerprint warning, without the advice: $(cat "$T/err")"
check "metrics: the fingerprint's quality" "
import json
m = json.load(open('$T/weak.json')); q = json.load(open('$T/K.npy.quality.json'))
assert m['fingerprint_quality'] == {'images': 10, 'halves_corr': q['halves_corr'], 'true_corr_estimate': q['true_corr_estimate']}, m['fingerprint_quality']
"
expect_ok "detect" "$DIPPAS" detect --prnu "$T/K.npy" --json "$T/det.json" "$EX/natural"
expect_ok "residual" "$DIPPAS" residual --image "$NAT" --crop 64 --out "$T/W.npy"
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
  # numpy reads what we write; we read what numpy writes (C and Fortran order, f64).
  expect_ok "numpy reads ours" /usr/bin/python3 -c "
import numpy as np, sys
w = np.load('$T/W.npy'); assert w.shape == (64, 64) and w.dtype == np.float32, w.shape
k = np.load('$T/K.npy'); assert k.shape == (512, 512)
np.save('$T/K64.npy', np.asfortranarray(k.astype(np.float64)))
bad = k.copy(); bad[3, 4] = np.nan; np.save('$T/Knan.npy', bad)
np.save('$T/Kzero.npy', np.zeros((512, 512), np.float32))
np.save('$T/K3d.npy', np.zeros((512, 512, 3), np.float32))
np.save('$T/Kint.npy', np.zeros((512, 512), np.int32))
"
  expect_ok "detect with numpy-written f64 Fortran K" "$DIPPAS" detect --prnu "$T/K64.npy" --json "$T/det64.json" "$EX/natural"
  expect_ok "same scores" /usr/bin/python3 -c "
import json
a = json.load(open('$T/det.json'))['results']; b = json.load(open('$T/det64.json'))['results']
assert all(abs(x['ncc'] - y['ncc']) < 1e-6 for x, y in zip(a, b))
"
  expect_error "NaN fingerprint" "Knan.npy.*NaN" -- "$DIPPAS" detect --prnu "$T/Knan.npy" "$NAT"
  expect_error "all-zero fingerprint" "Kzero.npy.*all zeros" -- "$DIPPAS" detect --prnu "$T/Kzero.npy" "$NAT"
  expect_error "3-channel npy" "K3d.npy.*shape" -- "$DIPPAS" detect --prnu "$T/K3d.npy" "$NAT"
  expect_error "int32 npy" "Kint.npy.*dtype" -- "$DIPPAS" detect --prnu "$T/Kint.npy" "$NAT"
else
  skip "/usr/bin/python3 with numpy absent: numpy round-trip checks (apt-get install python3-numpy)"
fi
# The right camera is attributed, the others are not (PCE ≥ 60 only for D70s_1).
"$PY" - "$T/det.json" <<'PY' || bad "detect: attribution on the bundled example"
import json, sys
res = json.load(open(sys.argv[1]))["results"]
for r in res:
    own = "Nikon_D70s_1_" in r["image"]
    print(f'{r["image"].split("/")[-1]:32s} pce={r["pce"]:10.1f} ncc={r["ncc"]:.4f}')
    assert r["attributed"] == own, r
PY

# --- bad input -------------------------------------------------------------
expect_error "missing image" "nope.png: no such file" -- "$DIPPAS" residual --image "$T/nope.png" --out "$T/x.npy"
expect_error "directory as image" "is a directory" -- "$DIPPAS" residual --image "$T" --out "$T/x.npy"
: >"$T/empty.png"
expect_error "empty image" "empty.png: empty file" -- "$DIPPAS" residual --image "$T/empty.png" --out "$T/x.npy"
echo "hello, I am text" >"$T/text.png"
expect_error "text named .png" "text.png: cannot decode" -- "$DIPPAS" residual --image "$T/text.png" --out "$T/x.npy"
head -c 2000 "$NAT" >"$T/trunc.png"
expect_error "truncated png" "trunc.png" -- "$DIPPAS" residual --image "$T/trunc.png" --out "$T/x.npy"
expect_error "crop larger than image" "smaller than the crop" -- "$DIPPAS" residual --image "$NAT" --crop 1024 --out "$T/x.npy"
"$DIPPAS" residual --image "$NAT" --crop 128 --out "$T/W128.npy" 2>/dev/null
expect_error "fingerprint size mismatch" "W128.npy: fingerprint is 128x128 but image .* is 512x512" -- \
  "$DIPPAS" detect --prnu "$T/W128.npy" "$NAT" --json "$T/never.json"
[ -e "$T/never.json" ] && bad "a failed detect wrote its JSON"
expect_error "missing fingerprint" "nope.npy: no such file" -- "$DIPPAS" detect --prnu "$T/nope.npy" "$NAT"
echo "garbage" >"$T/garbage.npy"
expect_error "bad magic npy" "garbage.npy: not a valid .npy file: bad magic" -- "$DIPPAS" detect --prnu "$T/garbage.npy" "$NAT"
head -c 1000 "$T/K.npy" >"$T/Ktrunc.npy"
expect_error "truncated npy" "Ktrunc.npy.*truncated" -- "$DIPPAS" detect --prnu "$T/Ktrunc.npy" "$NAT"
expect_error "output folder missing" "does not exist" -- "$DIPPAS" residual --image "$NAT" --crop 64 --out "$T/no/dir/W.npy"
mkdir -p "$T/mixed"
cp "$NAT" "$T/mixed/a.png"
cp "$SRC/examples/natural/Nikon_D70s_1_22928.png" "$T/mixed/b.png"
# An odd-sized flat-field: named in the error, and the existing output is untouched.
cp "$T/W.npy" "$T/keep.npy"
"$PY" - "$NAT" "$T/mixed/c.png" <<'PY' || bad "could not write the 30x20 PNG"
import sys, zlib, struct
# A 30x20 RGB PNG written by hand: an image of another size (3x3 at least, or it is too small).
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
raw = b"".join(b"\x00" + bytes([10, 20, 30] * 30) for _ in range(20))
png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30, 20, 8, 2, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
open(sys.argv[2], "wb").write(png)
PY
expect_error "unequal flat-fields" "c.png: image is .* but .*a.png is 512x512x3" -- \
  "$DIPPAS" fingerprint --quiet "$T/mixed" --out "$T/keep.npy"
cmp -s "$T/W.npy" "$T/keep.npy" || bad "a failed fingerprint changed the existing output"
ls -a "$T" | grep -q "\.tmp-" && bad "temporary files left behind"


# --- an output that names an input is refused before any work; the input is unchanged ------------
cp "$NAT" "$T/in.png"
cp "$NAT" "$T/in.keep"
mkdir -p "$T/sub"
expect_error "residual --out is --image via dir/.." "--out .*same file as the input --image" -- \
  "$DIPPAS" residual --image "$T/in.png" --crop 64 --out "$T/sub/../in.png"
cmp -s "$T/in.png" "$T/in.keep" || bad "residual replaced its input image"
ln -s "$T/in.png" "$T/in-link.npy"
expect_error "residual --out is a link to --image" "same file as the input --image" -- \
  "$DIPPAS" residual --image "$T/in.png" --crop 64 --out "$T/in-link.npy"
[ -L "$T/in-link.npy" ] && cmp -s "$T/in.png" "$T/in.keep" || bad "residual replaced its input (link)"
mkdir -p "$T/ff"
cp "$EX"/flatfield/* "$T/ff/"
FF1=$(ls "$T/ff" | head -1)
cp "$T/ff/$FF1" "$T/ff1.keep"
expect_error "fingerprint --out is a flat-field" "--out .*same file as the input flat-field" -- \
  "$DIPPAS" fingerprint --quiet --crop 64 "$T/ff" --out "$T/sub/../ff/$FF1"
cmp -s "$T/ff/$FF1" "$T/ff1.keep" || bad "fingerprint replaced a flat-field"
cp "$T/K.npy" "$T/K.keep"
expect_error "detect --json is the fingerprint" "--json .*same file as the input --prnu" -- \
  "$DIPPAS" detect --prnu "$T/K.npy" --json "$T/sub/../K.npy" "$NAT"
cmp -s "$T/K.npy" "$T/K.keep" || bad "detect replaced its fingerprint"

finish
