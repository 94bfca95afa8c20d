#!/usr/bin/env bash
# End-to-end checks of `dippas assemble` (SPEC §6) on a synthetic candidate pool: the sweep over
# B, L, τ writes one image and one row per combination, pool sizes per τ are right, an empty
# pool at some τ is a warning row, and bad inputs fail cleanly naming the file or option.
# The pool is made with /usr/bin/python3 + numpy (skipped without them), since no DIP run is
# cheap enough for a test. Usage: assemble_test.sh DIPPAS SOURCE_DIR SHARED_DIR
set -uo pipefail
DIPPAS=$1
source "$(dirname "$0")/cli_lib.sh"

if ! "$PY" -c 'import numpy' 2>/dev/null; then
  skip_all "/usr/bin/python3 with numpy absent: assemble tests need a synthetic pool" \
    "(apt-get install python3-numpy)"
fi

expect_ok "assemble --help" "$DIPPAS" assemble --help
grep -q -- "--block-size" "$T/out" && grep -q -- "--threads" "$T/out" ||
  bad "assemble --help lacks options"
"$DIPPAS" --help | grep -q "assemble" || bad "assemble missing from the command list"

# --- a synthetic pool: original I (64×64 PNG), candidates I + integer noise of growing amplitude
# (so their PSNRs straddle the τ values), a fingerprint K, pool.npy + pool.json --------------
"$PY" - "$T" <<'EOF' || { echo "FAIL: could not build the synthetic pool"; exit 1; }
import json, os, struct, sys, zlib
import numpy as np

t = sys.argv[1]
rng = np.random.default_rng(7)

def write_png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))
    def chunk(kind, data):
        crc = struct.pack(">I", zlib.crc32(kind + data))
        return struct.pack(">I", len(data)) + kind + data + crc
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))

y, x = np.mgrid[0:64, 0:64]
base = 60 + 1.5 * x + 0.8 * y + 10 * np.sin(x / 5.0) * np.cos(y / 7.0)
orig = np.stack([base, base * 0.9 + 10, base * 0.7 + 30], -1) + rng.normal(0, 4, (64, 64, 3))
orig = np.clip(np.round(orig), 20, 235).astype(np.uint8)
write_png(os.path.join(t, "orig.png"), orig)
np.save(os.path.join(t, "K.npy"), rng.normal(0, 1, (64, 64)).astype(np.float32))
np.save(os.path.join(t, "K2.npy"), rng.normal(0, 1, (64, 64)).astype(np.float32))

amps = [1, 1, 2, 3, 4, 5, 7, 9]
cands, records = [], []
for i, a in enumerate(amps):
    c = np.clip(orig.astype(int) + rng.integers(-a, a + 1, orig.shape), 0, 255).astype(np.uint8)
    cands.append(c)
    records.append({"index": i, "iteration": 10 * (i + 1), "psnr": psnr(c, orig), "loss": 0.01,
                    "gamma": 0.1})
os.makedirs(os.path.join(t, "pool"))
np.save(os.path.join(t, "pool", "pool.npy"), np.stack(cands))
meta = {"image": os.path.join(t, "orig.png"), "size": [64, 64], "mode": "aware",
        "prnu": os.path.join(t, "K.npy"), "sigma": 3.0, "candidates": records, "complete": True}
json.dump(meta, open(os.path.join(t, "pool", "pool.json"), "w"), indent=1)
# What the checks below expect: pool size per τ.
expect = {str(float(tau)): int(sum(r["psnr"] >= tau for r in records))
          for tau in (0, 37.5, 38, 45, 60)}
expect["psnrs"] = [r["psnr"] for r in records]
json.dump(expect, open(os.path.join(t, "expect.json"), "w"))
EOF
echo "synthetic pool PSNRs: $("$PY" -c "
import json
print(' '.join('%.2f' % p for p in json.load(open('$T/expect.json'))['psnrs']))")"

# --- the sweep: 2 B × 2 L × 2 τ -------------------------------------------------------------
expect_ok "sweep" "$DIPPAS" assemble --quiet --pool "$T/pool" --prnu "$T/K.npy" \
  --block-size 16,64 --top 1,3 --psnr-min 38,45 --out-dir "$T/sweep"
check "sweep outputs" "
import json, os, csv
t = '$T'
e = json.load(open(t + '/expect.json'))
pngs = sorted(f for f in os.listdir(t + '/sweep') if f.endswith('.png'))
want = sorted('assembled_B%d_L%d_tau%d.png' % (b, l, tau)
              for b in (16, 64) for l in (1, 3) for tau in (38, 45))
