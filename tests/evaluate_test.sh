#!/usr/bin/env bash
# End-to-end checks of `dippas evaluate`: a small tree built from examples/, bad input failing
# cleanly, and anonymized/JPEG/edge runs over a dataset of ten photos and four or six cameras (the
# Dresden naturals of the reference data, or without it a dataset made of examples/). With
# --reference, only the comparison with prnu-python: the AUC of the Dresden naturals against its
# six fingerprints (detection.json: 0.9703) and every NCC of its matrix; skipped without the
# reference data.
# Usage: evaluate_test.sh DIPPAS SOURCE_DIR SHARED_DIR [--reference]
set -uo pipefail
DIPPAS=$1
SRC=$2
SHARED=${DIPPAS_SHARED-${3:-}}  # DIPPAS_SHARED (set, even empty) overrides the build's folder
MODE=${4:-}
source "$(dirname "$0")/cli_lib.sh"
ev() { "$DIPPAS" evaluate "$@"; }

EX=$SRC/examples
HAVE_GNUPLOT=0
command -v gnuplot >/dev/null 2>&1 && HAVE_GNUPLOT=1
[ $HAVE_GNUPLOT -eq 1 ] || skip "gnuplot absent: plot checks (apt-get install gnuplot-nox)"

# device = file name up to the last '_' (Dresden naming); one folder per device, symlinks inside.
make_tree() {  # make_tree ROOT FILE...
  local root=$1 f b
  shift
  for f in "$@"; do
    b=$(basename "$f")
    b=${b%.*}
    mkdir -p "$root/${b%_*}"
    ln -s "$f" "$root/${b%_*}/"
  done
}

