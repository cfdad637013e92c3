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
cd "$BUILD_DIR"
ctest --output-on-failure -j "${VIGO_TEST_JOBS:-2}" "$@"
