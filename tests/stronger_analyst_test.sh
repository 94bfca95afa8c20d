#!/usr/bin/env bash
# scripts/stronger_analyst.py end to end on examples/ (2 synthetic cameras × 2 photos, 64², the
# smoke network): the tables hold every configuration and N; the run's own output equals the
# paper's selection re-assembled at the run's N; the subtract baseline leaves nothing of K_anon;
# the leftover is the mean signed NCC after over before; top=all is the pool's plain mean and the
# true rule selects by K_true; b=B assembles in other blocks, abs ranks by |ρ|; fingerprint quality against K_true;
# a sweep stopped mid-run resumes its runs' checkpoints; a rerun (also with fewer photos) reuses
# every DIP run; another --n, which draws other cameras after the first, remakes their
# fingerprints and runs, and only theirs.
# Skipped (77) where /usr/bin/python3 lacks numpy or PIL.
set -u
DIPPAS=${1:?usage: stronger_analyst_test.sh DIPPAS SOURCE_DIR}
SRC=${2:?usage: stronger_analyst_test.sh DIPPAS SOURCE_DIR}
export LC_ALL=C
if ! /usr/bin/python3 -c 'import numpy, PIL' 2>/dev/null; then
  echo "SKIP: /usr/bin/python3 with numpy and PIL absent (apt-get install python3-numpy python3-pil)"
  exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/dippas_sa.$$.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

run() {
  /usr/bin/python3 "$SRC/scripts/stronger_analyst.py" "$SRC/examples" --out "$T/out" --crop 64 \
    --cameras 2 --photos "$1" --n "${2:-4,8}" --inject-n 4 --k-strength 0.02 --jobs 2 --threads 1 \
    --dippas "$DIPPAS" --dip "smoke=--config $SRC/configs/smoke.yaml" \
    --select paper=aware --select blind=blind --select first=aware,pool=1 --select s30=aware,stop=30 \
    --select mean=aware,top=all --select oracle=true --select b16=aware,b=16 --select b16abs=both:1,b=16,abs --baselines
}
# Stopped first: each DIP run gets SIGTERM at its 5th iteration, saves its checkpoint and stops
# the sweep (exit 3, nothing tabled); the next run resumes them.
DIPPAS_TEST_SIGNAL_AT=iteration-5 DIPPAS_TEST_SIGNAL=TERM run 2 >"$T/log0" 2>&1
rc=$?
[ $rc -eq 3 ] || bad "a sweep whose runs were stopped: exit $rc, expected 3: $(tail -3 "$T/log0")"
grep -q "interrupted: rerun the same command to resume" "$T/log0" || bad "no resume hint: $(tail -3 "$T/log0")"
ls "$T"/out/runs/smoke/*/ckpt/tile-00000.ckpt >/dev/null 2>&1 || bad "no checkpoint kept by the stopped runs"
[ -e "$T/out/table.csv" ] && bad "a stopped sweep wrote its table"
run 2 >"$T/log" 2>&1 || { cat "$T/log"; echo "FAIL: the harness failed"; exit 1; }
ls -d "$T"/out/runs/smoke/*/ckpt 2>/dev/null && bad "checkpoints left after the runs finished"
/usr/bin/python3 - "$T/out" <<'PY' || bad "a resumed run's history is not one run of consecutive iterations"
import csv, glob, json, os, sys
for rd in glob.glob(os.path.join(sys.argv[1], "runs", "smoke", "*")):
    its = [int(r["iteration"]) for r in csv.DictReader(open(os.path.join(rd, "history.csv")))]
    assert its == list(range(1, len(its) + 1)) and len(its) > 5, (rd, its[:8])
    m = json.load(open(os.path.join(rd, "anon.json")))
    assert m["iterations"] == len(its) and m["pool_size"] == json.load(open(os.path.join(rd, "pool", "pool.json")))["candidates"].__len__(), rd