# --- --reference: the Dresden naturals against prnu-python's six fingerprints -------------------
if [ "$MODE" = --reference ]; then
  REF=$SHARED/reference/prnu-python
  NATS=$SHARED/data/dresden512/natural
  [ -n "$SHARED" ] && [ -d "$REF" ] && [ -d "$NATS" ] ||
    skip_all "reference data not found (${SHARED:-no SHARED_DIR}): the comparison with prnu-python's AUC"
  R=$T/dr/root
  make_tree "$R" "$NATS"/*.png
  mkdir -p "$T/dr/fps"
  for d in "$R"/*; do ln -s "$REF/fingerprint_$(basename "$d")_sigma3.npy" "$T/dr/fps/$(basename "$d").npy"; done
  expect_ok "evaluate Dresden originals" ev --quiet --no-plots --originals "$R" --fingerprints "$T/dr/fps" \
    --out "$T/dr/out"
  check "reference AUC 0.9703 (detection.json)" "
import csv, json
ref = json.load(open('$REF/detection.json'))
j = json.load(open('$T/dr/out/summary.json'))
print('auc_ncc', j['auc_ncc'], 'reference', ref['auc_ncc_paper'])
assert abs(j['auc_ncc'] - ref['auc_ncc_paper']) < 1e-4, (j['auc_ncc'], ref['auc_ncc_paper'])
assert abs(j['auc_ncc'] - 0.9703125) < 1e-4
assert len(j['per_device']) == 6
for d, s in j['per_device'].items():
    assert s['auc_ncc'] is not None and s['auc_pce'] is not None and s['tpr_at_fpr_0_01'] is not None, d
assert j['psnr_mean'] is None and j['c_metric'] is None
rows = list(csv.DictReader(open('$T/dr/out/scores.csv')))
assert len(rows) == 16 * 6, len(rows)
# Every NCC equals the reference matrix (rows = devices, columns = naturals).
for r in rows:
    i = ref['naturals'].index(r['image'].split('/')[-1][:-4]); k = ref['devices'].index(r['fingerprint'])
    assert abs(float(r['ncc']) - ref['ncc_paper'][k][i]) < 1e-4, r
"
  cat "$T/pyout"
  finish
  exit $?
fi

# --- interface -------------------------------------------------------------
expect_ok "evaluate --help" ev --help
grep -q -- "--threads" "$T/out" && grep -q -- "--originals" "$T/out" || bad "evaluate --help lacks options"
"$DIPPAS" --help | grep -q "evaluate" || bad "evaluate not listed in dippas --help"
expect_error "no input" "--originals ROOT or --manifest" -- ev --out "$T/o"
expect_error "trees and manifest" "excludes" -- ev --originals "$T" --manifest "$T/m.csv" --out "$T/o"
expect_error "bad JPEG quality" "jpeg-quality" -- ev --originals "$T" --fingerprints "$T" \
  --jpeg-quality 0 --out "$T/o"

# --- a tiny tree from examples/ (3 devices, 4 images, 128×128 centre crops) ---
# Nikon_D70s_1 gets its real fingerprint; the other two a stand-in (one image's own residual).
EXR=$T/ex/root
FPS=$T/ex/fps
make_tree "$EXR" "$EX"/natural/*.png
mkdir -p "$FPS"
"$DIPPAS" fingerprint --quiet --crop 128 "$EX/flatfield" --out "$FPS/Nikon_D70s_1.npy" || bad "fingerprint"
"$DIPPAS" residual --quiet --crop 128 --image "$EX/natural/Nikon_D200_1_17226.png" --out "$FPS/Nikon_D200_1.npy"
"$DIPPAS" residual --quiet --crop 128 --image "$EX/natural/Nikon_D70s_0_21853.png" --out "$FPS/Nikon_D70s_0.npy"

expect_ok "evaluate originals (examples)" ev --quiet --originals "$EXR" --fingerprints "$FPS" \
  --crop 128 --out "$T/ex/out"
check "examples summary" "
import csv, json
j = json.load(open('$T/ex/out/summary.json'))
for k in ['auc_ncc', 'auc_pce', 'tpr_at_fpr_0_01', 'tpr_at_fpr_0_01_pce', 'psnr_mean', 'psnr_median', 'c_metric']:
    assert k in j, k
assert 0 <= j['auc_ncc'] <= 1, j['auc_ncc']
assert j['psnr_mean'] is None and j['c_metric'] is None, 'PSNR of unmodified originals must be null'
assert 'before' not in j and j['evaluated'] == 'originals'
assert sorted(j['per_device']) == ['Nikon_D200_1', 'Nikon_D70s_0', 'Nikon_D70s_1'], j['per_device'].keys()
assert j['per_device']['Nikon_D70s_1']['n_images'] == 2
rows = list(csv.DictReader(open('$T/ex/out/scores.csv')))
assert len(rows) == 4 * 3, len(rows)
assert set(rows[0]) == {'image', 'device', 'fingerprint', 'ncc', 'pce', 'psnr'}, rows[0].keys()
assert all(r['psnr'] == '' for r in rows)
"
if [ $HAVE_GNUPLOT -eq 1 ]; then [ -s "$T/ex/out/roc.png" ] || bad "roc.png not drawn"; fi

# The same dataset from a manifest (relative paths, one fingerprint column) scores the same.
{
  echo "image,device,fingerprint"
  for f in "$EXR"/*/*.png; do d=$(basename "$(dirname "$f")"); echo "root/$d/$(basename "$f"),$d,fps/$d.npy"; done
} >"$T/ex/manifest.csv"
expect_ok "evaluate manifest" ev --quiet --manifest "$T/ex/manifest.csv" --crop 128 --out "$T/ex/outm"
check "manifest = tree" "
import json
a = json.load(open('$T/ex/out/summary.json')); b = json.load(open('$T/ex/outm/summary.json'))
assert a['auc_ncc'] == b['auc_ncc'] and a['auc_pce'] == b['auc_pce'], (a['auc_ncc'], b['auc_ncc'])
"

