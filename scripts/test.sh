#!/usr/bin/env bash
# README command two: install what is needed, build, run every test.
#   scripts/test.sh                 all labels (unit, property, sandbox, integration, fuzz-smoke)
#   scripts/test.sh -L unit         a subset (any ctest arguments)
#   VIGO_SANITIZE=1 scripts/test.sh ASan+UBSan build in build-asan/ (not run by CI: see README)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [[ "${VIGO_SANITIZE:-0}" == 1 ]]; then
  export VIGO_BUILD_DIR=${VIGO_BUILD_DIR:-build-asan}
  bash scripts/build.sh -DVIGO_ASAN=ON -DVIGO_UBSAN=ON -DVIGO_BUILD_BENCH=OFF
else
  bash scripts/build.sh
fi
BUILD_DIR=${VIGO_BUILD_DIR:-build}
# The suite must leave the machine as it found it (scripts/host_check.sh).
HOST_STATE=$(mktemp /tmp/vigo-host-state.XXXXXX)
trap 'rm -f "$HOST_STATE"' EXIT
bash scripts/host_check.sh snapshot "$HOST_STATE"
rc=0
(cd "$BUILD_DIR" && ctest --output-on-failure -j "${VIGO_TEST_JOBS:-2}" "$@") || rc=$?
bash scripts/host_check.sh compare "$HOST_STATE" || rc=1
exit "$rc"
