#!/usr/bin/env bash
# One dippas executable, LibTorch in a module loaded on demand: detect runs without LibTorch (no
# libtorch among the executable's libraries, and it works with the module gone), every other
# command runs in libdippas-torch.so found beside the executable or in ../lib/dippas/, and a
# missing or broken module gives an error naming the file. Usage: module_test.sh DIPPAS SOURCE_DIR
set -uo pipefail
DIPPAS=$1
SRC=$2
source "$(dirname "$0")/cli_lib.sh"
EX=$SRC/examples
MODULE=$(dirname "$DIPPAS")/libdippas-torch.so
[ -f "$MODULE" ] || { echo "FAIL: $MODULE not built beside $DIPPAS"; exit 1; }

# detect: D70s_1's own images attributed, the other cameras' not (the file names say which).
attribution() {
  local f=$1 name own
  for name in Nikon_D200_1_17226 Nikon_D70s_0_21853 Nikon_D70s_1_22824 Nikon_D70s_1_22928; do
    own=no
    case $name in Nikon_D70s_1_*) own=yes ;; esac
    grep -qE "^$name\.png .* $own\$" "$f" || bad "detect: $name should be attributed: $own: $(cat "$f")"
  done
}

# --- from the build tree: a module command (fingerprint) and detect ---------------
expect_ok "fingerprint (module)" "$DIPPAS" fingerprint --quiet "$EX/flatfield" --out "$T/K.npy"
[ -s "$T/K.npy" ] || bad "fingerprint wrote nothing"
expect_ok "detect" "$DIPPAS" detect --prnu "$T/K.npy" "$EX/natural"
cp "$T/out" "$T/detect_build.txt"
attribution "$T/detect_build.txt"
expect_ok "help" "$DIPPAS" --help
for cmd in anonymize residual fingerprint detect batch assemble evaluate bench; do
  grep -qE "^  $cmd " "$T/out" || bad "--help does not list $cmd"
done
expect_ok "version" "$DIPPAS" --version
grep -qE "^dippas [0-9.]+ \(LibTorch [0-9]+\.[0-9]+.*, OpenCV [0-9.]+\)" "$T/out" || bad "--version: $(cat "$T/out")"
# A module command's exit status comes through unchanged: CLI11's for a missing option (106).
"$DIPPAS" residual --out "$T/x.npy" >/dev/null 2>"$T/err"
rc=$?
[ $rc -eq 106 ] || bad "residual without --image: exit $rc, expected CLI11's 106"

# LibTorch's OpenMP threads wait passively unless the user chose otherwise (bench prints it).
expect_ok "bench (module)" env -u OMP_WAIT_POLICY "$DIPPAS" bench --what dip --size 32 --iterations 1 --quiet
grep -qE "^  OpenMP wait policy +PASSIVE$" "$T/out" || bad "bench: OMP_WAIT_POLICY not PASSIVE: $(cat "$T/out")"
# Each CPU rewrite timed both ways, and which way the loop took (the config's, default on).
decoder_line='^  network forward \+ backward: last decoder block as one matrix product [0-9.]+ ms, as convolutions [0-9.]+ ms \([0-9.]+x, median of 5 alternated pairs\); the loop above used'
grep -qE "$decoder_line the first$" "$T/out" || bad "bench: no fused_decoder line (on): $(cat "$T/out")"
grep -qE "^  network forward \+ backward: fused BatchNorm [0-9.]+ ms, LibTorch's BatchNorm [0-9.]+ ms .*used the first$" "$T/out" ||
  bad "bench: no fused_norm line (on): $(cat "$T/out")"