assert pngs == want, pngs
files = os.listdir(t + '/sweep')  # nothing else: no temporaries left behind
assert sorted(files) == sorted(want + ['sweep.csv', 'sweep.json']), files
s = json.load(open(t + '/sweep/sweep.json'))
rows = s['rows']
assert len(rows) == 8, len(rows)
assert s['mode'] == 'aware' and s['size'] == [64, 64] and s['pool_count'] == 8, s
for r in rows:
    assert r['pool_size'] == e[str(float(r['psnr_min']))], (r, e)
    assert os.path.isfile(r['output']), r
    assert r['psnr'] is not None and r['psnr'] >= r['psnr_min'] - 3, r
    for k in ('ncc_after', 'pce_after', 'ncc_before', 'pce_before'):
        assert isinstance(r[k], float), (k, r)
    assert r['ncc_before'] == rows[0]['ncc_before']
    # B = whole image, L = 1: Î is one candidate of the pool at τ, so its PSNR is one of theirs.
    if r['block_size'] == 64 and r['top'] == 1:
        assert any(abs(r['psnr'] - p) < 1e-6 for p in e['psnrs'] if p >= r['psnr_min']), r
lines = list(csv.DictReader(open(t + '/sweep/sweep.csv')))
assert len(lines) == 8
assert list(lines[0].keys()) == ['block_size', 'top', 'psnr_min', 'pool_max', 'pool_size',
                                 'last_iteration', 'psnr', 'ncc_after', 'pce_after', 'ncc_before',
                                 'pce_before', 'output'], lines[0].keys()
for l, r in zip(lines, rows):
    assert int(l['pool_size']) == r['pool_size'] and l['output'] == r['output']
    assert r['pool_max'] == 0 and int(l['pool_max']) == 0, r
    # The last candidate taken at τ: the pool's last one with PSNR ≥ τ (iterations 10, 20, ...).
    last = max(10 * (i + 1) for i, p in enumerate(e['psnrs']) if p >= r['psnr_min'])
    assert r['last_iteration'] == last and int(l['last_iteration']) == last, (r, last)
    assert abs(float(l['psnr']) - r['psnr']) < 1e-6 * r['psnr']
"

# Space-separated lists, τ with a decimal, an empty pool at τ = 60 (warning row, no image, exit 0).
expect_ok "sweep with an empty τ" "$DIPPAS" assemble --quiet --pool "$T/pool" --prnu "$T/K.npy" \
  --block-size 32 --top 2 --psnr-min 37.5 60 --out-dir "$T/sweep2"
grep -q "warning.*no candidate" "$T/err" || bad "empty τ: no warning on stderr: $(cat "$T/err")"
check "empty τ row" "
import json, os
t = '$T'
e = json.load(open(t + '/expect.json'))
rows = json.load(open(t + '/sweep2/sweep.json'))['rows']
assert len(rows) == 2, rows
assert rows[0]['psnr_min'] == 37.5 and rows[0]['pool_size'] == e['37.5'], rows[0]
assert os.path.isfile(t + '/sweep2/assembled_B32_L2_tau37.5.png')
assert rows[1]['pool_size'] == 0 and rows[1]['output'] is None and rows[1]['psnr'] is None, rows[1]
assert not any('tau60' in f for f in os.listdir(t + '/sweep2'))
"

# --order-by-abs: recorded in the rows; with B = the whole image and L = 1, Î is the one candidate
# of least |ρ|, so its |NCC| is at most that of the paper's order (negative ρ first).
expect_ok "paper order" "$DIPPAS" assemble --quiet --pool "$T/pool" --prnu "$T/K.npy" \
  --block-size 64 --top 1 --psnr-min 0 --out-dir "$T/order0"
expect_ok "order by |ρ|" "$DIPPAS" assemble --quiet --pool "$T/pool" --prnu "$T/K.npy" \
  --block-size 64 --top 1 --psnr-min 0 --order-by-abs --out-dir "$T/order1"
check "order rows" "
import json
r0 = json.load(open('$T/order0/sweep.json'))['rows'][0]
r1 = json.load(open('$T/order1/sweep.json'))['rows'][0]
assert r0['order_by_abs'] is False and r1['order_by_abs'] is True, (r0, r1)
assert abs(r1['ncc_after']) <= abs(r0['ncc_after']) + 1e-12, (r0['ncc_after'], r1['ncc_after'])
print(r0['ncc_after'], r1['ncc_after'])"

