#!/usr/bin/env bash
# `dippas batch` for clusters: --shard I/N splits the items by a stable hash of their output
# path (independent of directory and manifest order), --collect merges the shards and names what
# is missing; resume redoes items finished with other settings (settings_hash) unless
# --keep-different; SIGTERM/SIGUSR1 are forwarded once and never escalate; .mat fingerprints.
# Baselines (denoise/subtract) on 64×64 crops keep it to seconds, the DIP only where signals need
# slow items. Usage: batch_shard_test.sh DIPPAS SOURCE_DIR [SHARED_DIR]
set -uo pipefail
DIPPAS=$1
SRC=$2
source "$(dirname "$0")/cli_lib.sh"

EX=$SRC/examples
NAT=("$EX"/natural/*.png)
SMOKE=$SRC/configs/smoke.yaml

# Tree A: 3 devices × 4 images, created in sorted order; tree B: the same names created in
# reverse order (other inode and directory order).
make_tree() {  # make_tree ROOT reverse
  local devs=(camA camB camC) names=(p0 p1 p2 p3) d n i
  if [ "$2" = 1 ]; then devs=(camC camB camA) names=(p3 p2 p1 p0); fi
  for d in "${devs[@]}"; do
    mkdir -p "$1/$d"
    for n in "${names[@]}"; do
      i=${n#p}
      cp "${NAT[$i]}" "$1/$d/$n.png"
    done
  done
}
make_tree "$T/rootA" 0
make_tree "$T/rootB" 1
ITEMS="camA/p0 camA/p1 camA/p2 camA/p3 camB/p0 camB/p1 camB/p2 camB/p3 camC/p0 camC/p1 camC/p2 camC/p3"
D=(--blind --method denoise --crop 64 --jobs 2 --quiet)

echo "$(date +%T) $pass passed so far"
# --- interface -------------------------------------------------------------------
expect_ok "batch --help" "$DIPPAS" batch --help
for o in --shard --collect --keep-different --mat-var; do
  grep -q -- "$o" "$T/out" || bad "batch --help lacks $o"
done
for s in 3/3 -1/3 1 a/b 1/0 /2; do
  expect_error "--shard $s" "--shard" -- "$DIPPAS" batch --input "$T/rootA" "${D[@]}" --shard "$s" --output "$T/x"
done
expect_error "collect with shard" "--collect .*no --shard" -- \
  "$DIPPAS" batch --input "$T/rootA" --collect --shard 0/2 --output "$T/x"

echo "$(date +%T) $pass passed so far"
# --- 3 shards over tree A: every item exactly once, as the documented hash says --------------
for i in 0 1 2; do
  expect_ok "shard $i/3" "$DIPPAS" batch --input "$T/rootA" "${D[@]}" --shard $i/3 --output "$T/outA"
done
[ -e "$T/outA/summary.csv" ] && bad "a shard wrote summary.csv (shards write summary.shard-I-of-N.csv)"
SHARDS_OF="
import csv, sys
def shards(out, n=3):
    got = {}
    for i in range(n):
        for r in csv.DictReader(open(f'{out}/summary.shard-{i}-of-{n}.csv')):
            key = r['device'] + '/' + r['image'].split('/')[-1][:-4]
            assert key not in got, ('item in two shards', key)
            got[key] = (i, r['status'])
    return got
def fnv(s):  # FNV-1a 64 of the item's output path relative to OUT
    h = 1469598103934665603
    for b in s.encode():
        h = ((h ^ b) * 1099511628211) % 2**64
    return h
items = '$ITEMS'.split()
"
check "shards cover every item once" "$SHARDS_OF
a = shards('$T/outA')
assert sorted(a) == sorted(items), sorted(a)
assert all(s == 'done' for _, s in a.values()), a
for k, (i, _) in a.items():
    assert fnv(k) % 3 == i, (k, i, fnv(k) % 3)
assert sorted(set(i for i, _ in a.values())) == [0, 1, 2], 'a shard is empty: pick other names'
import os
for k in items:
    assert os.path.isfile('$T/outA/' + k + '.anon.png'), k
"
cp -r "$T/outA" "$T/outA.first"
# Tree B (reverse creation order) and a shuffled manifest split the same way. They run into a
# copy of tree A's OUT: same outputs, so every item is skipped (no child), but each shard's
# summary still lists the items it owns.
run_shards() {  # run_shards OUT ARGS...: shards 2, 0, 1
  local out=$1 i
  shift
  cp -r "$T/outA.first" "$out"
  rm "$out"/summary.shard-*
  for i in 2 0 1; do
    "$DIPPAS" batch "$@" "${D[@]}" --shard $i/3 --output "$out" 2>>"$T/b.err" || bad "shard $i of $*: $(tail -2 "$T/b.err")"
  done
}
run_shards "$T/outB" --input "$T/rootB"
printf 'image,device\n' >"$T/shuffled.csv"
for k in camC/p2 camA/p1 camB/p3 camA/p0 camC/p0 camB/p1 camA/p3 camB/p0 camC/p3 camA/p2 camB/p2 camC/p1; do
  printf '%s.png,%s\n' "$k" "${k%%/*}" >>"$T/shuffled.csv"
done
run_shards "$T/outM" --manifest "$T/shuffled.csv" --input "$T/rootA"
check "order independence" "$SHARDS_OF
a, b, m = shards('$T/outA'), shards('$T/outB'), shards('$T/outM')
assert all(s == 'skipped' for _, s in list(b.values()) + list(m.values())), (b, m)
assert {k: i for k, (i, _) in a.items()} == {k: i for k, (i, _) in b.items()}, (a, b)
assert {k: i for k, (i, _) in a.items()} == {k: i for k, (i, _) in m.items()}, (a, m)
"
# A rerun of a shard skips its items; two copies of one shard cannot run together.
expect_ok "shard rerun" "$DIPPAS" batch --input "$T/rootA" "${D[@]}" --shard 1/3 --output "$T/outA"
check "shard rerun skipped" "$SHARDS_OF
assert all(s == 'skipped' for i, s in shards('$T/outA').values() if i == 1)
"

echo "$(date +%T) $pass passed so far"
# --- collect -------------------------------------------------------------------------
"$DIPPAS" batch --input "$T/rootA" --collect --output "$T/outA" --quiet >"$T/c.out" 2>"$T/c.err"
rc=$?
[ $rc -eq 0 ] || bad "collect of complete shards: exit $rc: $(tail -3 "$T/c.err")"
check "collected summary" "
import csv, json
rows = list(csv.DictReader(open('$T/outA/summary.csv')))
keys = sorted(r['device'] + '/' + r['image'].split('/')[-1][:-4] for r in rows)
assert keys == sorted('$ITEMS'.split()), keys
for r in rows:
    assert r['status'] == 'done', r
    m = json.load(open('$T/outA/' + r['image'][:-4] + '.anon.json'))
    assert abs(float(r['psnr']) - m['psnr']) < 1e-9, (r, m['psnr'])
"
# Shard 2 never ran (its summary and outputs removed): collect fails and names exactly its items.
cp -r "$T/outA.first" "$T/outP"
rm "$T/outP/summary.shard-2-of-3.csv"
"$PY" -c "$SHARDS_OF
import os
for k in items:
    if fnv(k) % 3 == 2:
        os.remove('$T/outP/' + k + '.anon.json')
"
"$DIPPAS" batch --input "$T/rootA" --collect --output "$T/outP" --quiet >"$T/c.out" 2>"$T/c.err"
rc=$?
[ $rc -eq 4 ] || bad "collect with a shard missing: exit $rc, expected 4"
check "collect names the missing items" "$SHARDS_OF
want = sorted(k for k in items if fnv(k) % 3 == 2)
said = sorted(l.split()[1][:-4] for l in open('$T/c.err') if l.startswith('missing: '))
assert said == want, (said, want)
import csv
rows = {r['image'][:-4]: r['status'] for r in csv.DictReader(open('$T/outP/summary.csv'))}
assert sorted(k for k, s in rows.items() if s == 'missing') == want, rows
assert sorted(k for k, s in rows.items() if s == 'done') == sorted(set(items) - set(want)), rows
"

echo "$(date +%T) $pass passed so far"
# --- resume compares settings ------------------------------------------------------------
FPS=$T/fps
mkdir -p "$FPS" "$T/one/cam"
cp "${NAT[2]}" "$T/one/cam/x.png"
"$DIPPAS" fingerprint --quiet --crop 64 "$EX/flatfield" --out "$FPS/cam.npy" || bad "fingerprint"
S=(batch --input "$T/one" --fingerprints "$FPS" --aware --crop 64 --output "$T/outS" --quiet)
status_of() {  # status_of OUT: the one item's status
  "$PY" -c "import csv; print(next(csv.DictReader(open('$1/summary.csv')))['status'])"
}
json_of() { "$PY" -c "import json; m = json.load(open('$T/outS/cam/x.anon.json')); print($1)"; }
"$DIPPAS" "${S[@]}" --method denoise --set sigma=3 2>/dev/null
[ "$(status_of "$T/outS")" = done ] || bad "first run: $(status_of "$T/outS")"
[ "$(json_of "m['settings_hash'][:8]")" = "fnv1a64:" ] || bad "metrics lack settings_hash"
"$DIPPAS" "${S[@]}" --method denoise --set sigma=3 --threads 1 2>/dev/null
[ "$(status_of "$T/outS")" = skipped ] || bad "same settings (other thread count) not skipped"
"$DIPPAS" "${S[@]}" --method denoise --set sigma=2 2>"$T/s.err"
[ "$(status_of "$T/outS")" = done ] || bad "other --set not redone: $(status_of "$T/outS")"
[ "$(json_of "m['config']['sigma']")" = 2.0 ] || bad "redone item does not have sigma 2"
grep -q "other settings.*--keep-different" "$T/s.err" || bad "no warning about redone items: $(cat "$T/s.err")"
"$DIPPAS" "${S[@]}" --method denoise --set sigma=3 --keep-different 2>/dev/null
[ "$(status_of "$T/outS")" = skipped ] || bad "--keep-different: not skipped"
[ "$(json_of "m['config']['sigma']")" = 2.0 ] || bad "--keep-different rewrote the item"
"$DIPPAS" "${S[@]}" --method subtract --set sigma=2 2>/dev/null
[ "$(status_of "$T/outS")" = done ] || bad "other method not redone"
[ "$(json_of "m['method']")" = subtract ] || bad "redone item is not subtract"
"$DIPPAS" "${S[@]}" --method subtract --set sigma=2 2>/dev/null
[ "$(status_of "$T/outS")" = skipped ] || bad "subtract rerun not skipped"
# Another fingerprint (other bytes, same name): redone.
"$DIPPAS" fingerprint --quiet --crop 64 "$EX"/flatfield/Nikon_D70s_1_2322*.png --out "$FPS/cam.npy"
"$DIPPAS" "${S[@]}" --method subtract --set sigma=2 2>/dev/null
[ "$(status_of "$T/outS")" = done ] || bad "other fingerprint not redone"

echo "$(date +%T) $pass passed so far"
# --- .mat fingerprints ------------------------------------------------------------------
if ! /usr/bin/python3 -c "import scipy.io" 2>/dev/null; then
  skip "python3-scipy absent: .mat fingerprints not tested end to end"
elif echo probe >"$T/probe.mat" && "$DIPPAS" detect --prnu "$T/probe.mat" "${NAT[0]}" 2>&1 |
  grep -q "cannot read .mat"; then
  skip "this build has no libmatio: .mat fingerprints not tested end to end"
else
  mkdir -p "$T/fpm"
  /usr/bin/python3 -c "
import numpy as np, scipy.io as sio
k = np.load('$FPS/cam.npy').astype(np.float64)
sio.savemat('$T/fpm/cam.mat', {'prnu': k, 'other': np.eye(3)}, do_compression=True)
sio.savemat('$T/k1.mat', {'Fingerprint': k})
sio.savemat('$T/cube.mat', {'k': np.zeros((4, 4, 3))})
" || bad "savemat"
  expect_ok "detect .npy" "$DIPPAS" detect --crop 64 --prnu "$FPS/cam.npy" --json "$T/dn.json" "$T/one/cam/x.png"
  expect_ok "detect .mat" "$DIPPAS" detect --crop 64 --prnu "$T/k1.mat" --json "$T/dm.json" "$T/one/cam/x.png"
  check "same NCC from .mat" "
import json
a = json.load(open('$T/dn.json'))['results'][0]; b = json.load(open('$T/dm.json'))['results'][0]
assert a['ncc'] == b['ncc'] and a['pce'] == b['pce'], (a, b)
"
  expect_error "several variables" "cam.mat: holds several variables \((other, prnu|prnu, other)\).*--mat-var" -- \
    "$DIPPAS" detect --crop 64 --prnu "$T/fpm/cam.mat" "$T/one/cam/x.png"
  expect_ok "detect --mat-var" "$DIPPAS" detect --crop 64 --prnu "$T/fpm/cam.mat" --mat-var prnu "$T/one/cam/x.png"
  expect_error "3-D .mat" "cube.mat: variable 'k' has 3 dimensions" -- \
    "$DIPPAS" anonymize --image "$T/one/cam/x.png" --prnu "$T/cube.mat" --crop 64 --method subtract --out "$T/never.png"
  echo "garbage" >"$T/bad.mat"
  expect_error "corrupt .mat" "bad.mat: not a" -- \
    "$DIPPAS" anonymize --image "$T/one/cam/x.png" --prnu "$T/bad.mat" --crop 64 --method subtract --out "$T/never.png"
  [ -e "$T/never.png" ] && bad "a refused .mat run wrote an output"
  # batch: FPS/<device>.mat found, the variable passed to the children, same metrics as .npy.
  "$DIPPAS" batch --input "$T/one" --fingerprints "$T/fpm" --aware --crop 64 --method subtract \
    --set sigma=2 --mat-var prnu --output "$T/outMat" --quiet 2>/dev/null
  [ "$(status_of "$T/outMat")" = done ] || bad "batch with .mat: $(cat "$T/outMat/summary.csv")"
  check "batch .mat metrics" "
import json
a = json.load(open('$T/outMat/cam/x.anon.json')); b = json.load(open('$T/outS/cam/x.anon.json'))
assert a['prnu'].endswith('cam.mat') and a['ncc_before'] == b['ncc_before'], (a['ncc_before'], b['ncc_before'])
"
  "$DIPPAS" batch --input "$T/one" --fingerprints "$T/fpm" --aware --crop 64 --method subtract \
    --set sigma=2 --output "$T/outMat2" --quiet 2>/dev/null
  check "batch .mat without --mat-var" "
import csv; r = next(csv.DictReader(open('$T/outMat2/summary.csv')))
assert r['status'] == 'failed' and '--mat-var' in r['error'], r
"
fi

echo "$(date +%T) $pass passed so far"
# --- signals: SIGTERM twice and SIGUSR1 stop the children gracefully, never kill them ---------
SLOW=(--blind --method dip --crop 64 --config "$SMOKE" --jobs 2 --quiet
  --set psnr_stop=99 --set psnr_min=1)
for sig in "TERM TERM" USR1; do
  OUTK=$T/outK_${sig// /_}
  "$DIPPAS" batch --input "$T/rootA" "${SLOW[@]}" --set max_iterations=100000 --output "$OUTK" 2>"$T/k.err" &
  pid=$!
  # Wait until both children catch SIGTERM (bit 15 of SigCgt: past their start-up), then signal.
  for _ in $(seq 300); do
    n=0
    for p in $(pgrep -f "anonymize --image $T/rootA"); do
      mask=$(awk '/^SigCgt:/ {print $2}' /proc/"$p"/status 2>/dev/null)
      [ -n "$mask" ] && (((0x$mask >> 14) & 1)) && n=$((n + 1))
    done
    [ $n -ge 2 ] && break
    sleep 0.1
  done
  [ $n -ge 2 ] || bad "SIG$sig: the children never got ready"
  sleep 1
  for s in $sig; do
    kill -"$s" $pid
    sleep 0.05
  done
  wait $pid
  rc=$?
  [ $rc -eq 3 ] || bad "batch after SIG$sig: exit $rc, expected 3: $(tail -2 "$T/k.err")"
  check "children stopped by themselves (SIG$sig)" "
import csv
rows = list(csv.DictReader(open('$OUTK/summary.csv')))
ran = [r for r in rows if r['status'] == 'interrupted' and not r['error'].startswith('not started')]
assert len(ran) == 2, rows
for r in ran:
    assert 'killed' not in r['error'], r
assert all(r['status'] == 'interrupted' for r in rows), rows
"
  command -v pgrep >/dev/null || skip "pgrep absent (Debian: procps): the check for children left running"
  pgrep -f "anonymize --image $T/rootA" >/dev/null && bad "children still running after SIG$sig"
done
# A rerun completes the items (two of them here: --shard keeps it short).
"$DIPPAS" batch --input "$T/rootA" "${SLOW[@]}" --set max_iterations=20 --output "$OUTK" --shard 0/6 2>/dev/null
rc=$?
[ $rc -eq 0 ] || bad "rerun after the signals: exit $rc"
check "rerun completes" "
import csv
rows = list(csv.DictReader(open('$OUTK/summary.shard-0-of-6.csv')))
assert rows and all(r['status'] == 'done' for r in rows), rows
"
find "$T" -name "*.tmp-*" | grep -q . && bad "temporary files left behind"

finish
