#!/usr/bin/env bash
# End-to-end checks of the input limits (README "Limits"): a FIFO given as an image,
# fingerprint, config, manifest or pool file, or a device such as /dev/zero, is refused at once
# naming it (each command runs under `timeout`: blocking is a failure, never a hang); a sparse
# file above 2 GiB and an image header above 256 megapixels are refused before being read or
# decoded. Usage: limits_test.sh DIPPAS SOURCE_DIR SHARED_DIR
set -uo pipefail
DIPPAS=$1
SRC=$2
source "$(dirname "$0")/cli_lib.sh"
NAT=$SRC/examples/natural/Nikon_D70s_1_22824.png
SMOKE=$SRC/configs/smoke.yaml
# run NAME PATTERN command...: like expect_error, but a command still running after 30 s fails.
run() {
  local name=$1 pattern=$2
  shift 2
  expect_error "$name" "$pattern" -- timeout -k 5 30 "$@"  # -k: dippas defers SIGTERM
  [ "$(tail -c 200 "$T/err")" != "" ] || bad "$name: blocked (killed by timeout, no message)"
}

"$DIPPAS" residual --image "$NAT" --crop 64 --out "$T/K.npy" 2>/dev/null || bad "setup: residual"
mkfifo "$T/fifo.png" "$T/fifo.npy" "$T/fifo.yaml" "$T/fifo.csv"
msg="not a regular file"
run "FIFO as image" "$T/fifo.png: $msg" "$DIPPAS" residual --image "$T/fifo.png" --out "$T/x.npy"
run "FIFO as fingerprint" "$T/fifo.npy: $msg" "$DIPPAS" anonymize --image "$NAT" --crop 64 \
  --prnu "$T/fifo.npy" --config "$SMOKE" --out "$T/x.png"
run "FIFO as config" "$T/fifo.yaml: $msg" "$DIPPAS" anonymize --image "$NAT" --crop 64 --blind \
  --config "$T/fifo.yaml" --out "$T/x.png"
run "FIFO as manifest" "$T/fifo.csv: $msg" "$DIPPAS" evaluate --manifest "$T/fifo.csv" --out "$T/ev"
mkdir -p "$T/pool"
printf '{"complete": true, "size": [2, 2], "candidates": [{}]}' >"$T/pool/pool.json"
mkfifo "$T/pool/pool.npy"
run "FIFO as pool.npy" "$T/pool/pool.npy: $msg" "$DIPPAS" assemble --pool "$T/pool" --blind \
  --block-size 16 --top 1 --psnr-min 30 --out-dir "$T/as"
run "/dev/zero as image" "/dev/zero: $msg" "$DIPPAS" residual --image /dev/zero --out "$T/x.npy"
[ ! -e "$T/x.npy" ] && [ ! -e "$T/x.png" ] || bad "a refused input left an output"

# Above 2 GiB: refused from its size (sparse: no disk space, no time).
truncate -s 2147483648 "$T/big.png"
run "image above 2 GiB" "$T/big.png: file is 2147483648 bytes, above the limit of 2 GiB" \
  "$DIPPAS" residual --image "$T/big.png" --out "$T/x.npy"
truncate -s 2147483648 "$T/big.npy"
run "fingerprint above 2 GiB" "$T/big.npy: file is 2147483648 bytes" \
  "$DIPPAS" anonymize --image "$NAT" --crop 64 --prnu "$T/big.npy" --config "$SMOKE" --out "$T/x.png"

# A PNG header announcing 20000×20000 pixels (400 megapixels), without pixel data.
"$PY" - "$T/huge.png" <<'PY' || bad "setup: huge.png"
import struct, sys, zlib
ihdr = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
open(sys.argv[1], "wb").write(b"\x89PNG\r\n\x1a\n" + chunk)
PY
run "image above 256 megapixels" "$T/huge.png: image is 20000x20000, above the limit of 256 megapixels" \
  "$DIPPAS" residual --image "$T/huge.png" --out "$T/x.npy"

finish