# --pool-max M: the first M candidates at τ, what a run with pool_max = M keeps. The reference is
# independent of the option: the pool cut by numpy after its M-th candidate at τ, assembled whole;
# the images must be the same bytes. M = 0 is the whole pool; M beyond the pool, the whole pool.
expect_ok "pool-max" "$DIPPAS" assemble --quiet --pool "$T/pool" --prnu "$T/K.npy" \
  --block-size 16 --top 2 --psnr-min 0,38 --pool-max 3,0,100 --out-dir "$T/pmax"
for tau in 0 38; do
  "$PY" - "$T" "$tau" <<'EOF2' || bad "could not cut the pool for τ = $tau"
import json, os, sys
import numpy as np
t, tau = sys.argv[1], float(sys.argv[2])
meta = json.load(open(t + '/pool/pool.json'))
at_tau = [i for i, c in enumerate(meta['candidates']) if c['psnr'] >= tau]
n = at_tau[2] + 1  # up to the third candidate at τ
d = '%s/pool_cut%g' % (t, tau)
os.makedirs(d)
np.save(d + '/pool.npy', np.load(t + '/pool/pool.npy')[:n])
meta['candidates'] = meta['candidates'][:n]
json.dump(meta, open(d + '/pool.json', 'w'))
EOF2
  expect_ok "cut pool τ=$tau" "$DIPPAS" assemble --quiet --pool "$T/pool_cut$tau" --prnu "$T/K.npy" \
    --block-size 16 --top 2 --psnr-min "$tau" --out-dir "$T/cut$tau"
  cmp -s "$T/pmax/assembled_B16_L2_tau${tau}_M3.png" "$T/cut$tau/assembled_B16_L2_tau$tau.png" ||
    bad "--pool-max 3 at τ=$tau differs from the pool cut after its third candidate"
  cmp -s "$T/pmax/assembled_B16_L2_tau${tau}_M0.png" "$T/pmax/assembled_B16_L2_tau${tau}_M100.png" ||
    bad "--pool-max 0 and 100 (beyond the pool) differ at τ=$tau"
  cmp -s "$T/pmax/assembled_B16_L2_tau${tau}_M3.png" "$T/pmax/assembled_B16_L2_tau${tau}_M0.png" &&
    bad "--pool-max 3 gave the whole pool's image at τ=$tau: the test cannot tell them apart"
done
check "pool-max rows" "
import json
e = json.load(open('$T/expect.json'))
rows = json.load(open('$T/pmax/sweep.json'))['rows']
assert [(r['psnr_min'], r['pool_max']) for r in rows] == [(0, 3), (0, 0), (0, 100), (38, 3), (38, 0),
                                                          (38, 100)], rows
for r in rows:
    at_tau = [10 * (i + 1) for i, p in enumerate(e['psnrs']) if p >= r['psnr_min']]
    want = at_tau[:r['pool_max']] if r['pool_max'] else at_tau
    assert r['pool_size'] == len(want) and r['last_iteration'] == want[-1], (r, want)
"
# Only the head of the pool is read when every combination stops at its M-th candidate: with
# M = 3 at τ = 0 (every synthetic candidate), the first three, not the whole pool.
expect_ok "pool-max head" "$DIPPAS" assemble --pool "$T/pool" --prnu "$T/K.npy" \
  --block-size 16 --top 2 --psnr-min 0 --pool-max 3 --out-dir "$T/phead"
grep -q "3 with PSNR ≥ 0 dB to read" "$T/out" "$T/err" ||
  bad "--pool-max 3 at τ=0 does not read just the pool's first 3 candidates: $(grep -h 'to read' "$T/out" "$T/err")"
cmp -s "$T/phead/assembled_B16_L2_tau0_M3.png" "$T/pmax/assembled_B16_L2_tau0_M3.png" ||
  bad "--pool-max 3 alone differs from --pool-max 3 in a sweep with the whole pool"
expect_error "--pool-max -1" "--pool-max -1" -- "$DIPPAS" assemble --quiet --prnu "$T/K.npy" \
  --pool "$T/pool" --block-size 64 --top 1 --psnr-min 38 --pool-max -1 --out-dir "$T/bad"

