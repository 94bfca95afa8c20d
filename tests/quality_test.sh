#!/usr/bin/env bash
# End-to-end checks of scripts/quality.sh on three Dresden cameras, four 64×64 crops: the tables'
# rows and columns, numbers in range, the AUC and C equal to `dippas evaluate` on a manifest built
# here with fingerprints estimated here (K_judge from flat-fields 6-10), the per-photo NCC ratio
# taken with K_judge, the chance level, bootstrap intervals, ΔC against a reference variant and
# edge-only scores, a failing variant recorded without stopping the others, a rerun reusing every
# anonymization, --baselines alone, changed arguments or another dippas build redone; bad input
# failing cleanly.
# Usage: quality_test.sh DIPPAS SOURCE_DIR SHARED_DIR
set -uo pipefail
DIPPAS=$1
SRC=$2
SHARED=${DIPPAS_SHARED-${3:-}}  # DIPPAS_SHARED (set, even empty) overrides the build's folder
source "$(dirname "$0")/cli_lib.sh"
Q=$SRC/scripts/quality.sh
dresden_data "$SHARED" "$SRC" --naturals 2
SMOKE=$SRC/configs/smoke.yaml
if [ "$EXAMPLE_DATA" -eq 1 ]; then
  # Six photos, two per camera, of the sensor of examples/ as it is and turned over.
  CAMS=(Nikon_D70sLR_1 Nikon_D70sUD_1 Nikon_D70s_1)
  NPH=6
else
  # Four photos (D70_0 has two): AUC and C strictly between their extremes, edge-only AUC unlike
  # the whole crop's, and a subtract output equal to its photo (infinite PSNR).
  CAMS=(Nikon_D200_0 Nikon_D200_1 Nikon_D70_0)
  NPH=4
fi
# quality.sh runs in a decimal-comma locale where one can be built (localedef; Debian: locales):
# its timings and tables must not care.
LOC=()
mkdir -p "$T/loc"
if localedef -i de_DE -f UTF-8 "$T/loc/de_DE.UTF-8" >/dev/null 2>&1 &&
  [ "$(LOCPATH=$T/loc LC_ALL=de_DE.UTF-8 awk 'BEGIN { printf "%.1f", 0.5 }')" = "0,5" ]; then
  LOC=(env "LOCPATH=$T/loc" LC_ALL=de_DE.UTF-8)
else
  skip "no decimal-comma locale could be built here (localedef; Debian: locales): quality.sh ran in this one"
fi
q() { "${LOC[@]}" "$Q" "$@" --dippas "$DIPPAS"; }

# --- interface and bad input -------------------------------------------------
expect_ok "--help" "$Q" --help
grep -q -- "--variant NAME=ARGS" "$T/out" && grep -q "K_judge" "$T/out" || bad "--help lacks the options"
grep -qi "shared\|SPEC" "$T/out" && bad "--help mentions internal paths"
expect_error "no arguments" "Usage" -- "$Q"
expect_error "missing DATA_DIR" "no such folder: $T/nothing" -- q "$T/nothing" --out "$T/o"
expect_error "no --out" "--out DIR is required" -- q "$DATA"
expect_error "unknown camera" "camera Foo_1: no natural photo" -- q "$DATA" --out "$T/o" --camera Foo_1
expect_error "bad variant name" "bad name 'a/b'" -- q "$DATA" --out "$T/o" --variant "a/b=--blind"
expect_error "variant sets --crop" "'--crop' is set by" -- q "$DATA" --out "$T/o" --variant "x=--crop 32"
expect_error "variant twice" "'x' given twice" -- q "$DATA" --out "$T/o" --variant x=--blind --variant x=--blind
expect_error "unknown reference" "--reference y: no such variant" -- q "$DATA" --out "$T/o" --variant x=--blind --reference y
mkdir -p "$T/few/flatfield" "$T/few/natural"
ln -s "$DATA/natural/${CAMS[0]}"_*.png "$T/few/natural/"
for f in $(ls "$DATA/flatfield/${CAMS[0]}"_*.png | head -9); do ln -s "$f" "$T/few/flatfield/"; done
expect_error "9 flat-fields" "camera ${CAMS[0]} has 9 flat-field photo\(s\).*needs 10" -- q "$T/few" --out "$T/o"
[ ! -e "$T/o" ] || bad "bad input created the output folder"

