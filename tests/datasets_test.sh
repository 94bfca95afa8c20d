#!/usr/bin/env bash
# scripts/dresden.sh and scripts/vision.sh on miniature trees in each dataset's published layout,
# built (symlinks) from the reference data's dresden512 folder, or without it from a dataset made
# of examples/ (cli_lib.sh's dresden_data): two cameras with three flat-fields and two natural
# photos each, plus a stray file, a badly named photo and a camera without flat-fields.
# The photos are anonymized as 64×64 crops (the subtract baseline, and DIP with configs/smoke.yaml)
# and every photo must reach the evaluation report; a rerun resumes; bad usage fails clearly.
# Usage: datasets_test.sh DIPPAS SOURCE_DIR SHARED_DIR
set -uo pipefail
DIPPAS=$1
SRC=$2
SHARED=${DIPPAS_SHARED-${3:-}}  # DIPPAS_SHARED (set, even empty) overrides the build's folder
source "$(dirname "$0")/cli_lib.sh"

SRC=$(realpath "$SRC")
dresden_data "$SHARED" "$SRC" --naturals 2
DRESDEN=$SRC/scripts/dresden.sh
VISION=$SRC/scripts/vision.sh
SMOKE=$SRC/configs/smoke.yaml
# Two cameras with flat-fields; a photo of a camera without any (NOFLAT); one to misname.
if [ "$EXAMPLE_DATA" -eq 1 ]; then
  CAMS=(Nikon_D70sLR_1 Nikon_D70s_1)
  MISNAMED=Nikon_D70s_0_21853
else
  CAMS=(Nikon_D70_0 Nikon_D70s_1)
  MISNAMED=Nikon_D70_1_20891
fi
NOFLAT=Nikon_D200_1_17226
NOFLAT_CAM=${NOFLAT%_*}
C0=${CAMS[0]}
C1=${CAMS[1]}

# --- miniature trees -----------------------------------------------------------------------
# Dresden: natural/ and flat/ folders of <Brand>_<Model>_<instance>_<number>.JPG (PNG data under
# Dresden's extension: the loader reads the content).
DR=$T/dresden
mkdir -p "$DR/natural" "$DR/flat"
declare -A NATS=()
for c in "${CAMS[@]}"; do
  for f in $(ls "$DATA/flatfield/${c}"_*.png | head -3); do ln -s "$f" "$DR/flat/$(basename "${f%.png}").JPG"; done
  for f in $(ls "$DATA/natural/${c}"_*.png | head -2); do
    ln -s "$f" "$DR/natural/$(basename "${f%.png}").JPG"
    NATS[$c]+="$(basename "${f%.png}") "
  done
done
ln -s "$DATA/natural/$NOFLAT.png" "$DR/natural/$NOFLAT.JPG"  # no flat-field
ln -s "$DATA/natural/$MISNAMED.png" "$DR/natural/holiday.JPG"  # not Dresden-named
echo "notes" >"$DR/natural/README.txt"                                                # not an image
# VISION: ROOT/<device>/images/{flat,nat,natWA}/ (natWA: the same photos under other names, as
# the WhatsApp copies are), videos/ ignored.
VR=$T/vision
for c in "${CAMS[@]}"; do
  mkdir -p "$VR/$c/images/flat" "$VR/$c/images/nat" "$VR/$c/images/natWA" "$VR/$c/videos/flat"
  for f in $(ls "$DATA/flatfield/${c}"_*.png | head -3); do ln -s "$f" "$VR/$c/images/flat/"; done
  for s in ${NATS[$c]}; do
    ln -s "$DATA/natural/$s.png" "$VR/$c/images/nat/${c}_nat_$s.png"
    ln -s "$DATA/natural/$s.png" "$VR/$c/images/natWA/${c}_natWA_$s.png"
  done
  echo "not a photo" >"$VR/$c/videos/flat/clip.mp4"
