#!/usr/bin/env bash
# `dippas anonymize`'s output formats and its inputs read once: the output keeps the input's
# channels (gray in, gray out) and its 16 bits where the format holds them (PNG, TIFF), warns
# where it cannot (JPEG); a .jpg --out takes --jpeg-quality and is scored as decoded; an unknown
# extension or a JPEG quality for a PNG is refused before any work; a fingerprint moved away or
# replaced while the loop runs changes neither the outcome nor the metrics.
# Usage: formats_test.sh DIPPAS SOURCE_DIR
set -uo pipefail
DIPPAS=$1
SRC=$2
source "$(dirname "$0")/cli_lib.sh"
SMOKE=$SRC/configs/smoke.yaml
NAT=$SRC/examples/natural/Nikon_D70s_1_22824.png

expect_ok "fingerprint" "$DIPPAS" fingerprint --quiet --crop 64 "$SRC/examples/flatfield" --out "$T/K.npy"
# 64×64 inputs from the example's centre, written by hand (PNG, no library needed): RGB and gray,
# 8 and 16 bits; 16-bit values v·257 + a ramp in the low byte, so that the low byte is not v.
"$PY" - "$NAT" "$T" <<'PY' || { echo "FAIL: could not write the inputs"; exit 1; }
import struct, sys, zlib
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
def png(path, w, h, depth, ctype, rows):
    raw = b"".join(b"\x00" + r for r in rows)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
# The example's pixels: decode its PNG (8-bit RGB, filter per row) by hand.
data = open(sys.argv[1], "rb").read()
w, h = struct.unpack(">II", data[16:24])
idat, pos = b"", 8
while pos < len(data):
    n, = struct.unpack(">I", data[pos:pos + 4]); t = data[pos + 4:pos + 8]
    if t == b"IDAT": idat += data[pos + 8:pos + 8 + n]
    pos += 12 + n
