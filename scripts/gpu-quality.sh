#!/usr/bin/env bash
# The device run of the GPU checks and the quality comparison, in one call (the GPU machine has no
# OpenCV: images and fingerprints travel as .npy in .devdata/, made here by --prepare).
#
#   scripts/gpu-quality.sh --prepare DATA DIPPAS   # here: DATA = a dresden512-like folder
#                                                    (flatfield/, natural/), DIPPAS = the CLI;
#                                                    also FULL=photo.jpg for the tiled timing,
#                                                    REFERENCE=prnu-python reference folder,
#                                                    CROPS="256 128": also the centre N×N crops
#                                                    (img<N>/, fp<N>/, fingerprints of cropped
#                                                    flat-fields, as `quality.sh --crop N`)
#   scripts/gpu-quality.sh                         # there: gpu-check.sh, then whole-image runs
#
# On the device, after scripts/gpu-check.sh (build, CUDA tests, benchmarks; GPU_CHECK_STAGES
# passes through):
#   1. one photo end to end with the paper's configuration, alone on the GPU (ALONE=0: skipped);
#   2. the full-size photo by tiles, blind, FULL_ITERS iterations per tile (timing of the tiled path);
#   3. for each set of SETS (default "img": the whole photos; "img256": the 256² crops), every
#      natural photo (ONLY: those whose name matches this extended regex) in each variant of
#      VARIANTS (default "0 $LAMBDA"; a number is λ with P = K_anon of flat-fields 1–5, "blind" is
#      P = the photo's own residual; "@R" appended sets the learning rate R, ":S" seed S, e.g.
#      "0@0.002:1"), JOBS at once,
#      scored against every camera's K_judge (flat-fields 6–10), until DEADLINE seconds after the
#      start; a job still running then is stopped and left out.
# Results: $OUT/whole.jsonl (one JSON line per run), summarised by scripts/gpu_quality_table.py.
set -uo pipefail
export LC_ALL=C  # numbers written and read with a decimal point, whatever the user's locale
cd "$(dirname "$0")/.."
DEV=${DEVDATA:-$PWD/.devdata}

if [ "${1:-}" = "--prepare" ]; then
  set -e
  data=${2:?DATA folder}
  dippas=${3:?the dippas CLI}
  rm -rf "$DEV" && mkdir -p "$DEV/img" "$DEV/fp"
  for n in 0 ${CROPS:-}; do
    sfx=${n#0}
    mkdir -p "$DEV/img$sfx" "$DEV/fp$sfx"
    for c in $(ls "$data/flatfield" | sed -E 's/_[0-9]+\.[A-Za-z]+$//' | sort -u); do
      mapfile -t fl < <(ls "$data/flatfield/$c"_* | sort)
      "$dippas" fingerprint --quiet --crop "$n" --out "$DEV/fp$sfx/$c.anon.npy" "${fl[@]:0:5}"
      "$dippas" fingerprint --quiet --crop "$n" --out "$DEV/fp$sfx/$c.judge.npy" "${fl[@]:5:5}"
    done
  done
  "${PYTHON:-python3}" - "$data/natural" "$DEV" "${FULL:-}" ${CROPS:-} <<'PY'
import os, sys
import numpy as np
from PIL import Image
src, dev, full = sys.argv[1:4]
crops = [0] + [int(n) for n in sys.argv[4:]]
def planes(path, n=0):
    a = np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8)
    if n:  # the centre crop of `dippas --crop N`
        r0, c0 = (a.shape[0] - n) // 2, (a.shape[1] - n) // 2
        a = a[r0:r0 + n, c0:c0 + n]
    return np.ascontiguousarray(np.concatenate([a[..., 0], a[..., 1], a[..., 2]], axis=0))
for n in crops:
    for f in sorted(os.listdir(src)):
        dst = os.path.join(dev, "img" + (str(n) if n else ""), os.path.splitext(f)[0] + ".npy")
        np.save(dst, planes(os.path.join(src, f), n))
if full:
    np.save(os.path.join(dev, "full.npy"), planes(full))
PY
  # The wavelet reference of core_tests (the other reference tests need OpenCV, absent there).
  if [ -n "${REFERENCE:-}" ]; then
    mkdir -p "$DEV/shared/reference/prnu-python"
    cp "$REFERENCE/pywt_db4_examples.json" "$DEV/shared/reference/prnu-python/"
  fi
  du -sh "$DEV"
  exit 0
fi

OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
# At most 8 files come back from the device: gpu-check's many logs go to /tmp/gc and travel
# back packed in logs.tgz; whole.jsonl is written to $OUT as runs finish.
GC=/tmp/gc
pack() { tar -czf "$OUT/logs.tgz" -C /tmp gc whole 2>/dev/null; }
START=$SECONDS
DEADLINE=${DEADLINE:-550}  # seconds after the start: no quality job starts later, and running ones stop
JOBS=${JOBS:-4}
LAMBDA=${LAMBDA:-0.1}
SETS=${SETS:-img}
VARIANTS=${VARIANTS:-0 $LAMBDA}
ALONE=${ALONE:-1}
FULL_ITERS=${FULL_ITERS:-10}
BENCH=${GPU_CHECK_BUILD:-build-gpu}/dippas-bench
WHOLE_DEVICE=${WHOLE_DEVICE:-cuda}  # (cpu and WHOLE_ARGS="--max-iterations 3" for a local try)
read -r -a WHOLE_ARGS <<<"${WHOLE_ARGS:-}"

