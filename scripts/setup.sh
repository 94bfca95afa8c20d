#!/usr/bin/env bash
# Installs dippas's dependencies from Debian 12's archive and builds it in ./build.
# Usage: scripts/setup.sh [--test-deps]   (needs root or sudo for apt-get)
#   --test-deps  also what only the tests need: a Slurm cluster (slurm-wlm, munge) for
#                tests/slurm_test.sh, scipy for the .mat tests (scripts/test.sh passes it)
set -euo pipefail
cd "$(dirname "$0")/.."
TEST_DEPS=0
[ "${1:-}" = --test-deps ] && TEST_DEPS=1

PKGS=(build-essential cmake ninja-build pkg-config
      libtorch-dev libopencv-dev libcli11-dev libspdlog-dev nlohmann-json3-dev
      libyaml-cpp-dev libgtest-dev libopenblas0-pthread python3-numpy)
PKGS+=(gnuplot-nox)  # dippas evaluate draws its ROC and history plots with gnuplot
PKGS+=(libimage-exiftool-perl)  # tests/hardening_test.sh: metadata planted in inputs, absent from outputs
PKGS+=(python3-pil)  # scripts/example.sh's side-by-side picture; tests: CMYK JPEG and TIFF written with PIL
PKGS+=(libjemalloc-dev)  # the allocator dippas links: ~2x faster DIP iterations than glibc's malloc
PKGS+=(libmatio-dev)  # MATLAB .mat fingerprints (optional at build time)
PKGS+=(time)  # /usr/bin/time: peak memory in scripts/bench_*.sh
if [ $TEST_DEPS -eq 1 ]; then
  PKGS+=(python3-scipy)  # tests/mat_test.cc: .mat files written by scipy's savemat
  PKGS+=(locales)  # tests/bench_dip_test.sh: a decimal-comma locale built with localedef
  PKGS+=(slurm-wlm munge)  # tests/slurm_test.sh: a single-node Slurm cluster runs the job-array scripts
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$(nproc)"
echo "setup: built build/dippas"
