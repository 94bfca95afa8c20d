#!/usr/bin/env bash
# Checkpoints (anonymize --checkpoint): a run stopped by SIGTERM, SIGUSR1 or a crash (SIGKILL)
# resumes from its saved loop state and ends byte for byte as an uninterrupted run with the same
# seed and threads — image and history — untiled and tiled; nothing final is written by the
# interrupted run; a corrupt checkpoint, one of other settings, or a foreign folder is an error
# (--restart discards a checkpoint of other settings, never a foreign folder); repeated SIGTERMs
# do not abort; the folder is removed on success. The history's rows are live in H.part meanwhile.
# Usage: checkpoint_test.sh DIPPAS SOURCE_DIR
set -uo pipefail
DIPPAS=$1
SRC=$2
source "$(dirname "$0")/cli_lib.sh"

NAT=$SRC/examples/natural/Nikon_D70s_1_22824.png
mkdir -p "$T/in"
expect_ok "fingerprint" "$DIPPAS" fingerprint --quiet --crop 128 "$SRC/examples/flatfield" --out "$T/in/K.npy"
# A tiny network, the pool filling from the first iterations, no stop before max_iterations.
TINY=(--set input_depth=4 --set filters=4,8 --set skips=4 --set lr=0.01 --psnr-min 5 --psnr-stop 99
      --block-size 32 --top 2 --threads 1)
B=("$DIPPAS" anonymize --image "$NAT" --prnu "$T/in/K.npy" --crop 64 "${TINY[@]}")
U=("${B[@]}" --max-iterations 30)

# --- untiled: SIGTERM at iteration 17, resume, compare with the uninterrupted run ----------
expect_ok "uninterrupted run" "${U[@]}" --quiet --out "$T/a.png" --history "$T/a.csv"
DIPPAS_TEST_SIGNAL_AT=iteration-17 DIPPAS_TEST_SIGNAL=TERM \
  "${U[@]}" --quiet --out "$T/b.png" --history "$T/b.csv" --checkpoint "$T/ck" >"$T/out" 2>"$T/err"
rc=$?
[ $rc -eq 3 ] || bad "SIGTERM with a checkpoint: exit $rc, expected 3: $(tail -2 "$T/err")"
grep -q "checkpoint saved at iteration 17 in $T/ck" "$T/err" && ok || bad "no 'checkpoint saved at iteration 17': $(cat "$T/err")"
[ -e "$T/b.png" ] || [ -e "$T/b.json" ] || [ -e "$T/b.csv" ] && bad "interrupted run wrote final outputs" || ok
[ "$(wc -l <"$T/b.csv.part")" = 18 ] && ok || bad "live history b.csv.part: $(wc -l <"$T/b.csv.part") lines, expected 18"
mode_is "$T/ck" 700 "checkpoint folder"
[ -s "$T/ck/tile-00000.ckpt" ] && ok || bad "no loop state in the checkpoint folder: $(ls "$T/ck")"
"${U[@]}" --quiet --out "$T/b.png" --history "$T/b.csv" --checkpoint "$T/ck" >"$T/out" 2>"$T/err" ||
  bad "resumed run: exit $?: $(tail -2 "$T/err")"
grep -q "resumed from iteration 17 (checkpoint $T/ck)" "$T/err" && ok || bad "no 'resumed from iteration 17': $(cat "$T/err")"
cmp -s "$T/a.png" "$T/b.png" && ok || bad "SIGTERM + resume: image differs from the uninterrupted run"
cmp -s "$T/a.csv" "$T/b.csv" && ok || bad "SIGTERM + resume: history differs from the uninterrupted run"
[ -e "$T/ck" ] && bad "checkpoint folder left after success" || ok
check "metrics of the resumed run: 30 iterations, max_iterations" "
import json
m = json.load(open('$T/b.json'))
assert m['iterations'] == 30 and m['stop_reason'] == 'max_iterations', m
assert m['tiles'][0]['iterations'] == 30
"

