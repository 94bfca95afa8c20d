#!/usr/bin/env bash
# A real single-node Slurm cluster in a temporary folder (munged, slurmctld and slurmd on free
# ports, no cgroups, no accounting; root only, as in CI): a trivial job array first, then
# scripts/slurm/submit.sh runs `dippas batch` as a 4-task array over 8 smoke items (64×64 crops
# of ../shared data) while one running task is requeued with `scontrol requeue` once an item has
# a checkpoint. Checks: every item done exactly once, the requeued item resumed from its
# checkpoint and byte-identical to an uninterrupted local run, the collected summary complete.
# Skipped (exit 77, with the reason) when the daemons are absent or cannot start.
# Usage: slurm_test.sh DIPPAS SOURCE_DIR SHARED_DIR
set -uo pipefail
DIPPAS=$(realpath "$1")
SRC=$(realpath "$2")
SHARED=${DIPPAS_SHARED-${3:-}}  # DIPPAS_SHARED (set, even empty) overrides the build's folder
source "$(dirname "$0")/cli_lib.sh"
say() { echo "slurm_test: $*"; }

[ "$(id -u)" -eq 0 ] || skip_all "the Slurm daemons need root here (SlurmUser=root); run as root, as CI does"
for c in munged slurmctld slurmd sbatch scontrol squeue sinfo scancel; do
  command -v $c >/dev/null 2>&1 || skip_all "$c not found: install Debian's slurm-wlm and munge (scripts/setup.sh)"
done
# This cluster only: nothing inherited from a surrounding Slurm job or configuration.
while IFS= read -r v; do unset "$v"; done < <(compgen -e | grep '^SLURM_')
chmod 755 "$T"
C=$T/cluster
mkdir -p "$C/munge" "$C/state" "$C/spool" "$C/log"
export SLURM_CONF=$C/slurm.conf

