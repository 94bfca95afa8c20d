#!/usr/bin/env bash
# Builds the libFuzzer targets of fuzz/ (the .npy parser, the config parser, the image loader,
# the pool reader and the evaluate manifest's CSV parser) with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer, runs each for a bounded time from the seed
# corpora in fuzz/corpus/, and fails on any crash, sanitizer report, leak or timeout.
#
# Usage: scripts/fuzz.sh [--update-corpus] [SECONDS]
#   SECONDS          per target (default: $FUZZ_SECONDS, else 60; .ci/run uses 45 for the five)
#   --update-corpus  afterwards, merge what this run found into fuzz/corpus/ (minimised)
# Builds in build-fuzz/ (or $FUZZ_BUILD); new inputs and crash artifacts land there, so the
# seed corpora in the repository only change with --update-corpus. Installs clang and its
# libFuzzer runtime from Debian's archive if they are missing (root or sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

update=0
if [ "${1:-}" = "--update-corpus" ]; then
  update=1
  shift
fi
seconds=${1:-${FUZZ_SECONDS:-60}}
out=${FUZZ_BUILD:-build-fuzz}

# clang++ and libclang_rt.fuzzer (libclang-rt-14-dev is not a dependency of clang in Debian 12).
fuzzer_links() {
  command -v clang++ >/dev/null &&
    echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' |
    clang++ -x c++ -fsanitize=fuzzer - -o /dev/null 2>/dev/null
}
if ! fuzzer_links; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "fuzz: installing clang and libclang-rt-14-dev"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    clang libclang-rt-14-dev libyaml-cpp-dev nlohmann-json3-dev
  fuzzer_links || { echo "fuzz: clang++ -fsanitize=fuzzer does not link" >&2; exit 1; }
fi

mkdir -p "$out"
flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -Iinclude -I/usr/include/opencv4
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
opencv=(-lopencv_imgcodecs -lopencv_imgproc -lopencv_core)  # uninstrumented: only crashes show
targets=(npy config image pool manifest)
declare -A sources=(
  [npy]="src/io/npy.cc src/io/atomic_file.cc"
  [config]="src/dip/config.cc src/dip/options.cc -lyaml-cpp"
  [image]="src/io/image.cc src/io/npy.cc src/io/atomic_file.cc src/io/paths.cc ${opencv[*]}"
  [pool]="src/io/pool.cc src/io/npy.cc src/io/atomic_file.cc"
  [manifest]="src/eval/dataset.cc src/eval/roc.cc src/io/image.cc src/io/npy.cc src/io/mat.cc src/io/atomic_file.cc src/io/paths.cc src/io/csv.cc ${opencv[*]} -lmatio"
)
# Two compilers at a time (the CI machine has 2 cores).
build() {
  # shellcheck disable=SC2086  # the source lists are word lists on purpose
  clang++ "${flags[@]}" "fuzz/fuzz_$1.cc" ${sources[$1]} -o "$out/fuzz_$1" 2>"$out/build_$1.log" ||
    { echo "fuzz: building fuzz_$1 failed:" >&2; cat "$out/build_$1.log" >&2; return 1; }
}
echo "fuzz: building ${targets[*]/#/$out/fuzz_}"
built=1
pids=()
for target in "${targets[@]}"; do
  build "$target" &
  pids+=($!)
  if [ ${#pids[@]} -eq 2 ]; then
    wait "${pids[0]}" || built=0
    pids=("${pids[1]}")
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || built=0; done
[ $built -eq 1 ] || { echo "fuzz: the build failed" >&2; exit 1; }

status=0
summary=()
for target in "${targets[@]}"; do
  work=$out/corpus-$target  # new inputs go here, the repository's seeds are read only
  artifacts=$out/artifacts-$target
  mkdir -p "$work" "$artifacts"
  log=$out/fuzz_$target.log
  echo "fuzz: $target for ${seconds}s (log: $log)"
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  if "$out/fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -max_len=4096 -print_final_stats=1 -dict="fuzz/$target.dict" \
    -artifact_prefix="$artifacts/" "$work" "fuzz/corpus/$target" >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    status=1
    echo "fuzz: $target FAILED; the end of its log:" >&2
    tail -40 "$log" >&2
    ls "$artifacts" >&2
  fi
  runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1 runs in \2 s/p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 || true)
  summary+=("fuzz_$target: $result, ${runs:-no final stats}, $cov, $(ls "fuzz/corpus/$target" | wc -l) seeds, $(ls "$work" | wc -l) inputs kept in $work")
  if [ $update -eq 1 ] && [ $result = ok ]; then
    "$out/fuzz_$target" -merge=1 "fuzz/corpus/$target" "$work" >>"$log" 2>&1
    echo "fuzz: merged new inputs into fuzz/corpus/$target"
  fi
done
printf '%s\n' "${summary[@]}"
exit $status
