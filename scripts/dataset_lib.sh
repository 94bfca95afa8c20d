# shellcheck shell=bash
# Shared by scripts/dresden.sh and scripts/vision.sh (sourced, not run): the common options,
# the fingerprints, the manifests, the anonymization (local or on Slurm) and the evaluation.
# A script sets PROG, LAYOUT_HELP, and calls ds_defaults, ds_parse_common (for the options it
# does not know), ds_add_device / ds_add_image for what it found, then ds_run.

ds_die() {
  echo "$PROG: $*" >&2
  exit 2
}
ds_warn() { echo "$PROG: warning: $*" >&2; }
ds_say() { [ "$QUIET" -eq 1 ] || echo "$PROG: $*"; }

# Image files the dippas loader reads, by extension (any case).
ds_is_image() {
  local ext=${1##*.}
  ext=${ext,,}
  case "$ext" in jpg | jpeg | png | tif | tiff | bmp) return 0 ;; *) return 1 ;; esac
}

DS_COMMON_HELP='Output (OUT):
  OUT/fingerprints/<device>.npy   fingerprint K of each device, from its flat-fields (kept:
                                  delete one to estimate it again)
  OUT/<run>/batch.csv             the images to anonymize (dippas batch manifest)
  OUT/<run>/anonymized/           anonymized PNG, metrics JSON and log of every image,
                                  summary.csv (resumable: rerun the same command)
  OUT/<run>/evaluate.csv, evaluate.sh   the evaluation manifest and command
  OUT/<run>/evaluation/           dippas evaluate: summary.json (ROC AUC of NCC and PCE, TPR at
                                  FPR 0.01, PSNR, trade-off C), scores.csv, plots
  <run> is crop<N> (e.g. crop512) or full.

Common options:
  --out OUT           output folder (created)
  --crop N            anonymize and score the centre N×N crop of every photo (default 512, the
                      paper'"'"'s protocol)
  --full              full-size photos instead (anonymized tile by tile; much slower)
  --blind             PRNU-blind mode (P = each image'"'"'s own residual; the fingerprints are then
                      used for the scores only); default: PRNU-aware (P = the device'"'"'s K)
  --method M          dip (default), subtract or denoise (baselines)
  --config FILE       dippas config file (repeatable); --set KEY=VALUE overrides a key (repeatable)
  --devices LIST      only these devices (comma-separated names)
  --max-images N      at most N photos per device (the first by name), for a trial run
  --jobs N            photos anonymized at once on this machine (default 1; keep 1 on a GPU)
  --threads N         CPU threads per dippas process
  --device D          auto (default), cpu or cuda
  --dippas PATH       dippas executable (default: $DIPPAS, dippas on PATH, or build/dippas of
                      this checkout)
  -q, --quiet         no progress display
Slurm (instead of running here):
  --slurm             submit the anonymization as a job array (scripts/slurm/submit.sh) and the
                      evaluation as a job that runs after it; the fingerprints are made here first
  --tasks N           array tasks (default 4)     --max-running K   at most K tasks at a time
  --cpus N            CPUs per task (default 4)   --gpu             one GPU per task (with cuda)
  --time T            time limit per task         --partition P     partition
  --sbatch ARG        any other sbatch option (repeatable)
Exit status: 0 done; 2 bad usage or input; 3 interrupted (rerun to resume); 4 some photos failed
(listed in OUT/<run>/anonymized/summary.csv; the evaluation then covers the others).'

ds_defaults() {
  OUT="" CROP=512 FULL=0 CROP_SET=0 MODE=aware METHOD=dip JOBS=1 THREADS="" DEVICE_OPT=""
  DIPPAS_EXE=${DIPPAS:-} QUIET=0 SLURM=0 DEVICES_FILTER="" MAX_IMAGES=0
  CONFIGS=() SETS=() SLURM_OPTS=()
  DS_DEVICES=() DS_LINES=()
  declare -gA DS_FLATS=()
}

# ds_parse_common "$@": handles one common option; sets DS_SHIFT to the words it used (0: not one).
ds_parse_common() {
  DS_SHIFT=0
  local opt=$1
  local val=${2-}
  case "$opt" in
    --out | --crop | --method | --config | --set | --devices | --max-images | --jobs | --threads | \
      --device | --dippas | --tasks | --max-running | --cpus | --time | --partition | --sbatch)
      [ $# -ge 2 ] && [ -n "$val" ] || ds_die "$opt needs a value"
      DS_SHIFT=2
      ;;
    --full | --blind | --aware | --slurm | --gpu | -q | --quiet) DS_SHIFT=1 ;;
    *) return 0 ;;
  esac
  case "$opt" in
    --out) OUT=$val ;;
    --crop)
      [[ $val =~ ^[1-9][0-9]*$ ]] || ds_die "--crop must be a positive integer, got '$val'"
      CROP=$val CROP_SET=1
      ;;
    --full) FULL=1 ;;
    --blind) MODE=blind ;;
    --aware) MODE=aware ;;
    --method)
      case "$val" in dip | subtract | denoise) METHOD=$val ;; *) ds_die "--method must be dip, subtract or denoise, got '$val'" ;; esac
      ;;
    --config)
      [ -f "$val" ] || ds_die "--config: no such file: $val"
      CONFIGS+=(--config "$(realpath "$val")")
      ;;
    --set) SETS+=(--set "$val") ;;
    --devices) DEVICES_FILTER=$val ;;
    --max-images)
      [[ $val =~ ^[1-9][0-9]*$ ]] || ds_die "--max-images must be a positive integer, got '$val'"
      MAX_IMAGES=$val
      ;;
    --jobs)
      [[ $val =~ ^[1-9][0-9]*$ ]] || ds_die "--jobs must be a positive integer, got '$val'"
      JOBS=$val
      ;;
    --threads)
      [[ $val =~ ^[1-9][0-9]*$ ]] || ds_die "--threads must be a positive integer, got '$val'"
      THREADS=$val
      ;;
    --device) DEVICE_OPT=$val ;;
    --dippas) DIPPAS_EXE=$val ;;
    --slurm) SLURM=1 ;;
    --gpu) SLURM_OPTS+=(--gpu) ;;
    --tasks | --max-running | --cpus | --time | --partition | --sbatch) SLURM_OPTS+=("$opt" "$val") ;;
    -q | --quiet) QUIET=1 ;;
  esac
}

