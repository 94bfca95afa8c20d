#!/usr/bin/env bash
# The Dresden Image Database, end to end: a fingerprint per camera from its flat-fields, the
# natural photos anonymized (here or on Slurm), then dippas evaluate.
set -euo pipefail
export LC_ALL=C  # numbers written and read with a decimal point, whatever the user's locale
PROG=dresden.sh
# shellcheck source=scripts/dataset_lib.sh
source "$(dirname "$0")/dataset_lib.sh"

usage() {
  cat <<U
Usage: scripts/dresden.sh --natural DIR --flat DIR --out OUT [options]

Anonymizes the Dresden Image Database: estimates each camera's fingerprint K from its
flat-field photos (dippas fingerprint), anonymizes the natural photos (dippas batch, here or as
a Slurm job array) and scores the result (dippas evaluate). Rerunning the same command resumes.

Layout: photos are named <Brand>_<Model>_<instance>_<number>.<ext> (e.g. Nikon_D70s_1_22824.JPG;
the model may contain '_', e.g. Olympus_mju_1050SW_0_123.JPG); the camera (device) is the name
up to its last '_'. Natural photos and flat-field photos lie in two folders (sub-folders are
searched too):
  --natural DIR       the natural photos
  --flat DIR          the flat-field photos (all of one camera the same size)
Cameras without a flat-field photo are skipped with a warning. Files named otherwise are
ignored with a warning.

$DS_COMMON_HELP

Example: scripts/dresden.sh --natural dresden/natural --flat dresden/flat --out runs/dresden \\
           --jobs 2 --config configs/default.yaml
U
}

NATURAL="" FLAT=""
ds_defaults
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --natural | --flat)
      [ $# -ge 2 ] && [ -n "$2" ] || ds_die "$1 needs a value"
      if [ "$1" = --natural ]; then NATURAL=$2; else FLAT=$2; fi
      shift 2
      ;;
    *)
      ds_parse_common "$@"
      [ "$DS_SHIFT" -gt 0 ] || ds_die "unknown option '$1' (see --help)"
      shift "$DS_SHIFT"
      ;;
  esac
done
[ -n "$NATURAL" ] || ds_die "--natural DIR is required (see --help)"
[ -n "$FLAT" ] || ds_die "--flat DIR is required (see --help)"
[ -d "$NATURAL" ] || ds_die "--natural: no such folder: $NATURAL"
[ -d "$FLAT" ] || ds_die "--flat: no such folder: $FLAT"
ds_check_common
NATURAL=$(realpath "$NATURAL")
FLAT=$(realpath "$FLAT")

# find DIR: the image files below DIR, sorted by path; hidden entries skipped.
list_images() {
  local f
  while IFS= read -r -d '' f; do
    [ -f "$f" ] && ds_is_image "$f" && printf '%s\n' "$f"
  done < <(find "$1" -mindepth 1 -name '.*' -prune -o \( -type f -o -type l \) -print0 | sort -z)
}
# The camera of a Dresden file name (up to its last '_'), or nothing when it is not named so.
device_of() {
  local b=${1##*/}
  b=${b%.*}
  [[ $b =~ ^(.+_.+_[0-9]+)_[0-9]+$ ]] || return 1
  printf '%s' "${BASH_REMATCH[1]}"
}

declare -A flats=() nats=()
while IFS= read -r f; do
  if d=$(device_of "$f"); then flats[$d]+="$f"$'\n'; else ds_warn "not named <Brand>_<Model>_<instance>_<number>: ignored: $f"; fi
done < <(list_images "$FLAT")
while IFS= read -r f; do
  if d=$(device_of "$f"); then nats[$d]+="$f"$'\n'; else ds_warn "not named <Brand>_<Model>_<instance>_<number>: ignored: $f"; fi
done < <(list_images "$NATURAL")
[ ${#nats[@]} -gt 0 ] || ds_die "no Dresden photo (<Brand>_<Model>_<instance>_<number>.jpg) in $NATURAL"

if [ -n "$DEVICES_FILTER" ]; then
  IFS=, read -r -a wanted <<<"$DEVICES_FILTER"
  for d in "${wanted[@]}"; do
    [ -n "${nats[$d]:-}" ] || ds_die "--devices: no natural photo of '$d' in $NATURAL (cameras there: $(printf '%s\n' "${!nats[@]}" | sort | tr '\n' ' '))"
  done
fi

DS_BASE=$NATURAL
while IFS= read -r d; do
  ds_keep_device "$d" || continue
  if [ -z "${flats[$d]:-}" ]; then
    ds_warn "camera $d has no flat-field photo in $FLAT: skipped"
    continue
  fi
  mapfile -t fl < <(printf '%s' "${flats[$d]}")
  ds_add_device "$d" "${fl[@]}"
  n=0
  while IFS= read -r f; do
    [ -n "$f" ] || continue
    [ "$MAX_IMAGES" -eq 0 ] || [ $n -lt "$MAX_IMAGES" ] || break
    rel=${f#"$NATURAL"/}
    ds_add_image "$d" "$rel" "$(ds_anon_rel "$d" "$rel")"
    n=$((n + 1))
  done <<<"${nats[$d]}"
done < <(printf '%s\n' "${!nats[@]}" | sort)

ds_run