# Anonymized tree: one file per original (x.anon.png), one left out to test the missing case.
ANON=$T/ex/anon
for f in "$EXR"/*/*.png; do
  d=$(basename "$(dirname "$f")")
  mkdir -p "$ANON/$d"
  b=$(basename "$f" .png)
  [ "$b" = Nikon_D70s_0_21853 ] || ln -s "$(readlink -f "$f")" "$ANON/$d/$b.anon.png"
done
expect_error "anonymized file missing" "Nikon_D70s_0_21853.png.*anon/Nikon_D70s_0/Nikon_D70s_0_21853.anon" -- \
  ev --originals "$EXR" --fingerprints "$FPS" --anonymized "$ANON" --crop 128 --out "$T/ex/never"
[ -e "$T/ex/never" ] && bad "a failed evaluate created its output folder"
expect_ok "--allow-missing" ev --quiet --originals "$EXR" --fingerprints "$FPS" --anonymized "$ANON" \
  --crop 128 --allow-missing --out "$T/ex/outa"
grep -q "warning: no anonymized version of .*Nikon_D70s_0_21853.png" "$T/err" || bad "--allow-missing: no warning"
check "--allow-missing summary" "
import json
j = json.load(open('$T/ex/outa/summary.json'))
assert j['counts']['missing_anonymized'] == 1 and j['counts']['images'] == 3, j['counts']
assert j['before']['n_images'] == 3  # the same images before and after
assert j['psnr_mean'] is None and j['n_unchanged'] == 3  # identical files: PSNR null, not infinity
"

# History plot (the paper's Fig. 2) from a CSV as `dippas anonymize --history` writes it.
cat >"$T/ex/history.csv" <<'CSV'
iteration,loss,psnr,gamma,admitted,ncc
1,0.5,20.5,0.01,0,0.01
2,0.4,30,0.01,0,0.004
3,0.3,38.6,0.01,1,0.0008
4,0.2,39.1,0.01,1,
CSV
expect_ok "--history" ev --quiet --originals "$EXR" --fingerprints "$FPS" --crop 128 \
  --history "$T/ex/history.csv" --psnr-min 38 --out "$T/ex/outh"
[ -s "$T/ex/outh/history_points.csv" ] || bad "history_points.csv not written"
if [ $HAVE_GNUPLOT -eq 1 ]; then [ -s "$T/ex/outh/history.png" ] || bad "history.png not drawn"; fi
echo "iteration,loss" >"$T/ex/badhist.csv"
expect_error "bad history" "badhist.csv: not a history CSV" -- ev --originals "$EXR" \
  --fingerprints "$FPS" --crop 128 --history "$T/ex/badhist.csv" --out "$T/ex/never"

# Without gnuplot on PATH: a warning, the numbers still written, exit 0.
expect_ok "no gnuplot" env PATH=/nonexistent "$DIPPAS" evaluate --quiet --originals "$EXR" --fingerprints "$FPS" \
  --crop 128 --out "$T/ex/outng"
grep -q "warning: gnuplot not found" "$T/err" || bad "no gnuplot: no warning: $(cat "$T/err")"
[ -s "$T/ex/outng/summary.json" ] && [ ! -e "$T/ex/outng/roc.png" ] || bad "no gnuplot: outputs"

# --- bad input -------------------------------------------------------------
expect_error "size mismatch" \
  "Nikon_D200_1_17226.png: image is 512x512 but the fingerprints .* are 128x128 .*--crop" -- \
  ev --originals "$EXR" --fingerprints "$FPS" --out "$T/ex/never"
expect_error "--out parent missing" "nope/out.*does not exist" -- \
  ev --originals "$EXR" --fingerprints "$FPS" --crop 128 --out "$T/nope/out"
expect_error "originals missing" "nothere: originals folder not found" -- \
  ev --originals "$T/nothere" --fingerprints "$FPS" --out "$T/ex/never"
mkdir -p "$T/ex/fps2"
cp "$FPS/Nikon_D70s_1.npy" "$FPS/Nikon_D200_1.npy" "$T/ex/fps2/"
expect_error "fingerprint missing" "fps2/Nikon_D70s_0.npy: no fingerprint for device folder" -- \
  ev --originals "$EXR" --fingerprints "$T/ex/fps2" --crop 128 --out "$T/ex/never"
echo "image,device,fingerprint" >"$T/ex/m_bad.csv"
echo "root/Nikon_D70s_1/none.png,Nikon_D70s_1,fps/Nikon_D70s_1.npy" >>"$T/ex/m_bad.csv"
expect_error "manifest: missing image" "m_bad.csv line 2: .*none.png: no such file" -- \
  ev --manifest "$T/ex/m_bad.csv" --crop 128 --out "$T/ex/never"

# --- a dataset: the Dresden naturals with their cameras' fingerprints, or its stand-in ----------
# (the reference data's dresden512 folder, or cli_lib.sh's dataset made of examples/), whole
# photos; the originals' own AUC is the yardstick of the runs below.
dresden_data "$SHARED" "$SRC" --naturals 2
R=$T/dr/root
make_tree "$R" "$DATA"/natural/*.png
mkdir -p "$T/dr/fps"
DEVICES=0
for d in "$R"/*; do
  c=$(basename "$d")
  compgen -G "$DATA/flatfield/${c}_*" >/dev/null || { rm -r "$d"; continue; }  # no flat-field
  "$DIPPAS" fingerprint --quiet "$DATA/flatfield/${c}"_* --out "$T/dr/fps/$c.npy" || bad "fingerprint of $c"
  DEVICES=$((DEVICES + 1))
done
NIMG=$(find "$R" -name '*.png' | wc -l)
echo "dataset: $NIMG photos of $DEVICES cameras"
expect_ok "evaluate the dataset's originals" ev --quiet --originals "$R" --fingerprints "$T/dr/fps" \
  --out "$T/dr/out"
check "originals" "
import json
j = json.load(open('$T/dr/out/summary.json'))
assert len(j['per_device']) == $DEVICES and 0.5 < j['auc_ncc'] <= 1, (j['per_device'].keys(), j['auc_ncc'])
assert j['psnr_mean'] is None and j['c_metric'] is None
"
AUC0=$("$PY" -c "import json; print(repr(json.load(open('$T/dr/out/summary.json'))['auc_ncc']))")
echo "originals: auc_ncc $AUC0"

# 'Anonymized' = the same files (x.anon.png): AUC as before, PSNR null (identical, not infinite).
for f in "$R"/*/*.png; do
  d=$(basename "$(dirname "$f")")
  mkdir -p "$T/dr/anon/$d"
  ln -s "$(readlink -f "$f")" "$T/dr/anon/$d/$(basename "$f" .png).anon.png"
