#!/usr/bin/env bash
# Configures and builds Vigo into ${VIGO_BUILD_DIR:-build}. Extra arguments go
# to cmake at configure time (e.g. -DVIGO_ASAN=ON).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${VIGO_BUILD_DIR:-build}
# ccache: hash paths relative to the source tree, so a fresh clone in another
# folder (CI) reuses the cache of earlier builds on the same machine.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$(pwd)}
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-true}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-5G}
GEN=()
if command -v ninja >/dev/null; then GEN=(-G Ninja); fi
if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
elif (($# > 0)); then
  cmake -S . -B "$BUILD_DIR" "$@"
fi
cmake --build "$BUILD_DIR" -j "${VIGO_JOBS:-$(nproc)}"