# --- a crash (SIGKILL) after periodic saves every 5 iterations: resumes from 10 -------------
DIPPAS_TEST_SIGNAL_AT=iteration-13 DIPPAS_TEST_SIGNAL=KILL \
  "${U[@]}" --quiet --out "$T/c.png" --history "$T/c.csv" --checkpoint "$T/ckk" --set checkpoint_every=5 \
  >"$T/out" 2>"$T/err"
rc=$?
[ $rc -eq 137 ] || [ $rc -eq 9 ] || bad "SIGKILL: exit $rc"
# The history's rows so far, live in c.csv.part: the header and iterations 1–12 (killed at 13).
check "the killed run's live history c.csv.part: iterations 1 to 12, as the uninterrupted run's" "
live = open('$T/c.csv.part').read().splitlines()
full = open('$T/a.csv').read().splitlines()
assert live[0] == 'iteration,loss,psnr,gamma,admitted,ncc', live[:1]
assert [r.split(',')[0] for r in live[1:]] == [str(i) for i in range(1, 13)], live
assert live == full[:13], (live[-1], full[12])
"
# Killed again after resuming from 10: the rows restored from the checkpoint lead the live file.
DIPPAS_TEST_SIGNAL_AT=iteration-3 DIPPAS_TEST_SIGNAL=KILL \
  "${U[@]}" --quiet --out "$T/c.png" --history "$T/c.csv" --checkpoint "$T/ckk" --set checkpoint_every=5 \
  >"$T/out" 2>"$T/err"
check "killed again after a resume: c.csv.part holds iterations 1 to 12" "
live = open('$T/c.csv.part').read().splitlines()
assert live == open('$T/a.csv').read().splitlines()[:13], (len(live), live[-1:])
"
"${U[@]}" --quiet --out "$T/c.png" --history "$T/c.csv" --checkpoint "$T/ckk" --set checkpoint_every=5 \
  >"$T/out" 2>"$T/err" || bad "resume after a crash: exit $?: $(tail -2 "$T/err")"
grep -q "resumed from iteration 10 " "$T/err" && ok || bad "crash: no 'resumed from iteration 10': $(cat "$T/err")"
cmp -s "$T/a.png" "$T/c.png" && ok || bad "crash + resume: image differs from the uninterrupted run"
cmp -s "$T/a.csv" "$T/c.csv" && ok || bad "crash + resume: history differs from the uninterrupted run"
[ -e "$T/c.csv.part" ] && bad "c.csv.part left after the history was written" || ok
# A file at H.part that is not a history is the user's: an error, and it is left as it was.
echo "my notes" >"$T/f.csv.part"
"${U[@]}" --quiet --out "$T/f.png" --history "$T/f.csv" >"$T/out" 2>"$T/err"
rc=$?
[ $rc -ne 0 ] && grep -q "f.csv.part: exists and is not a dippas history" "$T/err" && ok ||
  bad "a foreign f.csv.part: exit $rc, $(tail -1 "$T/err")"
[ "$(cat "$T/f.csv.part")" = "my notes" ] && [ ! -e "$T/f.png" ] && ok || bad "a foreign f.csv.part was overwritten"

# --- --save-pool with --checkpoint: the pool resumes with the loop -------------------------
# The frames so far wait in the pool folder's .pool.npy.partial; the resumed run's pool is the
# uninterrupted run's, byte for byte, after a SIGTERM (saved at 17) and a crash (saved at 10,
# the spool already holding the frames of 11 and 12, which the resumed loop makes again).
expect_ok "uninterrupted run with a pool" "${U[@]}" --quiet --out "$T/pa.png" --save-pool "$T/pa"
DIPPAS_TEST_SIGNAL_AT=iteration-17 DIPPAS_TEST_SIGNAL=TERM \
  "${U[@]}" --quiet --out "$T/pb.png" --save-pool "$T/pb" --checkpoint "$T/ckpb" >"$T/out" 2>"$T/err"