# --- a run: smoke DIP, a failing variant, blind, the baselines ---------------
O=$T/run
common=("$DATA" --out "$O" --crop 64 --images-per-camera 2 --jobs 2 --threads 1
  --camera "${CAMS[0]}" --camera "${CAMS[1]}" --camera "${CAMS[2]}")
q "${common[@]}" --variant "smoke=--config $SMOKE --set max_iterations=20" \
  --variant "bad=--config $SMOKE --set nonexistent_key=1" --variant "blind=--method denoise --blind" \
  --baselines --reference smoke >"$T/run1.out" 2>&1
rc=$?
[ $rc -eq 4 ] || bad "run with a failing variant: exit $rc, expected 4: $(tail -3 "$T/run1.out")"
grep -q "$((5 * NPH)) anonymization(s) run, 0 reused" "$T/run1.out" || bad "run 1: $(grep reused "$T/run1.out")"

# Fingerprints and the evaluation, independently: K_anon from flat-fields 1-5, K_judge from 6-10.
mkdir -p "$T/ind"
for c in "${CAMS[@]}"; do
  mapfile -t fl < <(ls "$DATA/flatfield/${c}"_* | sort)
  "$DIPPAS" fingerprint --quiet --threads 1 --crop 64 --out "$T/ind/$c.anon.npy" "${fl[@]:0:5}"
  "$DIPPAS" fingerprint --quiet --threads 1 --crop 64 --out "$T/ind/$c.judge.npy" "${fl[@]:5:5}"
done
# (two variants: each evaluate costs seconds; the others are checked against their metrics)
for v in smoke subtract; do
  {
    echo "image,device,fingerprint,anonymized"
    for c in "${CAMS[@]}"; do
      for img in $(ls "$DATA/natural/${c}"_* | sort | head -2); do
        s=$(basename "$img")
        echo "$img,$c,$T/ind/$c.judge.npy,$O/crop64/$v/${s%.*}.png"
      done
    done
  } >"$T/ind/$v.csv"
  "$DIPPAS" evaluate --quiet --threads 1 --no-plots --manifest "$T/ind/$v.csv" --crop 64 \
    --out "$T/ind/$v" >/dev/null 2>&1 || bad "evaluate of $v"
done
"$DIPPAS" evaluate --quiet --threads 1 --no-plots --manifest "$T/ind/subtract.csv" --crop 64 --edges \
  --out "$T/ind/subtract_edges" >/dev/null 2>&1 || bad "evaluate --edges of subtract"

check "tables" "
import csv, json, math, os, statistics
O, I = '$O', '$T/ind'
evs = {}
cols = ['variant', 'crop', 'n_images', 'psnr_mean', 'psnr_min', 'auc_ncc', 'auc_pce', 'C',
        'auc_ncc_lo', 'auc_ncc_hi', 'C_lo', 'C_hi', 'reference', 'dC', 'dC_lo', 'dC_hi', 'auc_ncc_edges', 'C_edges', 'ratio_median', 'ratio_max', 'n_ratio_le_0.1',
        'ncc_chance_rms', 'n_below_chance', 'iterations_mean', 'wall_s_mean', 'failures', 'args', 'run']