# Blind mode: P = residual(I); no NCC/PCE without --eval-prnu, numbers with it; --image override.
expect_ok "blind" "$DIPPAS" assemble --quiet --pool "$T/pool" --blind --image "$T/orig.png" \
  --block-size 64 --top 1 --psnr-min 0 --out-dir "$T/blind"
expect_ok "blind with eval" "$DIPPAS" assemble --quiet --pool "$T/pool" --blind \
  --eval-prnu "$T/K2.npy" \
  --block-size 64 --top 1 --psnr-min 0 --out-dir "$T/blind2"
check "blind rows" "
import json
t = '$T'
r = json.load(open(t + '/blind/sweep.json'))['rows'][0]
assert r['pool_size'] == 8 and r['psnr'] is not None, r
assert all(r[k] is None for k in ('ncc_after', 'pce_after', 'ncc_before', 'pce_before')), r
r2 = json.load(open(t + '/blind2/sweep.json'))['rows'][0]
keys = ('ncc_after', 'pce_after', 'ncc_before', 'pce_before')
assert all(isinstance(r2[k], float) for k in keys), r2
assert r2['psnr'] == r['psnr'], (r, r2)  # same P, same selection; K2 only evaluates
"

# --- bad inputs ---------------------------------------------------------------------------------
A=("$DIPPAS" assemble --quiet --prnu "$T/K.npy" --psnr-min 38 --out-dir "$T/bad")
expect_error "missing pool folder" "$T/nope" -- "${A[@]}" --pool "$T/nope" --block-size 64 --top 1
cp -r "$T/pool" "$T/poolN"
"$PY" -c "
import json
p = '$T/poolN/pool.json'; j = json.load(open(p)); j['candidates'].pop(); json.dump(j, open(p, 'w'))"
expect_error "pool.json with wrong N" "poolN/pool\.(npy|json).*(7|8)" -- "${A[@]}" \
  --pool "$T/poolN" \
  --block-size 64 --top 1
expect_error "--top 0" "--top 0" -- "${A[@]}" --pool "$T/pool" --block-size 64 --top 0
expect_error "--block-size 1000" "--block-size 1000.*64x64" -- "${A[@]}" --pool "$T/pool" \
  --block-size 1000 --top 1
expect_error "--block-size 0" "--block-size 0" -- "${A[@]}" --pool "$T/pool" --block-size 16,0 \
  --top 1
expect_error "neither --prnu nor --blind" "--prnu.*--blind" -- "$DIPPAS" assemble --pool "$T/pool" \
  --block-size 64 --top 1 --psnr-min 38 --out-dir "$T/bad"
expect_error "both --prnu and --blind" "excludes" -- "${A[@]}" --blind --pool "$T/pool" \
  --block-size 64 --top 1
expect_error "image size differs from the pool" "orig\.png.*32x32.*pool\.npy.*64x64" -- "${A[@]}" \
  --pool "$T/pool" --block-size 16 --top 1 --crop 32
expect_error "missing --block-size" "block-size" -- "${A[@]}" --pool "$T/pool" --top 1
[ ! -e "$T/bad" ] || [ -z "$(ls -A "$T/bad")" ] || bad "a failed run left files: $(ls -A "$T/bad")"


# --- an output that names an input is refused before any work; the input is unchanged ------------
mkdir -p "$T/al"
cp "$T/K.npy" "$T/K.keep"
ln -s "$T/K.npy" "$T/al/sweep.json"
expect_error "assemble: sweep.json is a link to --prnu" "--out-dir .*sweep.json.*same file as the input --prnu" -- \
  "$DIPPAS" assemble --quiet --prnu "$T/K.npy" --pool "$T/pool" --block-size 64 --top 1 --psnr-min 0 \
  --out-dir "$T/al"
[ -L "$T/al/sweep.json" ] && cmp -s "$T/K.npy" "$T/K.keep" || bad "assemble replaced its pattern (link)"
mkdir -p "$T/al2"
cp "$T/orig.png" "$T/al2/assembled_B64_L1_tau0.png"
expect_error "assemble: an image is --image" "--out-dir .*assembled_B64_L1_tau0.png.*same file as the input --image" -- \
  "$DIPPAS" assemble --quiet --prnu "$T/K.npy" --pool "$T/pool" --image "$T/al2/assembled_B64_L1_tau0.png" \
  --block-size 64 --top 1 --psnr-min 0 --out-dir "$T/al2/../al2"
cmp -s "$T/al2/assembled_B64_L1_tau0.png" "$T/orig.png" || bad "assemble replaced its original image"

finish