rc=$?
[ $rc -eq 3 ] || bad "SIGTERM with a pool and a checkpoint: exit $rc, expected 3: $(tail -2 "$T/err")"
[ "$(ls -A "$T/pb")" = ".pool.npy.partial" ] && ok || bad "interrupted run's pool folder: $(ls -A "$T/pb"), expected .pool.npy.partial only"
"${U[@]}" --quiet --out "$T/pb.png" --save-pool "$T/pb" --checkpoint "$T/ckpb" >"$T/out" 2>"$T/err" ||
  bad "resumed run with a pool: exit $?: $(tail -2 "$T/err")"
DIPPAS_TEST_SIGNAL_AT=iteration-13 DIPPAS_TEST_SIGNAL=KILL "${U[@]}" --quiet --out "$T/pc.png" \
  --save-pool "$T/pc" --checkpoint "$T/ckpc" --set checkpoint_every=5 >"$T/out" 2>"$T/err"
"${U[@]}" --quiet --out "$T/pc.png" --save-pool "$T/pc" --checkpoint "$T/ckpc" --set checkpoint_every=5 \
  >"$T/out" 2>"$T/err" || bad "resumed run with a pool after a crash: exit $?: $(tail -2 "$T/err")"
grep -q "resumed from iteration 10 " "$T/err" && ok || bad "pool, crash: no 'resumed from iteration 10': $(cat "$T/err")"
for p in pb pc; do
  cmp -s "$T/pa.png" "$T/$p.png" && ok || bad "$p: image differs from the uninterrupted run"
  cmp -s "$T/pa/pool.npy" "$T/$p/pool.npy" && ok || bad "$p: pool.npy differs from the uninterrupted run's"
  cmp -s "$T/pa/pool.json" "$T/$p/pool.json" && ok || bad "$p: pool.json differs from the uninterrupted run's"
  [ "$(ls -A "$T/$p")" = "$(printf 'pool.json\npool.npy')" ] && ok || bad "$p: pool folder holds $(ls -A "$T/$p")"
done
check "the pool holds candidates from before and after the interruptions" "
import json
its = [c['iteration'] for c in json.load(open('$T/pc/pool.json'))['candidates']]
assert min(its) < 10 and max(its) > 17, its
"
# A checkpoint without the pool's frames is not resumed into a pool missing its first candidates.
DIPPAS_TEST_SIGNAL_AT=iteration-5 DIPPAS_TEST_SIGNAL=TERM \
  "${U[@]}" --quiet --out "$T/pd.png" --checkpoint "$T/ckpd" >/dev/null 2>&1
expect_error "checkpoint without a pool, resumed with --save-pool" \
  "ckpd: saved by a run without --save-pool .*remove .*ckpd to start over" -- \
  "${U[@]}" --quiet --out "$T/pd.png" --checkpoint "$T/ckpd" --save-pool "$T/pd"
[ -e "$T/pd/pool.npy" ] || [ -e "$T/pd.png" ] && bad "refused resume wrote outputs" || ok
DIPPAS_TEST_SIGNAL_AT=iteration-5 DIPPAS_TEST_SIGNAL=TERM \
  "${U[@]}" --quiet --out "$T/pe.png" --checkpoint "$T/ckpe" --save-pool "$T/pe" >/dev/null 2>&1
expect_error "resumed with another pool folder" \
  "pe2/.pool.npy.partial: holds 0 candidates .* the checkpoint [0-9]+: not the pool of the interrupted run \(give its --save-pool folder" -- \
  "${U[@]}" --quiet --out "$T/pe.png" --checkpoint "$T/ckpe" --save-pool "$T/pe2"
expect_ok "resumed without --save-pool" "${U[@]}" --quiet --out "$T/pe.png" --checkpoint "$T/ckpe"
cmp -s "$T/pa.png" "$T/pe.png" && ok || bad "resumed without --save-pool: image differs from the uninterrupted run"