r = csv.reader(open(O + '/quality.csv'))
assert next(r) == cols, 'quality.csv columns'
q = {row['variant']: row for row in csv.DictReader(open(O + '/quality.csv'))}
assert list(q) == ['smoke', 'bad', 'blind', 'denoise', 'subtract'], list(q)
assert all(row['crop'] == '64' for row in q.values())
per = list(csv.DictReader(open(O + '/per_image.csv')))
assert len(per) == 5 * $NPH, len(per)
bad = [p for p in per if p['variant'] == 'bad']
assert q['bad']['n_images'] == '0' and q['bad']['failures'] == '$NPH' and q['bad']['auc_ncc'] == '', q['bad']
assert all(p['status'] == 'failed' and 'nonexistent_key' in p['error'] for p in bad), bad
md = open(O + '/quality.md').read()
assert '| bad | 64 | 0 |' in md and 'nonexistent_key' in md and 'scripts/quality.sh' in md, md
for v in ['smoke', 'blind', 'denoise', 'subtract']:
    row, mine = q[v], [p for p in per if p['variant'] == v]
    assert row['n_images'] == '$NPH' and row['failures'] == '0', row
    assert [p['status'] for p in mine] == ['ok'] * $NPH, mine
    for k in ['auc_ncc', 'auc_pce', 'C']:
        assert 0 <= float(row[k]) <= (1 if k != 'C' else 100), (v, k, row[k])
    # 'inf': the output equals the photo (the subtract baseline on a 64² crop); left out of the
    # mean, as evaluate does.
    psnr = [float(p['psnr']) for p in mine if p['psnr'] != 'inf']
    assert all(5 < x < 100 for x in psnr) and len(psnr) >= 1, psnr
    assert abs(float(row['psnr_mean']) - statistics.mean(psnr)) < 2e-3, (row['psnr_mean'], psnr)
    assert abs(float(row['psnr_min']) - min(psnr)) < 2e-3
    auc = abs(float(row['auc_ncc']) - 0.5)
    assert abs(float(row['C']) - float(row['psnr_mean']) * (1 - 2 * auc)) < 0.02, row
    # Bootstrap intervals hold the point estimates.
    assert 0 <= float(row['auc_ncc_lo']) <= float(row['auc_ncc']) + 1e-4 <= float(row['auc_ncc_hi']) + 2e-4 <= 1.0002, row
    assert float(row['C_lo']) <= float(row['C']) + 1e-3 and float(row['C']) <= float(row['C_hi']) + 1e-3, row
    if v in ['smoke', 'subtract']:
        # Pooled AUC and C as dippas evaluate gives them with K_judge.
        ev = json.load(open('%s/%s/summary.json' % (I, v)))
        for k, e in [('auc_ncc', 'auc_ncc'), ('auc_pce', 'auc_pce'), ('C', 'c_metric'), ('psnr_mean', 'psnr_mean')]:
            assert abs(float(row[k]) - ev[e]) < 1e-3, (v, k, row[k], ev[e])
        before = ev['before']
        evs[v] = ev
        if v == 'subtract':
            # Edges only, as evaluate --edges gives them.
            ee = json.load(open('%s/subtract_edges/summary.json' % I))
            assert abs(float(row['auc_ncc_edges']) - ee['auc_ncc']) < 1e-3, (row['auc_ncc_edges'], ee['auc_ncc'])
            assert abs(float(row['C_edges']) - ee['c_metric']) < 1e-3, (row['C_edges'], ee['c_metric'])
            before_edges = ee['before']['auc_ncc']
            he = json.load(open('%s/crop64/subtract/evaluation_edges/summary.json' % O))
            assert he['options']['edges'] is True, 'the edge evaluation was not run with --edges'
            assert ee['auc_ncc'] != ev['auc_ncc'], 'these photos no longer tell edges from whole crops'
        # NCC before/after of each photo with K_judge: evaluate's scores against its own camera.
        sc = {(os.path.basename(s['image']), s['fingerprint']): float(s['ncc'])
              for s in csv.DictReader(open('%s/%s/scores.csv' % (I, v)))}
        sb = {(os.path.basename(s['image']), s['fingerprint']): float(s['ncc'])
              for s in csv.DictReader(open('%s/%s/scores_before.csv' % (I, v)))}
        # Chance level: RMS NCC of the photos against the other camera's K_judge; photos at or
        # below it against their own.
        def level(scores):
            neg = [x for (im, f), x in scores.items() if not im.startswith(f + '_')]
            own = [abs(x) for (im, f), x in scores.items() if im.startswith(f + '_')]
            rms = math.sqrt(sum(x * x for x in neg) / len(neg))
            return rms, sum(x <= rms for x in own)
        rms, below = level(sc)
        assert len(sc) == 3 * $NPH and abs(float(row['ncc_chance_rms']) - rms) < 1e-5, (v, row['ncc_chance_rms'], rms)
        assert int(row['n_below_chance']) == below, (v, row['n_below_chance'], below)
        rms_before, below_before = level(sb)
    ratios = []
    for p in mine:
        stem = p['image'].rsplit('.', 1)[0]
        m = json.load(open('%s/crop64/%s/%s.json' % (O, v, stem)))
        nb, na = m['ncc_before'], m['ncc_after']
        if v in ['smoke', 'subtract']:
            nb, na = sb[(p['image'], p['camera'])], sc[(stem + '.png', p['camera'])]
        assert abs(float(p['ncc_before']) - nb) < 2e-6 and abs(float(p['ncc_after']) - na) < 2e-6, (v, p, nb, na)
        ratios.append(abs(na) / abs(nb))
        assert abs(float(p['ratio']) - ratios[-1]) < 1e-3, (p['ratio'], ratios[-1])
        judge = open('%s/%s.judge.npy' % (I, p['camera']), 'rb').read()
        assert open(m['eval_prnu'], 'rb').read() == judge, 'scored with another fingerprint than K_judge'
        if v == 'blind':
            assert m['mode'] == 'blind' and not m.get('prnu'), m.get('prnu')
        else:
            assert open(m['prnu'], 'rb').read() == open('%s/%s.anon.npy' % (I, p['camera']), 'rb').read(), \
                'anonymized with another fingerprint than K_anon'
    assert abs(float(row['ratio_median']) - statistics.median(ratios)) < 1e-3
    assert abs(float(row['ratio_max']) - max(ratios)) < 1e-3
    assert int(row['n_ratio_le_0.1']) == sum(x <= 0.1 for x in ratios)
    assert float(row['wall_s_mean']) > 0