# Checks the common options once parsed; finds dippas.
ds_check_common() {
  [ -n "$OUT" ] || ds_die "--out OUT is required (see --help)"
  [ $FULL -eq 0 ] || [ $CROP_SET -eq 0 ] || ds_die "--crop and --full exclude each other"
  [ "$METHOD" != subtract ] || [ "$MODE" = aware ] || ds_die "--method subtract needs the fingerprints: not with --blind"
  if [ ${#SLURM_OPTS[@]} -gt 0 ] && [ $SLURM -eq 0 ]; then
    ds_die "${SLURM_OPTS[0]} is a Slurm option: add --slurm"
  fi
  if [ -z "$DIPPAS_EXE" ]; then
    local here
    here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
    if command -v dippas >/dev/null 2>&1; then
      DIPPAS_EXE=$(command -v dippas)
    elif [ -x "$here/../build/dippas" ]; then
      DIPPAS_EXE=$here/../build/dippas
    else
      ds_die "dippas not found: give --dippas PATH or put dippas on PATH"
    fi
  fi
  if [ ! -x "$DIPPAS_EXE" ]; then
    DIPPAS_EXE=$(command -v "$DIPPAS_EXE" 2>/dev/null) || ds_die "dippas executable not found: '$DIPPAS_EXE'"
  fi
  DIPPAS_EXE=$(realpath "$DIPPAS_EXE")
}

# ds_keep_device NAME: whether --devices selects it.
ds_keep_device() {
  [ -z "$DEVICES_FILTER" ] && return 0
  [[ ",$DEVICES_FILTER," == *",$1,"* ]]
}

# ds_add_device NAME FLAT...: a device and its flat-field images.
ds_add_device() {
  local name=$1
  shift
  DS_DEVICES+=("$name")
  local f list=""
  for f in "$@"; do list+="$f"$'\n'; done
  DS_FLATS[$name]=$list
}

# ds_add_image DEVICE IMAGE ANON: a photo to anonymize (IMAGE relative to DS_BASE, absolute
# paths elsewhere) and where batch writes its anonymized PNG, relative to the batch OUT.
ds_add_image() { DS_LINES+=("$1"$'\t'"$2"$'\t'"$3"); }

# ds_anon_rel DEVICE IMAGE: where dippas batch writes the anonymized PNG of IMAGE (relative to
# DS_BASE), relative to its OUT: <device>/<the sub-folders after the last one named like the
# device>/<stem>.anon.png.
ds_anon_rel() {
  local dev=$1 rel=$2 sub="" part
  local dir=${rel%/*}
  [ "$dir" != "$rel" ] || dir=""
  if [ -n "$dir" ]; then
    IFS=/ read -r -a parts <<<"$dir"
    for part in "${parts[@]}"; do
      if [ "$part" = "$dev" ]; then sub=""; else sub+="$part/"; fi
    done
  fi
  local stem=${rel##*/}
  printf '%s/%s%s.anon.png' "$dev" "$sub" "${stem%.*}"
}

# One CSV field, quoted (commas and quotes in file names).
ds_csv() {
  local s=${1//\"/\"\"}
  printf '"%s"' "$s"
}

# ds_run: fingerprints, manifests, anonymization, evaluation. DS_BASE: the folder the image
# paths are relative to.
ds_run() {
  [ ${#DS_DEVICES[@]} -gt 0 ] || ds_die "no device to process (see the warnings above)"
  [ ${#DS_LINES[@]} -gt 0 ] || ds_die "no photo to anonymize (see the warnings above)"
  local run
  if [ $FULL -eq 1 ]; then run=full; else run=crop$CROP; fi
  [ -z "${DS_RUN_PREFIX:-}" ] || run=$DS_RUN_PREFIX/$run
  mkdir -p "$OUT" || ds_die "cannot create $OUT"
  OUT=$(realpath "$OUT")
  local fps=$OUT/fingerprints rdir=$OUT/$run
  mkdir -p "$fps" "$rdir" || ds_die "cannot create folders in $OUT"
  local q=()
  [ $QUIET -eq 0 ] || q=(--quiet)
  local th=()
  [ -z "$THREADS" ] || th=(--threads "$THREADS")

  # 1. Fingerprints from the flat-fields, full size (cropped where used), kept across runs.
  local d
  for d in "${DS_DEVICES[@]}"; do
    if [ -s "$fps/$d.npy" ]; then
      ds_say "fingerprint of $d: kept ($fps/$d.npy)"
      continue
    fi
    local flats=()
    mapfile -t flats < <(printf '%s' "${DS_FLATS[$d]}")
    ds_say "fingerprint of $d from ${#flats[@]} flat-field image(s)"
    "$DIPPAS_EXE" fingerprint "${q[@]}" "${th[@]}" --out "$fps/$d.npy" "${flats[@]}" ||
      ds_die "the fingerprint of device $d could not be estimated from its ${#flats[@]} flat-field image(s) (first: ${flats[0]}); see the error above"
  done

  # 2. Manifests: batch (images relative to DS_BASE) and evaluation (absolute paths).
  local anon=$rdir/anonymized
  local bm=$rdir/batch.csv em=$rdir/evaluate.csv
  {
    echo "image,device,fingerprint"
    local line dev img rel
    for line in "${DS_LINES[@]}"; do
      IFS=$'\t' read -r dev img rel <<<"$line"
      echo "$(ds_csv "$img"),$(ds_csv "$dev"),$(ds_csv "$fps/$dev.npy")"
    done
  } >"$bm.tmp" && mv "$bm.tmp" "$bm" || ds_die "cannot write $bm"
  {
    echo "image,device,fingerprint,anonymized"
    local line dev img rel
    for line in "${DS_LINES[@]}"; do
      IFS=$'\t' read -r dev img rel <<<"$line"
      echo "$(ds_csv "$DS_BASE/$img"),$(ds_csv "$dev"),$(ds_csv "$fps/$dev.npy"),$(ds_csv "$anon/$rel")"
    done
  } >"$em.tmp" && mv "$em.tmp" "$em" || ds_die "cannot write $em"
  ds_say "${#DS_LINES[@]} photo(s) of ${#DS_DEVICES[@]} device(s): $bm"

  local ev=("$DIPPAS_EXE" evaluate "${q[@]}" "${th[@]}" --manifest "$em" --out "$rdir/evaluation"
    --method-name "$METHOD" --crop "$([ $FULL -eq 1 ] && echo 0 || echo "$CROP")")
  {
    echo "#!/usr/bin/env bash"
    echo "# Scores the anonymized photos of $run (written by $PROG); extra options are passed on."
    printf '%q ' exec "${ev[@]}"
    echo '"$@"'
  } >"$rdir/evaluate.sh.tmp" && mv "$rdir/evaluate.sh.tmp" "$rdir/evaluate.sh" || ds_die "cannot write $rdir/evaluate.sh"

  # 3. Anonymization: here, or as a Slurm job array followed by the evaluation.
  local batch=(--manifest "$bm" --input "$DS_BASE" --"$MODE" --output "$anon" --method "$METHOD"
    "${CONFIGS[@]}" "${SETS[@]}")
  [ $FULL -eq 1 ] || batch+=(--crop "$CROP")
  [ -z "$DEVICE_OPT" ] || batch+=(--device "$DEVICE_OPT")
  if [ $SLURM -eq 1 ]; then
    [ -z "$THREADS" ] || batch+=(--threads "$THREADS")
    [ "$JOBS" -eq 1 ] || batch+=(--jobs "$JOBS")
    "$(dirname "${BASH_SOURCE[0]}")/slurm/submit.sh" "${SLURM_OPTS[@]}" --dippas "$DIPPAS_EXE" \
      --then "$rdir/evaluate.sh" -- "${batch[@]}" --quiet || ds_die "Slurm submission failed"
    ds_say "the evaluation runs after the array: $rdir/evaluation"
    return 0
  fi
  ds_say "anonymizing into $anon"
  local rc=0
  "$DIPPAS_EXE" batch "${batch[@]}" "${q[@]}" "${th[@]}" --jobs "$JOBS" || rc=$?
  case $rc in
    0) ;;
    3)
      echo "$PROG: interrupted: rerun the same command to resume" >&2
      exit 3
      ;;
    4) ds_warn "some photos failed (see $anon/summary.csv): evaluating the others" ;;
    *) ds_die "dippas batch failed (exit $rc)" ;;
  esac

  # 4. Evaluation.
  ds_say "evaluating into $rdir/evaluation"
  local extra=()
  [ $rc -eq 0 ] || extra=(--allow-missing)
  bash "$rdir/evaluate.sh" "${extra[@]}" || ds_die "dippas evaluate failed"
  ds_say "done: $rdir/evaluation/summary.json"
  return $rc
}
