#!/usr/bin/env bash
# Hardening, end to end (the bad inputs that cli_test.sh, anonymize_test.sh and assemble_test.sh
# do not already try): odd images and .npy files, unwritable and full output folders, signals
# during the DIP loop, and the privacy of the outputs (no metadata of the input, no pool files
# left anywhere, input paths in the metrics only as given). Inputs are written by small pure
# Python writers (no numpy needed). Usage: hardening_test.sh DIPPAS SOURCE_DIR SHARED_DIR
set -uo pipefail
DIPPAS=$(realpath "$1")  # absolute: one check runs from another folder
SRC=$(realpath "$2")
source "$(dirname "$0")/cli_lib.sh"

# File systems mounted by this test (a small tmpfs for "disk full", a read-only one for "not
# writable") are unmounted before cli_lib.sh's folder is removed.
MOUNTS=()
cleanup() {
  for m in "${MOUNTS[@]}"; do umount -l "$m" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT
# mount_tmpfs DIR SIZE [ro]: true when it worked (root with CAP_SYS_ADMIN, outside most CI sandboxes).
mount_tmpfs() {
  mkdir -p "$1"
  mount -t tmpfs -o "size=$2,mode=0755${3:+,$3}" tmpfs "$1" 2>/dev/null || return 1
  MOUNTS+=("$1")
}
# no_temporaries NAME DIR...: no ".NAME.tmp-XXXXXX" file (WriteFileAtomic, PoolWriter) anywhere below.
no_temporaries() {
  local name=$1 left
  shift
  left=$(find "$@" -name '*.tmp-*' 2>/dev/null)
  if [ -n "$left" ]; then bad "$name: temporary files left: $left"; else ok; fi
}
# same_file NAME A B: byte-identical.
same_file() {
  if cmp -s "$2" "$3"; then ok; else bad "$1: $2 differs from $3"; fi
}

NAT=$SRC/examples/natural/Nikon_D70s_1_22824.png
SMOKE=$SRC/configs/smoke.yaml

# --- inputs: PNGs of odd kinds, hand-made .npy files, a fingerprint -------------------------------
"$PY" - "$T" <<'PY' || { echo "FAIL: could not write the test inputs"; exit 1; }
import os, struct, sys, zlib, math
t = sys.argv[1]

def png(name, w, h, depth, color, pixel):
    """color 0 = gray, 2 = RGB; pixel(r, c) -> samples."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    raw = b"".join(b"\x00" + b"".join(s.to_bytes(depth // 8, "big") for c in range(w) for s in pixel(r, c))
                   for r in range(h))
    with open(os.path.join(t, name), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

def value(r, c, k=0):  # a textured 8-bit pattern
    return int(128 + 60 * math.sin(r / 3.0 + k) * math.cos(c / 5.0) + (r * 7 + c * 13 + k * 5) % 23)

png("one.png", 1, 1, 8, 2, lambda r, c: [10, 20, 30])
png("zero.png", 0, 0, 8, 2, lambda r, c: [10, 20, 30])
png("line.png", 40, 2, 8, 2, lambda r, c: [value(r, c), 20, 30])
png("rgb8.png", 64, 64, 8, 2, lambda r, c: [value(r, c, k) for k in range(3)])
png("rgb16.png", 64, 64, 16, 2, lambda r, c: [257 * value(r, c, k) for k in range(3)])
png("gray8.png", 64, 64, 8, 0, lambda r, c: [value(r, c)])
png("gray16.png", 64, 64, 16, 0, lambda r, c: [257 * value(r, c)])
os.makedirs(os.path.join(t, "grayflat"))
for i in range(3):
    png("grayflat/f%d.png" % i, 64, 64, 16, 0, lambda r, c: [257 * ((value(r, c) + 40 * i) % 256)])

def npy(name, descr, shape, payload, fortran=False, version=1):
    d = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)
    pre = 10 if version == 1 else 12
    d += " " * ((64 - (pre + len(d) + 1) % 64) % 64) + "\n"
    size = struct.pack("<H", len(d)) if version == 1 else struct.pack("<I", len(d))
    with open(os.path.join(t, name), "wb") as f:
        f.write(b"\x93NUMPY" + bytes([version, 0]) + size + d.encode() + payload)

vals = [math.sin(i * 0.37) for i in range(64 * 64)]  # a 64x64 "fingerprint"
f4 = lambda v: struct.pack("<%df" % len(v), *v)
npy("K_c.npy", "<f4", "(64, 64)", f4(vals))
# The same array in Fortran order (as prnu-python writes it): column by column.
npy("K_fortran.npy", "<f4", "(64, 64)", f4([vals[r * 64 + c] for c in range(64) for r in range(64)]), True)
npy("K_hw1_v2.npy", "<f4", "(64, 64, 1)", f4(vals), version=2)
npy("K_inf.npy", "<f4", "(64, 64)", f4([float("inf")] + vals[1:]))
npy("K_bigendian.npy", ">f4", "(64, 64)", struct.pack(">%df" % len(vals), *vals))
npy("K_huge.npy", "<f4", "(4294967296, 4294967296)", f4(vals))
npy("K_empty.npy", "<f4", "(0, 64)", b"")
# A crafted header that overflowed std::regex's stack (a segfault before the fix).
npy("K_longheader.npy", "<f4" + " " * 200000, "(64, 64)", f4(vals), version=2)
PY
expect_ok "fingerprint" "$DIPPAS" fingerprint --quiet --crop 64 "$SRC/examples/flatfield" --out "$T/K64.npy"

# --- bad input (non-zero exit, one message naming the file or key, no crash) ---------------------
R=("$DIPPAS" residual --quiet)
expect_error "1x1 image" "one.png: image is 1x1, too small" -- "${R[@]}" --image "$T/one.png" --out "$T/x.npy"
expect_error "0x0 image" "zero.png: cannot decode" -- "${R[@]}" --image "$T/zero.png" --out "$T/x.npy"
expect_error "2-row image" "line.png: image is 2x40, too small" -- "${R[@]}" --image "$T/line.png" --out "$T/x.npy"
expect_error "1x1 flat-field" "one.png: image is 1x1" -- "$DIPPAS" fingerprint --quiet "$T/one.png" --out "$T/x.npy"
expect_error "missing image (anonymize)" "nope.png: no such file" -- \
  "$DIPPAS" anonymize --image "$T/nope.png" --prnu "$T/K64.npy" --config "$SMOKE" --out "$T/x.png"
expect_error "missing flat-field" "nope.png: no such file" -- "$DIPPAS" fingerprint "$T/nope.png" --out "$T/x.npy"
expect_error "directory as fingerprint" "$T/grayflat: is a directory" -- \
  "$DIPPAS" detect --prnu "$T/grayflat" "$T/rgb8.png"
expect_error "directory as config" "$T/grayflat: no such file \(it is a directory\)" -- \
  "$DIPPAS" anonymize --image "$T/rgb8.png" --blind --config "$T/grayflat" --out "$T/x.png"
mkdir -p "$T/outdir"
expect_error "directory as output" "outdir: cannot write: it is a directory" -- \
  "${R[@]}" --image "$T/rgb8.png" --out "$T/outdir"
# A truncated JPEG: libjpeg decodes it without an error (gray rows), so dippas checks the markers.
expect_ok "a JPEG" "$DIPPAS" anonymize --quiet --image "$NAT" --crop 128 --method denoise --out "$T/cam.jpg"
head -c $(($(stat -c %s "$T/cam.jpg") * 2 / 3)) "$T/cam.jpg" >"$T/cut.jpg"
expect_ok "whole JPEG read" "${R[@]}" --image "$T/cam.jpg" --out "$T/W_cam.npy"
expect_error "truncated JPEG" "cut.jpg: truncated JPEG" -- "${R[@]}" --image "$T/cut.jpg" --out "$T/x.npy"
# .npy files: Inf, big-endian, implausible shape, empty, a header that crashed the parser.
D=("$DIPPAS" detect --crop 64)
expect_error "Inf fingerprint" "K_inf.npy: fingerprint contains NaN or Inf" -- "${D[@]}" --prnu "$T/K_inf.npy" "$T/rgb8.png"
expect_error "big-endian npy" "K_bigendian.npy: .*unsupported dtype '>f4'" -- \
  "${D[@]}" --prnu "$T/K_bigendian.npy" "$T/rgb8.png"
expect_error "huge shape npy" "K_huge.npy: .*implausibly large" -- "${D[@]}" --prnu "$T/K_huge.npy" "$T/rgb8.png"
expect_error "empty npy" "K_empty.npy: fingerprint is 0x64" -- "$DIPPAS" detect --prnu "$T/K_empty.npy" "$T/rgb8.png"
expect_error "crafted npy header" "K_longheader.npy: not a valid .npy file: unsupported dtype" -- \
  "${D[@]}" --prnu "$T/K_longheader.npy" "$T/rgb8.png"
# Fortran order is accepted (prnu-python writes it) and means the same array; so do (H,W,1) and v2.
for k in c fortran hw1_v2; do
  expect_ok "npy $k" "$DIPPAS" detect --prnu "$T/K_$k.npy" --json "$T/det_$k.json" "$T/rgb8.png"
done
check "Fortran order read as the same array" "
import json
r = {k: json.load(open('$T/det_%s.json' % k))['results'][0] for k in ('c', 'fortran', 'hw1_v2')}
assert r['c']['ncc'] == r['fortran']['ncc'] == r['hw1_v2']['ncc'], r
assert r['c']['pce'] == r['fortran']['pce'] == r['hw1_v2']['pce'], r
"
# Sizes and options.
expect_error "crop larger than the image (detect)" "smaller than the crop" -- \
  "$DIPPAS" detect --crop 1024 --prnu "$T/K64.npy" "$NAT"
expect_error "crop larger than the image (anonymize)" "smaller than the crop" -- \
  "$DIPPAS" anonymize --image "$NAT" --prnu "$T/K64.npy" --crop 1024 --config "$SMOKE" --out "$T/x.png"
A=("$DIPPAS" anonymize --quiet --image "$NAT" --prnu "$T/K64.npy" --crop 64 --config "$SMOKE")
expect_error "block size 0" "block_size" -- "${A[@]}" --block-size 0 --out "$T/x.png"
printf '{"sigma": 3, "top": 3\n' >"$T/bad.json"
expect_error "JSON syntax" "bad.json: syntax error at line [0-9]+, column" -- "${A[@]}" --config "$T/bad.json" --out "$T/x.png"
printf ',\n' >"$T/comma.yaml"  # yaml-cpp 0.7's LoadAll looped for ever, allocating
expect_error "config that hung yaml-cpp" "comma.yaml: syntax error at line 1" -- \
  timeout 60 "${A[@]}" --config "$T/comma.yaml" --out "$T/x.png"
expect_error "detect JSON into a missing folder" "no/such/det.json: cannot write: folder .* does not exist" -- \
  "$DIPPAS" detect --crop 64 --prnu "$T/K64.npy" --json "$T/no/such/det.json" "$T/rgb8.png"
[ -e "$T/x.png" ] || [ -e "$T/x.npy" ] && bad "a failed run wrote an output"

# --- 16-bit and grayscale images are accepted -------------------------------------------------
for im in rgb8 rgb16 gray8 gray16; do
  expect_ok "residual of $im" "${R[@]}" --image "$T/$im.png" --out "$T/W_$im.npy"
done
# 16-bit samples are read as value/257: the 16-bit copies give the 8-bit files' residuals exactly.
same_file "16-bit RGB read as 8-bit" "$T/W_rgb8.npy" "$T/W_rgb16.npy"
same_file "16-bit gray read as 8-bit" "$T/W_gray8.npy" "$T/W_gray16.npy"
expect_ok "fingerprint of 16-bit gray flat-fields" "$DIPPAS" fingerprint --quiet "$T/grayflat" --out "$T/Kgray.npy"
expect_ok "detect a 16-bit gray image" "$DIPPAS" detect --prnu "$T/Kgray.npy" "$T/gray16.png"
expect_ok "anonymize a 16-bit gray image" "$DIPPAS" anonymize --quiet --image "$T/gray16.png" --prnu "$T/Kgray.npy" \
  --config "$SMOKE" --max-iterations 3 --out "$T/gray16.anon.png"
expect_ok "anonymize a 16-bit RGB image" "$DIPPAS" anonymize --quiet --image "$T/rgb16.png" --blind \
  --config "$SMOKE" --max-iterations 3 --out "$T/rgb16.anon.png"

# --- output folders that cannot be written -------------------------------------------------------
# Root ignores permission bits, so as root the folder is a read-only tmpfs (EROFS binds root too).
RO=$T/ro
if [ "$(id -u)" -ne 0 ]; then
  mkdir -p "$RO" && cp "$T/W_rgb8.npy" "$RO/W.npy" && chmod 0500 "$RO" && ro_kind="chmod 0500"
elif mount_tmpfs "$RO" 1m; then
  cp "$T/W_rgb8.npy" "$RO/W.npy" && mount -o remount,ro "$RO" && ro_kind="read-only tmpfs"
else
  ro_kind=""
  skip "cannot mount a read-only tmpfs as root here: unwritable-folder checks" \
    "(write errors are still tested through DIPPAS_FAULT_WRITE_LIMIT below)"
fi
if [ -n "$ro_kind" ]; then
  echo "unwritable folder: $ro_kind"
  expect_error "unwritable folder (residual)" "$RO/W.npy: cannot write: (Read-only file system|Permission denied)" -- \
    "${R[@]}" --image "$T/rgb16.png" --out "$RO/W.npy"
  same_file "unwritable folder: earlier output untouched" "$T/W_rgb8.npy" "$RO/W.npy"
  # anonymize finds out before the DIP loop, not hours later.
  expect_error "unwritable folder (anonymize)" "$RO/a.png: cannot write to folder .*(Read-only file system|Permission denied)" -- \
    "${A[@]}" --out "$RO/a.png"
  expect_error "unwritable pool folder" "$RO/pool: cannot create folder" -- \
    "${A[@]}" --out "$T/never.png" --save-pool "$RO/pool"
  [ -e "$T/never.png" ] && bad "a run with an unwritable pool folder wrote an output"
  [ "$(id -u)" -ne 0 ] && chmod 0700 "$RO"
fi

# --- disk full: write errors leave earlier outputs as they were and no temporaries -------------
# Through the test hook (everywhere): DIPPAS_FAULT_WRITE_LIMIT=N fails this process's writes
# beyond N bytes with ENOSPC.
mkdir -p "$T/df"
cp "$T/W_rgb8.npy" "$T/df/W.npy"
expect_error "disk full (residual, hook)" "df/W.npy: write failed: No space left on device" -- \
  env DIPPAS_FAULT_WRITE_LIMIT=1000 "${R[@]}" --image "$T/rgb16.png" --out "$T/df/W.npy"
same_file "disk full: earlier residual untouched" "$T/W_rgb8.npy" "$T/df/W.npy"
# anonymize: an earlier run's outputs and pool, then runs that hit a full disk.
expect_ok "anonymize before the disk fills" "${A[@]}" --max-iterations 12 --psnr-min 10 --out "$T/df/a.png" \
  --save-pool "$T/df/pool"
mkdir -p "$T/df_before" && cp -r "$T/df/a.png" "$T/df/a.json" "$T/df/pool" "$T/df_before/"
# 64x64 frames are 12288 bytes after a 128-byte header: the second candidate does not fit.
expect_error "disk full while streaming the pool (hook)" "df/pool/pool.npy: write failed \(candidate 1\): No space left on device" -- \
  env DIPPAS_FAULT_WRITE_LIMIT=20000 "${A[@]}" --max-iterations 12 --psnr-min 10 --seed 1 --out "$T/df/a.png" \
  --save-pool "$T/df/pool"
expect_error "disk full while writing the image (hook)" "df/a.png: write failed: No space left on device" -- \
  env DIPPAS_FAULT_WRITE_LIMIT=100 "${A[@]}" --max-iterations 4 --seed 1 --out "$T/df/a.png"
# The image fits, the metrics do not: the same run (same seed, same bytes) with room for the image only.
expect_ok "anonymize (b)" "${A[@]}" --max-iterations 4 --seed 1 --out "$T/df/b.png"
cp "$T/df/b.json" "$T/df_before/b.json"
expect_error "disk full while writing the metrics (hook)" "df/b.json: write failed: No space left on device" -- \
  env DIPPAS_FAULT_WRITE_LIMIT=$(($(stat -c %s "$T/df/b.png") + 10)) "${A[@]}" --max-iterations 4 --seed 1 \
  --out "$T/df/b.png"
same_file "disk full: earlier metrics (b) untouched" "$T/df_before/b.json" "$T/df/b.json"
same_file "disk full: earlier image untouched" "$T/df_before/a.png" "$T/df/a.png"
same_file "disk full: earlier metrics untouched" "$T/df_before/a.json" "$T/df/a.json"
same_file "disk full: earlier pool.npy untouched" "$T/df_before/pool/pool.npy" "$T/df/pool/pool.npy"
same_file "disk full: earlier pool.json untouched" "$T/df_before/pool/pool.json" "$T/df/pool/pool.json"
no_temporaries "disk full (hook)" "$T/df"
# A real full file system, where a tmpfs can be mounted (root with CAP_SYS_ADMIN).
FULL=$T/full
if mount_tmpfs "$FULL" 256k; then
  cp "$T/W_rgb8.npy" "$FULL/W.npy"
  cp "$T/df_before/a.png" "$FULL/a.png"
  cp "$T/df_before/a.json" "$FULL/a.json"
  dd if=/dev/zero of="$FULL/filler" bs=4k 2>/dev/null  # fails once the tmpfs is full: that is the point
  expect_error "disk full (residual, tmpfs)" "full/W.npy: write failed: No space left on device" -- \
    "${R[@]}" --image "$T/rgb16.png" --out "$FULL/W.npy"
  same_file "tmpfs full: earlier residual untouched" "$T/W_rgb8.npy" "$FULL/W.npy"
  expect_error "disk full (pool, tmpfs)" "full/pool/pool.npy: write failed" -- \
    "${A[@]}" --max-iterations 12 --psnr-min 10 --out "$T/df/c.png" --save-pool "$FULL/pool"
  expect_error "disk full (anonymize, tmpfs)" "full/a.png: write failed: No space left on device" -- \
    "${A[@]}" --max-iterations 4 --seed 1 --out "$FULL/a.png"
  same_file "tmpfs full: earlier image untouched" "$T/df_before/a.png" "$FULL/a.png"
  same_file "tmpfs full: earlier metrics untouched" "$T/df_before/a.json" "$FULL/a.json"
  no_temporaries "disk full (tmpfs)" "$FULL"
  [ -e "$T/df/c.png" ] && bad "a run whose pool could not be written wrote an output"
else
  echo "note: cannot mount a tmpfs here: disk-full checks ran through DIPPAS_FAULT_WRITE_LIMIT only"
fi

# --- signals during the DIP loop --------------------------------------------------------------
# Long runs: interrupted by the test, never by their own end.
LONG=("${A[@]}" --max-iterations 100000 --psnr-stop 99 --psnr-min 5)
# wait_for_pool DIR: until the pool's temporary file exists (the loop starts right after).
wait_for_pool() {
  for _ in $(seq 1 300); do
    compgen -G "$1/.pool.npy.tmp-*" >/dev/null && return 0
    sleep 0.1
  done
  return 1
}
# wait_for_candidates DIR: until the pool's temporary file holds a candidate (the loop runs).
wait_for_candidates() {
  local f
  for _ in $(seq 1 300); do
    for f in "$1"/.pool.npy.tmp-*; do
      [ -f "$f" ] && [ "$(stat -c %s "$f")" -gt 1000 ] && return 0
    done
    sleep 0.1
  done
  return 1
}
# SIGTERM, SIGUSR1 or SIGINT, once: the iteration ends and nothing is written under the final
# names (an interrupted run never looks finished): no image, metrics, history or pool; exit 3 and
# a line saying so and how to rerun. The live history H.part keeps the rows run so far.
mkdir -p "$T/sig"
for sig in TERM USR1 INT; do
  "${LONG[@]}" --out "$T/sig/$sig.png" --save-pool "$T/sig/${sig}pool" --history "$T/sig/$sig.csv" \
    2>"$T/sig/$sig.err" &
  pid=$!
  wait_for_candidates "$T/sig/${sig}pool" || bad "SIG$sig run: no candidate ever reached the pool"
  kill -$sig $pid
  wait $pid
  rc=$?
  [ $rc -eq 3 ] || bad "SIG$sig: exit $rc, expected 3 (interrupted): $(tail -2 "$T/sig/$sig.err")"
  for f in $sig.png $sig.json $sig.csv ${sig}pool/pool.npy ${sig}pool/pool.json; do
    [ -e "$T/sig/$f" ] && bad "SIG$sig: $f was written by an interrupted run"
  done
  grep -q "interrupted after [0-9]* iterations: nothing written (rerun the same command" "$T/sig/$sig.err" ||
    bad "SIG$sig: no 'nothing written' line: $(tail -2 "$T/sig/$sig.err")"
  [ "$(wc -l <"$T/sig/$sig.csv.part")" -gt 1 ] || bad "SIG$sig: the live history kept no row"
  no_temporaries "SIG$sig" "$T/sig"
done
# Two signals at once (SIGINT, then SIGTERM before the iteration ends): exit at once, 130, and
# nothing partial: no image, no metrics, no pool, no temporary file.
"${LONG[@]}" --out "$T/sig/twice.png" --save-pool "$T/sig/twicepool" 2>"$T/sig/twice.err" &
pid=$!
wait_for_pool "$T/sig/twicepool" || bad "two signals: the pool never appeared"
sleep 1
kill -INT $pid
kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 130 ] || bad "two signals: exit $rc, expected 130"
for f in twice.png twice.json twicepool/pool.npy twicepool/pool.json; do
  [ -e "$T/sig/$f" ] && bad "two signals: $f was written"
done
no_temporaries "two signals" "$T/sig"
# A signal once the loop is done stops nothing: the finished run writes its outputs (exit 0).
# A second signal at the exact edges of the commit (test hook DIPPAS_TEST_SIGNAL_AT: the process
# sends itself SIGINT at each point named, the first after the loop): all outputs staged but not
# yet committed → 130 and none of them; the commit begun → it completes, every output is there.
sigpoint() {  # sigpoint NAME POINTS
  DIPPAS_TEST_SIGNAL_AT=$2 "${A[@]}" --max-iterations 12 --psnr-stop 99 --psnr-min 5 \
    --out "$T/sig/$1.png" --save-pool "$T/sig/${1}pool" --history "$T/sig/$1.csv" 2>"$T/sig/$1.err"
}
finished() {  # finished NAME WHAT: exit 0, every output there, the metrics of a whole run
  [ $rc -eq 0 ] || bad "$2: exit $rc, expected 0: $(tail -2 "$T/sig/$1.err")"
  for f in $1.png $1.json $1.csv ${1}pool/pool.npy ${1}pool/pool.json; do
    [ -s "$T/sig/$f" ] || bad "$2: $f missing"
  done
  check "$2: a finished run" "
import json; m = json.load(open('$T/sig/$1.json')); assert m['stop_reason'] == 'max_iterations' and m['iterations'] == 12, m"
}
sigpoint after after-loop
rc=$?
finished after "a signal after the loop"
sigpoint staged after-loop,staged
rc=$?
[ $rc -eq 130 ] || bad "second signal before the commit: exit $rc, expected 130: $(tail -2 "$T/sig/staged.err")"
for f in staged.png staged.json staged.csv stagedpool/pool.npy stagedpool/pool.json; do
  [ -e "$T/sig/$f" ] && bad "second signal before the commit: $f was written"
done
no_temporaries "second signal before the commit" "$T/sig"
sigpoint committing after-loop,committing
rc=$?
finished committing "second signal during the commit"
no_temporaries "second signal during the commit" "$T/sig"
# Interrupted before the first iteration: exit 3, a message, no output at all.
mkdir -p "$T/early"
DIPPAS_TEST_SIGNAL_AT=before-loop "${A[@]}" --out "$T/early/e.png" 2>"$T/early.err"
rc=$?
[ $rc -eq 3 ] || bad "interrupted before the first iteration: exit $rc, expected 3: $(tail -2 "$T/early.err")"
grep -q "before the first iteration" "$T/early.err" || bad "interrupted before the first iteration: no message"
[ -z "$(ls -A "$T/early")" ] || bad "interrupted before the first iteration: wrote $(ls -A "$T/early")"
# Two Ctrl-C a moment apart: the second lands in the iteration (130) or after the loop stopped
# (3); nothing is written either way.
"${LONG[@]}" --out "$T/sig/ctrlc.png" --save-pool "$T/sig/ctrlcpool" 2>"$T/sig/ctrlc.err" &
pid=$!
wait_for_candidates "$T/sig/ctrlcpool" || bad "Ctrl-C twice: no candidate ever reached the pool"
kill -INT $pid
sleep 0.05
kill -INT $pid 2>/dev/null
wait $pid
rc=$?
case $rc in
  130 | 3) [ -e "$T/sig/ctrlc.png" ] || [ -e "$T/sig/ctrlc.json" ] && bad "Ctrl-C twice: exit $rc but outputs written" ;;
  *) bad "Ctrl-C twice: exit $rc, expected 130 or 3" ;;
esac
echo "Ctrl-C twice 50 ms apart: exit $rc"
no_temporaries "Ctrl-C twice" "$T/sig"

# --- privacy of the outputs -----------------------------------------------------------------
# No metadata of the input in the output: a JPEG and a PNG carrying EXIF (camera, serial numbers,
# owner), GPS, XMP, a comment and an ICC profile with a description are anonymized; the outputs
# hold none of it. Needs exiftool (Debian: libimage-exiftool-perl, installed by scripts/setup.sh).
if command -v exiftool >/dev/null; then
  mkdir -p "$T/meta"
  "$PY" - "$T/meta/profile.icc" <<'PY'
import struct, sys
# A minimal ICC v2 display profile whose description and copyright carry identifying text.
def text_desc(s):
    b = s.encode() + b"\0"
    return b"desc" + b"\0" * 4 + struct.pack(">I", len(b)) + b + b"\0" * 4 + b"\0" * 4 + b"\0" * 67
def text(s):
    return b"text" + b"\0" * 4 + s.encode() + b"\0"
tags = [(b"desc", text_desc("SECRET-ICC-DESCRIPTION")), (b"cprt", text("Owner Jane Doe SECRET-ICC-COPYRIGHT"))]
offset = 128 + 4 + 12 * len(tags)
table, data = b"", b""
for sig, body in tags:
    while (offset + len(data)) % 4: data += b"\0"
    table += sig + struct.pack(">II", offset + len(data), len(body))
    data += body
body = struct.pack(">I", len(tags)) + table + data
header = bytearray(128)
struct.pack_into(">I4sI4s4s4s", header, 0, 128 + len(body), b"none", 0x02100000, b"mntr", b"RGB ", b"XYZ ")
header[36:40] = b"acsp"
struct.pack_into(">iii", header, 68, 63190, 65536, 54061)  # D50
open(sys.argv[1], "wb").write(bytes(header) + body)
PY
  cp "$T/cam.jpg" "$T/meta/photo.jpg"
  cp "$T/rgb8.png" "$T/meta/photo.png"
  for f in photo.jpg photo.png; do
    exiftool -q -q -overwrite_original -Make=SecretCam -Model="SECRET-MODEL" -SerialNumber=SN-SECRET-123456 \
      -LensSerialNumber=LSN-SECRET-987 -OwnerName="Jane Doe" -Artist="Jane Doe" \
      -GPSLatitude=45.4642 -GPSLatitudeRef=N -GPSLongitude=9.19 -GPSLongitudeRef=E -GPSAltitude=120 \
      -XMP-dc:Creator="Jane Doe" -XMP-dc:Description="SECRET-XMP" -Comment="SECRET-COMMENT" \
      "-ICC_Profile<=$T/meta/profile.icc" "$T/meta/$f" >/dev/null 2>&1
  done
  check "the inputs do carry the metadata" "
import subprocess
for f in ('photo.jpg', 'photo.png'):
    out = subprocess.run(['exiftool', '-a', '-G1', '-s', '$T/meta/' + f], capture_output=True, text=True).stdout
    for needle in ('SN-SECRET-123456', 'GPSLatitude', 'Jane Doe', 'SECRET-ICC-DESCRIPTION'):
        assert needle in out, (f, needle, out)
    if f.endswith('.jpg'):
        assert 'SECRET-COMMENT' in out, out
"
  M=("$DIPPAS" anonymize --quiet --config "$SMOKE" --max-iterations 3)
  expect_ok "anonymize a JPEG with metadata" "${M[@]}" --image "$T/meta/photo.jpg" --blind --out "$T/meta/out_jpg.png"
  expect_ok "anonymize a PNG with metadata" "${M[@]}" --image "$T/meta/photo.png" --blind --out "$T/meta/out_png.png"
  expect_ok "anonymize to JPEG" "${M[@]}" --image "$T/meta/photo.jpg" --blind --out "$T/meta/out.jpg"
  expect_ok "a baseline" "$DIPPAS" anonymize --quiet --image "$T/meta/photo.jpg" --method denoise --out "$T/meta/out_den.png"
  for f in out_jpg.png out_png.png out.jpg out_den.png; do
    exiftool -a -G1 -s "$T/meta/$f" >"$T/meta/$f.tags" 2>&1
    # Only what describes the file itself: ExifTool, System, File, PNG/JFIF structure.
    groups=$(sed -n 's/^\[\([^]]*\)\].*/\1/p' "$T/meta/$f.tags" | sort -u | grep -v -x -E 'ExifTool|System|File|PNG|JFIF|Composite' | tr '\n' ' ')
    [ -z "$groups" ] && ok || bad "$f carries metadata groups: $groups"
    if grep -a -q -E "SECRET|Jane Doe" "$T/meta/$f"; then bad "$f holds the input's metadata bytes"; else ok; fi
  done
else
  skip "exiftool absent: metadata checks (apt-get install libimage-exiftool-perl)"
fi

# The metrics name the inputs only as given (relative stays relative), and nothing else of the
# machine: no absolute folder, no user or host name.
mkdir -p "$T/rel/in"
cp "$T/rgb8.png" "$T/rel/in/photo.png"
cp "$T/K64.npy" "$T/rel/K.npy"
cp "$SMOKE" "$T/rel/smoke.yaml"
(cd "$T/rel" && "$DIPPAS" anonymize --quiet --image in/photo.png --prnu K.npy --config smoke.yaml \
  --max-iterations 3) >"$T/out" 2>"$T/err" && ok || bad "relative paths: exit $?: $(tail -2 "$T/err")"
check "metrics name inputs as given" "
import json, os, socket, getpass
text = open('$T/rel/in/photo.anon.json').read()
m = json.loads(text)
assert m['image'] == 'in/photo.png' and m['prnu'] == 'K.npy' and m['output'] == 'in/photo.anon.png', m
for needle in ['$T', os.path.realpath('$T')]:
    assert needle not in text, needle
# Every string value of the metrics, whole: a host named like a word of them (\"aware\") is no leak.
def strings(v):
    if isinstance(v, str): yield v
    elif isinstance(v, dict): yield from (s for x in v.values() for s in strings(x))
    elif isinstance(v, list): yield from (s for x in v for s in strings(x))
values = set(strings(m))
host = socket.gethostname()
try:
    user = getpass.getuser()
except (KeyError, OSError):  # no passwd entry and no USER/LOGNAME (a container's bare UID)
    user = ''
for name in (host, host.split('.')[0], user):
    assert len(name) < 4 or not any(name in v.split('/') for v in values), name
"

# No pool files anywhere without --save-pool: not beside the output, not in TMPDIR; with it,
# owner-only files in an owner-only folder.
mkdir -p "$T/nopool/out" "$T/nopool/tmp"
expect_ok "anonymize without --save-pool" env TMPDIR="$T/nopool/tmp" "${A[@]}" --max-iterations 12 --psnr-min 10 \
  --out "$T/nopool/out/a.png"
check "no pool files left" "
import os
out = sorted(os.listdir('$T/nopool/out')); tmp = os.listdir('$T/nopool/tmp')
assert out == ['a.json', 'a.png'], out
assert tmp == [], tmp
import json; assert json.load(open('$T/nopool/out/a.json'))['pool_size'] > 0
"
for f in pool.npy pool.json; do mode_is "$T/df/pool/$f" 600 "--save-pool: $f"; done
mode_is "$T/df/pool" 700 "--save-pool: its folder"

finish