assert 0 < float(q['smoke']['iterations_mean']) <= 20, q['smoke']['iterations_mean']
# The fixture's properties the checks rely on.
assert 0 < float(q['subtract']['C']) and 0 < float(q['smoke']['C']), (q['subtract']['C'], q['smoke']['C'])
assert any(p['psnr'] == 'inf' for p in per if p['variant'] == 'subtract'), 'no unchanged photo'
# ΔC against --reference smoke, on the same photos: C(subtract) − C(smoke) as evaluate gives them.
assert q['smoke']['reference'] == '' and q['smoke']['dC'] == '' and q['bad']['dC'] == '', (q['smoke'], q['bad'])
assert all(q[v]['reference'] == 'smoke' for v in ['blind', 'denoise', 'subtract'])
d = evs['subtract']['c_metric'] - evs['smoke']['c_metric']
assert abs(float(q['subtract']['dC']) - d) < 2e-3, (q['subtract']['dC'], d)
for v in ['blind', 'denoise', 'subtract']:
    assert float(q[v]['dC_lo']) <= float(q[v]['dC']) + 1e-3 and float(q[v]['dC']) <= float(q[v]['dC_hi']) + 1e-3, q[v]
assert ('Originals at 64² (not anonymized, $NPH photos): AUC NCC %.4f' % before['auc_ncc']) in md, md
assert ('K_judge) %.5f; photos whose |NCC| with their own camera\'s K_judge is above it: %d.'
        % (rms_before, $NPH - below_before)) in md, md
assert ('Edges only: AUC NCC %.4f.' % before_edges) in md, md
"

