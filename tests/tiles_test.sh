#!/usr/bin/env bash
# Tiled anonymization end to end, on a 192×160 crop cut in 3×3 tiles of 64 by a tiny network:
# same seed → same bytes; an interrupted run writes no final image, keeps its finished tiles in
# a 0700 work folder and says how to resume; the resumed run is byte-identical to an
# uninterrupted one; other settings start the work folder over; success removes it.
# Usage: tiles_test.sh DIPPAS SOURCE_DIR SHARED_DIR
set -uo pipefail
DIPPAS=$1
SRC=$2
source "$(dirname "$0")/cli_lib.sh"

NAT=$SRC/examples/natural/Nikon_D70s_1_22824.png
mkdir -p "$T/in"
expect_ok "fingerprint" "$DIPPAS" fingerprint --quiet --crop 160 "$SRC/examples/flatfield" --out "$T/in/K.npy"
# A 160×160 crop: tiles of 64 give 3×3 tiles (the last row and column 32 wide).
TINY=(--set input_depth=4 --set filters=4,8 --set skips=4 --set lr=0.01 --max-iterations 6
      --psnr-min 5 --psnr-stop 99 --block-size 32 --top 2 --tile-size 64 --threads 1)
A=("$DIPPAS" anonymize --image "$NAT" --prnu "$T/in/K.npy" --crop 160 "${TINY[@]}")

expect_ok "uninterrupted run" "${A[@]}" --quiet --out "$T/a.png" --history "$T/a.csv"
expect_ok "second run, same seed" "${A[@]}" --quiet --out "$T/b.png"
if cmp -s "$T/a.png" "$T/b.png"; then ok; else bad "same seed: outputs differ"; fi
[ -e "$T/a.png.tiles" ] && bad "work folder left after success"
check "metrics: 9 tiles, whole-image scores" "
import json
m = json.load(open('$T/a.json'))
assert m['size'] == [160, 160] and m['tile_size'] == 64, m
t = m['tiles']
assert len(t) == 9, len(t)
assert [x['box'] for x in t][:4] == [[0, 0, 64, 64], [0, 64, 64, 64], [0, 128, 64, 32], [64, 0, 64, 64]], t[:4]
assert all(x['iterations'] == 6 and x['stop_reason'] == 'max_iterations' for x in t), t
assert sum(x['iterations'] for x in t) == m['iterations'] == 54
for k in ('psnr', 'ncc_before', 'ncc_after', 'pce_before', 'pce_after'):
    assert isinstance(m[k], float), k
assert m['stop_reason'] == 'completed' and m['gamma'] is None
"
check "history: a tile column" "
rows = open('$T/a.csv').read().split()
assert rows[0] == 'tile,iteration,loss,psnr,gamma,admitted,ncc', rows[0]
assert len(rows) == 1 + 54 and rows[-1].startswith('8,6,'), rows[-1]
"

# Interrupted after 4 tiles (test hook: the process sends itself SIGINT when the 4th is saved).
DIPPAS_TEST_SIGNAL_AT=tiles-done-4 "${A[@]}" --out "$T/c.png" 2>"$T/c.err"
rc=$?
[ $rc -eq 3 ] || bad "interrupted: exit $rc, expected 3: $(tail -2 "$T/c.err")"
[ -e "$T/c.png" ] && bad "interrupted: a final image was written"
[ -e "$T/c.json" ] && bad "interrupted: metrics were written"
n=$(ls "$T/c.png.tiles"/tile-*.json 2>/dev/null | wc -l)
[ "$n" -eq 4 ] || bad "interrupted: $n finished tiles kept, expected 4"
mode_is "$T/c.png.tiles" 700 "work folder"
grep -q "resume with: dippas anonymize" "$T/c.err" || bad "interrupted: no resume command: $(cat "$T/c.err")"
# Resumed: the 4 tiles are reused, the result is byte-identical to the uninterrupted run.
"${A[@]}" --out "$T/c.png" 2>"$T/c2.err"
rc=$?
[ $rc -eq 0 ] || bad "resume: exit $rc: $(tail -2 "$T/c2.err")"
grep -q "resumed: 4 of 9 tiles" "$T/c2.err" || bad "resume: no 'resumed' note: $(cat "$T/c2.err")"
if cmp -s "$T/a.png" "$T/c.png"; then ok; else bad "resumed output differs from the uninterrupted one"; fi
[ -e "$T/c.png.tiles" ] && bad "resume: work folder left after success"
check "resume: reused tiles flagged" "
import json
t = json.load(open('$T/c.json'))['tiles']
assert [x['reused'] for x in t] == [True] * 4 + [False] * 5, [x['reused'] for x in t]
"

