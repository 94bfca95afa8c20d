#!/usr/bin/env bash
# Submits `dippas batch` to Slurm as a job array of N tasks (task I runs shard I/N of the items,
# see dippas-array.sbatch), then a job that starts once every task has ended (afterany): it
# merges the shards' summaries into OUT/summary.csv (`dippas batch … --collect`) and, when every
# item is done, runs the commands of --then FILE (the dataset scripts evaluate there).
#
# Usage: scripts/slurm/submit.sh [OPTIONS] -- BATCH_OPTIONS...
#   BATCH_OPTIONS   options of `dippas batch`, with --output OUT and without --shard
# Options:
#   --tasks N        array tasks = shards (default 4)
#   --max-running K  at most K tasks at a time (--array=0-(N-1)%K; default: no limit)
#   --cpus N         CPUs per task (default 4); the children share them (--threads)
#   --gpu            one GPU per task (--gres=gpu:1); add --device cuda to the batch options
#   --time T         time limit per task (sbatch --time, e.g. 04:00:00): 120 s before it the
#                    task checkpoints and is requeued, so a short limit only costs requeues
#   --partition P    partition of both jobs
#   --sbatch ARG     any other sbatch option, given to both jobs (repeatable)
#   --then FILE      shell script run by the collect job after a complete collect
#   --logs DIR       folder of the jobs' logs (default OUT/slurm-logs)
#   --dippas PATH    dippas executable (default: $DIPPAS, dippas on PATH, or this checkout's
#                    build/dippas)
#   --dry-run        print the sbatch commands instead of submitting
#   -h, --help       this help
# Prints the array job id and the collect job id. Resubmitting the same command later resumes:
# items already done are skipped, interrupted ones resume from their checkpoints.
set -euo pipefail
export LC_ALL=C  # numbers written and read with a decimal point, whatever the user's locale
HERE=$(cd "$(dirname "$0")" && pwd)

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() {
  echo "submit.sh: $*" >&2
  exit 2
}
need() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }

TASKS=4 MAXRUN="" CPUS=4 GPU=0 TIME="" PARTITION="" THEN="" LOGS="" DIPPAS_EXE="${DIPPAS:-}" DRY=0
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --tasks) need "$@"; TASKS=$2; shift 2 ;;
    --max-running) need "$@"; MAXRUN=$2; shift 2 ;;
    --cpus) need "$@"; CPUS=$2; shift 2 ;;
    --gpu) GPU=1; shift ;;
    --time) need "$@"; TIME=$2; shift 2 ;;
    --partition) need "$@"; PARTITION=$2; shift 2 ;;
    --sbatch) need "$@"; EXTRA+=("$2"); shift 2 ;;
    --then) need "$@"; THEN=$2; shift 2 ;;
    --logs) need "$@"; LOGS=$2; shift 2 ;;
    --dippas) need "$@"; DIPPAS_EXE=$2; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --) shift; break ;;
    *) die "unknown option '$1' (the batch options go after --; see --help)" ;;
  esac