# --- the plateau rule's window state survives a resume mid-window --------------------------
# psnr_stop 99 is out of reach: the rule stops the run at the first check (2W = 12); a resume
# at 9 that lost the first window's mean would not stop there.
P=("${B[@]}" --max-iterations 60 --set plateau_window=6)
expect_ok "plateau run" "${P[@]}" --quiet --out "$T/p1.png" --history "$T/p1.csv"
check "uninterrupted plateau run stops at 12" "
import json
m = json.load(open('$T/p1.json'))
assert m['iterations'] == 12 and m['stop_reason'] == 'plateau', (m['iterations'], m['stop_reason'])
"
DIPPAS_TEST_SIGNAL_AT=iteration-9 DIPPAS_TEST_SIGNAL=TERM \
  "${P[@]}" --quiet --out "$T/p2.png" --history "$T/p2.csv" --checkpoint "$T/ckp" >"$T/out" 2>"$T/err"
[ $? -eq 3 ] || bad "plateau run: SIGTERM at 9 did not checkpoint: $(tail -2 "$T/err")"
"${P[@]}" --quiet --out "$T/p2.png" --history "$T/p2.csv" --checkpoint "$T/ckp" >"$T/out" 2>"$T/err" ||
  bad "plateau run resumed: exit $?: $(tail -2 "$T/err")"
cmp -s "$T/p1.png" "$T/p2.png" && ok || bad "plateau + resume: image differs from the uninterrupted run"
cmp -s "$T/p1.csv" "$T/p2.csv" && ok || bad "plateau + resume: history differs (stopped elsewhere?)"

# --- a restart (restarts = 1): τ out of reach, so the first attempt (seed 0) stops at the first
# check (12) with an empty pool and a second one (seed 1) runs; SIGTERM in it at 17, resume.
R=("$DIPPAS" anonymize --image "$NAT" --prnu "$T/in/K.npy" --crop 64 --set input_depth=4 --set filters=4,8
   --set skips=4 --set lr=0.01 --psnr-min 90 --psnr-stop 99 --block-size 32 --top 2 --threads 1
   --max-iterations 60 --set plateau_window=6 --set restarts=1)
"${R[@]}" --quiet --out "$T/r1.png" --history "$T/r1.csv" >"$T/out" 2>"$T/err" ||
  bad "restart run: exit $?: $(tail -2 "$T/err")"
grep -q "no candidate reached τ = 90.0 dB in 12 iterations (best .* dB): starting again with seed 1" "$T/err" &&
  ok || bad "no restart notice: $(cat "$T/err")"
check "restart run: 24 iterations over two attempts, seeds 0 and 1" "
import json
m = json.load(open('$T/r1.json'))
a = m['tiles'][0]['attempts']
assert m['iterations'] == 24 and m['restarts'] == 1, (m['iterations'], m['restarts'])
assert [x['seed'] for x in a] == [0, 1] and [x['iterations'] for x in a] == [12, 12], a
assert sum(x['kept'] for x in a) == 1 and m['fallback_no_pool'], a
rows = open('$T/r1.csv').read().split()[1:]
assert [int(r.split(',')[0]) for r in rows] == list(range(1, 25)), rows[:3]
"
DIPPAS_TEST_SIGNAL_AT=iteration-17 DIPPAS_TEST_SIGNAL=TERM \
  "${R[@]}" --quiet --out "$T/r2.png" --history "$T/r2.csv" --checkpoint "$T/ckr" >"$T/out" 2>"$T/err"
[ $? -eq 3 ] || bad "restart run: SIGTERM at 17 did not checkpoint: $(tail -2 "$T/err")"
grep -q "checkpoint saved at iteration 17 in $T/ckr" "$T/err" && ok || bad "restart: no 'checkpoint saved at iteration 17': $(cat "$T/err")"
"${R[@]}" --quiet --out "$T/r2.png" --history "$T/r2.csv" --checkpoint "$T/ckr" >"$T/out" 2>"$T/err" ||
  bad "restart run resumed: exit $?: $(tail -2 "$T/err")"
