#!/usr/bin/env bash
# End-to-end checks of `dippas anonymize` (SPEC §5–8) with the small smoke
# network: a 64×64 crop of a real camera image, with its fingerprint estimated
# by `dippas fingerprint`, is anonymized; outputs, metrics, determinism, the
# default output path, blind mode, interruption, re-assembly from the saved
# pool, and every configuration error. Usage: anonymize_test.sh DIPPAS SOURCE_DIR SHARED_DIR
set -uo pipefail
DIPPAS=$1
SRC=$2
SHARED=${DIPPAS_SHARED-${3:-}}  # DIPPAS_SHARED (set, even empty) overrides the build's folder
source "$(dirname "$0")/cli_lib.sh"

SMOKE=$SRC/configs/smoke.yaml
if [ -d "$SHARED/data/dresden512" ]; then
  FLAT=$(ls "$SHARED"/data/dresden512/flatfield/Nikon_D70s_1_*.png)
  IMG=$SHARED/data/dresden512/natural/Nikon_D70s_1_22824.png
else
  echo "note: ../shared absent: using the bundled example images"
  FLAT=$SRC/examples/flatfield
  IMG=$SRC/examples/natural/Nikon_D70s_1_22824.png
fi

# --- interface -------------------------------------------------------------
expect_ok "describe" "$DIPPAS" anonymize --describe
grep -q "2219718 trainable parameters" "$T/out" || bad "describe: default parameter count"
expect_ok "describe smoke" "$DIPPAS" anonymize --describe --config "$SMOKE"
grep -q "2219718" "$T/out" && bad "describe ignores --config"
# With --image: the tile grid and the memory a CPU run needs, derived here by hand: a 512² crop in
# tiles of 256 with 64 px of context is 2 x 2 tiles, every one a corner whose box is 320².
expect_ok "describe an image" "$DIPPAS" anonymize --describe --image "$IMG" --crop 512 --tile-size 256 \
  --concurrent-tiles 2
grep -q "image: .*, centre crop 512x512" "$T/out" || bad "describe: no image line: $(cat "$T/out")"
grep -q "tiles: 2 x 2 of 256 px (+64 px of context), 4 runs" "$T/out" || bad "describe: tile grid"
grep -q "memory on the CPU: about .* (largest box 320x320, 2 at a time)" "$T/out" || bad "describe: memory"
expect_error "describe, crop past the image" "smaller than --crop" -- "$DIPPAS" anonymize --describe \
  --image "$IMG" --crop 4096
grep -q "trainable parameters" "$T/out" && bad "describe printed the network before failing"
expect_ok "anonymize --help" "$DIPPAS" anonymize --help
for o in --prnu --blind --eval-prnu --config --crop --device --seed --out --metrics --describe --save-pool --history; do
  grep -q -- "$o" "$T/out" || bad "anonymize --help lacks $o"
done

# --- a real run: fingerprint, then anonymize the 64×64 crop -----------------
# shellcheck disable=SC2086
expect_ok "fingerprint" "$DIPPAS" fingerprint --quiet $FLAT --out "$T/K.npy"
A=(anonymize --image "$IMG" --prnu "$T/K.npy" --crop 64 --config "$SMOKE" --quiet)
expect_ok "anonymize" "$DIPPAS" "${A[@]}" --out "$T/a.png" --history "$T/h.csv" --save-pool "$T/pool"
check "metrics" "
import json, math
m = json.load(open('$T/a.json'))
keys = ['image', 'prnu', 'mode', 'size', 'config', 'seed', 'device', 'iterations', 'stop_reason', 'gamma',
        'pool_size', 'psnr', 'stuck_pixels', 'ncc_before', 'ncc_after', 'pce_before', 'pce_after', 'timings_s',
        'versions']