PY
ls -l --time-style=+%s.%N "$T"/out/runs/smoke/*/anon.png >"$T/runs1"

/usr/bin/python3 - "$T/out" <<'PY' || fails=$((fails + 1))
import csv, json, os, sys
import numpy as np
out = sys.argv[1]
rows = {(r["config"], r["N"]): r for r in csv.DictReader(open(os.path.join(out, "table.csv")))}
per = list(csv.DictReader(open(os.path.join(out, "per_photo.csv"))))
want = {("smoke/paper", "4"), ("smoke/paper", "8"), ("smoke/blind", "4"), ("smoke/blind", "8"),
        ("smoke/run", "4"), ("subtract", "4"), ("subtract", "8"), ("denoise", "0")}
missing = want - set(rows)
assert not missing, "table.csv lacks %s" % sorted(missing)
for key in want:
    assert rows[key]["photos"] == "4", (key, rows[key]["photos"])
# pool=1: the run stopped at its first candidate at τ, whose frame is the whole assembly; stop=S:
# at the first iteration above S dB. Both from the run's own files.
from PIL import Image
for photo in {r["photo"] for r in per}:
    rd = os.path.join(out, "runs", "smoke", photo)
    cands = json.load(open(os.path.join(rd, "pool", "pool.json")))["candidates"]
    tau = json.load(open(os.path.join(rd, "anon.json")))["config"]["psnr_min"]
    at_tau = [c for c in cands if c["psnr"] >= tau]
    row = [r for r in per if r["config"] == "smoke/first" and r["N"] == "4" and r["photo"] == photo][0]
    if at_tau:
        assert int(row["its"]) == at_tau[0]["iteration"], (photo, row["its"], at_tau[0])
        frame = np.load(os.path.join(rd, "pool", "pool.npy"), mmap_mode="r")[at_tau[0]["index"]]
        img = np.asarray(Image.open(os.path.join(out, "assembled", "smoke", "first", "N4", photo, "image.png")).convert("RGB"))
        assert np.array_equal(img, frame), (photo, "pool=1 is not the first candidate at τ")
        # top=all: every candidate at τ in every block, their plain mean rounded half up.
        pool = np.load(os.path.join(rd, "pool", "pool.npy"), mmap_mode="r")
        mean = np.floor(np.mean([pool[c["index"]].astype(np.float64) for c in at_tau], axis=0) + 0.5)
        img = np.asarray(Image.open(os.path.join(out, "assembled", "smoke", "mean", "N4", photo, "image.png")).convert("RGB"))
        assert np.array_equal(img, mean.astype(np.uint8)), (photo, "top=all is not the pool's mean")
        # true: P = K_true whatever N, which ranks blocks otherwise than K_anon.
        o4, o8, p4 = (np.asarray(Image.open(os.path.join(out, "assembled", "smoke", s, n, photo, "image.png")))
                      for s, n in (("oracle", "N4"), ("oracle", "N8"), ("paper", "N4")))
        assert np.array_equal(o4, o8), (photo, "the true-pattern selection depends on N")
        if len(at_tau) > 1:
            assert not np.array_equal(o4, p4), (photo, "the true-pattern selection is K_anon's")
        # b=16 and top=all reach `dippas assemble` as B and L; the mean kept every candidate at τ.
        row = json.load(open(os.path.join(out, "assembled", "smoke", "b16", "N4", photo, "sweep.json")))["rows"][0]
        assert row["block_size"] == 16 and row["top"] == 5 and not row["order_by_abs"], (photo, row)
        row = json.load(open(os.path.join(out, "assembled", "smoke", "b16abs", "N4", photo, "sweep.json")))["rows"][0]
        assert row["block_size"] == 16 and row["order_by_abs"] and "both1" in json.load(open(os.path.join(
            out, "assembled", "smoke", "b16abs", "N4", photo, "sweep.json")))["prnu"], (photo, row)
        row = json.load(open(os.path.join(out, "assembled", "smoke", "mean", "N4", photo, "sweep.json")))["rows"][0]
        assert row["block_size"] == 32 and row["top"] == len(at_tau), (photo, row, len(at_tau))
    hist = list(csv.DictReader(open(os.path.join(rd, "history.csv"))))
    above = [int(h["iteration"]) for h in hist if float(h["psnr"]) > 30]
    s30 = [r for r in per if r["config"] == "smoke/s30" and r["N"] == "4" and r["photo"] == photo][0]
    assert int(s30["its"]) == (above[0] if above else len(hist)), (photo, s30["its"], above[:1], len(hist))
    paper = [r for r in per if r["config"] == "smoke/run" and r["photo"] == photo][0]
    assert int(paper["its"]) == len(hist), (photo, paper["its"], len(hist))
# The run's own assembly (at N = --inject-n) is what `dippas assemble` gives from its pool.
by = lambda cfg, n: {r["photo"]: float(r["ncc_true_after"]) for r in per if r["config"] == cfg and r["N"] == n}
run, again = by("smoke/run", "4"), by("smoke/paper", "4")
assert run.keys() == again.keys() and all(abs(run[p] - again[p]) <= 1e-6 + 1e-4 * abs(run[p]) for p in run), \
    ("the run's output differs from its pool re-assembled", run, again)
# Subtract removes exactly K_anon's projection: nothing of K_anon is left.
for n in ("4", "8"):
    assert abs(float(rows[("subtract", n)]["ncc_anon_after"])) < 2e-3, rows[("subtract", n)]
# The leftover, recomputed from the photos' rows.
for key in (("smoke/paper", "8"), ("denoise", "0")):
    ps = [r for r in per if (r["config"], r["N"]) == key]
    b = np.mean([float(r["ncc_true_before"]) for r in ps])
    a = np.mean([float(r["ncc_true_after"]) for r in ps])
    assert abs(float(rows[key]["leftover"]) - a / b) < 1e-9, (key, rows[key]["leftover"], a / b)
# The sign-blind AUC (on |NCC|) is an AUC, and the table shows it.
for key, r in rows.items():
    assert 0.0 <= float(r["auc_true_abs"]) <= 1.0, (key, r["auc_true_abs"])
assert "AUC \\|NCC\\|" in open(os.path.join(out, "table.md")).read()
# The originals carry K_true (std 0.02 on 64²): far above chance before.
assert float(rows[("denoise", "0")]["ncc_true_before"]) > 0.05, rows[("denoise", "0")]
# dippas fingerprint's estimate of its correlation with the pattern, against the true one.
d = os.path.join(out, "data")
for cam in ("Synth0", "Synth1"):
    kt = np.load(os.path.join(d, cam + ".true.npy")).ravel()
    for n in (4, 8):
        ka = np.load(os.path.join(d, "%s.anon%d.npy" % (cam, n))).ravel()
        q = json.load(open(os.path.join(d, "%s.anon%d.npy.quality.json" % (cam, n))))
        true = np.corrcoef(kt, ka)[0, 1]
        assert abs(q["true_corr_estimate"] - true) < 0.12, (cam, n, q["true_corr_estimate"], true)
PY

# judge_pool.py judges each candidate of a pool alone: one row per candidate, and the original's
# NCC with the run's own P is the run's ncc_before; a candidate's ratio is its NCC over that.
rd=$(ls -d "$T"/out/runs/smoke/Synth0_* | head -1)
/usr/bin/python3 "$SRC/scripts/judge_pool.py" "$rd/pool" --prnu "$T/out/data/Synth0.anon4.npy" \
  --dippas "$DIPPAS" --csv "$T/jp.csv" >"$T/jp.log" 2>&1 || { cat "$T/jp.log"; bad "judge_pool.py failed"; }
/usr/bin/python3 - "$rd" "$T/jp.csv" "$T/jp.log" <<'PY' || bad "judge_pool.py: rows or the original's NCC"
import csv, json, os, sys
rd, rows, log = sys.argv[1], list(csv.DictReader(open(sys.argv[2]))), open(sys.argv[3]).read()
m = json.load(open(os.path.join(rd, "anon.json")))
assert len(rows) == m["pool_size"] > 0, (len(rows), m["pool_size"])
before = float(log.split("original: NCC ")[1].split(",")[0])
assert abs(before - m["ncc_before"]) < 1e-4, (before, m["ncc_before"])
for r in rows:
    assert abs(float(r["ncc_over_original"]) - float(r["ncc"]) / m["ncc_before"]) < 1e-3 * abs(float(r["ncc_over_original"])) + 1e-6, r
PY

# A rerun, and one with fewer photos, make no DIP run again; fewer photos take the first of the
# data already made, which stays as it was (a sweep running beside it reads those files).
ls -l --time-style=+%s.%N "$T"/out/data/*.npy "$T"/out/data/*.png >"$T/data1"
run 2 >"$T/log2" 2>&1 || { cat "$T/log2"; bad "the rerun failed"; }
run 1 >"$T/log3" 2>&1 || { cat "$T/log3"; bad "the rerun with --photos 1 failed"; }
ls -l --time-style=+%s.%N "$T"/out/data/*.npy "$T"/out/data/*.png >"$T/data2"
cmp -s "$T/data1" "$T/data2" || bad "--photos 1 made the data again: $(diff "$T/data1" "$T/data2" | head -4)"
ls -l --time-style=+%s.%N "$T"/out/runs/smoke/*/anon.png >"$T/runs2"
cmp -s "$T/runs1" "$T/runs2" || bad "a rerun made DIP runs again: $(diff "$T/runs1" "$T/runs2")"
grep -q "^| smoke/paper | 8 |" "$T/out/table.md" || bad "table.md after --photos 1: no smoke/paper row"
/usr/bin/python3 -c "
import csv,sys
rows=list(csv.DictReader(open('$T/out/table.csv')))
assert rows and all(r['photos']=='2' for r in rows), [r['photos'] for r in rows]" || bad "--photos 1: not 2 photos per row"

