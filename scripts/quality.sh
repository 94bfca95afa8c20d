#!/usr/bin/env bash
# Quality harness: every configuration ("variant") on the same photos, judged with a fingerprint
# the anonymizer never saw. For each camera of DATA_DIR, K_anon comes from its flat-fields 1-5 and
# K_judge from 6-10 (sorted by name); the centre crops of its natural photos are anonymized with
# K_anon (dippas anonymize) and scored with K_judge (dippas evaluate: pooled ROC AUC of NCC and
# PCE, trade-off C; per photo |NCC_after|/|NCC_before|).
#
# Usage: scripts/quality.sh DATA_DIR --out DIR [options]
#   DATA_DIR holds flatfield/<camera>_<number>.<ext> (at least 10 per camera) and
#   natural/<camera>_<number>.<ext>; the camera is the file name up to its last '_'
#   (e.g. Nikon_D70_1_20543.png: Nikon_D70_1).
# Options:
#   --out DIR               output folder (created; reruns resume and add to its tables)
#   --crop N                centre N×N crop of every photo (default 128)
#   --variant NAME=ARGS     a configuration: NAME (letters, digits, . _ -) and dippas anonymize
#                           arguments, quoted as in a shell, e.g.
#                             --variant paper="--config configs/default.yaml"
#                             --variant lam1="--config configs/default.yaml --set prnu_weight=1"
#                             --variant blind="--config configs/default.yaml --blind"
#                           (repeatable; not --image, --crop, --prnu, --eval-prnu, --out, --metrics,
#                           --threads). Default: paper and blind as above, plus --baselines.
#   --baselines             add the variants denoise (--method denoise) and subtract (--method subtract);
#                           given without --variant: the baselines only
#   --camera C              only this camera (repeatable; default: every camera with natural photos)
#   --images-per-camera K   the first K natural photos of each camera, by name (default: all)
#   --reference NAME        the variant the others are compared with, photo for photo (columns
#                           dC…; default: paper, when it is one of the variants)
#   --jobs J                photos anonymized at once (default 1)
#   --threads N             CPU threads per dippas process (default: cores / J)
#   --dippas PATH           dippas executable (default: $DIPPAS, build/dippas of this checkout, PATH)
# Outputs:
#   DIR/quality.csv    one row per variant and crop: variant, crop, n_images (photos scored),
#                      psnr_mean, psnr_min (dB), auc_ncc, auc_pce (pooled ROC AUC with K_judge; 0.5
#                      is chance), C = psnr_mean·(1 − 2|auc_ncc − 0.5|), auc_ncc_lo, auc_ncc_hi,
#                      C_lo, C_hi (95% bootstrap interval over photos: how far so few photos let
#                      AUC and C be trusted), reference, dC, dC_lo, dC_hi (C minus the reference
#                      variant's C on the same photos, with a 95% paired bootstrap interval:
#                      an interval above 0 means better on these photos), auc_ncc_edges, C_edges
#                      (scored on the photos' edges only, dippas evaluate --edges), ratio_median,
#                      ratio_max
#                      (|NCC_after|/|NCC_before| with K_judge), n_ratio_le_0.1, ncc_chance_rms (RMS
#                      NCC of the anonymized photos against the other cameras' K_judge: what a
#                      photo reaches by chance), n_below_chance (photos whose |NCC_after| with their
#                      own K_judge is at most that), iterations_mean, wall_s_mean, failures (photos
#                      whose anonymization failed), args, run (UTC date)
#   DIR/per_image.csv  one row per variant, crop and photo (the error message of a failure)
#   DIR/quality.md     the same table in markdown, with the command lines and dates
#   DIR/crop<N>/fingerprints/, DIR/crop<N>/<variant>/   fingerprints, anonymized crops, metrics,
#                      logs and evaluation. A photo whose metrics exist, made by the same dippas
#                      build (executable and module, by content) with the same arguments (files
#                      among them by content; a YAML config's comments do not count), is not
#                      redone (delete DIR/crop<N>/<variant>/ to redo a variant).
#                      Rows of other variants or crops already in the tables are kept.
# Exit status: 0 done; 2 bad usage or input; 3 interrupted (rerun to resume); 4 some
# anonymizations failed (recorded in the tables, the others done).
set -euo pipefail
export LC_ALL=C  # numbers written and read with a decimal point, whatever the user's locale
PROG=quality.sh
PY=/usr/bin/python3
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/dataset_lib.sh
source "$HERE/dataset_lib.sh"

QUALITY_COMMAND=$("$PY" -c 'import shlex, sys; print(shlex.join(sys.argv[1:]))' "scripts/$PROG" "$@")