grep -q "resumed from iteration 17 " "$T/err" && ok || bad "restart: no 'resumed from iteration 17': $(cat "$T/err")"
cmp -s "$T/r1.png" "$T/r2.png" && ok || bad "restart + resume: image differs from the uninterrupted run"
cmp -s "$T/r1.csv" "$T/r2.csv" && ok || bad "restart + resume: history differs from the uninterrupted run"
[ -e "$T/ckr" ] && bad "restart: checkpoint folder left after success" || ok

# --- tiled (128² in 2×2 tiles of 64): SIGUSR1 in tile 2, one tile reused, one resumed -------
TI=("$DIPPAS" anonymize --image "$NAT" --prnu "$T/in/K.npy" --crop 128 "${TINY[@]}" --max-iterations 12
    --tile-size 64)
expect_ok "uninterrupted tiled run" "${TI[@]}" --quiet --out "$T/ta.png" --history "$T/ta.csv"
DIPPAS_TEST_SIGNAL_AT=iteration-19 DIPPAS_TEST_SIGNAL=USR1 \
  "${TI[@]}" --quiet --out "$T/tb.png" --history "$T/tb.csv" --checkpoint "$T/tck" >"$T/out" 2>"$T/err"
rc=$?
[ $rc -eq 3 ] || bad "SIGUSR1 tiled: exit $rc, expected 3: $(tail -2 "$T/err")"
grep -q "checkpoint saved at iteration 7 of tile 2/4" "$T/err" && ok || bad "tiled: no 'checkpoint saved at iteration 7 of tile 2/4': $(cat "$T/err")"
check "tiled: the live history tb.csv.part holds the uninterrupted run's first 19 rows" "
live = open('$T/tb.csv.part').read().splitlines()
full = open('$T/ta.csv').read().splitlines()
assert live[0].startswith('tile,') and live == full[:20], (len(live), live[-1:])
"
"${TI[@]}" --out "$T/tb.png" --history "$T/tb.csv" --checkpoint "$T/tck" >"$T/out" 2>"$T/err" ||
  bad "tiled resume: exit $?: $(tail -2 "$T/err")"
grep -q "resumed from iteration 7 of tile 2/4" "$T/err" && ok || bad "tiled: no 'resumed from iteration 7 of tile 2/4': $(cat "$T/err")"
grep -q "resumed: 1 of 4 tiles" "$T/err" && ok || bad "tiled: tile 1 not reused: $(cat "$T/err")"
cmp -s "$T/ta.png" "$T/tb.png" && ok || bad "tiled SIGUSR1 + resume: image differs from the uninterrupted run"
cmp -s "$T/ta.csv" "$T/tb.csv" && ok || bad "tiled SIGUSR1 + resume: history differs from the uninterrupted run"
[ -e "$T/tb.csv.part" ] && bad "tiled: tb.csv.part left after the history was written" || ok

# --- refusals: corrupt, other settings, foreign folder; --restart ----------------------------
DIPPAS_TEST_SIGNAL_AT=iteration-5 DIPPAS_TEST_SIGNAL=TERM \
  "${U[@]}" --quiet --out "$T/d.png" --checkpoint "$T/ckd" >/dev/null 2>&1
printf 'garbage' | dd of="$T/ckd/tile-00000.ckpt" bs=1 seek=100 conv=notrunc status=none
expect_error "corrupt checkpoint" "tile-00000.ckpt: not a readable checkpoint \(damaged" -- \
  "${U[@]}" --quiet --out "$T/d.png" --checkpoint "$T/ckd"
[ -e "$T/d.png" ] && bad "corrupt checkpoint: an image was written" || ok
truncate -s 1000 "$T/ckd/tile-00000.ckpt"
expect_error "truncated checkpoint" "tile-00000.ckpt: not a readable checkpoint" -- \
  "${U[@]}" --quiet --out "$T/d.png" --checkpoint "$T/ckd"