missing = [k for k in keys if k not in m]
assert not missing, missing
assert m['mode'] == 'aware' and m['size'] == [64, 64] and m['device'] == 'cpu', m
assert m['stop_reason'] in ('psnr_stop', 'max_iterations'), m['stop_reason']
assert m['config']['psnr_min'] == 30 and m['config']['filters'] == [8, 16, 32, 64, 128]
assert m['pool_size'] > 0 and m['gamma'] >= 0
assert isinstance(m['stuck_pixels'], int) and 0 <= m['stuck_pixels'] <= 64 * 64, m['stuck_pixels']
assert m['psnr'] >= m['config']['psnr_min'] - 1.0, m['psnr']   # an average of candidates with PSNR ≥ τ
assert all(k in m['versions'] for k in ('dippas', 'torch', 'opencv'))
# No direction is asserted for NCC here: on a 64×64 crop chance alone spreads it by ~1/64, more
# than this crop's NCC before (~0.009), so one seed's after may land either side of it (seeds 0-5
# of the smoke config: 0.023, -0.012, -0.002, -0.002, -0.003, -0.002). The cut is checked over four
# seeds on a synthetic camera (Purpose.SyntheticCameraLosesItsFingerprint); here, a finite NCC.
assert all(math.isfinite(m[k]) and abs(m[k]) < 1 for k in ('ncc_before', 'ncc_after')), m
print(m['iterations'], m['pool_size'], m['psnr'], m['ncc_before'], m['ncc_after'])
"
cat "$T/pyout"
# The metrics' NCC after agrees with an independent `dippas detect` of the written PNG.
expect_ok "detect output" "$DIPPAS" detect --crop 64 --prnu "$T/K.npy" --json "$T/d.json" "$T/a.png"
check "ncc_after consistent" "
import json
m = json.load(open('$T/a.json')); d = json.load(open('$T/d.json'))['results'][0]
assert abs(m['ncc_after'] - d['ncc']) < 1e-9, (m['ncc_after'], d['ncc'])
"
check "history" "
rows = open('$T/h.csv').read().split()
assert rows[0] == 'iteration,loss,psnr,gamma,admitted,ncc', rows[0]
import json; m = json.load(open('$T/a.json'))
assert len(rows) - 1 == m['iterations']
assert sum(int(r.split(',')[4]) for r in rows[1:]) == m['pool_size']
"
check "pool" "
import json; p = json.load(open('$T/pool/pool.json')); m = json.load(open('$T/a.json'))
assert p['complete'] and len(p['candidates']) == m['pool_size'] and p['size'] == [64, 64]
assert all(c['psnr'] >= 30 for c in p['candidates'])
"
mode_is "$T/pool" 700 "pool folder (private)"

# pool_max = M stops the same run at its M-th candidate: the image equals `dippas assemble
# --pool-max M` of the whole run's saved pool, byte for byte, and the run ends there.
M=$("$PY" -c "import json; print(max(1, json.load(open('$T/a.json'))['pool_size'] // 2))")
expect_ok "anonymize pool_max=$M" "$DIPPAS" "${A[@]}" --out "$T/m.png" --set pool_max="$M"
expect_ok "assemble --pool-max $M" "$DIPPAS" assemble --quiet --pool "$T/pool" --image "$IMG" --crop 64 \
  --prnu "$T/K.npy" --block-size 32 --top 5 --psnr-min 30 --pool-max "$M" --out-dir "$T/pm"
cmp -s "$T/m.png" "$T/pm/assembled_B32_L5_tau30_M$M.png" ||
  bad "pool_max=$M: the run's image is not assemble --pool-max $M of the whole pool"
check "pool_max run stops at its M-th candidate" "
import json
m = json.load(open('$T/m.json')); a = json.load(open('$T/a.json'))
r = json.load(open('$T/pm/sweep.json'))['rows'][0]
assert m['pool_size'] == r['pool_size'] == $M, (m['pool_size'], r)
assert m['iterations'] == r['last_iteration'] <= a['iterations'], (m['iterations'], r)
assert m['stop_reason'] == ('pool_full' if $M < a['pool_size'] else a['stop_reason']), m['stop_reason']
"

# select_residual w ranks the blocks by P/σ + w·W/σ while the DIP injects P as before: the same
# seed makes the same pool, assembled otherwise; `assemble` of that pool gives the run's image with
# the weight pool.json records, and the plain run's with --select-residual 0.
expect_ok "anonymize select_residual=1" "$DIPPAS" "${A[@]}" --out "$T/s.png" --set select_residual=1 \
  --save-pool "$T/spool"
cmp -s "$T/s.png" "$T/a.png" && bad "select_residual=1 gave the paper's selection"
check "pool.json records select_residual" "
import json; assert json.load(open('$T/spool/pool.json'))['select_residual'] == 1
assert json.load(open('$T/s.json'))['config']['select_residual'] == 1
"
expect_ok "assemble a select_residual pool" "$DIPPAS" assemble --quiet --pool "$T/spool" --crop 64 \
  --prnu "$T/K.npy" --block-size 32 --top 5 --psnr-min 30 --out-dir "$T/sr"
cmp -s "$T/s.png" "$T/sr/assembled_B32_L5_tau30.png" ||
  bad "assemble of a select_residual pool differs from the run's image"
