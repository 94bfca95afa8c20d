# Shared by the end-to-end test scripts: a temporary folder, counters, and
# expect_ok / expect_error / check helpers. Source it after setting DIPPAS.
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# The scripts run programs they write in $T (stand-ins, copies of dippas): a TMPDIR mounted
# noexec cannot hold them, so $T moves to the working folder (ctest's: the build's tests/).
printf '#!/bin/sh\nexit 0\n' >"$T/exec-probe" && chmod +x "$T/exec-probe"
if ! "$T/exec-probe" 2>/dev/null; then
  rm -rf "$T"
  T=$(mktemp -d "$PWD/tmp.XXXXXX")
fi
rm -f "$T/exec-probe"
# The checks' Python (with numpy and PIL where the scripts say so): Debian's, not a PATH one.
PY=/usr/bin/python3
[ -x "$PY" ] || { echo "SKIP: $PY absent: every check of these scripts is a Python assertion (exit 77)"; exit 77; }
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect_error NAME PATTERN -- command...: non-zero exit, stderr matching PATTERN, no crash.
expect_error() {
  local name=$1 pattern=$2
  shift 3
  "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  if [ $rc -eq 0 ]; then
    bad "$name: exit 0, expected an error"
  elif ! grep -qE -- "$pattern" "$T/err"; then
    bad "$name: message did not match '$pattern': $(cat "$T/err")"
  elif grep -q "terminate called\|Segmentation\|Aborted\|Exception raised from" "$T/err"; then
    bad "$name: crashed or leaked a backtrace: $(head -3 "$T/err")"
  else
    ok
  fi
}

# expect_ok NAME command...: exit 0.
expect_ok() {
  local name=$1
  shift
  if "$@" >"$T/out" 2>"$T/err"; then ok; else bad "$name: exit $?: $(tail -3 "$T/err")"; fi
}

# check NAME PYTHON-CODE: a python assertion script over the outputs.
check() {
  local name=$1
  shift
  if "$PY" -c "$1" >"$T/pyout" 2>&1; then ok; else bad "$name: $(tail -3 "$T/pyout")"; fi
}

# Skips: ctest counts exit SKIP_CODE as "Skipped" (SKIP_RETURN_CODE in tests/CMakeLists.txt), never
# as a pass. skip REASON: a part of the checks could not run here; skip_all REASON: none could.
SKIP_CODE=77
skipped=()
skip() {
  skipped+=("$*")
  echo "SKIP: $*"
}
skip_all() {
  echo "SKIP: $* (exit $SKIP_CODE: every check of this script skipped)"
  exit $SKIP_CODE
}

# mode_is PATH MODE WHAT: PATH has the octal permission bits MODE (dippas makes private folders
# and files); skipped where $T's file system keeps no POSIX modes (vfat, some network mounts).
modes_kept() {
  local p=$T/mode-probe
  mkdir -p "$p" && chmod 700 "$p" && [ "$(stat -c %a "$p")" = 700 ] &&
    chmod 755 "$p" && [ "$(stat -c %a "$p")" = 755 ]
  local kept=$?
  rmdir "$p" 2>/dev/null
  return $kept
}
mode_is() {
  if ! modes_kept; then
    skip "the file system of $T keeps no permission bits: $3 not checked"
    return
  fi
  local got
  got=$(stat -c %a "$1" 2>/dev/null)
  [ "$got" = "$2" ] && ok || bad "$3: mode ${got:-(missing)}, expected $2"
}

# dresden_data SHARED SRC [example_data.py options]: DATA = the reference data's dresden512
# folder (real Dresden crops, six cameras) when present, else a dataset in the same layout made
# here from examples/ by tests/example_data.py (Nikon_D70s_1 and the same sensor turned over as
# three more cameras; its header says how), with EXAMPLE_DATA=1. Skips the whole script only
# when neither can be had.
dresden_data() {
  local shared=$1 src=$2
  shift 2
  EXAMPLE_DATA=0
  if [ -n "$shared" ] && [ -d "$shared/data/dresden512/natural" ] &&
    [ -d "$shared/data/dresden512/flatfield" ]; then
    DATA=$(realpath "$shared/data/dresden512")
    return 0
  fi
  "$PY" -c "import PIL" 2>/dev/null ||
    skip_all "no reference data, and $PY without PIL cannot build the dataset from examples/ (apt-get install python3-pil)"
  if ! "$PY" "$src/tests/example_data.py" "$src/examples" "$T/exdata" "$@" >"$T/exdata.log" 2>&1; then
    echo "FAIL: tests/example_data.py: $(tail -3 "$T/exdata.log")"
    exit 1
  fi
  DATA=$T/exdata
  EXAMPLE_DATA=1
  echo "reference data absent: running on a dataset built from examples/"
}

# finish: the closing line ctest's log shows, and the exit status: 1 on any failure, else
# SKIP_CODE when some checks were skipped (each reason repeated), else 0.
finish() {
  echo "$pass passed, $fail failed, ${#skipped[@]} part(s) skipped"
  [ $fail -eq 0 ] || return 1
  if [ ${#skipped[@]} -gt 0 ]; then
    printf 'skipped: %s\n' "${skipped[@]}"
    return $SKIP_CODE
  fi
  return 0
}