done
[ $# -gt 0 ] || die "no dippas batch options after -- (see --help)"
[[ $TASKS =~ ^[1-9][0-9]*$ ]] || die "--tasks must be a positive integer, got '$TASKS'"
[ -z "$MAXRUN" ] || [[ $MAXRUN =~ ^[1-9][0-9]*$ ]] || die "--max-running must be a positive integer, got '$MAXRUN'"
[[ $CPUS =~ ^[1-9][0-9]*$ ]] || die "--cpus must be a positive integer, got '$CPUS'"

# OUT, from the batch options: the collect job and the default log folder need it.
OUT=""
args=("$@")
for ((k = 0; k < ${#args[@]}; k++)); do
  case "${args[k]}" in
    --output) OUT=${args[k + 1]:-} ;;
    --output=*) OUT=${args[k]#--output=} ;;
    --shard | --shard=* | --collect) die "'${args[k]}' is set by the job array: leave it out" ;;
  esac
done
[ -n "$OUT" ] || die "the batch options need --output OUT"

# The jobs run elsewhere, later, perhaps from another folder: absolute paths.
if [ -z "$DIPPAS_EXE" ]; then
  if command -v dippas >/dev/null 2>&1; then
    DIPPAS_EXE=$(command -v dippas)
  elif [ -x "$HERE/../../build/dippas" ]; then
    DIPPAS_EXE=$HERE/../../build/dippas
  else
    die "dippas not found: give --dippas PATH or put dippas on PATH"
  fi
fi
[ -x "$DIPPAS_EXE" ] || DIPPAS_EXE=$(command -v "$DIPPAS_EXE" 2>/dev/null) || die "dippas executable not found: '$DIPPAS_EXE'"
DIPPAS_EXE=$(realpath "$DIPPAS_EXE")
if [ -n "$THEN" ]; then
  [ -f "$THEN" ] || die "--then: no such file: $THEN"
  THEN=$(realpath "$THEN")
fi
[ $DRY -eq 1 ] || command -v sbatch >/dev/null 2>&1 || die "sbatch not found: run this on a Slurm login node"
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
LOGS=${LOGS:-$OUT/slurm-logs}
mkdir -p "$LOGS"
LOGS=$(realpath "$LOGS")

COMMON=()
[ -z "$PARTITION" ] || COMMON+=(--partition="$PARTITION")
COMMON+=("${EXTRA[@]}")
# shellcheck disable=SC2054  # commas inside sbatch option values
ARRAY=(sbatch --parsable --job-name=dippas --array="0-$((TASKS - 1))${MAXRUN:+%$MAXRUN}"
  --cpus-per-task="$CPUS" --output="$LOGS/dippas-%A_%a.log"
  --export=ALL,DIPPAS="$DIPPAS_EXE",DIPPAS_SHARDS="$TASKS")
[ $GPU -eq 0 ] || ARRAY+=(--gres=gpu:1)
[ -z "$TIME" ] || ARRAY+=(--time="$TIME")
ARRAY+=("${COMMON[@]}" "$HERE/dippas-array.sbatch" "$@")

# The collect job: merge the shards; evaluate (--then) only when every item is done.
# (--collect plans the items as the shards did: the same batch options.)
COLLECT_CMD="$(printf '%q ' "$DIPPAS_EXE" batch "$@" --collect)"
WRAP="echo dippas-collect: collecting $(printf '%q' "$OUT"); if $COLLECT_CMD; then echo 'dippas-collect: collect complete';"
if [ -n "$THEN" ]; then
  WRAP+=" echo dippas-collect: running $(printf '%q' "$THEN"); bash $(printf '%q' "$THEN");"
fi
WRAP+=" else rc=\$?; echo 'dippas-collect: items missing or failed (listed above): resubmit the same command to finish them' >&2; exit \$rc; fi"

if [ $DRY -eq 1 ]; then
  printf '%q ' "${ARRAY[@]}"
  echo
  printf '%q ' sbatch --parsable --job-name=dippas-collect --dependency=afterany:ARRAY_JOB_ID \
    --output="$LOGS/collect-%j.log" "${COMMON[@]}" --wrap="$WRAP"
  echo
  exit 0
fi
array_id=$("${ARRAY[@]}") || die "sbatch of the job array failed"
array_id=${array_id%%;*}  # --parsable: "id" or "id;cluster"
collect_id=$(sbatch --parsable --job-name=dippas-collect --dependency=afterany:"$array_id" \
  --output="$LOGS/collect-%j.log" "${COMMON[@]}" --wrap="$WRAP") ||
  die "sbatch of the collect job failed (the array $array_id is submitted; collect later with: $COLLECT_CMD)"
collect_id=${collect_id%%;*}
echo "submitted job array $array_id ($TASKS tasks) and collect job $collect_id; logs in $LOGS"
echo "array_job=$array_id"
echo "collect_job=$collect_id"