# --no-runs tables the finished configurations and starts nothing: a configuration without its
# runs is left out, and said to be.
/usr/bin/python3 "$SRC/scripts/stronger_analyst.py" "$SRC/examples" --out "$T/out" --crop 64 \
  --cameras 2 --photos 2 --n 4,8 --inject-n 4 --k-strength 0.02 --jobs 2 --threads 1 \
  --dippas "$DIPPAS" --dip "smoke=--config $SRC/configs/smoke.yaml" \
  --dip "other=--config $SRC/configs/smoke.yaml --seed 5" --select paper=aware --no-runs >"$T/log5" 2>&1 ||
  { cat "$T/log5"; bad "--no-runs failed"; }
grep -q "left out: other (4 of 4 runs not finished" "$T/log5" || bad "--no-runs: no word of 'other': $(tail -3 "$T/log5")"
[ -e "$T/out/runs/other" ] && bad "--no-runs started a DIP run"
grep -q "^| smoke/paper | 8 |" "$T/out/table.md" || bad "--no-runs: no smoke/paper row"
grep -q "^| other/" "$T/out/table.md" && bad "--no-runs tabled a configuration without its runs"

# Another --n: n_max grows, so the draws after the first camera's flat-fields give Synth1 another
# K_true. Every fingerprint must be the new cameras' (none kept from the old data), Synth1's DIP
# runs made again (their photos and P changed), Synth0's kept (the same bytes).
run 2 4,8,12 >"$T/log4" 2>&1 || { cat "$T/log4"; bad "the rerun with --n 4,8,12 failed"; }
grep -q "data made again (n_max changed)" "$T/log4" || bad "--n 4,8,12: no word that the data was made again"
ls -l --time-style=+%s.%N "$T"/out/runs/smoke/*/anon.png >"$T/runs3"
/usr/bin/python3 - "$T/out" "$T/runs2" "$T/runs3" <<'PY' || bad "another --n: stale fingerprints or runs"
import os, sys
import numpy as np
out, before, after = sys.argv[1], open(sys.argv[2]).read().splitlines(), open(sys.argv[3]).read().splitlines()
d = os.path.join(out, "data")
for cam in ("Synth0", "Synth1"):
    kt = np.load(os.path.join(d, cam + ".true.npy")).ravel()
    for n in (4, 8, 12):
        r = np.corrcoef(kt, np.load(os.path.join(d, "%s.anon%d.npy" % (cam, n))).ravel())[0, 1]
        assert r > 0.2, (cam, n, r)
stamp = lambda lines: {l.split()[-1]: l.split()[-2] for l in lines}
b, a = stamp(before), stamp(after)
for f in b:
    remade = b[f] != a[f]
    assert remade == ("/Synth1_" in f), (f, "remade" if remade else "kept")
PY

[ $fails -eq 0 ] && echo "stronger_analyst tests passed" || { echo "$fails failure(s)"; exit 1; }