done
expect_ok "evaluate identical anonymized" ev --quiet --originals "$R" --fingerprints "$T/dr/fps" \
  --anonymized "$T/dr/anon" --method-name same --out "$T/dr/same"
check "identical anonymized" "
import csv, json
j = json.load(open('$T/dr/same/summary.json'))
assert j['auc_ncc'] == j['before']['auc_ncc'] == $AUC0, (j['auc_ncc'], j['before']['auc_ncc'])
assert j['psnr_mean'] is None and j['psnr_median'] is None and j['c_metric'] is None
assert j['n_unchanged'] == $NIMG and j['method'] == 'same' and j['evaluated'] == 'anonymized'
assert all(r['psnr'] == '' for r in csv.DictReader(open('$T/dr/same/scores.csv')))
assert len(list(csv.DictReader(open('$T/dr/same/scores_before.csv')))) == $NIMG * $DEVICES
assert len(list(csv.DictReader(open('$T/dr/same/roc_after.csv')))) > 2
"
if [ $HAVE_GNUPLOT -eq 1 ]; then [ -s "$T/dr/same/roc.png" ] || bad "roc.png (before/after) not drawn"; fi

expect_ok "evaluate --jpeg-quality 50" ev --quiet --originals "$R" --fingerprints "$T/dr/fps" \
  --anonymized "$T/dr/anon" --jpeg-quality 50 --out "$T/dr/jpeg"
check "JPEG changes the scores" "
import csv, json
j = json.load(open('$T/dr/jpeg/summary.json'))
assert j['options']['jpeg_quality'] == 50
assert 20 < j['psnr_mean'] < 60 and j['c_metric'] is not None, j['psnr_mean']
a = [float(r['ncc']) for r in csv.DictReader(open('$T/dr/jpeg/scores.csv'))]
b = [float(r['ncc']) for r in csv.DictReader(open('$T/dr/jpeg/scores_before.csv'))]
assert max(abs(x - y) for x, y in zip(a, b)) > 1e-4, 'JPEG did not change the NCCs'
print('jpeg 50: auc', j['auc_ncc'], 'before', j['before']['auc_ncc'], 'psnr', j['psnr_mean'])
"
expect_ok "evaluate --edges" ev --quiet --originals "$R" --fingerprints "$T/dr/fps" --edges \
  --out "$T/dr/edges"
check "edges" "
import csv, json
j = json.load(open('$T/dr/edges/summary.json'))
assert j['options']['edges'] is True and 0 <= j['auc_ncc'] <= 1
# (An NCC is empty where it is undefined: a crop without edges.)
e = [r['ncc'] for r in csv.DictReader(open('$T/dr/edges/scores.csv'))]
w = [r['ncc'] for r in csv.DictReader(open('$T/dr/out/scores.csv'))]
d = [abs(float(x) - float(y)) for x, y in zip(e, w) if x and y]
assert len(e) == len(w) and d and max(d) > 1e-4, 'edges scored like the whole image'
print('edges: auc', j['auc_ncc'])
"

# --- an output that names an input is refused before any work; the input is unchanged ------------
mkdir -p "$T/ex/ha"
cp "$T/ex/history.csv" "$T/ex/ha/history_points.csv"
expect_error "evaluate: --out file is --history" "--out .*history_points.csv.*same file as the input --history" -- \
  ev --quiet --no-plots --originals "$EXR" --fingerprints "$FPS" --crop 128 \
  --history "$T/ex/ha/history_points.csv" --out "$T/ex/ha"
cmp -s "$T/ex/ha/history_points.csv" "$T/ex/history.csv" || bad "evaluate replaced its history CSV"
cp "$T/ex/manifest.csv" "$T/ex/summary.csv"
expect_error "evaluate: --out file is the manifest" "--out .*summary.csv.*same file as the input --manifest" -- \
  ev --quiet --no-plots --manifest "$T/ex/summary.csv" --crop 128 --out "$T/ex/fps/.."
cmp -s "$T/ex/summary.csv" "$T/ex/manifest.csv" || bad "evaluate replaced its manifest"

finish
