#!/usr/bin/env bash
# scripts/bench_dip.sh's arithmetic and failures, over stand-ins for dippas and python (shell
# scripts that print given timings): each row's ratio is dippas's seconds per iteration times
# PyTorch's iterations per second, --rounds prints the median (the mean of the middle two for an
# even count), and a benchmark that prints no timing, a bad --rounds or a missing torch fail.
#   bench_dip_test.sh <source dir>
set -u
SRC=${1:?usage: bench_dip_test.sh <source dir>}
source "$(dirname "$0")/cli_lib.sh"
[ -x /usr/bin/time ] ||
  skip_all "/usr/bin/time absent (apt-get install time): bench_dip.sh measures peak memory with it"

# Each stand-in prints the next value of its queue ($T/d_queue: ms per iteration; $T/p_queue:
# iterations per second); an empty queue prints no timing, as a crashed benchmark would.
cat >"$T/dippas" <<SH
#!/bin/sh
[ "\$1" = --version ] && { echo "dippas stand-in"; exit 0; }
# The comparisons of the CPU rewrites would count in the peak: the script must ask for the loop.
case " \$* " in *" --loop-only "*) ;; *) echo "no --loop-only" >&2; exit 0 ;; esac
v=\$(head -1 "$T/d_queue"); sed -i 1d "$T/d_queue"
[ -n "\$v" ] && printf '  time per iteration        %9.2f ms\n' "\$v"
exit 0
SH
cat >"$T/python" <<SH
#!/bin/sh
if [ "\$1" = -c ]; then
  case "\$2" in *print*) echo "torch stand-in" ;; esac
  exit \${NO_TORCH:-0}
fi
v=\$(head -1 "$T/p_queue"); sed -i 1d "$T/p_queue"
[ -n "\$v" ] && echo "python it/s: \$v  (size stand-in)"
exit 0
SH
chmod +x "$T/dippas" "$T/python"

# run NAME EXPECTED_RC "D MS..." "P IT/S..." PATTERN... -- ARGS...: checks rc and output lines.
run() {
  local name=$1 want=$2
  printf '%s\n' $3 >"$T/d_queue"
  printf '%s\n' $4 >"$T/p_queue"
  shift 4
  local patterns=()
  while [ "$1" != -- ]; do
    patterns+=("$1")
    shift
  done
  shift
  BENCH_DIP_DIPPAS="$T/dippas" BENCH_DIP_PYTHON="$T/python" "$SRC/scripts/bench_dip.sh" \
    --threads 1 "$@" >"$T/log" 2>&1
  local rc=$?
  if [ $rc -ne "$want" ]; then
    bad "$name: exit $rc, expected $want"
    sed 's/^/    /' "$T/log"
    return
  fi
  local p
  for p in "${patterns[@]}"; do
    if ! grep -qE -- "$p" "$T/log"; then
      bad "$name: no line matching '$p' in the output"
      sed 's/^/    /' "$T/log"
      return
    fi
  done
  ok
}

# Rounds alternate dippas and PyTorch: 100 ms at 2 it/s is 0.2, 300 ms at 2 it/s 0.6, 200 ms at
# 4 it/s 0.8; the median of three is 0.6.
run "three rounds" 0 "100 300 200" "2 2 4" \
  '^32 +1 +0\.100 +0\.500 +0\.200 ' '^32 +1 +0\.300 +0\.500 +0\.600 ' '^32 +1 +0\.200 +0\.250 +0\.800 ' \
  '^  32: 0\.600 \(min 0\.200, max 0\.800, 3 rounds\)' 'threads: 1; dippas dippas stand-in; torch stand-in' \
  -- --sizes 32 --iterations 1 --rounds 3
run "two rounds, two sizes: the mean of the middle two" 0 "100 300 50 50" "2 2 10 20" \
  '^  32: 0\.400 \(min 0\.200, max 0\.600, 2 rounds\)' '^  64: 0\.750 \(min 0\.500, max 1\.000, 2 rounds\)' \
  -- --sizes "32 64" --iterations "1 1" --rounds 2
run "one round prints no median" 0 "100" "2" '^32 +1 +0\.100 +0\.500 +0\.200 ' -- --sizes 32 --iterations 1
if grep -q "median" "$T/log"; then bad "one round printed a median"; else ok; fi
run "a benchmark without a timing fails" 1 "100" "" 'a benchmark failed at size 32' -- \
  --sizes 32 --iterations 1
run "a bad --rounds" 2 "" "" 'needs a positive integer' -- --rounds 0
run "one --iterations value per size" 2 "" "" 'one --iterations value per size' -- \
  --sizes "32 64" --iterations 1
NO_TORCH=1 run "no torch" 1 "" "" 'has no torch' -- --sizes 32 --iterations 1

# A user's decimal-comma locale changes no figure (bench_dip.sh's awk and printf would write and
# read "0,100"). Debian ships no such locale ready-made: built here with localedef.
mkdir -p "$T/loc"
if localedef -i de_DE -f UTF-8 "$T/loc/de_DE.UTF-8" >/dev/null 2>&1 &&
  [ "$(LOCPATH=$T/loc LC_ALL=de_DE.UTF-8 awk 'BEGIN { printf "%.1f", 0.5 }')" = "0,5" ]; then
  LOCPATH=$T/loc LC_ALL=de_DE.UTF-8 run "decimal-comma locale" 0 "100 300 200" "2 2 4" \
    '^32 +1 +0\.100 +0\.500 +0\.200 ' '^  32: 0\.600 \(min 0\.200, max 0\.800, 3 rounds\)' \
    -- --sizes 32 --iterations 1 --rounds 3
else
  skip "no decimal-comma locale could be built here (localedef; Debian: locales): the locale check"
fi

finish
