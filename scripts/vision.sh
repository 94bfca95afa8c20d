#!/usr/bin/env bash
# The VISION dataset, end to end: a fingerprint per device from its flat-field photos, the
# natural photos (or their Facebook / WhatsApp copies) anonymized (here or on Slurm), then
# dippas evaluate.
set -euo pipefail
export LC_ALL=C  # numbers written and read with a decimal point, whatever the user's locale
PROG=vision.sh
# shellcheck source=scripts/dataset_lib.sh
source "$(dirname "$0")/dataset_lib.sh"

usage() {
  cat <<U
Usage: scripts/vision.sh --root ROOT --out OUT [--images nat|natFBH|natWA] [options]

Anonymizes the VISION dataset: estimates each device's fingerprint K from its flat-field photos
(dippas fingerprint), anonymizes its natural photos (dippas batch, here or as a Slurm job array)
and scores the result (dippas evaluate). Rerunning the same command resumes.

Layout (as published): ROOT/<device>/images/<set>/<photo>, e.g.
  ROOT/D01_Samsung_GalaxyS3Mini/images/flat/D01_I_flat_0001.jpg    flat-fields (fingerprint)
  ROOT/D01_Samsung_GalaxyS3Mini/images/nat/D01_I_nat_0001.jpg      natural photos
  ROOT/D01_Samsung_GalaxyS3Mini/images/natFBH/...                  their Facebook copies
  ROOT/D01_Samsung_GalaxyS3Mini/images/natWA/...                   their WhatsApp copies
  --root ROOT         the dataset folder (one sub-folder per device; videos are ignored)
  --images SET        the photos to anonymize: nat (default), natFBH or natWA
The fingerprint comes from images/flat in every case; all of a device's flat-fields must have
the same size (a device whose flat-fields mix portrait and landscape fails with the names of
the sizes: remove the odd ones, or leave it out with --devices). Devices without flat-fields
or without photos of SET are skipped with a warning. Runs of each SET go to OUT/<SET>/.

$DS_COMMON_HELP

Example: scripts/vision.sh --root VISION --images natWA --out runs/vision --slurm --tasks 16 \\
           --gpu --time 04:00:00 --device cuda
U
}

ROOT="" SET=nat
ds_defaults
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --root | --images)
      [ $# -ge 2 ] && [ -n "$2" ] || ds_die "$1 needs a value"
      if [ "$1" = --root ]; then ROOT=$2; else SET=$2; fi
      shift 2
      ;;
    *)
      ds_parse_common "$@"
      [ "$DS_SHIFT" -gt 0 ] || ds_die "unknown option '$1' (see --help)"
      shift "$DS_SHIFT"
      ;;
  esac
done
[ -n "$ROOT" ] || ds_die "--root ROOT is required (see --help)"
[ -d "$ROOT" ] || ds_die "--root: no such folder: $ROOT"
case "$SET" in nat | natFBH | natWA) ;; *) ds_die "--images must be nat, natFBH or natWA, got '$SET'" ;; esac
ds_check_common
ROOT=$(realpath "$ROOT")

# The image files below DIR, sorted by path; hidden entries skipped.
list_images() {
  local f
  [ -d "$1" ] || return 0
  while IFS= read -r -d '' f; do
    [ -f "$f" ] && ds_is_image "$f" && printf '%s\n' "$f"
  done < <(find "$1" -mindepth 1 -name '.*' -prune -o \( -type f -o -type l \) -print0 | sort -z)
}

devices=()
while IFS= read -r -d '' d; do
  [ -d "$d/images" ] && devices+=("${d##*/}")
done < <(find "$ROOT" -mindepth 1 -maxdepth 1 ! -name '.*' \( -type d -o -type l \) -print0 | sort -z)
[ ${#devices[@]} -gt 0 ] || ds_die "no device folder with images/ in $ROOT (expected ROOT/<device>/images/{flat,nat,...})"
if [ -n "$DEVICES_FILTER" ]; then
  IFS=, read -r -a wanted <<<"$DEVICES_FILTER"
  for d in "${wanted[@]}"; do
    [ -d "$ROOT/$d/images" ] || ds_die "--devices: no device folder $ROOT/$d/images (devices there: ${devices[*]})"
  done
fi

DS_BASE=$ROOT
DS_RUN_PREFIX=$SET
for d in "${devices[@]}"; do
  ds_keep_device "$d" || continue
  mapfile -t fl < <(list_images "$ROOT/$d/images/flat")
  mapfile -t nat < <(list_images "$ROOT/$d/images/$SET")
  if [ ${#fl[@]} -eq 0 ]; then
    ds_warn "device $d has no flat-field photo in $ROOT/$d/images/flat: skipped"
    continue
  fi
  if [ ${#nat[@]} -eq 0 ]; then
    ds_warn "device $d has no photo in $ROOT/$d/images/$SET: skipped"
    continue
  fi
  ds_add_device "$d" "${fl[@]}"
  n=0
  for f in "${nat[@]}"; do
    [ "$MAX_IMAGES" -eq 0 ] || [ $n -lt "$MAX_IMAGES" ] || break
    rel=${f#"$ROOT"/}
    ds_add_image "$d" "$rel" "$(ds_anon_rel "$d" "$rel")"
    n=$((n + 1))
  done
done

ds_run
