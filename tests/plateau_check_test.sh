#!/usr/bin/env bash
# scripts/plateau_check.py on histories made by hand, each verdict derived from the rule's text
# (every 500 iterations from the second window on: stop when the mean PSNR did not rise):
# a run flat at 30 dB is stopped at 1,000 ("right"); a run flat at 37 dB that jumps to 39.5 at
# 1,600 is stopped at 1,000 before it would have finished ("premature"); a steady climb that
# passes 39 dB at 1,201 is never stopped ("no stop").
set -u
SRC=${1:?usage: plateau_check_test.sh SOURCE_DIR}
export LC_ALL=C
T=$(mktemp -d "${TMPDIR:-/tmp}/dippas_pc.$$.XXXXXX")
trap 'rm -rf "$T"' EXIT
hist() {  # hist FILE AWK-EXPRESSION-OF-i: 3,000 rows
  awk -v OFS=, 'BEGIN { print "iteration,loss,psnr,gamma,admitted,ncc";
    for (i = 1; i <= 3000; i++) print i, 0.001, '"$2"', 0.0005, 0, "" }' >"$T/$1.csv"
}
hist flat 30
hist jump '(i < 1600 ? 37 : 39.5)'
hist climb '(10 + 29.01 * i / 1201)'
/usr/bin/python3 "$SRC/scripts/plateau_check.py" "$T/flat.csv" "$T/jump.csv" "$T/climb.csv" >"$T/out" ||
  { cat "$T/out"; echo "FAIL: plateau_check.py failed"; exit 1; }
cat "$T/out"
fails=0
check() {  # check NAME "STOP REACHED VERDICT"
  got=$(awk -v n="$1.csv" '$1 == n { print $3, $4, $6 }' "$T/out")
  [ "$got" = "$2" ] || { echo "FAIL: $1: '$got', expected '$2'"; fails=$((fails + 1)); }
}
check flat "1000 - right"
check jump "1000 1600 premature"
check climb "- 1201 no"
grep -q "^runs: 3; the rule stopped 2, 1 of them before" "$T/out" || { echo "FAIL: summary"; fails=$((fails + 1)); }
[ $fails -eq 0 ] && echo "plateau_check tests passed" || exit 1
