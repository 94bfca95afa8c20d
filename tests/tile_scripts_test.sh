#!/usr/bin/env bash
# The tile measuring scripts end to end on examples/ (the smoke network, 128² crops, tiles of 64):
# scripts/bench_concurrent_tiles.sh prints its three runs and finds the concurrent output equal
# to the serial one-thread run; scripts/warm_start_pilot.sh anonymizes cold (tiles two at once)
# and warm, each tile the asked iterations, judged with a fingerprint from the other five
# flat-fields than the anonymizer's, and writes its per-tile rows; a rerun reuses its runs, one
# with other settings makes them again.
set -u
DIPPAS=${1:?usage: tile_scripts_test.sh DIPPAS SOURCE_DIR}
SRC=${2:?usage: tile_scripts_test.sh DIPPAS SOURCE_DIR}
export LC_ALL=C DIPPAS
for tool in /usr/bin/time /usr/bin/python3; do
  [ -x "$tool" ] || { echo "SKIP: $tool absent (apt-get install time python3)"; exit 77; }
done
T=$(mktemp -d "${TMPDIR:-/tmp}/dippas_tile_scripts.$$.XXXXXX")
trap 'rm -rf "$T"' EXIT
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

"$SRC/scripts/bench_concurrent_tiles.sh" --crop 128 --tile 64 --iterations 4 --threads 2 \
  --config "$SRC/configs/smoke.yaml" >"$T/bench" 2>&1 || bad "bench_concurrent_tiles.sh failed: $(cat "$T/bench")"
grep -q "concurrent output = serial with 1 thread(s): bit for bit" "$T/bench" ||
  bad "bench: no bit-for-bit line: $(cat "$T/bench")"
[ "$(grep -cE '^(serial|concurrent), ' "$T/bench")" -eq 3 ] || bad "bench: not three runs: $(cat "$T/bench")"
grep -qE '^speed-up, concurrent over serial: +[0-9.]+×$' "$T/bench" || bad "bench: no speed-up line"

pilot() {
  "$SRC/scripts/warm_start_pilot.sh" "$SRC/examples" "$T/pilot" --crop 128 --tile 64 \
    --max-iterations 5 --threads 2 --config "$SRC/configs/smoke.yaml" \
    --photos Nikon_D70s_1_22824.png
}
pilot >"$T/table" 2>"$T/pilot.err" || bad "warm_start_pilot.sh failed: $(cat "$T/pilot.err")"
/usr/bin/python3 - "$T" <<'PY' || fails=$((fails + 1))
import json, sys
t = sys.argv[1]
rows = [l for l in open(f"{t}/table") if l.startswith("| Nikon")]
assert len(rows) == 2 and "| cold |" in rows[0] and "| warm |" in rows[1], rows
for r in rows:
    assert "| 20 (5, 5, 5, 5) |" in r, r
cold = json.load(open(f"{t}/pilot/Nikon_D70s_1_22824.cold.json"))
warm = json.load(open(f"{t}/pilot/Nikon_D70s_1_22824.warm.json"))
assert cold["config"]["concurrent_tiles"] == 2 and cold["config"]["warm_start"] == 0, cold["config"]
assert warm["config"]["warm_start"] == 1, warm["config"]
for m in (cold, warm):
    assert m["prnu"].endswith("Nikon_D70s_1_K_anon.npy") and m["eval_prnu"].endswith("Nikon_D70s_1_K_judge.npy"), m
    assert len(m["tiles"]) == 4
# The judge's fingerprint is made of the other five flat-fields.
qa = json.load(open(f"{t}/pilot/Nikon_D70s_1_K_anon.npy.quality.json"))
qj = json.load(open(f"{t}/pilot/Nikon_D70s_1_K_judge.npy.quality.json"))
assert qa["images"] == qj["images"] == 5, (qa, qj)
assert open(f"{t}/pilot/Nikon_D70s_1_K_anon.npy", "rb").read() != open(f"{t}/pilot/Nikon_D70s_1_K_judge.npy", "rb").read()
csv = open(f"{t}/pilot/tiles.csv").read().split()
assert csv[0] == "photo,variant,tile,iterations,stop_reason,core_psnr,pool_size" and len(csv) == 9, csv
PY
ls -l --time-style=+%s.%N "$T"/pilot/*.png >"$T/before"
pilot >"$T/table2" 2>&1 || bad "warm_start_pilot.sh rerun failed"
ls -l --time-style=+%s.%N "$T"/pilot/*.png >"$T/after"
cmp -s "$T/before" "$T/after" || bad "the rerun redid finished runs"
cmp -s "$T/table" "$T/table2" || bad "the rerun printed another table"
# Other settings: the runs are made again (their .key differs), the fingerprints kept.
ls -l --time-style=+%s.%N "$T"/pilot/*.npy >"$T/kbefore"
"$SRC/scripts/warm_start_pilot.sh" "$SRC/examples" "$T/pilot" --crop 128 --tile 64 \
  --max-iterations 3 --threads 2 --config "$SRC/configs/smoke.yaml" \
  --photos Nikon_D70s_1_22824.png >"$T/table3" 2>&1 || bad "warm_start_pilot.sh with 3 iterations failed"
grep -q "| 12 (3, 3, 3, 3) |" "$T/table3" || bad "another --max-iterations reused the old runs: $(cat "$T/table3")"
ls -l --time-style=+%s.%N "$T"/pilot/*.npy >"$T/kafter"
cmp -s "$T/kbefore" "$T/kafter" || bad "another --max-iterations made the fingerprints again"

if [ "$fails" -gt 0 ]; then
  echo "$fails failure(s)"
  exit 1
fi
echo "tile scripts: all checks passed"