# Tiles at once (--concurrent-tiles 2, --threads 2: one thread each): the same bytes as one at
# a time with --threads 1 and the same history rows; interrupted and resumed, the same again.
C=()
for ((i = 0; i < ${#A[@]}; i++)); do
  if [ "${A[i]}" = --threads ]; then C+=(--threads 2 --concurrent-tiles 2); i=$((i + 1)); else C+=("${A[i]}"); fi
done
expect_ok "tiles at once" "${C[@]}" --quiet --out "$T/p.png" --history "$T/p.csv"
if cmp -s "$T/a.png" "$T/p.png"; then ok; else bad "tiles at once: output differs from one at a time"; fi
check "tiles at once: the same history rows, the same tiles in the metrics" "
import json
a, p = open('$T/a.csv').read().split(), open('$T/p.csv').read().split()
assert a[0] == p[0] and sorted(a[1:]) == sorted(p[1:]), (len(a), len(p))
ta, tp = json.load(open('$T/a.json'))['tiles'], json.load(open('$T/p.json'))['tiles']
assert [(x['index'], x['iterations'], x['psnr']) for x in ta] == [(x['index'], x['iterations'], x['psnr']) for x in tp]
"
DIPPAS_TEST_SIGNAL_AT=tiles-done-3 "${C[@]}" --out "$T/q.png" 2>"$T/q.err"
rc=$?
[ $rc -eq 3 ] || bad "tiles at once, interrupted: exit $rc, expected 3: $(tail -2 "$T/q.err")"
[ -e "$T/q.png" ] && bad "tiles at once, interrupted: a final image was written"
n=$(ls "$T/q.png.tiles"/tile-*.json 2>/dev/null | wc -l)
[ "$n" -ge 3 ] && [ "$n" -le 4 ] || bad "tiles at once, interrupted: $n finished tiles kept, expected 3 or 4"
"${C[@]}" --out "$T/q.png" 2>"$T/q2.err" || bad "tiles at once, resume: $(tail -2 "$T/q2.err")"
grep -q "resumed: [34] of 9 tiles" "$T/q2.err" || bad "tiles at once, resume: no 'resumed' note: $(cat "$T/q2.err")"
if cmp -s "$T/a.png" "$T/q.png"; then ok; else bad "tiles at once, resumed: output differs"; fi
expect_error "tiles at once with warm_start" "concurrent_tiles.*warm_start" -- "${C[@]}" --set warm_start=1 --out "$T/r.png"

# Other settings: the work folder of an interrupted run is started over, and says so.
DIPPAS_TEST_SIGNAL_AT=tiles-done-2 "${A[@]}" --quiet --out "$T/d.png" 2>/dev/null
"${A[@]}" --seed 5 --out "$T/d.png" 2>"$T/d.err"
grep -q "other inputs or settings; starting over" "$T/d.err" || bad "changed settings: no restart note: $(cat "$T/d.err")"
grep -q "resumed" "$T/d.err" && bad "changed settings: tiles were reused"
expect_ok "seed 5 from scratch" "${A[@]}" --quiet --seed 5 --out "$T/e.png"
if cmp -s "$T/d.png" "$T/e.png"; then ok; else bad "restarted run differs from a fresh one"; fi
# --keep-tiles keeps it.
expect_ok "keep tiles" "${A[@]}" --quiet --keep-tiles --out "$T/f.png"
n=$(ls "$T/f.png.tiles"/tile-*.png 2>/dev/null | wc -l)
[ "$n" -eq 9 ] || bad "--keep-tiles: $n tiles kept, expected 9"
# Whole-image candidates cannot be pooled across tiles.
expect_error "pool with tiles" "save-pool keeps whole-image candidates" -- "${A[@]}" --out "$T/g.png" --save-pool "$T/pool"
# Blind mode: P is the whole image's residual, cropped per tile.
expect_ok "blind, tiled" "$DIPPAS" anonymize --quiet --image "$NAT" --blind --crop 160 "${TINY[@]}" --out "$T/h.png"
# warm_start: each tile starts from the network the tile before ended with. Interrupted after 4
# tiles and resumed, byte-identical to an uninterrupted warm run (the network of the 4th tile is
# kept in the work folder, and only the two latest); not the same image as a cold run.
W=("${A[@]}" --set warm_start=1)
expect_ok "warm run" "${W[@]}" --quiet --out "$T/w.png"
cmp -s "$T/a.png" "$T/w.png" && bad "warm_start changed nothing"
DIPPAS_TEST_SIGNAL_AT=tiles-done-4 "${W[@]}" --out "$T/w2.png" 2>"$T/w2.err"
rc=$?
[ $rc -eq 3 ] || bad "warm, interrupted: exit $rc, expected 3: $(tail -2 "$T/w2.err")"
nets=$(cd "$T/w2.png.tiles" && ls tile-*.net 2>/dev/null | tr '\n' ' ')
[ "$nets" = "tile-00002.net tile-00003.net " ] || bad "warm, interrupted: networks kept: '$nets'"
"${W[@]}" --out "$T/w2.png" 2>"$T/w2b.err"
rc=$?
[ $rc -eq 0 ] || bad "warm resume: exit $rc: $(tail -2 "$T/w2b.err")"
if cmp -s "$T/w.png" "$T/w2.png"; then ok; else bad "warm: resumed output differs from the uninterrupted one"; fi
# Without the kept network the run cannot go on warm: it says so instead of starting cold.
DIPPAS_TEST_SIGNAL_AT=tiles-done-4 "${W[@]}" --out "$T/w3.png" 2>/dev/null
rm -f "$T/w3.png.tiles"/tile-*.net
expect_error "warm resume without the network" "warm_start: the network of tile 4 .* is not kept" -- \
  "${W[@]}" --out "$T/w3.png"
finish