# --- rerun: every anonymization reused, untouched; the failing variant's row kept -----
stamps() { stat -c '%n %y' "$O"/crop64/{smoke,denoise,subtract}/*.{png,json} | sort; }
stamps >"$T/stamps1"
cp "$O/quality.csv" "$T/quality1.csv"
q "${common[@]}" --variant "smoke=--config $SMOKE --set max_iterations=20" --baselines >"$T/run2.out" 2>&1 ||
  bad "rerun: exit $?: $(tail -3 "$T/run2.out")"
grep -q "0 anonymization(s) run, $((3 * NPH)) reused" "$T/run2.out" || bad "rerun: $(grep reused "$T/run2.out")"
stamps | diff "$T/stamps1" - >/dev/null || bad "rerun touched anonymized photos or metrics"
check "rerun tables" "
import csv
a = {r['variant']: r for r in csv.DictReader(open('$T/quality1.csv'))}
b = {r['variant']: r for r in csv.DictReader(open('$O/quality.csv'))}
assert sorted(b) == sorted(a), (sorted(a), sorted(b))
for v in a:
    for k in ['n_images', 'psnr_mean', 'auc_ncc', 'auc_pce', 'C', 'ratio_median', 'failures', 'args']:
        assert a[v][k] == b[v][k], (v, k, a[v][k], b[v][k])
"

# --- --baselines alone: only the baselines, reused; the other rows kept ----------
q "${common[@]}" --baselines >"$T/run2b.out" 2>&1 || bad "baselines alone: exit $?: $(tail -3 "$T/run2b.out")"
grep -q "0 anonymization(s) run, $((2 * NPH)) reused" "$T/run2b.out" || bad "baselines alone: $(grep reused "$T/run2b.out")"
[ "$(grep -c . "$O/quality.csv")" -eq 6 ] || bad "baselines alone: rows lost: $(cat "$O/quality.csv")"

# --- changed arguments: that variant is redone, the others reused -------------
q "${common[@]}" --variant "denoise=--method denoise --sigma 2" >"$T/run3.out" 2>&1 ||
  bad "changed arguments: exit $?: $(tail -3 "$T/run3.out")"
grep -q "$NPH anonymization(s) run, 0 reused" "$T/run3.out" || bad "changed arguments: $(grep reused "$T/run3.out")"
grep -q "denoise,64,$NPH,.*,--method denoise --sigma 2," "$O/quality.csv" || bad "denoise row not updated: $(cat "$O/quality.csv")"
[ "$(grep -c . "$O/quality.csv")" -eq 6 ] || bad "rows of other variants lost: $(cat "$O/quality.csv")"

# --- a config file: its comments are not what it says, its values are ------------
cp "$SMOKE" "$T/cfg.yaml"
cfg=(--variant "cfg=--config $T/cfg.yaml --set max_iterations=5")
q "${common[@]}" "${cfg[@]}" >"$T/run4.out" 2>&1 || bad "config variant: exit $?: $(tail -3 "$T/run4.out")"
grep -q "$NPH anonymization(s) run, 0 reused" "$T/run4.out" || bad "config variant: $(grep reused "$T/run4.out")"
sed -i -e '1i # a comment added on top' -e 's/# reproducible/# reproducible, edited/' "$T/cfg.yaml"
printf '\n   \n# and one at the end\n' >>"$T/cfg.yaml"
q "${common[@]}" "${cfg[@]}" >"$T/run5.out" 2>&1 || bad "comment edit: exit $?: $(tail -3 "$T/run5.out")"
grep -q "0 anonymization(s) run, $NPH reused" "$T/run5.out" || bad "comment edit redid photos: $(grep reused "$T/run5.out")"
sed -i 's/^top: 5 /top: 4 /' "$T/cfg.yaml"
grep -q '^top: 4 ' "$T/cfg.yaml" || bad "test setup: top not edited"
q "${common[@]}" "${cfg[@]}" >"$T/run6.out" 2>&1 || bad "value edit: exit $?: $(tail -3 "$T/run6.out")"
grep -q "$NPH anonymization(s) run, 0 reused" "$T/run6.out" || bad "value edit not redone: $(grep reused "$T/run6.out")"

# --- another build (bytes appended to a copy of the executable, which still runs): redone ----
mkdir -p "$T/build2"
cp "$DIPPAS" "$T/build2/dippas"
mod=$(dirname "$DIPPAS")/libdippas-torch.so
[ ! -f "$mod" ] || cp "$mod" "$T/build2/"
printf 'x' >>"$T/build2/dippas"
"$Q" "${common[@]}" "${cfg[@]}" --dippas "$T/build2/dippas" >"$T/run7.out" 2>&1 ||
  bad "another build: exit $?: $(tail -3 "$T/run7.out")"
grep -q "$NPH anonymization(s) run, 0 reused" "$T/run7.out" || bad "another build reused photos: $(grep reused "$T/run7.out")"

finish