stop_cluster() {
  if [ -f "$C/slurmctld.pid" ] && scontrol ping >/dev/null 2>&1; then
    local ids
    ids=$(squeue -h -o %A 2>/dev/null | sort -u)
    # shellcheck disable=SC2086
    [ -z "$ids" ] || scancel $ids 2>/dev/null
    for _ in $(seq 30); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
  fi
  local f p
  for f in "$C/slurmd.pid" "$C/slurmctld.pid" "$C/munge/munged.pid"; do
    [ -f "$f" ] || continue
    p=$(cat "$f")
    kill "$p" 2>/dev/null || continue
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
}
trap 'stop_cluster; rm -rf "$T"' EXIT
cluster_logs() {
  local f
  for f in "$C"/log/*.log; do
    echo "--- $f (last lines)"
    tail -8 "$f"
  done
}

# --- the cluster -----------------------------------------------------------------------------
dd if=/dev/urandom of="$C/munge/munge.key" bs=1024 count=1 status=none
chmod 700 "$C/munge"
chmod 600 "$C/munge/munge.key"
munged --force --key-file="$C/munge/munge.key" --socket="$C/munge/sock" --pid-file="$C/munge/munged.pid" \
  --log-file="$C/log/munged.log" --seed-file="$C/munge/seed" 2>"$C/log/munged.err" ||
  skip_all "munged cannot start: $(cat "$C/log/munged.err" "$C/log/munged.log" 2>/dev/null | tail -3)"
read -r PORT1 PORT2 < <("$PY" -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
H=$(hostname -s 2>/dev/null || uname -n)
cat >"$SLURM_CONF" <<CONF
ClusterName=dippastest
SlurmctldHost=$H(127.0.0.1)
SlurmctldPort=$PORT1
SlurmdPort=$PORT2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: a requeued job waits this long (default 120 s) before it starts again.
AuthInfo=socket=$C/munge/sock,cred_expire=5
StateSaveLocation=$C/state
SlurmdSpoolDir=$C/spool
SlurmctldPidFile=$C/slurmctld.pid
SlurmdPidFile=$C/slurmd.pid
SlurmctldLogFile=$C/log/slurmctld.log
SlurmdLogFile=$C/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
KillWait=30
MinJobAge=600
SchedulerParameters=sched_interval=1
NodeName=$H NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=test Nodes=$H Default=YES MaxTime=INFINITE State=UP
CONF
slurmctld -f "$SLURM_CONF" 2>"$C/log/slurmctld.err" ||
  skip_all "slurmctld cannot start: $(cat "$C/log/slurmctld.err"; tail -3 "$C/log/slurmctld.log" 2>/dev/null)"
slurmd -f "$SLURM_CONF" 2>"$C/log/slurmd.err" ||
  skip_all "slurmd cannot start: $(cat "$C/log/slurmd.err"; tail -3 "$C/log/slurmd.log" 2>/dev/null)"
up=0
for _ in $(seq 60); do
  state=$(sinfo -h -N -o %T 2>/dev/null)
  [ "$state" = idle ] && { up=1; break; }
  sleep 0.5
done
if [ $up -eq 0 ]; then
  cluster_logs
  skip_all "the Slurm node did not come up within 30 s (state '${state:-none}'; logs above)"
fi
say "cluster up: node $H, $(nproc) CPUs, slurmctld port $PORT1, slurmd port $PORT2"

# --- a trivial job array -------------------------------------------------------------------
if jid=$(sbatch --parsable --array=0-3 --output="$T/trivial-%A_%a.out" \
  --wrap 'echo "task $SLURM_ARRAY_TASK_ID on $(hostname -s)"' 2>"$T/err"); then
  for _ in $(seq 120); do [ -z "$(squeue -h -j "$jid" 2>/dev/null)" ] && break; sleep 0.5; done
  for i in 0 1 2 3; do
    grep -qx "task $i on $H" "$T/trivial-${jid}_$i.out" 2>/dev/null || bad "trivial array: task $i did not run"
  done
  ok
else
  bad "sbatch of a trivial array: $(cat "$T/err")"
fi

# --- dippas: a 4-task array over 8 items, one task requeued mid-run ------------------------
dresden_data "$SHARED" "$SRC" --naturals 4
# Two cameras with four photos each (without the reference data: the sensor of examples/ turned).
CAMS=(Nikon_D70s_1 Nikon_D70_1)
[ "$EXAMPLE_DATA" -eq 1 ] && CAMS=(Nikon_D70sLR_1 Nikon_D70sUD_1)
if ! "$DIPPAS" batch --help 2>/dev/null | grep -q -- "--shard"; then
  skip "dippas array: this dippas batch has no --shard"
  finish
  exit $?
fi
ROOT=$T/root
FPS=$T/fps
OUT=$T/out
mkdir -p "$FPS"
for c in "${CAMS[@]}"; do
  mkdir -p "$ROOT/$c"
  for f in $(ls "$DATA/natural/${c}"_*.png | head -4); do ln -s "$f" "$ROOT/$c/"; done
  # shellcheck disable=SC2046  # file names without blanks
  "$DIPPAS" fingerprint --quiet --threads 1 --crop 64 $(ls "$DATA/flatfield/${c}"_*.png | head -3) \
    --out "$FPS/$c.npy" || bad "fingerprint of $c"
done
# Long enough (psnr_stop out of reach) that a task is still running when it is requeued; one
# thread so that the local run below is the same computation.
BATCH=(--input "$ROOT" --fingerprints "$FPS" --aware --output "$OUT" --crop 64
  --config "$SRC/configs/smoke.yaml" --set max_iterations=100 --set psnr_stop=99 --set checkpoint_every=10
  --threads 1 --quiet)
t0=$(date +%s)
if ! "$SRC/scripts/slurm/submit.sh" --tasks 4 --cpus 1 --dippas "$DIPPAS" -- "${BATCH[@]}" >"$T/submit.out" 2>&1; then
  bad "submit.sh: $(cat "$T/submit.out")"
  finish
  exit $?
fi
say "array submitted: $(head -1 "$T/submit.out")"
A=$(sed -n 's/^array_job=//p' "$T/submit.out")
COLLECT=$(sed -n 's/^collect_job=//p' "$T/submit.out")

# Running items with a saved loop state (<checkpoint>/*.ckpt), by array task (the task's batch has --shard I/4).
declare -A ITEM=() CKPT=()
find_running() {
  local ppid args ck pargs
  while read -r _ ppid args; do
    [[ $args == *" anonymize "* && $args == *"--checkpoint "* ]] || continue
    pargs=$(ps -o args= -p "$ppid" 2>/dev/null)
    [[ $pargs == *" batch "*"$OUT"* && $pargs =~ --shard\ ([0-9]+)/4 ]] || continue
    ck=${args##*--checkpoint }
    ck=${ck%% *}
    [[ $ck == /* ]] || ck=$OUT/$ck  # batch runs its children in OUT
    compgen -G "$ck/*.ckpt" >/dev/null || continue  # a saved loop state, not just the settings
    [ -n "${ITEM[${BASH_REMATCH[1]}]:-}" ] && continue
    CKPT[${BASH_REMATCH[1]}]=$ck
    ck=${args##*--image }
    ITEM[${BASH_REMATCH[1]}]=${ck%% *}
  done < <(ps -eo pid=,ppid=,args=)
}
# Two tasks interrupted while running: one requeued by Slurm (`scontrol requeue`: SIGTERM to the
# whole task), one told its time limit is near (USR1 to the batch script only, as
# --signal=B:USR1@120 does), which checkpoints and requeues itself.
REQ="" USR=""
for _ in $(seq 300); do
  find_running
  for k in "${!ITEM[@]}"; do
    if [ -z "$REQ" ]; then
      REQ=$k
      scontrol requeue "${A}_$REQ" || bad "scontrol requeue ${A}_$REQ failed"
      say "task requeued: scontrol requeue ${A}_$REQ while $(basename "${ITEM[$REQ]}") was running (checkpoint ${CKPT[$REQ]})"
    elif [ -z "$USR" ] && [ "$k" != "$REQ" ]; then
      USR=$k
      scancel --signal=USR1 --batch "${A}_$USR" || bad "scancel --signal=USR1 --batch ${A}_$USR failed"
      say "time limit simulated: USR1 to the batch script of ${A}_$USR while $(basename "${ITEM[$USR]}") was running"
    fi
  done
  [ -n "$USR" ] && break
  # No second running task: the requeue alone is checked.
  [ -n "$REQ" ] && [ -z "$(squeue -h -t R 2>/dev/null)" ] && break
  sleep 0.3
done
if [ -z "$REQ" ]; then
  bad "no running item with a checkpoint within 90 s: $(squeue 2>&1)"
  cluster_logs
  finish
  exit $?
fi
[ -n "$USR" ] || skip "USR1 (time limit) path: no second task was running at the same time"

# Everything ends: the array (a requeued task restarts after cred_expire) and the collect job.
done_all=0
for _ in $(seq 360); do
  if [ -z "$(squeue -h 2>/dev/null)" ]; then done_all=1; break; fi
  sleep 0.5
done
say "array and collect job ended after $(($(date +%s) - t0)) s"
LOGS=$OUT/slurm-logs
if [ $done_all -eq 0 ]; then
  bad "the jobs did not end within 180 s: $(squeue 2>&1)"
  cluster_logs
fi
for f in "$LOGS"/*.log; do
  echo "--- $(basename "$f")"
  cat "$f"
done
grep -q "DUE TO JOB REQUEUE" "$LOGS/dippas-${A}_$REQ.log" || bad "task $REQ's log does not show the requeue"
if [ -n "$USR" ]; then
  grep -q "requeueing ${A}_$USR" "$LOGS/dippas-${A}_$USR.log" || bad "task $USR did not requeue itself on USR1"
fi
grep -q "collect complete" "$LOGS/collect-$COLLECT.log" || bad "the collect job did not complete"
state=$(scontrol show job "$COLLECT" 2>/dev/null | grep -o 'JobState=[A-Z]*')
[ "$state" = JobState=COMPLETED ] || bad "collect job: $state"

# Each interrupted item: its task stopped (exit 3), ran again, resumed from the checkpoint saved
# on the signal, which was then removed.
LOC=$T/local
for k in $REQ $USR; do
  TLOG=$LOGS/dippas-${A}_$k.log
  dev=$(basename "$(dirname "${ITEM[$k]}")")
  ILOG=$OUT/$dev/$(basename "${ITEM[$k]%.*}").log
  if ! grep -q "restart 1" "$TLOG"; then
    bad "task $k did not run again after its requeue"
    # What the controller did with it (the cluster's folder goes with the test's temp folder).
    scontrol show job "${A}_$k" 2>&1 | sed "s/^/slurm_test: scontrol: /"
    grep -h "${A}_$k\b" "$C"/log/slurmctld.log "$C"/log/slurmd.log 2>/dev/null |
      tail -30 | sed "s/^/slurm_test: log: /"
    cluster_logs
  fi
  # (The item's log is appended to by each run: the signal's save, then the resume.)
  saved=$(grep -o "checkpoint saved at iteration [0-9]*" "$ILOG" | tail -1 | grep -o '[0-9]*$')
  resumed=$(grep -o "resumed from iteration [0-9]*" "$ILOG" "$TLOG" | tail -1 | grep -o '[0-9]*$')
  grep -h "checkpoint saved at iteration\|resumed from iteration" "$ILOG" "$TLOG" | sort -u |
    sed "s/^/slurm_test: task $k: /"
  [ -n "$resumed" ] && [ "$resumed" -gt 0 ] || bad "task $k: no 'resumed from iteration K' (K > 0) in $ILOG or $TLOG"
  [ -n "$saved" ] && [ "$saved" = "$resumed" ] ||
    bad "task $k: resumed from iteration '$resumed', but the signal's checkpoint was saved at '$saved' ($ILOG)"
  grep -q "dippas batch exited with 3" "$TLOG" || bad "task $k: batch did not stop with exit 3 (interrupted)"
  [ ! -e "${CKPT[$k]}" ] || bad "the checkpoint ${CKPT[$k]} was not removed after success"
  mkdir -p "$LOC/root/$dev"
  ln -s "${ITEM[$k]}" "$LOC/root/$dev/"
done

# Every item done exactly once: in exactly one shard summary, all done; the collected summary.
check "shards and summary" "
import csv, glob, os
items = sorted(os.path.relpath(p, '$ROOT') for p in glob.glob('$ROOT/*/*.png'))
assert len(items) == 8, items
seen = {}
shards = sorted(glob.glob('$OUT/summary.shard-*.csv'))
assert 1 <= len(shards) <= 4 and all('-of-4.csv' in x for x in shards), shards
for s in shards:
    for r in csv.DictReader(open(s)):
        seen.setdefault(r['image'], []).append((s, r['status']))
assert sorted(seen) == items, (sorted(seen), items)
for k, v in seen.items():
    assert len(v) == 1 and v[0][1] == 'done', (k, v)
rows = list(csv.DictReader(open('$OUT/summary.csv')))
assert sorted(r['image'] for r in rows) == items, rows
assert all(r['status'] in ('done', 'skipped') for r in rows), rows
for i in items:
    assert os.path.isfile('$OUT/' + i.replace('.png', '.anon.png')), i
"

# The interrupted items, uninterrupted, here (same options, one thread): the same bytes.
LB=("${BATCH[@]}" --jobs 2)
for k in "${!LB[@]}"; do
  [ "${LB[k]}" = "$ROOT" ] && LB[k]=$LOC/root
  [ "${LB[k]}" = "$OUT" ] && LB[k]=$LOC/out
done
if "$DIPPAS" batch "${LB[@]}" >"$T/local.out" 2>&1; then
  for k in $REQ $USR; do
    REL=$(basename "$(dirname "${ITEM[$k]}")")/$(basename "${ITEM[$k]%.*}")
    if cmp "$LOC/out/$REL.anon.png" "$OUT/$REL.anon.png"; then
      say "interrupted item $REL.anon.png (task $k): byte-identical to the uninterrupted local run"
      ok
    else
      bad "task $k: the interrupted item's PNG differs from an uninterrupted run's"
    fi
    check "interrupted item metrics ($k)" "
import json
a = json.load(open('$LOC/out/$REL.anon.json')); b = json.load(open('$OUT/$REL.anon.json'))
for k in ('iterations', 'psnr', 'gamma', 'ncc_after', 'pce_after', 'pool_size'):
    assert a[k] == b[k], (k, a[k], b[k])
"
  done
else
  bad "local batch run: $(tail -3 "$T/local.out")"
fi
say "total $(($(date +%s) - t0)) s for the dippas array"

# --- scripts/dresden.sh --slurm: the array, then the evaluation as the dependent job ----------
t1=$(date +%s)
DR=$T/dresden
mkdir -p "$DR/natural" "$DR/flat"
for c in "${CAMS[@]}"; do
  for f in $(ls "$DATA/flatfield/${c}"_*.png | head -3); do ln -s "$f" "$DR/flat/"; done
  for f in $(ls "$DATA/natural/${c}"_*.png | head -2); do ln -s "$f" "$DR/natural/"; done
done
if "$SRC/scripts/dresden.sh" --natural "$DR/natural" --flat "$DR/flat" --out "$T/dro" --method subtract \
  --crop 64 --threads 1 --slurm --tasks 2 --cpus 1 --dippas "$DIPPAS" --quiet >"$T/dr.out" 2>&1; then
  for _ in $(seq 240); do [ -z "$(squeue -h 2>/dev/null)" ] && break; sleep 0.5; done
  cat "$T/dro/crop64/anonymized/slurm-logs/"collect-*.log
  check "dresden.sh --slurm report" "
import csv, glob, os
rows = list(csv.DictReader(open('$T/dro/crop64/evaluation/scores.csv')))
names = [os.path.basename(p)[:-len('.png')] for p in glob.glob('$DR/natural/*.png')]
want = sorted('$T/dro/crop64/anonymized/%s/%s.anon.png' % (n.rsplit('_', 1)[0], n) for n in names)
assert len(want) == 4 and sorted(set(r['image'] for r in rows)) == want, (rows, want)
assert len(rows) == 8, len(rows)
"
  say "dresden.sh --slurm: evaluated after the array in $(($(date +%s) - t1)) s"
else
  bad "dresden.sh --slurm: $(tail -3 "$T/dr.out")"
fi
finish