expect_ok "assemble --select-residual 0" "$DIPPAS" assemble --quiet --pool "$T/spool" --crop 64 \
  --prnu "$T/K.npy" --block-size 32 --top 5 --psnr-min 30 --select-residual 0 --out-dir "$T/sr0"
cmp -s "$T/a.png" "$T/sr0/assembled_B32_L5_tau30.png" ||
  bad "assemble --select-residual 0 differs from the run without it"
expect_error "select_residual in blind mode" "needs --prnu" -- "$DIPPAS" anonymize --image "$IMG" --blind \
  --crop 64 --config "$SMOKE" --set select_residual=1 --out "$T/never.png"
expect_error "assemble --select-residual --blind" "needs --prnu" -- "$DIPPAS" assemble --pool "$T/spool" \
  --blind --select-residual 1 --block-size 32 --top 5 --psnr-min 30 --out-dir "$T/never"

# Same seed, same bytes; another seed, another image.
expect_ok "anonymize again" "$DIPPAS" "${A[@]}" --out "$T/b.png"
cmp -s "$T/a.png" "$T/b.png" || bad "same seed gave a different image"
expect_ok "other seed" "$DIPPAS" "${A[@]}" --seed 1 --max-iterations 40 --out "$T/c.png"
cmp -s "$T/a.png" "$T/c.png" && bad "another seed gave the same image"

# Re-assembly from the saved pool: B ∈ {32,64}, L ∈ {1,5} → 4 images.
expect_ok "assemble" "$DIPPAS" assemble --pool "$T/pool" --prnu "$T/K.npy" --block-size 32,64 --top 1,5 \
  --psnr-min 30 --out-dir "$T/sweep" --quiet
[ "$(ls "$T"/sweep/*.png 2>/dev/null | wc -l)" = 4 ] || bad "assemble: expected 4 images"
# B=32, L=5, τ=30 is the run's own setting: the same image as the run wrote.
# (Compared through the residuals: PNG bytes may differ by encoder settings, pixels may not.)
"$DIPPAS" residual --quiet --image "$T/sweep/assembled_B32_L5_tau30.png" --out "$T/w1.npy"
"$DIPPAS" residual --quiet --image "$T/a.png" --out "$T/w2.npy"
cmp -s "$T/w1.npy" "$T/w2.npy" || bad "assemble with the run's B, L, τ differs from the run's output"

# Default output beside the input; the input is never touched.
cp "$IMG" "$T/photo.png"
sum_before=$(sha1sum <"$T/photo.png")
expect_ok "default output" "$DIPPAS" anonymize --image "$T/photo.png" --prnu "$T/K.npy" --crop 64 \
  --config "$SMOKE" --max-iterations 5 --quiet
[ -f "$T/photo.anon.png" ] && [ -f "$T/photo.anon.json" ] || bad "default output paths"
[ "$(sha1sum <"$T/photo.png")" = "$sum_before" ] || bad "the input image changed"
expect_error "output over input" "refusing to overwrite an input" -- \
  "$DIPPAS" anonymize --image "$T/photo.png" --prnu "$T/K.npy" --crop 64 --config "$SMOKE" --out "$T/photo.png"
[ "$(sha1sum <"$T/photo.png")" = "$sum_before" ] || bad "the input image changed"
# Every output, not only --out, is checked against every input, whatever the spelling.
cp "$SMOKE" "$T/my.yaml"
cp "$T/K.npy" "$T/K_before.npy"
mkdir -p "$T/sub"
ln -sf "$T/photo.png" "$T/link.png"
P=("$DIPPAS" anonymize --image "$T/photo.png" --prnu "$T/K.npy" --crop 64 --config "$T/my.yaml" --out "$T/o.png")
expect_error "metrics over the image" "--metrics .*photo.png: is the same file as the input --image" -- "${P[@]}" --metrics "$T/photo.png"
expect_error "history over the config" "--history .*my.yaml: is the same file as the input --config" -- "${P[@]}" --history "$T/my.yaml"
expect_error "metrics over the image via .." "refusing to overwrite an input" -- "${P[@]}" --metrics "$T/sub/../photo.png"
expect_error "metrics over the image via a link" "refusing to overwrite an input" -- "${P[@]}" --metrics "$T/link.png"
expect_error "history over the fingerprint" "--history .*K.npy: is the same file as the input --prnu" -- "${P[@]}" --history "$T/K.npy"
expect_error "metrics over the output" "--metrics .*o.png: names the same file as --out" -- "${P[@]}" --metrics "$T/o.png"
[ "$(sha1sum <"$T/photo.png")" = "$sum_before" ] || bad "an output replaced the input image"
cmp -s "$SMOKE" "$T/my.yaml" || bad "an output replaced the config"
cmp -s "$T/K.npy" "$T/K_before.npy" || bad "an output replaced the fingerprint"
[ -e "$T/o.png" ] && bad "a refused run wrote its image"

