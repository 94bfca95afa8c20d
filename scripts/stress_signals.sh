#!/usr/bin/env bash
# Runs the "second Ctrl-C" scenarios of tests/hardening_test.sh N times each (default 50) and
# counts the outcomes: a second signal at a random moment (50 ms after the first), exactly
# before the commit (hook) and exactly during it (hook). Every run must end either with exit 3
# and every output, or with exit 130 and none of them.
# Usage: [MODES="random staged committing"] scripts/stress_signals.sh [N]
set -uo pipefail
export LC_ALL=C  # numbers written and read with a decimal point, whatever the user's locale
cd "$(dirname "$0")/.."
N=${1:-50}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
build/dippas fingerprint --quiet --crop 64 examples/flatfield --out "$T/K.npy"
A=(build/dippas anonymize --quiet --image examples/natural/Nikon_D70s_1_22824.png --prnu "$T/K.npy" --crop 64
   --config configs/smoke.yaml --max-iterations 100000 --psnr-stop 99 --psnr-min 5)
declare -A count
bad=0
for mode in ${MODES:-random staged committing}; do
  for i in $(seq 1 "$N"); do
    d="$T/$mode$i"
    mkdir -p "$d"
    if [ "$mode" = random ]; then "${A[@]}" --out "$d/o.png" --save-pool "$d/pool" --history "$d/h.csv" 2>/dev/null &
    else DIPPAS_TEST_SIGNAL_AT=$mode "${A[@]}" --out "$d/o.png" --save-pool "$d/pool" --history "$d/h.csv" 2>/dev/null &
    fi
    pid=$!
    until f=$(ls "$d"/pool/.pool.npy.tmp-* 2>/dev/null) && [ "$(stat -c %s "$f" 2>/dev/null || echo 0)" -gt 1000 ]; do
      sleep 0.02
    done
    kill -INT $pid
    [ "$mode" = random ] && { sleep 0.05; kill -INT $pid 2>/dev/null; }
    wait $pid
    rc=$?
    n=0
    for f in o.png o.json h.csv pool/pool.npy pool/pool.json; do [ -e "$d/$f" ] && n=$((n + 1)); done
    tmp=$(find "$d" -name '*.tmp-*' | wc -l)
    if { [ $rc -eq 3 ] && [ $n -eq 5 ]; } || { [ $rc -eq 130 ] && [ $n -eq 0 ]; }; then :; else
      bad=$((bad + 1)); echo "BAD: $mode run $i: exit $rc with $n of 5 outputs"
    fi
    [ "$tmp" -eq 0 ] || { bad=$((bad + 1)); echo "BAD: $mode run $i: $tmp temporaries left"; }
    count[$mode-$rc]=$(( ${count[$mode-$rc]:-0} + 1 ))
    rm -rf "$d"
  done
done
for k in "${!count[@]}"; do echo "$k: ${count[$k]}"; done | sort
set -- ${MODES:-random staged committing}
echo "$(($# * N - bad)) passed, $bad failed"
[ $bad -eq 0 ]
