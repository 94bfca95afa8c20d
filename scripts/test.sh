#!/usr/bin/env bash
# Builds (if needed) and runs the whole test suite with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
# Installs what is missing (the tests' own dependencies too: a Slurm cluster, scipy), builds.
scripts/setup.sh --test-deps
ctest --test-dir build --output-on-failure -j 2