# Blind mode: P is the image's own residual; no evaluation fingerprint → null scores.
expect_ok "blind" "$DIPPAS" anonymize --image "$IMG" --blind --crop 64 --config "$SMOKE" --max-iterations 30 \
  --out "$T/blind.png" --quiet
check "blind metrics" "
import json; m = json.load(open('$T/blind.json'))
assert m['mode'] == 'blind' and m['prnu'] is None and m['ncc_before'] is None and m['pce_after'] is None, m
"
expect_ok "blind with eval" "$DIPPAS" anonymize --image "$IMG" --blind --eval-prnu "$T/K.npy" --crop 64 \
  --config "$SMOKE" --max-iterations 30 --out "$T/blind2.png" --quiet
check "blind eval metrics" "
import json; m = json.load(open('$T/blind2.json'))
assert isinstance(m['ncc_before'], float) and isinstance(m['ncc_after'], float), m
"

# SIGINT: the run stops at the end of an iteration and writes nothing under the final names
# (exit 3); the signal goes once the live history shows three iterations, not after a sleep.
"$DIPPAS" "${A[@]}" --max-iterations 100000 --psnr-stop 99 --psnr-min 1 --out "$T/int.png" \
  --history "$T/int.csv" 2>"$T/int.err" &
pid=$!
for _ in $(seq 600); do
  [ -f "$T/int.csv.part" ] && [ "$(wc -l <"$T/int.csv.part")" -gt 3 ] && break
  sleep 0.1
done
kill -INT $pid
wait $pid
rc=$?
[ $rc -eq 3 ] || bad "interrupted run: exit $rc, expected 3"
for f in int.png int.json int.csv; do [ -e "$T/$f" ] && bad "interrupted run wrote $f"; done
grep -q "interrupted after [0-9]* iterations: nothing written" "$T/int.err" ||
  bad "interrupted run: no 'nothing written' line: $(tail -2 "$T/int.err")"

# --- errors ------------------------------------------------------------------
printf 'sigma: 3\nlearning_rate: 0.1\n' >"$T/unknown.yaml"
expect_error "unknown config key" "unknown.yaml: unknown key 'learning_rate'" -- \
  "$DIPPAS" "${A[@]}" --config "$T/unknown.yaml" --out "$T/never.png"
printf 'sigma: [3\ntop: 5\n' >"$T/syntax.yaml"
expect_error "YAML syntax" "syntax.yaml: syntax error at line" -- "$DIPPAS" "${A[@]}" --config "$T/syntax.yaml" --out "$T/never.png"
printf 'psnr_min: 45\npsnr_stop: 40\n' >"$T/range.yaml"
expect_error "tau above stop" "psnr_min" -- "$DIPPAS" "${A[@]}" --config "$T/range.yaml" --out "$T/never.png"
expect_error "top 0" "top" -- "$DIPPAS" "${A[@]}" --top 0 --out "$T/never.png"
expect_error "block larger than image" "block_size" -- "$DIPPAS" "${A[@]}" --block-size 128 --out "$T/never.png"
expect_error "missing config" "nope.yaml: no such file" -- "$DIPPAS" "${A[@]}" --config "$T/nope.yaml" --out "$T/never.png"
if ! nvidia-smi >/dev/null 2>&1; then
  expect_error "cuda absent" "CUDA is not available" -- "$DIPPAS" "${A[@]}" --device cuda --out "$T/never.png"
fi
expect_error "too small" "at least 32x32" -- "$DIPPAS" anonymize --image "$IMG" --prnu "$T/K.npy" --crop 16 \
  --config "$SMOKE" --out "$T/never.png"
expect_error "fingerprint size" "K.npy: fingerprint is 512x512 but image .* is 64x64" -- \
  "$DIPPAS" anonymize --image "$T/a.png" --prnu "$T/K.npy" --config "$SMOKE" --out "$T/never.png"
expect_error "neither prnu nor blind" "--prnu K.npy .* or --blind" -- "$DIPPAS" anonymize --image "$IMG" --out "$T/never.png"
expect_error "output folder missing" "does not exist" -- "$DIPPAS" "${A[@]}" --out "$T/no/such/dir/x.png"
[ -e "$T/never.png" ] && bad "a failed run wrote an output"
ls -a "$T" | grep -q "\.tmp-" && bad "temporary files left behind"

finish