usage() { sed -n '2,/^# anonymizations failed/p' "$0" | sed 's/^# \{0,1\}//'; }
case "${1-}" in
  -h | --help) usage; exit 0 ;;
  "") usage >&2; exit 2 ;;
esac
DATA=$1
shift
[ -d "$DATA" ] || ds_die "DATA_DIR: no such folder: $DATA"
[ -d "$DATA/flatfield" ] || ds_die "DATA_DIR $DATA has no flatfield/ folder (expected flatfield/ and natural/)"
[ -d "$DATA/natural" ] || ds_die "DATA_DIR $DATA has no natural/ folder (expected flatfield/ and natural/)"
DATA=$(realpath "$DATA")

OUT="" CROP=128 JOBS=1 THREADS="" PER_CAMERA=0 BASELINES=0 DIPPAS_EXE=${DIPPAS:-} REFERENCE=""
VNAMES=() VARGS=() CAMERAS=()
add_variant() {  # add_variant NAME ARGS
  local v
  [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || ds_die "--variant: bad name '$1' (letters, digits, . _ - only)"
  for v in "${VNAMES[@]}"; do [ "$v" != "$1" ] || ds_die "--variant: '$1' given twice"; done
  VNAMES+=("$1")
  VARGS+=("$2")
}
need() { if [ $# -lt 2 ] || [ -z "$2" ]; then ds_die "$1 needs a value"; fi; }
posint() { [[ $2 =~ ^[1-9][0-9]*$ ]] || ds_die "$1 must be a positive integer, got '$2'"; }
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --out) need "$@"; OUT=$2; shift 2 ;;
    --crop) need "$@"; posint "$1" "$2"; CROP=$2; shift 2 ;;
    --jobs) need "$@"; posint "$1" "$2"; JOBS=$2; shift 2 ;;
    --threads) need "$@"; posint "$1" "$2"; THREADS=$2; shift 2 ;;
    --images-per-camera) need "$@"; posint "$1" "$2"; PER_CAMERA=$2; shift 2 ;;
    --camera) need "$@"; CAMERAS+=("$2"); shift 2 ;;
    --dippas) need "$@"; DIPPAS_EXE=$2; shift 2 ;;
    --baselines) BASELINES=1; shift ;;
    --reference) need "$@"; REFERENCE=$2; shift 2 ;;
    --variant)
      need "$@"
      [[ $2 == *=* ]] || ds_die "--variant needs NAME=ARGS, got '$2'"
      add_variant "${2%%=*}" "${2#*=}"
      shift 2
      ;;
    *) ds_die "unknown argument '$1' (see --help)" ;;
  esac
