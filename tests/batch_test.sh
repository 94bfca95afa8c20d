#!/usr/bin/env bash
# End-to-end checks of `dippas batch` on a tiny Dresden-style tree built from the bundled
# examples: ROOT/Nikon_D70s_1/{a,b}.png (fingerprint from the flat-fields), and
# ROOT/Nikon_D200_1/{c,broken}.png with a fingerprint of the wrong size and a corrupt file.
# Outputs mirror the tree, failures are recorded without stopping the others, a rerun skips
# complete items without touching them, and Ctrl-C leaves nothing a rerun would take for done.
# Also the baselines (--method subtract|denoise) through anonymize and batch, manifests, and the
# memory the children need together.
# Usage: batch_test.sh DIPPAS SOURCE_DIR [SHARED_DIR]
set -uo pipefail
DIPPAS=$1
SRC=$2
source "$(dirname "$0")/cli_lib.sh"

EX=$SRC/examples
SMOKE=$SRC/configs/smoke.yaml
ROOT=$T/root
FPS=$T/fps
mkdir -p "$ROOT/Nikon_D70s_1" "$ROOT/Nikon_D200_1" "$FPS"
ln -s "$EX/natural/Nikon_D70s_1_22824.png" "$ROOT/Nikon_D70s_1/a.png"
ln -s "$EX/natural/Nikon_D70s_1_22928.png" "$ROOT/Nikon_D70s_1/b.png"
ln -s "$EX/natural/Nikon_D200_1_17226.png" "$ROOT/Nikon_D200_1/c.png"
echo "this is not an image" >"$ROOT/Nikon_D200_1/broken.png"
echo "notes" >"$ROOT/Nikon_D70s_1/readme.txt"   # not an image: ignored
expect_ok "fingerprint" "$DIPPAS" fingerprint --quiet --crop 64 "$EX/flatfield" --out "$FPS/Nikon_D70s_1.npy"
# Wrong size for a 64×64 crop: that item must fail with a size error.
expect_ok "small fingerprint" "$DIPPAS" fingerprint --quiet --crop 32 "$EX/flatfield" \
  --out "$FPS/Nikon_D200_1.npy"

# --- interface ---------------------------------------------------------------
expect_ok "batch --help" "$DIPPAS" batch --help
for o in --input --fingerprints --manifest --aware --blind --output --jobs --method --device --crop \
  --config --set --threads --retry-failed --quiet; do
  grep -q -- "$o" "$T/out" || bad "batch --help lacks $o"
done
expect_ok "help lists batch" "$DIPPAS" --help
grep -q "batch" "$T/out" || bad "dippas --help does not list batch"
expect_error "no mode" "--aware .* or --blind" -- "$DIPPAS" batch --input "$ROOT" --output "$T/x"
expect_error "aware without fingerprints" "--fingerprints" -- \
  "$DIPPAS" batch --input "$ROOT" --aware --output "$T/x"
expect_error "subtract blind" "subtract needs --aware" -- \
  "$DIPPAS" batch --input "$ROOT" --blind --method subtract --output "$T/x"
expect_error "bad config" "learning_rate" -- "$DIPPAS" batch --input "$ROOT" --blind --output "$T/x" \
  --set learning_rate=1
expect_error "missing root" "no such folder" -- "$DIPPAS" batch --input "$T/nope" --blind --output "$T/x"

# --- memory: the children at once against what is available -----------------
# A fake /proc/meminfo (DIPPAS_TEST_MEMORY_ROOT): 819 MB free, three DIP runs of the paper's
# network on 64² crops (about 300 MB each) do not fit, fewer do; 100 GB free, or nothing left to
# run: no word.
mkdir -p "$T/mem/proc" "$T/bigmem/proc"
echo "MemAvailable:     800000 kB" >"$T/mem/proc/meminfo"
echo "MemAvailable:  100000000 kB" >"$T/bigmem/proc/meminfo"
MB=(batch --input "$ROOT" --blind --crop 64 --jobs 3 --set max_iterations=1 --quiet)
DIPPAS_TEST_MEMORY_ROOT=$T/mem "$DIPPAS" "${MB[@]}" --output "$T/mem_out" >/dev/null 2>"$T/mem.err"
grep -q "dippas batch: warning: 3 images at once need about .* and 819 MB are available: .*(--jobs [12])" "$T/mem.err" &&
  ok || bad "batch: no memory warning for 3 jobs in 819 MB: $(head -3 "$T/mem.err")"