done
mkdir -p "$VR/$NOFLAT_CAM/images/nat"  # a device without flat-fields
ln -s "$DATA/natural/$NOFLAT.png" "$VR/$NOFLAT_CAM/images/nat/"

# report_check NAME RUNDIR EXPECTED...: every expected anonymized photo (relative to
# RUNDIR/anonymized) exists and is scored against each camera's fingerprint in the report, and
# nothing else is; the summary counts as many photos for each of the two cameras.
report_check() {
  local name=$1 run=$2
  shift 2
  check "$name" "
import csv, json, os
run = '$run'
expected = sorted(os.path.join(run, 'anonymized', p) for p in '''$*'''.split())
for p in expected:
    assert os.path.isfile(p), 'missing anonymized photo ' + p
rows = list(csv.DictReader(open(run + '/evaluation/scores.csv')))
scored = sorted(set(r['image'] for r in rows))
assert scored == expected, (scored, expected)
pairs = sorted((r['image'], r['fingerprint']) for r in rows)
assert pairs == sorted((p, c) for p in expected for c in ['$C0', '$C1']), pairs
j = json.load(open(run + '/evaluation/summary.json'))
assert sorted(j['per_device']) == sorted(['$C0', '$C1']), j['per_device'].keys()
n = len(expected) // 2
assert all(j['per_device'][c]['n_images'] == n for c in j['per_device']), j['per_device']
assert j['missing_anonymized'] in (0, [], None), j['missing_anonymized']
"
}
# The expected anonymized photos of the Dresden tree: <camera>/<name>.anon.png.
DR_EXPECT=()
for c in "${CAMS[@]}"; do for s in ${NATS[$c]}; do DR_EXPECT+=("$c/$s.anon.png"); done; done

# --- usage and bad input -------------------------------------------------------------------
expect_ok "dresden.sh --help" "$DRESDEN" --help
for o in --natural --flat --out --crop --full --slurm --jobs --config --tasks; do
  grep -q -- "$o" "$T/out" || bad "dresden.sh --help lacks $o"
done
grep -q "<Brand>_<Model>_<instance>_<number>" "$T/out" || bad "dresden.sh --help does not show the layout"
expect_ok "vision.sh --help" "$VISION" --help
grep -q "images/flat" "$T/out" && grep -q "natWA" "$T/out" || bad "vision.sh --help does not show the layout"
expect_error "dresden: no such folder" "--natural: no such folder: $T/nope" -- \
  "$DRESDEN" --natural "$T/nope" --flat "$DR/flat" --out "$T/x" --dippas "$DIPPAS"
expect_error "dresden: no --flat" "--flat DIR is required" -- \
  "$DRESDEN" --natural "$DR/natural" --out "$T/x" --dippas "$DIPPAS"
expect_error "dresden: crop and full" "exclude each other" -- \
  "$DRESDEN" --natural "$DR/natural" --flat "$DR/flat" --out "$T/x" --crop 64 --full --dippas "$DIPPAS"
mkdir -p "$T/empty"
cp "$DR/natural/README.txt" "$T/empty/"
expect_error "dresden: no photos" "no Dresden photo .* in $T/empty" -- \
  "$DRESDEN" --natural "$T/empty" --flat "$DR/flat" --out "$T/x" --dippas "$DIPPAS"
expect_error "dresden: unknown device" "--devices: no natural photo of 'Nope_X_0'" -- \
  "$DRESDEN" --natural "$DR/natural" --flat "$DR/flat" --out "$T/x" --devices Nope_X_0 --dippas "$DIPPAS"
expect_error "dresden: slurm option alone" "--tasks is a Slurm option" -- \
  "$DRESDEN" --natural "$DR/natural" --flat "$DR/flat" --out "$T/x" --tasks 4 --dippas "$DIPPAS"
expect_error "vision: bad set" "--images must be nat, natFBH or natWA" -- \
  "$VISION" --root "$VR" --images natFB --out "$T/x" --dippas "$DIPPAS"