raw = zlib.decompress(idat); stride = 3 * w; prev = bytearray(stride); px = []
for y in range(h):
    f = raw[y * (stride + 1)]; line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - 3] if i >= 3 else 0; b = prev[i]; c = prev[i - 3] if i >= 3 else 0
        p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        pr = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        line[i] = (line[i] + [0, a, b, (a + b) // 2, pr][f]) & 255
    px.append(bytes(line)); prev = line
y0, x0 = (h - 64) // 2, (w - 64) // 2
rgb = [px[y][3 * x0:3 * (x0 + 64)] for y in range(y0, y0 + 64)]
gray = [bytes(r[3 * i + 1] for i in range(64)) for r in rgb]
out = sys.argv[2]
png(out + "/rgb8.png", 64, 64, 8, 2, rgb)
png(out + "/gray8.png", 64, 64, 8, 0, gray)
png(out + "/rgb16.png", 64, 64, 16, 2, [b"".join(struct.pack(">H", v * 257 - (i % 200 if v else 0)) for i, v in enumerate(r)) for r in rgb])
png(out + "/gray16.png", 64, 64, 16, 0, [b"".join(struct.pack(">H", v * 257 - (i % 200 if v else 0)) for i, v in enumerate(r)) for r in gray])
PY
A=(anonymize --prnu "$T/K.npy" --config "$SMOKE" --max-iterations 20 --quiet)
# png_info FILE: "bit-depth color-type" from the IHDR.
png_info() { "$PY" -c "import sys; b = open(sys.argv[1], 'rb').read(32); print(b[24], b[25])" "$1"; }

expect_ok "16-bit RGB PNG" "$DIPPAS" "${A[@]}" --image "$T/rgb16.png" --out "$T/rgb16.anon.png"
[ "$(png_info "$T/rgb16.anon.png")" = "16 2" ] && ok || bad "16-bit RGB in: out is $(png_info "$T/rgb16.anon.png"), expected 16-bit RGB"
expect_ok "16-bit gray PNG to TIFF" "$DIPPAS" "${A[@]}" --image "$T/gray16.png" --out "$T/gray16.anon.tif"
expect_ok "8-bit gray PNG" "$DIPPAS" "${A[@]}" --image "$T/gray8.png" --out "$T/gray8.anon.png"
[ "$(png_info "$T/gray8.anon.png")" = "8 0" ] && ok || bad "gray in: out is $(png_info "$T/gray8.anon.png"), expected 8-bit gray"
check "metrics say what was written" "
import json
for name, fmt, depth, ch in [('rgb16.anon', 'png', 16, 3), ('gray16.anon', 'tiff', 16, 1), ('gray8.anon', 'png', 8, 1)]:
    m = json.load(open('$T/%s.json' % name))
    got = (m['output_format'], m['output_bit_depth'], m['output_channels'], m['jpeg_quality'])
    assert got == (fmt, depth, ch, None), (name, got)
# The TIFF: 16 bits per sample, one sample per pixel (tags 258 and 277, little- or big-endian).
import struct
b = open('$T/gray16.anon.tif', 'rb').read()
e = '<' if b[:2] == b'II' else '>'
off, = struct.unpack(e + 'I', b[4:8]); n, = struct.unpack(e + 'H', b[off:off + 2])
tags = {}
for i in range(n):
    tag, typ, cnt, val = struct.unpack(e + 'HHII', b[off + 2 + 12 * i:off + 14 + 12 * i])
    tags[tag] = val & 0xffff if e == '<' else val >> 16 if typ == 3 else val
assert tags[258] == 16 and tags[277] == 1, (tags.get(258), tags.get(277))
"
# The 16-bit output holds the 8-bit values the method works on (×257): dippas reads it back as
# the 8-bit run's pixels.
expect_ok "8-bit RGB PNG" "$DIPPAS" "${A[@]}" --image "$T/rgb8.png" --out "$T/rgb8.anon.png"
check "a 16-bit run's pixels" "
import json
a = json.load(open('$T/rgb16.anon.json')); b = json.load(open('$T/rgb8.anon.json'))
assert a['psnr'] > 20 and b['psnr'] > 20, (a['psnr'], b['psnr'])
"

# JPEG: quality in the metrics, a warning, the scores of the decoded file.
expect_ok "JPEG output" "$DIPPAS" "${A[@]}" --image "$T/rgb8.png" --out "$T/j.jpg" --jpeg-quality 90
grep -q "warning: .*j.jpg: JPEG compression (quality 90) changes the noise residual" "$T/err" && ok ||
  bad "JPEG output: no warning: $(cat "$T/err")"
[ "$(head -c 2 "$T/j.jpg" | od -An -tx1 | tr -d ' ')" = ffd8 ] && ok || bad "j.jpg is not a JPEG"
expect_ok "detect the JPEG" "$DIPPAS" detect --quiet --prnu "$T/K.npy" --json "$T/j_det.json" "$T/j.jpg"
check "JPEG metrics: quality 90, scored as decoded" "
import json
m = json.load(open('$T/j.json')); d = json.load(open('$T/j_det.json'))
assert m['output_format'] == 'jpeg' and m['jpeg_quality'] == 90 and m['output_bit_depth'] == 8, m
r = d['results'][0] if 'results' in d else d[0]
assert abs(r['ncc'] - m['ncc_after']) < 1e-9, (r['ncc'], m['ncc_after'])
"
expect_ok "16-bit in, JPEG out" "$DIPPAS" "${A[@]}" --image "$T/rgb16.png" --out "$T/j16.jpg"
grep -q "j16.jpg: jpeg holds 8 bits per channel: written with 8 (the input had 16)" "$T/err" && ok ||
  bad "16-bit to JPEG: no notice: $(cat "$T/err")"
check "default JPEG quality 95" "
import json; m = json.load(open('$T/j16.json')); assert m['jpeg_quality'] == 95 and m['output_bit_depth'] == 8, m"

# Refused before any work: an extension of no format, a JPEG quality for another format.
expect_error "unknown extension" "--out .*x.gif: '.gif' is no image format" -- \
  "$DIPPAS" "${A[@]}" --image "$T/rgb8.png" --out "$T/x.gif"
expect_error "JPEG quality for a PNG" "--jpeg-quality applies to a JPEG output" -- \
  "$DIPPAS" "${A[@]}" --image "$T/rgb8.png" --out "$T/x.png" --jpeg-quality 90
expect_error "JPEG quality out of range" "jpeg-quality" -- \
  "$DIPPAS" "${A[@]}" --image "$T/rgb8.png" --out "$T/x.jpg" --jpeg-quality 0
for f in x.gif x.png x.jpg x.json; do [ -e "$T/$f" ] && bad "a refused run wrote $f"; done

# Inputs read once, at the start: the fingerprint moved away, or replaced by another, while the
# loop runs; the finished run writes its image and the metrics of the fingerprint it started with.
expect_ok "reference run" "$DIPPAS" anonymize --prnu "$T/K.npy" --config "$SMOKE" --max-iterations 60 --quiet \
  --image "$T/rgb8.png" --out "$T/ref.png"
for what in moved replaced; do
  cp "$T/K.npy" "$T/K_$what.npy"
  "$DIPPAS" anonymize --prnu "$T/K_$what.npy" --config "$SMOKE" --max-iterations 60 --quiet \
    --image "$T/rgb8.png" --out "$T/$what.png" --history "$T/$what.csv" 2>"$T/$what.err" &
  pid=$!
  for _ in $(seq 600); do
    [ -f "$T/$what.csv.part" ] && [ "$(wc -l <"$T/$what.csv.part")" -gt 2 ] && break
    sleep 0.05
  done
  if [ $what = moved ]; then
    mv "$T/K_$what.npy" "$T/K_$what.away"
  else
    "$DIPPAS" residual --quiet --image "$T/rgb8.png" --out "$T/K_$what.npy"
  fi
  wait $pid
  rc=$?
  [ $rc -eq 0 ] || bad "fingerprint $what mid-run: exit $rc: $(tail -2 "$T/$what.err")"
  cmp -s "$T/ref.png" "$T/$what.png" && ok || bad "fingerprint $what mid-run: another image"
  check "fingerprint $what mid-run: the metrics of the one read at the start" "
import json
a = json.load(open('$T/ref.json')); b = json.load(open('$T/$what.json'))
for k in ('ncc_before', 'ncc_after', 'pce_after', 'settings_hash', 'psnr'):
    assert a[k] == b[k], (k, a[k], b[k])
"
done
finish