done
[ -n "$OUT" ] || ds_die "--out DIR is required (see --help)"
if [ ${#VNAMES[@]} -eq 0 ] && [ $BASELINES -eq 0 ]; then
  cfg=$(realpath --relative-to=. "$HERE/../configs/default.yaml")
  add_variant paper "--config $cfg"
  add_variant blind "--config $cfg --blind"
  BASELINES=1
fi
if [ $BASELINES -eq 1 ]; then
  add_variant denoise "--method denoise"
  add_variant subtract "--method subtract"
fi
if [ -n "$REFERENCE" ]; then
  printf '%s\n' "${VNAMES[@]}" | grep -qxF -- "$REFERENCE" ||
    ds_die "--reference $REFERENCE: no such variant in this run (variants: ${VNAMES[*]})"
elif printf '%s\n' "${VNAMES[@]}" | grep -qxF paper; then
  REFERENCE=paper
fi
[ -n "$THREADS" ] || THREADS=$(($(nproc) / JOBS > 0 ? $(nproc) / JOBS : 1))

# dippas: --dippas, $DIPPAS, this checkout's build, PATH.
if [ -z "$DIPPAS_EXE" ]; then
  if [ -x "$HERE/../build/dippas" ]; then
    DIPPAS_EXE=$HERE/../build/dippas
  else
    DIPPAS_EXE=$(command -v dippas 2>/dev/null) || ds_die "dippas not found: give --dippas PATH or put dippas on PATH"
  fi
fi
[ -x "$DIPPAS_EXE" ] || DIPPAS_EXE=$(command -v "$DIPPAS_EXE" 2>/dev/null) || ds_die "dippas executable not found: '$DIPPAS_EXE'"
DIPPAS_EXE=$(realpath "$DIPPAS_EXE")
# The build's content, part of every photo's key: a rebuild can change the pixels a seed gives
# (rounding, a new default) with the same arguments, so its results are not reused across builds.
BUILD_KEY=$(
  for f in "$DIPPAS_EXE" "$(dirname "$DIPPAS_EXE")/libdippas-torch.so" \
    "$(dirname "$DIPPAS_EXE")/../lib/dippas/libdippas-torch.so"; do
    [ ! -f "$f" ] || sha256sum <"$f" | cut -c1-16
  done | paste -sd' '
)

# Each variant's arguments as words (shell quoting), checked against the options set here.
declare -A VWORDS=()
for i in "${!VNAMES[@]}"; do
  words=$("$PY" -c 'import shlex, sys; print("\n".join(shlex.split(sys.argv[1])))' "${VARGS[$i]}" 2>&1) ||
    ds_die "--variant ${VNAMES[$i]}: cannot split its arguments: ${words##*: }"
  while IFS= read -r w; do
    case "$w" in
      --image | --image=* | --crop | --crop=* | --prnu | --prnu=* | --eval-prnu | --eval-prnu=* | --out | --out=* | \
        --metrics | --metrics=* | --threads | --threads=*)
        ds_die "--variant ${VNAMES[$i]}: '$w' is set by $PROG itself"
        ;;
    esac
  done <<<"$words"
  VWORDS[${VNAMES[$i]}]=$words
done

# Photos by camera: the file name up to its last '_'.
declare -A FLATS=() NATS=()
list_dir() {  # image files of a folder (no sub-folders), sorted by name
  local f
  while IFS= read -r -d '' f; do
    ds_is_image "$f" && printf '%s\n' "$f"
  done < <(find "$1" -mindepth 1 -maxdepth 1 ! -name '.*' \( -type f -o -type l \) -print0 | sort -z)
}
camera_of() {
  local b=${1##*/}
  b=${b%.*}
  [[ $b == *_* ]] || return 1
  printf '%s' "${b%_*}"
}
while IFS= read -r f; do
  c=$(camera_of "$f") || { ds_warn "not named <camera>_<number>: ignored: $f"; continue; }
  FLATS[$c]+="$f"$'\n'
done < <(list_dir "$DATA/flatfield")
while IFS= read -r f; do
  c=$(camera_of "$f") || { ds_warn "not named <camera>_<number>: ignored: $f"; continue; }
  NATS[$c]+="$f"$'\n'
done < <(list_dir "$DATA/natural")
[ ${#NATS[@]} -gt 0 ] || ds_die "no natural photo in $DATA/natural"
if [ ${#CAMERAS[@]} -eq 0 ]; then
  mapfile -t CAMERAS < <(printf '%s\n' "${!NATS[@]}" | sort)
fi
for c in "${CAMERAS[@]}"; do
  [ -n "${NATS[$c]:-}" ] || ds_die "camera $c: no natural photo in $DATA/natural (cameras there: $(printf '%s\n' "${!NATS[@]}" | sort | tr '\n' ' '))"
  n=$(printf '%s' "${FLATS[$c]:-}" | grep -c . || true)
  [ "$n" -ge 10 ] || ds_die "camera $c has $n flat-field photo(s) in $DATA/flatfield, needs 10 (1-5 for K_anon, 6-10 for K_judge); leave it out with --camera"
done

mkdir -p "$OUT" || ds_die "cannot create $OUT"
OUT=$(realpath "$OUT")
RUN=$OUT/crop$CROP
FPS=$RUN/fingerprints
mkdir -p "$FPS" || ds_die "cannot create folders in $OUT"
TH=(--threads "$THREADS")
STAMP=$(date -u +%Y-%m-%dT%H:%M:%SZ)
on_signal() {
  trap - INT TERM
  echo "$PROG: interrupted: rerun the same command to resume" >&2
  local p
  for p in $(jobs -p); do
    pkill -TERM -P "$p" 2>/dev/null || true
    kill -TERM "$p" 2>/dev/null || true
  done
  wait
  rm -f "${PLAN:-}" "${VTAB:-}"
  exit 3
}
trap on_signal INT TERM

# 1. Fingerprints K_anon (flat-fields 1-5) and K_judge (6-10) of each camera, kept across runs
#    while made from the same flat-fields.
fingerprint() {  # fingerprint OUT.npy FLAT...
  local npy=$1
  shift
  local list
  list=$(printf '%s\n' "$@" | xargs -d '\n' sha256sum)
  if [ -s "$npy" ] && [ -s "$npy.flats" ] && [ "$(cat "$npy.flats")" = "$list" ]; then return 0; fi
  rm -f "$npy.flats"
  "$DIPPAS_EXE" fingerprint --quiet --crop "$CROP" "${TH[@]}" --out "$npy" "$@" ||
    ds_die "the fingerprint $npy could not be estimated from $* (see the error above)"
  printf '%s\n' "$list" >"$npy.flats"
}
for c in "${CAMERAS[@]}"; do
  mapfile -t fl < <(printf '%s' "${FLATS[$c]}")
  fingerprint "$FPS/$c.anon.npy" "${fl[@]:0:5}"
  fingerprint "$FPS/$c.judge.npy" "${fl[@]:5:5}"
done

# 2. Anonymization: one job per variant and photo, J at a time; done ones are reused.
# digest FILE: SHA-256 of what a file argument says. A YAML config is read without its comments,
# trailing blanks and blank lines (dippas's configs hold numbers and lists, never a '#' inside a
# value), so that editing a comment does not redo the photos made with it; other files by bytes.
digest() {
  case $1 in
    *.yaml | *.yml)
      sed -e 's/^#.*$//' -e 's/[[:space:]]#.*$//' -e 's/[[:space:]]*$//' "$1" | awk 'NF' |
        sha256sum | cut -d' ' -f1
      ;;
    *) sha256sum <"$1" | cut -d' ' -f1 ;;
  esac
}
# key VARIANT IMAGE CAMERA: what decides whether an existing result can be reused.
key_of() {
  local v=$1 img=$2 cam=$3 w
  echo "dippas=$BUILD_KEY"
  echo "crop=$CROP"
  echo "image=$img $(sha256sum <"$img" | cut -d' ' -f1)"
  echo "k_anon=$(sha256sum <"$FPS/$cam.anon.npy" | cut -d' ' -f1)"
  echo "k_judge=$(sha256sum <"$FPS/$cam.judge.npy" | cut -d' ' -f1)"
  while IFS= read -r w; do
    if [ -f "$w" ]; then echo "arg=$w $(digest "$w")"; else echo "arg=$w"; fi
  done <<<"${VWORDS[$v]}"
}
# anonymize VARIANT CAMERA IMAGE BASE: BASE.png, BASE.json (metrics), BASE.log, and BASE.wall and
# BASE.args (written last: the mark of a finished job).
anonymize() {
  local v=$1 cam=$2 img=$3 base=$4
  local words=() prnu=(--prnu "$FPS/$cam.anon.npy") w
  [ -z "${VWORDS[$v]}" ] || mapfile -t words <<<"${VWORDS[$v]}"
  for w in "${words[@]}"; do [ "$w" != --blind ] || prnu=(); done
  # The key of what this run reads, taken before it starts: a file changed meanwhile (a config
  # edited during a long run) must not mark the result as made from the new content.
  local key
  key=$(key_of "$v" "$img" "$cam")
  local t0=$EPOCHREALTIME
  if "$DIPPAS_EXE" anonymize --quiet --image "$img" --crop "$CROP" "${prnu[@]}" \
    --eval-prnu "$FPS/$cam.judge.npy" "${TH[@]}" "${words[@]}" --out "$base.png" \
    --metrics "$base.json" >"$base.log" 2>&1 && [ -s "$base.json" ]; then
    awk -v a="$EPOCHREALTIME" -v b="$t0" 'BEGIN { printf "%.3f\n", a - b }' >"$base.wall"
    printf '%s\n' "$key" >"$base.args.tmp" && mv "$base.args.tmp" "$base.args"
  fi
}
PLAN=$RUN/.plan.$$
: >"$PLAN"
n_run=0 n_reused=0 running=0
declare -A REDONE=()
for i in "${!VNAMES[@]}"; do
  v=${VNAMES[$i]}
  mkdir -p "$RUN/$v"
  for c in "${CAMERAS[@]}"; do
    k=0
    while IFS= read -r img; do
      [ -n "$img" ] || continue
      [ "$PER_CAMERA" -eq 0 ] || [ $k -lt "$PER_CAMERA" ] || break
      k=$((k + 1))
      stem=${img##*/}
      base=$RUN/$v/${stem%.*}
      printf '%s\t%s\t%s\t%s\n' "$v" "$c" "$img" "$base" >>"$PLAN"
      if [ -s "$base.json" ] && [ -s "$base.png" ] && [ -s "$base.args" ] &&
        cmp -s "$base.args" <(key_of "$v" "$img" "$c"); then
        n_reused=$((n_reused + 1))
        continue
      fi
      rm -f "$base.png" "$base.json" "$base.args" "$base.wall" "$base.log"
      if [ $running -ge "$JOBS" ]; then
        wait -n || true
        running=$((running - 1))
      fi
      echo "$PROG: $v: ${stem}"
      anonymize "$v" "$c" "$img" "$base" &
      REDONE[$v]=1
      running=$((running + 1))
      n_run=$((n_run + 1))
    done <<<"${NATS[$c]}"
  done
done
wait
echo "$PROG: $n_run anonymization(s) run, $n_reused reused"

# 3. Evaluation of each variant with K_judge (the photos whose anonymization succeeded), over the
#    whole crop and over its edges only (evaluate --edges: where the paper found blind mode
#    weakest); the "before" numbers are the originals'. Kept when nothing of the variant changed.
for v in "${VNAMES[@]}"; do
  man=$RUN/$v/evaluate.csv
  {
    echo "image,device,fingerprint,anonymized"
    while IFS=$'\t' read -r pv c img base; do
      if [ "$pv" != "$v" ] || [ ! -s "$base.args" ]; then continue; fi
      echo "$(ds_csv "$img"),$(ds_csv "$c"),$(ds_csv "$FPS/$c.judge.npy"),$(ds_csv "$base.png")"
    done <"$PLAN"
  } >"$man.tmp"
  if [ -z "${REDONE[$v]:-}" ] && [ -s "$RUN/$v/evaluation/summary.json" ] &&
    [ -s "$RUN/$v/evaluation_edges/summary.json" ] && cmp -s "$man.tmp" "$man"; then
    rm -f "$man.tmp"
    continue
  fi
  mv "$man.tmp" "$man"
  rm -rf "$RUN/$v/evaluation" "$RUN/$v/evaluation_edges"
  if [ "$(wc -l <"$man")" -gt 1 ]; then
    "$DIPPAS_EXE" evaluate --quiet --no-plots "${TH[@]}" --manifest "$man" --crop "$CROP" \
      --method-name "$v" --out "$RUN/$v/evaluation" >"$RUN/$v/evaluate.log" 2>&1 ||
      ds_warn "$v: dippas evaluate failed (no AUC or C for it): $(tail -1 "$RUN/$v/evaluate.log")"
    "$DIPPAS_EXE" evaluate --quiet --no-plots "${TH[@]}" --manifest "$man" --crop "$CROP" --edges \
      --method-name "$v" --out "$RUN/$v/evaluation_edges" >"$RUN/$v/evaluate_edges.log" 2>&1 ||
      ds_warn "$v: dippas evaluate --edges failed (no edge AUC for it): $(tail -1 "$RUN/$v/evaluate_edges.log")"
  fi
done

# 4. Tables: this run's rows replace those of the same variant and crop; the others are kept.
VTAB=$RUN/.variants.$$
for i in "${!VNAMES[@]}"; do printf '%s\t%s\n' "${VNAMES[$i]}" "${VARGS[$i]}"; done >"$VTAB"
status=0
(
  flock 9
  "$PY" - "$OUT" "$CROP" "$PLAN" "$VTAB" "$STAMP" "$QUALITY_COMMAND" "$REFERENCE" <<'EOF'
import csv, json, math, os, random, statistics, sys

out, crop, plan, vtab, stamp, command, reference = sys.argv[1:8]
QCOLS = ["variant", "crop", "n_images", "psnr_mean", "psnr_min", "auc_ncc", "auc_pce", "C",
         "auc_ncc_lo", "auc_ncc_hi", "C_lo", "C_hi", "reference", "dC", "dC_lo", "dC_hi",
         "auc_ncc_edges", "C_edges", "ratio_median", "ratio_max", "n_ratio_le_0.1",
         "ncc_chance_rms", "n_below_chance", "iterations_mean", "wall_s_mean", "failures", "args",
         "run"]
ICOLS = ["variant", "crop", "camera", "image", "status", "psnr", "ncc_before", "ncc_after",
         "ratio", "pce_before", "pce_after", "iterations", "stop_reason", "wall_s", "error"]

def fmt(x, digits):
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else ("%.*f" % (digits, x))

def write_csv(path, cols, rows):
    with open(path + ".tmp", "w", newline="") as f:
        w = csv.DictWriter(f, cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    os.replace(path + ".tmp", path)

def read_scores(path):
    """evaluate's scores CSV as {photo: ([NCC against its camera's K], [NCC against the others'])}."""
    by = {}
    for r in read_csv(path):
        try:
            v = float(r["ncc"])
        except ValueError:
            continue
        if not math.isfinite(v):
            continue
        pos, neg = by.setdefault(os.path.basename(r["image"]), ([], []))
        (pos if r["device"] == r["fingerprint"] else neg).append(v)
    return by

def auc(pos, neg):
    """Mann-Whitney ROC AUC (ties count half), as dippas evaluate computes it."""
    tagged = sorted([(x, 1) for x in pos] + [(x, 0) for x in neg])
    wins, i, seen_neg = 0.0, 0, 0
    while i < len(tagged):
        j = i
        while j < len(tagged) and tagged[j][0] == tagged[i][0]:
            j += 1
        p = sum(t for _, t in tagged[i:j])
        wins += p * (seen_neg + 0.5 * (j - i - p))
        seen_neg += j - i - p
        i = j
    return wins / (len(pos) * len(neg))

def chance(by):
    """RMS NCC against the other cameras' fingerprints; photos at or below it (own camera)."""
    neg = [x for _, n in by.values() for x in n]
    if not neg:
        return None, None
    rms = math.sqrt(sum(x * x for x in neg) / len(neg))
    return rms, sum(1 for p, _ in by.values() if p and abs(p[0]) <= rms)

def auc_c(by, psnr, pick):
    """Pooled AUC(NCC) and C of the photos `pick` (repeats allowed); C is None when no photo
    changed (evaluate takes the PSNR mean over photos that changed), both None without pairs."""
    pos = [x for k in pick for x in by[k][0]]
    neg = [x for k in pick for x in by[k][1]]
    if not pos or not neg:
        return None, None
    a = auc(pos, neg)
    finite = [psnr[k] for k in pick if psnr[k] is not None]
    return a, (statistics.mean(finite) * (1 - 2 * abs(a - 0.5)) if finite else None)

def interval(v):
    v = sorted(v)
    return (v[int(0.025 * len(v))], v[min(len(v) - 1, int(0.975 * len(v)))]) if v else (None, None)

REPS = 2000

def bootstrap(by, psnr):
    """95% percentile intervals of the pooled AUC(NCC) and C, resampling photos (with their
    fingerprint pairs) with replacement; fixed seed, so reruns give the same table."""
    rng = random.Random(20221)
    photos = [k for k in by if k in psnr]
    if len(photos) < 2:
        return None
    aucs, cs = [], []
    for _ in range(REPS):
        a, c = auc_c(by, psnr, [rng.choice(photos) for _ in photos])
        if a is not None:
            aucs.append(a)
        if c is not None:
            cs.append(c)
    if not aucs or not cs:
        return None
    return interval(aucs) + interval(cs)

def paired_delta(mine, ref):
    """C − C_reference on the photos both scored, with a 95% paired bootstrap interval (the same
    photos drawn for both): what decides whether one variant beats another on these photos."""
    (by, psnr), (rby, rpsnr) = mine, ref
    photos = sorted(k for k in by if k in psnr and k in rby and k in rpsnr)
    if len(photos) < 2:
        return None
    def delta(pick):
        _, c = auc_c(by, psnr, pick)
        _, rc = auc_c(rby, rpsnr, pick)
        return None if c is None or rc is None else c - rc
    point = delta(photos)
    if point is None:
        return None
    rng = random.Random(20222)
    ds = [d for d in (delta([rng.choice(photos) for _ in photos]) for _ in range(REPS)) if d is not None]
    return (point,) + interval(ds)

def summary(name, folder, best_before):
    """A variant's evaluate summary ({} when absent), and the originals' ("before") summary: the
    one of the variant that scored the most photos so far."""
    sp = os.path.join(out, "crop" + crop, name, folder, "summary.json")
    if not os.path.exists(sp):
        return {}, best_before
    summ = json.load(open(sp))
    b = summ.get("before", {})
    if best_before is None or b.get("n_images", 0) > best_before.get("n_images", 0):
        best_before = b
    return summ, best_before

def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))

variants = [l.rstrip("\n").split("\t", 1) for l in open(vtab)]
items = [l.rstrip("\n").split("\t") for l in open(plan)]
qrows, irows = [], []
n_failed = 0
before = before_by = before_edges = None
scored = {}
for name, args in variants:
    mine = [it for it in items if it[0] == name]
    ok = []
    psnr_of = {}
    failures = 0
    for _, cam, img, base in mine:
        row = {"variant": name, "crop": crop, "camera": cam, "image": os.path.basename(img)}
        m = None
        if os.path.exists(base + ".args"):
            try:
                m = json.load(open(base + ".json"))
                nb, na = abs(m["ncc_before"]), abs(m["ncc_after"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                m, err = None, "unreadable metrics %s.json: %s" % (base, e)
        else:
            lines = [l.strip() for l in open(base + ".log", errors="replace")] if os.path.exists(base + ".log") else []
            lines = [l for l in lines if l]
            err = lines[-1] if lines else "no output (interrupted?)"
        if m is None:
            failures += 1
            row.update(status="failed", error=err)
        else:
            wall = float(open(base + ".wall").read()) if os.path.exists(base + ".wall") else float("nan")
            ratio = na / nb if nb > 0 else float("nan")
            # PSNR null: the output equals the photo (infinite PSNR, left out of the mean as
            # dippas evaluate does).
            row.update(status="ok", psnr=fmt(m["psnr"], 3) if m["psnr"] is not None else "inf",
                       ncc_before=fmt(m["ncc_before"], 6),
                       ncc_after=fmt(m["ncc_after"], 6), ratio=fmt(ratio, 4),
                       pce_before=fmt(m.get("pce_before"), 3), pce_after=fmt(m.get("pce_after"), 3),
                       iterations=m.get("iterations", ""), stop_reason=m.get("stop_reason", ""),
                       wall_s=fmt(wall, 1))
            ok.append((m["psnr"], ratio, m.get("iterations") or 0, wall))
            psnr_of[os.path.basename(base) + ".png"] = m["psnr"]
        irows.append(row)
    n_failed += failures
    summ, before = summary(name, "evaluation", before)
    se, before_edges = summary(name, "evaluation_edges", before_edges)
    ev = os.path.join(out, "crop" + crop, name, "evaluation")
    by = read_scores(os.path.join(ev, "scores.csv")) if summ else {}
    rms, below = chance(by)
    boot = bootstrap(by, psnr_of) if summ and summ.get("auc_ncc") is not None else None
    lo_hi = dict(zip(["auc_ncc_lo", "auc_ncc_hi", "C_lo", "C_hi"],
                     [fmt(x, 4 if i < 2 else 3) for i, x in enumerate(boot)] if boot else [""] * 4))
    if summ and (before_by is None or len(by) > len(before_by)):
        before_by = read_scores(os.path.join(ev, "scores_before.csv"))
    ratios = [r for _, r, _, _ in ok if not math.isnan(r)]
    fin = [p for p, _, _, _ in ok if p is not None]
    walls = [w for _, _, _, w in ok if not math.isnan(w)]
    scored[name] = (by, psnr_of)
    qrows.append({
        "variant": name, "crop": crop, "n_images": len(ok),
        "psnr_mean": fmt(statistics.mean(fin), 3) if fin else "",
        "psnr_min": fmt(min(fin), 3) if fin else "",
        "auc_ncc": fmt(summ.get("auc_ncc"), 4), "auc_pce": fmt(summ.get("auc_pce"), 4),
        "C": fmt(summ.get("c_metric"), 3), **lo_hi,
        "auc_ncc_edges": fmt(se.get("auc_ncc"), 4), "C_edges": fmt(se.get("c_metric"), 3),
        "ncc_chance_rms": fmt(rms, 5), "n_below_chance": "" if below is None else below,
        "ratio_median": fmt(statistics.median(ratios), 4) if ratios else "",
        "ratio_max": fmt(max(ratios), 4) if ratios else "",
        "n_ratio_le_0.1": sum(r <= 0.1 for r in ratios),
        "iterations_mean": fmt(statistics.mean(i for _, _, i, _ in ok), 1) if ok else "",
        "wall_s_mean": fmt(statistics.mean(walls), 1) if walls else "",
        "failures": failures, "args": args, "run": stamp})

# C against the reference variant, photo for photo.
for r in qrows:
    if reference and r["variant"] != reference and reference in scored:
        d = paired_delta(scored[r["variant"]], scored[reference])
        r["reference"] = reference
        if d:
            r.update(dC=fmt(d[0], 3), dC_lo=fmt(d[1], 3), dC_hi=fmt(d[2], 3))

# Merge with the rows of earlier runs (other variants or crops).
done = {(r["variant"], r["crop"]) for r in qrows}
qpath, ipath = os.path.join(out, "quality.csv"), os.path.join(out, "per_image.csv")
old_q = [r for r in read_csv(qpath) if (r.get("variant"), r.get("crop")) not in done]
old_i = [r for r in read_csv(ipath) if (r.get("variant"), r.get("crop")) not in done]
allq = old_q + qrows
write_csv(qpath, QCOLS, allq)
write_csv(ipath, ICOLS, old_i + irows)

runs_path = os.path.join(out, "runs.tsv")
with open(runs_path, "a") as f:
    f.write("%s\t%s\n" % (stamp, command))
runs = dict(l.rstrip("\n").split("\t", 1) for l in open(runs_path) if "\t" in l)
if before:
    before = dict(before)
    rms, below = chance(before_by or {})
    if rms is not None:
        before["ncc_chance_rms"] = rms
        before["n_above_chance"] = len(before_by) - below
    if before_edges:
        before["auc_ncc_edges"] = before_edges.get("auc_ncc")
    with open(os.path.join(out, "crop" + crop, "originals.json.tmp"), "w") as f:
        json.dump(before, f, indent=1)
    os.replace(os.path.join(out, "crop" + crop, "originals.json.tmp"), os.path.join(out, "crop" + crop, "originals.json"))

def cell(s):
    s = str(s)
    return (s if s != "" else "–").replace("|", "\\|")
md = ["# Quality", "",
      "Per variant and crop: photos scored, PSNR mean and min (dB), pooled ROC AUC of NCC and PCE "
      "judged with K_judge (flat-fields 6–10; the anonymizer used K_anon from 1–5; 0.5 = chance), "
      "C = PSNR_mean·(1 − 2|AUC_NCC − 0.5|) with 95% bootstrap intervals over the photos, ΔC: C "
      "minus the reference variant's on the same photos (95% paired bootstrap interval; above 0: "
      "better on these photos), AUC and C scored on the edges only (evaluate --edges), "
      "|NCC_after|/|NCC_before| per photo (median, max, how many ≤ 0.1), the chance level (RMS NCC "
      "of the anonymized photos against the other cameras' K_judge) and how many photos are at or "
      "below it with their own camera's K_judge, mean iterations and wall time per photo, failed "
      "anonymizations.", "",
      "| variant | crop | n | PSNR mean | PSNR min | AUC NCC | 95% | AUC PCE | C | 95% | ΔC vs "
      "| ΔC | 95% | AUC NCC edges | C edges | ratio med | ratio max | ≤0.1 | chance RMS | ≤chance "
      "| iters | wall s | failures | arguments |",
      "|---|" + "---:|" * 22 + "---|"]
for r in allq:
    r = dict(r)
    r["auc_ci"] = "%s–%s" % (r["auc_ncc_lo"], r["auc_ncc_hi"]) if r.get("auc_ncc_lo") else ""
    r["C_ci"] = "%s–%s" % (r["C_lo"], r["C_hi"]) if r.get("C_lo") else ""
    r["dC_ci"] = "%s–%s" % (r["dC_lo"], r["dC_hi"]) if r.get("dC_lo") else ""
    md.append("| " + " | ".join(cell(r.get(c, "")) for c in
              ["variant", "crop", "n_images", "psnr_mean", "psnr_min", "auc_ncc", "auc_ci", "auc_pce",
               "C", "C_ci", "reference", "dC", "dC_ci", "auc_ncc_edges", "C_edges", "ratio_median",
               "ratio_max", "n_ratio_le_0.1", "ncc_chance_rms", "n_below_chance",
               "iterations_mean", "wall_s_mean", "failures"]) +
              " | `" + r.get("args", "").replace("|", "\\|") + "` |")
md.append("")
crops = sorted({r["crop"] for r in allq}, key=int)
for c in crops:
    p = os.path.join(out, "crop" + c, "originals.json")
    if os.path.exists(p):
        b = json.load(open(p))
        md.append("Originals at %s² (not anonymized, %d photos): AUC NCC %s, AUC PCE %s." % (
            c, b.get("n_images", 0), fmt(b.get("auc_ncc"), 4) or "–", fmt(b.get("auc_pce"), 4) or "–"))
        if "ncc_chance_rms" in b:
            md[-1] += (" Chance level (RMS NCC against the other cameras' K_judge) %s; photos whose "
                       "|NCC| with their own camera's K_judge is above it: %d." % (
                           fmt(b["ncc_chance_rms"], 5), b["n_above_chance"]))
        if b.get("auc_ncc_edges") is not None:
            md[-1] += " Edges only: AUC NCC %s." % fmt(b["auc_ncc_edges"], 4)
md += ["", "Runs (UTC) that produced these rows:", ""]
for s in sorted({r["run"] for r in allq}):
    md.append("- %s: `%s`" % (s, runs.get(s, "?")))
md.append("")
with open(os.path.join(out, "quality.md.tmp"), "w") as f:
    f.write("\n".join(md))
os.replace(os.path.join(out, "quality.md.tmp"), os.path.join(out, "quality.md"))
for r in qrows:
    print("%-12s crop %-4s n %-3s PSNR %-7s AUC(NCC) %-6s AUC(PCE) %-6s C %-7s ratio med %-6s failures %s" % (
        r["variant"], r["crop"], r["n_images"], r["psnr_mean"] or "-", r["auc_ncc"] or "-",
        r["auc_pce"] or "-", r["C"] or "-", r["ratio_median"] or "-", r["failures"]))
sys.exit(4 if n_failed else 0)
EOF
) 9>"$OUT/.lock" || status=$?
rm -f "$PLAN" "$VTAB"
case $status in
  0) echo "$PROG: done: $OUT/quality.csv, $OUT/quality.md" ;;
  4) ds_warn "some anonymizations failed (see $OUT/per_image.csv)"; exit 4 ;;
  *) ds_die "writing the tables failed" ;;
esac