# Resumed with nothing left to run (done, or failed and not retried): nothing to warn about.
DIPPAS_TEST_MEMORY_ROOT=$T/mem "$DIPPAS" "${MB[@]}" --output "$T/mem_out" >/dev/null 2>"$T/mem2.err"
grep -q "images at once" "$T/mem2.err" && bad "batch: a memory warning with nothing to run: $(head -3 "$T/mem2.err")" || ok
DIPPAS_TEST_MEMORY_ROOT=$T/bigmem "$DIPPAS" "${MB[@]}" --output "$T/bigmem_out" >/dev/null 2>"$T/bigmem.err"
grep -q "images at once" "$T/bigmem.err" && bad "batch: a memory warning with 100 GB free: $(head -3 "$T/bigmem.err")" || ok

# --- a batch run -------------------------------------------------------------
OUT=$T/out1
B=(batch --input "$ROOT" --fingerprints "$FPS" --aware --output "$OUT" --crop 64 --config "$SMOKE"
  --method dip --jobs 2 --set max_iterations=40 --quiet)
"$DIPPAS" "${B[@]}" >"$T/b1.out" 2>"$T/b1.err"
rc=$?
[ $rc -eq 4 ] || bad "batch with failed items: exit $rc, expected 4: $(tail -3 "$T/b1.err")"
for f in Nikon_D70s_1/a.anon.png Nikon_D70s_1/a.anon.json Nikon_D70s_1/a.log Nikon_D70s_1/b.anon.png \
  Nikon_D70s_1/b.anon.json Nikon_D200_1/c.log Nikon_D200_1/broken.log summary.csv; do
  [ -f "$OUT/$f" ] || bad "batch: missing $f"
done
[ -e "$OUT/Nikon_D200_1/c.anon.json" ] && bad "failed item wrote a metrics JSON"
[ -e "$OUT/Nikon_D70s_1/readme.anon.png" ] && bad "a text file was taken for an image"
SUMMARY_CHECK="
import csv, json, os
rows = {r['image']: r for r in csv.DictReader(open('$OUT/summary.csv'))}
cols = 'image,device,status,psnr,ncc_before,ncc_after,pce_before,pce_after,iterations,seconds,error'
assert open('$OUT/summary.csv').readline().strip() == cols
assert sorted(rows) == ['Nikon_D200_1/broken.png', 'Nikon_D200_1/c.png', 'Nikon_D70s_1/a.png',
                        'Nikon_D70s_1/b.png'], sorted(rows)
