#!/usr/bin/env bash
# Installs what the tests need (their own tools too: a Slurm cluster, scipy), builds, and runs
# the whole suite with ctest; the skipped tests are listed by name at the end.
#
# Usage: scripts/test.sh [--data-only]
# The reference data folder (prnu-python's outputs and the Dresden photos, not distributed with
# dippas) is looked for where the build was configured (-DDIPPAS_SHARED_DIR) or in $DIPPAS_SHARED;
# set DIPPAS_SHARED= (empty) to hide it. Without it the comparisons with prnu-python skip and the
# end-to-end tests run on a dataset made of examples/. --data-only: only the tests that read that
# folder (ctest label "data"), e.g. again with it after a run without it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test-deps
args=()
case "${1:-}" in
  --data-only) args=(-L data) ;;
  "") ;;
  *) echo "usage: scripts/test.sh [--data-only]" >&2; exit 2 ;;
esac
ctest --test-dir build --output-on-failure -j 2 "${args[@]}"
