#!/usr/bin/env bash
# Builds (if needed) and runs the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/dippas ] || scripts/setup.sh
cmake --build build -j "$(nproc)"
ctest --test-dir build --output-on-failure -j 2