def expect(done):
    for name in ('Nikon_D70s_1/a.png', 'Nikon_D70s_1/b.png'):
        r = rows[name]
        assert r['status'] == done and r['device'] == 'Nikon_D70s_1' and r['error'] == '', r
        m = json.load(open('$OUT/' + name.replace('.png', '.anon.json')))
        assert m['iterations'] == 40 and int(r['iterations']) == 40, (m['iterations'], r)
        assert abs(float(r['psnr']) - m['psnr']) < 1e-9 and float(r['ncc_before']) == m['ncc_before']
        assert m['method'] == 'dip' and m['mode'] == 'aware' and m['size'] == [64, 64], m
        assert m['threads'] == max(1, os.cpu_count() // 2), m['threads']
    b, c = rows['Nikon_D200_1/broken.png'], rows['Nikon_D200_1/c.png']
    assert b['status'] == 'failed' and 'cannot decode' in b['error'] and b['psnr'] == '', b
    assert c['status'] == 'failed' and 'fingerprint is 32x32' in c['error'], c
"
check "summary" "$SUMMARY_CHECK
expect('done')"
stat -c '%Y %s %n' "$OUT"/Nikon_D70s_1/a.anon.* "$OUT"/Nikon_D70s_1/b.anon.* >"$T/mtimes1"
sleep 1.1

# A rerun skips the complete items without rewriting them; failures stay recorded.
start=$(date +%s%N)
"$DIPPAS" "${B[@]}" >"$T/b2.out" 2>"$T/b2.err"
rc=$?
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
[ $rc -eq 4 ] || bad "rerun: exit $rc, expected 4"
check "rerun summary" "$SUMMARY_CHECK
expect('skipped')"
stat -c '%Y %s %n' "$OUT"/Nikon_D70s_1/a.anon.* "$OUT"/Nikon_D70s_1/b.anon.* >"$T/mtimes2"
cmp -s "$T/mtimes1" "$T/mtimes2" || bad "rerun rewrote complete outputs"
# No child runs at all (complete items skipped, failures recorded): seconds, not minutes.
[ $elapsed_ms -lt 30000 ] || bad "rerun took ${elapsed_ms} ms: it should only check the outputs"

# --retry-failed re-runs the failures (still failing here); with a right-size fingerprint, c passes.
cp "$FPS/Nikon_D70s_1.npy" "$T/fps_ok.npy"
cp "$T/fps_ok.npy" "$FPS/Nikon_D200_1.npy"
"$DIPPAS" "${B[@]}" >/dev/null 2>&1
check "failures not retried" "
import csv; r = {r['image']: r for r in csv.DictReader(open('$OUT/summary.csv'))}['Nikon_D200_1/c.png']
assert r['status'] == 'failed' and 'fingerprint is 32x32' in r['error'], r
"
"$DIPPAS" "${B[@]}" --retry-failed >/dev/null 2>&1
check "retry failed" "
import csv; rows = {r['image']: r for r in csv.DictReader(open('$OUT/summary.csv'))}
assert rows['Nikon_D200_1/c.png']['status'] == 'done', rows['Nikon_D200_1/c.png']
assert rows['Nikon_D200_1/broken.png']['status'] == 'failed'
assert rows['Nikon_D70s_1/a.png']['status'] == 'skipped'
"
# Back to the wrong size: that item fails fast in the runs below.
"$DIPPAS" fingerprint --quiet --crop 32 "$EX/flatfield" --out "$FPS/Nikon_D200_1.npy"

# --- Ctrl-C: children stop and write "interrupted" outputs; nothing claims completion ------
OUT2=$T/out2
K=(batch --input "$ROOT" --fingerprints "$FPS" --aware --output "$OUT2" --crop 64 --config "$SMOKE"
  --jobs 2 --quiet)
"$DIPPAS" "${K[@]}" --set max_iterations=100000 --set psnr_stop=99 --set psnr_min=1 2>"$T/k.err" &
pid=$!
sleep 6
kill -INT $pid
wait $pid
rc=$?
[ $rc -ne 0 ] || bad "interrupted batch exited 0"
[ $rc -eq 3 ] || bad "interrupted batch: exit $rc, expected 3"
check "interrupted outputs" "
import csv, glob, json
jsons = glob.glob('$OUT2/**/*.anon.json', recursive=True)
for j in jsons:
    assert json.load(open(j))['stop_reason'] == 'interrupted', j
rows = {r['image']: r for r in csv.DictReader(open('$OUT2/summary.csv'))}
for name in ('Nikon_D70s_1/a.png', 'Nikon_D70s_1/b.png'):
    assert rows[name]['status'] == 'interrupted', rows[name]
"
find "$OUT2" -name "*.tmp-*" | grep -q . && bad "temporary files left behind: $(find "$OUT2" -name "*.tmp-*")"
command -v pgrep >/dev/null || skip "pgrep absent (Debian: procps): the check for children left running"
pgrep -f "anonymize --image $(realpath "$ROOT")" >/dev/null && bad "children still running after the batch ended"
# The rerun with normal settings completes what was interrupted.
"$DIPPAS" "${K[@]}" --set max_iterations=40 >/dev/null 2>&1
check "rerun after interruption" "
import csv, json
rows = {r['image']: r for r in csv.DictReader(open('$OUT2/summary.csv'))}
for name in ('Nikon_D70s_1/a.png', 'Nikon_D70s_1/b.png'):
    assert rows[name]['status'] == 'done', rows[name]
    m = json.load(open('$OUT2/' + name.replace('.png', '.anon.json')))
    assert m['stop_reason'] in ('psnr_stop', 'max_iterations') and m['iterations'] <= 40, m['stop_reason']
"
# A second Ctrl-C kills the children at once: still no temporaries, no false completions.
OUT3=$T/out3
"$DIPPAS" "${K[@]/"$OUT2"/"$OUT3"}" --set max_iterations=100000 --set psnr_stop=99 --set psnr_min=1 \
  2>/dev/null &
pid=$!
sleep 6
kill -INT $pid
sleep 0.05
kill -INT $pid
wait $pid
[ $? -ne 0 ] || bad "twice-interrupted batch exited 0"
check "killed children" "
import glob, json
for j in glob.glob('$OUT3/**/*.anon.json', recursive=True):
    assert json.load(open(j))['stop_reason'] == 'interrupted', j
"
find "$OUT3" -name "*.tmp-*" | grep -q . &&
  bad "temporary files left after a second Ctrl-C: $(find "$OUT3" -name "*.tmp-*")"

# --- baselines -----------------------------------------------------------------
IMG=$EX/natural/Nikon_D70s_1_22824.png
K64=$FPS/Nikon_D70s_1.npy
expect_ok "subtract" "$DIPPAS" anonymize --image "$IMG" --prnu "$K64" --crop 64 --method subtract \
  --out "$T/sub.png" --quiet
check "subtract metrics" "
import json; m = json.load(open('$T/sub.json'))
for k in ['image', 'prnu', 'mode', 'size', 'config', 'seed', 'device', 'iterations', 'stop_reason', 'gamma',
          'pool_size', 'psnr', 'ncc_before', 'ncc_after', 'pce_before', 'pce_after', 'timings_s', 'versions']:
    assert k in m, k
assert m['method'] == 'subtract' and m['alpha'] > 0 and m['iterations'] == 0 and m['pool_size'] == 0, m
assert m['gamma'] is None and m['stop_reason'] == 'completed', m
assert abs(m['ncc_after']) < 0.2 * abs(m['ncc_before']) and m['psnr'] > 40, m
"
# The metrics' NCC after is that of the PNG written.
expect_ok "detect subtract" "$DIPPAS" detect --crop 64 --prnu "$K64" --json "$T/d.json" "$T/sub.png"
check "subtract ncc consistent" "
import json
m = json.load(open('$T/sub.json')); d = json.load(open('$T/d.json'))['results'][0]
assert abs(m['ncc_after'] - d['ncc']) < 1e-9, (m['ncc_after'], d['ncc'])
"
expect_ok "denoise" "$DIPPAS" anonymize --image "$IMG" --crop 64 --method denoise --out "$T/den.png" --quiet
check "denoise metrics" "
import json; m = json.load(open('$T/den.json'))
assert m['method'] == 'denoise' and 'alpha' not in m and m['ncc_before'] is None and m['psnr'] > 30, m
"
expect_error "subtract blind" "--method subtract needs --prnu" -- \
  "$DIPPAS" anonymize --image "$IMG" --blind --crop 64 --method subtract --out "$T/never.png"
expect_error "baseline pool" "apply to --method dip only" -- "$DIPPAS" anonymize --image "$IMG" \
  --prnu "$K64" --crop 64 --method denoise --save-pool "$T/pool" --out "$T/never.png"
expect_error "unknown method" "method" -- \
  "$DIPPAS" anonymize --image "$IMG" --prnu "$K64" --method blur --out "$T/never.png"
[ -e "$T/never.png" ] && bad "a refused run wrote an output"
# dip metrics name their method too.
check "dip method key" "
import json; assert json.load(open('$OUT/Nikon_D70s_1/a.anon.json'))['method'] == 'dip'
"

# Through batch, from a manifest (header, a path outside ROOT, a missing fingerprint).
cat >"$T/manifest.csv" <<EOF
image,device,fingerprint
root/Nikon_D70s_1/a.png,Nikon_D70s_1,fps/Nikon_D70s_1.npy
$EX/natural/Nikon_D70s_1_22928.png,Nikon_D70s_1,fps/Nikon_D70s_1.npy
root/Nikon_D200_1/c.png,Nikon_D200_1,
EOF
"$DIPPAS" batch --manifest "$T/manifest.csv" --aware --output "$T/out4" --crop 64 --method subtract \
  --quiet >/dev/null 2>"$T/m.err"
rc=$?
[ $rc -eq 4 ] || bad "manifest batch: exit $rc, expected 4: $(tail -2 "$T/m.err")"
check "manifest batch" "
import csv, json
rows = {r['image']: r for r in csv.DictReader(open('$T/out4/summary.csv'))}
assert rows['root/Nikon_D70s_1/a.png']['status'] == 'done', rows
assert rows['$EX/natural/Nikon_D70s_1_22928.png']['status'] == 'done', rows
assert rows['root/Nikon_D200_1/c.png']['status'] == 'failed'
assert 'no fingerprint' in rows['root/Nikon_D200_1/c.png']['error']
m = json.load(open('$T/out4/Nikon_D70s_1/a.anon.json'))
assert m['method'] == 'subtract' and m['alpha'] > 0, m
json.load(open('$T/out4/Nikon_D70s_1/Nikon_D70s_1_22928.anon.json'))
"
# Blind denoising over the tree: the fingerprints still score the outputs.
"$DIPPAS" batch --input "$ROOT" --fingerprints "$FPS" --blind --output "$T/out5" --crop 64 \
  --method denoise --jobs 2 --quiet >/dev/null 2>&1
check "blind denoise batch" "
import csv, json
rows = {r['image']: r for r in csv.DictReader(open('$T/out5/summary.csv'))}
assert rows['Nikon_D70s_1/a.png']['status'] == 'done' and rows['Nikon_D70s_1/a.png']['ncc_after'] != ''
m = json.load(open('$T/out5/Nikon_D70s_1/a.anon.json'))
assert m['mode'] == 'blind' and m['method'] == 'denoise' and m['eval_prnu'].endswith('Nikon_D70s_1.npy')
"
find "$T" -name "*.tmp-*" | grep -q . && bad "temporary files left behind: $(find "$T" -name "*.tmp-*")"


# --- an output that names an input is refused before any work; the input is unchanged ------------
# A manifest named like the summary, in OUT (given as dir/..).
mkdir -p "$T/mf/sub"
printf 'image,device\n%s,Nikon_D70s_1\n' "$ROOT/Nikon_D70s_1/a.png" >"$T/mf/summary.csv"
cp "$T/mf/summary.csv" "$T/mf.keep"
expect_error "batch: OUT/summary.csv is the manifest" "--output .*summary.csv.*same file as the input --manifest" -- \
  "$DIPPAS" batch --manifest "$T/mf/summary.csv" --blind --method denoise --crop 64 --quiet \
  --output "$T/mf/sub/.."
cmp -s "$T/mf/summary.csv" "$T/mf.keep" || bad "batch replaced its manifest"
# One item's output (cam/a.anon.png) is another item's input image.
mkdir -p "$T/ma/cam"
cp "$EX/natural/Nikon_D70s_1_22824.png" "$T/ma/cam/a.png"
cp "$EX/natural/Nikon_D70s_1_22928.png" "$T/ma/cam/a.anon.png"
printf 'cam/a.png,cam\ncam/a.anon.png,cam\n' >"$T/ma/list.csv"
expect_error "batch: an output is an input image" "output of cam/a.png .*same file as the input image" -- \
  "$DIPPAS" batch --manifest "$T/ma/list.csv" --blind --method denoise --crop 64 --quiet --output "$T/ma"
cmp -s "$T/ma/cam/a.anon.png" "$EX/natural/Nikon_D70s_1_22928.png" || bad "batch replaced an input image"

finish