[ -d "$DEV/shared/reference" ] && export DIPPAS_SHARED=${DIPPAS_SHARED:-$DEV/shared}
OUT=$GC scripts/gpu-check.sh
check_rc=$?
cp "$GC/summary.txt" "$OUT/" 2>/dev/null
pack
echo "gpu-check exit $check_rc at $((SECONDS - START)) s"
[ -x "$BENCH" ] || { echo "no $BENCH: stopping"; exit 1; }

camera() { basename "$1" .npy | sed -E 's/_[0-9]+$//'; }
ls "$DEV"/fp/*.judge.npy | xargs -n1 basename | sed 's/\.judge\.npy$//' >"$OUT/judges.txt"
judges() {  # judges SET: --judge for every camera's K_judge of that set's size
  local j
  for j in "$DEV/fp${1#img}"/*.judge.npy; do printf -- '--judge\n%s\n' "$j"; done
}
whole() {  # whole LOG ARGS...: one run, its JSON line appended to whole.jsonl
  local log=$1
  shift
  if "$BENCH" whole --device "$WHOLE_DEVICE" --threads "${WHOLE_THREADS:-2}" "${WHOLE_ARGS[@]}" "$@" >"$log.json" 2>"$log.err"; then
    cat "$log.json" >>"$OUT/whole.jsonl"
  else
    echo "FAILED: $* ($(tail -n 2 "$log.err"))" | tee -a "$OUT/failures.txt"
  fi
}
mkdir -p /tmp/whole
trap pack EXIT

first=$(ls "$DEV"/img/*.npy | head -n 1)
if [ "$ALONE" = 1 ]; then
  echo "=== one photo, paper configuration, alone ($((SECONDS - START)) s)"
  mapfile -t J < <(judges img)
  whole /tmp/whole/alone --image "$first" --prnu "$DEV/fp/$(camera "$first").anon.npy" "${J[@]}"
  tail -n 1 "$OUT/whole.jsonl"
fi

if [ -f "$DEV/full.npy" ]; then
  echo "=== full-size photo by tiles, blind, $FULL_ITERS iterations per tile ($((SECONDS - START)) s)"
  whole /tmp/whole/full --image "$DEV/full.npy" --max-iterations "$FULL_ITERS"
  tail -n 1 "$OUT/whole.jsonl"
fi

for set in $SETS; do
  echo "=== $set: variants $VARIANTS, $JOBS at once, until $DEADLINE s ($((SECONDS - START)) s)"
  fp=$DEV/fp${set#img}
  mapfile -t J < <(judges "$set")
  # Photos in round-robin over the cameras, so that a partial run still covers them all.
  mapfile -t order < <(for f in "$DEV/$set"/*.npy; do echo "$(camera "$f") $f"; done | grep -E "${ONLY:-.}" |
    awk '{n[$1]++; print n[$1], $2}' | sort -s -n -k1,1 | cut -d' ' -f2)
  for img in "${order[@]}"; do
    for v in $VARIANTS; do
      # The photo run alone above is the paper configuration's run of that photo.
      [ "$ALONE" = 1 ] && [ "$img" = "$first" ] && [ "$v" = 0 ] && continue
      seed=0 lr=()
      [[ $v == *:* ]] && seed=${v#*:} && v=${v%%:*}
      [[ $v == *@* ]] && lr=(--lr "${v#*@}") && v=${v%%@*}
      while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ] && [ $((SECONDS - START)) -lt "$DEADLINE" ]; do sleep 1; done
      [ $((SECONDS - START)) -lt "$DEADLINE" ] || break 3
      if [ "$v" = blind ]; then p=(); else p=(--prnu "$fp/$(camera "$img").anon.npy" --prnu-weight "$v"); fi
      whole "/tmp/whole/${set}_$(basename "$img" .npy)_${v}_${lr[1]:-}_$seed" --image "$img" --seed "$seed" \
        "${lr[@]}" "${p[@]}" "${J[@]}" &
    done
  done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ] && [ $((SECONDS - START)) -lt "$DEADLINE" ]; do sleep 1; done
left=$(jobs -rp | wc -l)
[ "$left" -eq 0 ] || { echo "stopping $left runs at the deadline"; pkill -f "dippas-bench whole" || true; }
wait
echo "=== done at $((SECONDS - START)) s: $(wc -l <"$OUT/whole.jsonl") runs"
nvidia-smi --query-gpu=name,memory.used --format=csv || true
exit "$check_rc"