expect_error "vision: not a VISION root" "no device folder with images/ in $DR" -- \
  "$VISION" --root "$DR" --out "$T/x" --dippas "$DIPPAS"
[ ! -e "$T/x" ] || bad "a refused command created its output folder"
# A camera whose flat-fields differ in size: the fingerprint error names the camera.
mkdir -p "$T/badflat"
FLAT0=($(ls "$DATA/flatfield/${C0}"_*.png | head -2))
ln -s "${FLAT0[0]}" "$T/badflat/${C0}_1.png"
if "$PY" -c "
from PIL import Image
Image.open('${FLAT0[1]}').crop((0, 0, 128, 192)).save('$T/badflat/${C0}_2.png')" 2>/dev/null; then
  expect_error "dresden: flat-fields of two sizes" "fingerprint of device $C0 could not be estimated" -- \
    "$DRESDEN" --natural "$DR/natural" --flat "$T/badflat" --devices "$C0" --out "$T/bf" --dippas "$DIPPAS" --quiet
  [ ! -e "$T/bf/fingerprints/$C0.npy" ] || bad "a failed fingerprint left a .npy"
else
  skip "flat-fields of two sizes: python3-pil absent (apt-get install python3-pil)"
fi

# --- Dresden: subtract baseline, 64×64 crops, two jobs --------------------------------------
O=$T/dr_out
"$DRESDEN" --natural "$DR/natural" --flat "$DR/flat" --out "$O" --method subtract --crop 64 --jobs 2 \
  --threads 1 --dippas "$DIPPAS" --quiet >"$T/d1.out" 2>"$T/d1.err"
rc=$?
[ $rc -eq 0 ] || bad "dresden.sh subtract: exit $rc: $(tail -3 "$T/d1.err")"
grep -q "camera $NOFLAT_CAM has no flat-field photo" "$T/d1.err" || bad "no warning for the camera without flat-fields"
grep -q "ignored: $DR/natural/holiday.JPG" "$T/d1.err" || bad "no warning for the badly named photo"
for c in "${CAMS[@]}"; do [ -s "$O/fingerprints/$c.npy" ] || bad "no fingerprint $c.npy"; done
[ ! -e "$O/fingerprints/$NOFLAT_CAM.npy" ] || bad "a fingerprint for a camera without flat-fields"
report_check "dresden subtract report" "$O/crop64" "${DR_EXPECT[@]}"
check "dresden manifests" "
import csv
rows = list(csv.DictReader(open('$O/crop64/batch.csv')))
assert sorted(r['image'] for r in rows) == sorted(p.split('/')[1].replace('.anon.png', '.JPG') for p in '''${DR_EXPECT[*]}'''.split()), rows
assert all(r['fingerprint'] == '$O/fingerprints/' + r['device'] + '.npy' for r in rows), rows
"
# The fingerprint is K of the flat-fields: the one made by hand is the same array.
"$DIPPAS" fingerprint --quiet --threads 1 "$DR"/flat/"$C1"_*.JPG --out "$T/k.npy" || bad "fingerprint by hand"
cmp -s "$T/k.npy" "$O/fingerprints/$C1.npy" || bad "$C1.npy differs from dippas fingerprint of its flat-fields"

# A rerun resumes: fingerprints kept, every photo skipped, the report rewritten complete.
stat -c '%Y %n' "$O"/fingerprints/*.npy "$O"/crop64/anonymized/*/*.anon.png >"$T/m1"
sleep 1.1
"$DRESDEN" --natural "$DR/natural" --flat "$DR/flat" --out "$O" --method subtract --crop 64 --jobs 2 \
  --threads 1 --dippas "$DIPPAS" >"$T/d2.out" 2>"$T/d2.err"