expect_error "checkpoint of other settings" "checkpoint of another run.*--restart" -- \
  "${U[@]}" --quiet --out "$T/d.png" --checkpoint "$T/ckd" --seed 7
expect_ok "--restart discards it" "${U[@]}" --quiet --out "$T/d.png" --checkpoint "$T/ckd" --seed 7 --restart
mkdir -p "$T/mine" && echo precious >"$T/mine/notes.txt"
expect_error "foreign folder" "not a dippas checkpoint folder" -- "${U[@]}" --quiet --out "$T/e.png" --checkpoint "$T/mine"
expect_error "foreign folder, --restart" "not a dippas checkpoint folder" -- \
  "${U[@]}" --quiet --out "$T/e.png" --checkpoint "$T/mine" --restart
grep -qx precious "$T/mine/notes.txt" && ok || bad "a foreign folder's file was touched"
expect_error "--checkpoint with a baseline" "applies to --method dip only" -- \
  "${U[@]}" --method denoise --out "$T/e.png" --checkpoint "$T/cke"

# --- SIGTERM twice (a cluster signals every process, and the job script too): no abort ------
"${B[@]}" --quiet --max-iterations 100000 --out "$T/f.png" --checkpoint "$T/ckf" --set checkpoint_every=1 \
  >"$T/out" 2>"$T/err" &
pid=$!
for _ in $(seq 600); do [ -s "$T/ckf/tile-00000.ckpt" ] && break; sleep 0.1; done
kill -TERM $pid; kill -TERM $pid
wait $pid
rc=$?
[ $rc -eq 3 ] || bad "two SIGTERMs with a checkpoint: exit $rc, expected 3 (saved, not aborted): $(tail -2 "$T/err")"
grep -q "checkpoint saved at iteration" "$T/err" && ok || bad "two SIGTERMs: no checkpoint saved: $(cat "$T/err")"
# --- dippas batch: items always checkpoint; a stopped item resumes on the next batch run -----
mkdir -p "$T/ds/cam"
cp "$NAT" "$T/ds/cam/a.png"
mkdir -p "$T/fps" && cp "$T/in/K.npy" "$T/fps/cam.npy"  # a 128² fingerprint: batch crops both to 64
BA=("$DIPPAS" batch --input "$T/ds" --fingerprints "$T/fps" --aware --crop 64 --threads 1 --quiet
    --set input_depth=4 --set filters=4,8 --set skips=4 --set lr=0.01 --set psnr_min=5 --set psnr_stop=99
    --set block_size=32 --set top=2 --set max_iterations=30)
expect_ok "batch, uninterrupted" "${BA[@]}" --output "$T/bo1"
# The child stops itself with SIGTERM after its 12th iteration: the item is left for the next run.
DIPPAS_TEST_SIGNAL_AT=iteration-12 DIPPAS_TEST_SIGNAL=TERM "${BA[@]}" --output "$T/bo2" >"$T/out" 2>"$T/err"
rc=$?
[ $rc -ne 0 ] || bad "batch with a stopped item: exit 0"
[ -s "$T/bo2/cam/a.ckpt/tile-00000.ckpt" ] && ok || bad "batch: no checkpoint kept for the stopped item: $(ls -R "$T/bo2")"
expect_ok "batch, rerun" "${BA[@]}" --output "$T/bo2"
grep -q "resumed from iteration 12 " "$T/bo2/cam/a.log" && ok || bad "batch: the item did not resume: $(cat "$T/bo2/cam/a.log")"
cmp -s "$T/bo1/cam/a.anon.png" "$T/bo2/cam/a.anon.png" && ok ||
  bad "batch: the resumed item's image differs from the uninterrupted batch's"
[ -e "$T/bo2/cam/a.ckpt" ] && bad "batch: checkpoint left after success" || ok
finish