upsample_line='^  network forward \+ backward: that product on the deeper features before upsampling [0-9.]+ ms, on the upsampled concatenation [0-9.]+ ms \([0-9.]+x, median of 5 alternated pairs\); the loop above used'
grep -qE "$upsample_line the first$" "$T/out" || bad "bench: no fused_upsample line (on): $(cat "$T/out")"
printf 'fused_decoder: 0\n' >"$T/decoder0.yaml"
expect_ok "bench, fused_decoder: 0" "$DIPPAS" bench --what dip --size 32 --iterations 1 --quiet --config "$T/decoder0.yaml"
grep -qE "$decoder_line the second$" "$T/out" || bad "bench: fused_decoder: 0 not reported: $(cat "$T/out")"
grep -qE "$upsample_line neither \(fused_decoder: 0\)$" "$T/out" || bad "bench: fused_upsample with fused_decoder: 0: $(cat "$T/out")"
printf 'fused_upsample: 0\n' >"$T/upsample0.yaml"
expect_ok "bench, fused_upsample: 0" "$DIPPAS" bench --what dip --size 32 --iterations 1 --quiet --config "$T/upsample0.yaml"
grep -qE "$upsample_line the second$" "$T/out" || bad "bench: fused_upsample: 0 not reported: $(cat "$T/out")"
# dippas's own convolutions (the first level's narrow layers at 32²), and direct_conv: 0 reported.
direct_line='^  network forward \+ backward: dippas.s own convolutions \(3×3 direct, 1×1 products\) [0-9.]+ ms, oneDNN.s [0-9.]+ ms \([0-9.]+x, median of 5 alternated pairs\); the loop above used'
grep -qE "$direct_line the first$" "$T/out" || bad "bench: no direct_conv line at 32: $(cat "$T/out")"
grep -qE "^  direct 3×3 kernels +(avx512|avx2|generic)$" "$T/out" || bad "bench: no direct kernels line: $(cat "$T/out")"
grep -qE "^  Philox kernel +(avx512|avx2|generic)$" "$T/out" || bad "bench: no Philox kernel line: $(cat "$T/out")"
printf 'direct_conv: 0\n' >"$T/direct0.yaml"
expect_ok "bench, direct_conv: 0" "$DIPPAS" bench --what dip --size 32 --iterations 1 --quiet --config "$T/direct0.yaml"
grep -qE "$direct_line the second$" "$T/out" || bad "bench: direct_conv: 0 not reported: $(cat "$T/out")"
expect_ok "bench, the user's policy" env OMP_WAIT_POLICY=active "$DIPPAS" bench --what dip --size 32 --iterations 1 --quiet
grep -qE "^  OpenMP wait policy +active$" "$T/out" || bad "bench: the user's OMP_WAIT_POLICY replaced: $(cat "$T/out")"

# --- the executable alone: detect, help and --version work; the rest names the module ------
mkdir -p "$T/alone"
cp "$DIPPAS" "$T/alone/dippas"
expect_ok "detect without the module" "$T/alone/dippas" detect --prnu "$T/K.npy" "$EX/natural"
cmp -s "$T/out" "$T/detect_build.txt" || bad "detect without the module printed otherwise: $(cat "$T/out")"
expect_ok "--version without the module" "$T/alone/dippas" --version
expect_ok "--help without the module" "$T/alone/dippas" --help
expect_error "anonymize without the module" \
  "cannot load the LibTorch module $T/alone/libdippas-torch\.so: .*No such file" -- \
  "$T/alone/dippas" anonymize --help
expect_error "bench without the module" "libdippas-torch\.so" -- "$T/alone/dippas" bench --what prnu
# A file of that name that is no shared object: the loader's reason follows the name.
echo "not a library" >"$T/alone/libdippas-torch.so"
expect_error "a broken module" "cannot load the LibTorch module $T/alone/libdippas-torch\.so: .*(invalid ELF|too short)" -- \
  "$T/alone/dippas" residual --help

# --- the installed layout: bin/dippas, lib/dippas/libdippas-torch.so ----------------------
mkdir -p "$T/inst/bin" "$T/inst/lib/dippas"
cp "$DIPPAS" "$T/inst/bin/dippas"
cp "$MODULE" "$T/inst/lib/dippas/"
expect_ok "residual --help, installed layout" "$T/inst/bin/dippas" residual --help
grep -q -- "--image" "$T/out" || bad "residual --help (installed layout) printed no options: $(cat "$T/out")"

# --- no LibTorch in the executable's libraries; the module has it ---------------------------
if command -v ldd >/dev/null; then
  ldd "$DIPPAS" >"$T/ldd_exe" 2>&1
  if grep -qE "libtorch|libc10" "$T/ldd_exe"; then bad "dippas links LibTorch: $(grep -E 'libtorch|libc10' "$T/ldd_exe")"; else ok; fi
  ldd "$MODULE" >"$T/ldd_module" 2>&1
  grep -q "libtorch" "$T/ldd_module" && ok || bad "the module shows no libtorch (is the check blind?): $(cat "$T/ldd_module")"
else
  skip "ldd absent: the check that dippas links no LibTorch (Debian: libc-bin)"
fi
finish