rc=$?
[ $rc -eq 0 ] || bad "dresden.sh rerun: exit $rc: $(tail -3 "$T/d2.err")"
grep -q "fingerprint of $C0: kept" "$T/d2.out" || bad "rerun did not keep the fingerprints"
stat -c '%Y %n' "$O"/fingerprints/*.npy "$O"/crop64/anonymized/*/*.anon.png >"$T/m2"
cmp -s "$T/m1" "$T/m2" || bad "rerun rewrote fingerprints or anonymized photos"
check "rerun skipped" "
import csv
rows = list(csv.DictReader(open('$O/crop64/anonymized/summary.csv')))
assert len(rows) == 4 and all(r['status'] == 'skipped' for r in rows), rows
"
report_check "dresden rerun report" "$O/crop64" "${DR_EXPECT[@]}"

# --- Dresden: DIP (smoke network), one photo per camera -------------------------------------
O2=$T/dr_dip
mkdir -p "$O2" && cp -r "$O/fingerprints" "$O2/"  # kept by the script: the runs below reuse them
"$DRESDEN" --natural "$DR/natural" --flat "$DR/flat" --out "$O2" --config "$SMOKE" --set max_iterations=30 \
  --crop 64 --max-images 1 --jobs 2 --threads 1 --dippas "$DIPPAS" --quiet >"$T/d3.out" 2>"$T/d3.err"
rc=$?
[ $rc -eq 0 ] || bad "dresden.sh dip: exit $rc: $(tail -3 "$T/d3.err")"
DIP_EXPECT=()
for c in "${CAMS[@]}"; do read -r -a s <<<"${NATS[$c]}"; DIP_EXPECT+=("$c/${s[0]}.anon.png"); done
report_check "dresden dip report" "$O2/crop64" "${DIP_EXPECT[@]}"
check "dip metrics" "
import json
for p in '''${DIP_EXPECT[*]}'''.split():
    m = json.load(open('$O2/crop64/anonymized/' + p.replace('.png', '.json')))
    assert m['method'] == 'dip' and m['iterations'] == 30 and m['size'] == [64, 64], m
    assert m['config']['filters'] == [8, 16, 32, 64, 128], m['config']
"

# --- VISION: the WhatsApp copies (crops) and the natural photos at full size ---------------
V=$T/vi_out
mkdir -p "$V" && cp -r "$O/fingerprints" "$V/"
"$VISION" --root "$VR" --images natWA --out "$V" --method subtract --crop 64 --jobs 2 --threads 1 \
  --dippas "$DIPPAS" --quiet >"$T/v1.out" 2>"$T/v1.err"
rc=$?
[ $rc -eq 0 ] || bad "vision.sh natWA: exit $rc: $(tail -3 "$T/v1.err")"
grep -q "device $NOFLAT_CAM has no flat-field photo" "$T/v1.err" || bad "vision: no warning for the device without flat-fields"
WA_EXPECT=()
for c in "${CAMS[@]}"; do for s in ${NATS[$c]}; do WA_EXPECT+=("$c/images/natWA/${c}_natWA_$s.anon.png"); done; done
report_check "vision natWA report" "$V/natWA/crop64" "${WA_EXPECT[@]}"
"$VISION" --root "$VR" --out "$V" --method subtract --full --max-images 1 --jobs 2 --threads 1 \
  --dippas "$DIPPAS" --quiet >"$T/v2.out" 2>"$T/v2.err"
rc=$?
[ $rc -eq 0 ] || bad "vision.sh --full: exit $rc: $(tail -3 "$T/v2.err")"
NAT_EXPECT=()
for c in "${CAMS[@]}"; do
  read -r -a s <<<"${NATS[$c]}"
  NAT_EXPECT+=("$c/images/nat/${c}_nat_${s[0]}.anon.png")
done
report_check "vision full report" "$V/nat/full" "${NAT_EXPECT[@]}"
check "vision full size" "
import json
for p in '''${NAT_EXPECT[*]}'''.split():
    m = json.load(open('$V/nat/full/anonymized/' + p.replace('.png', '.json')))
    assert m['size'] == [512, 512], m['size']
assert json.load(open('$V/nat/full/evaluation/summary.json'))['options']['crop'] == 0
"

finish
