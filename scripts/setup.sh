#!/usr/bin/env bash
# Installs the Debian packages Vigo needs to build, test and run its demo.
# Idempotent and fast when everything is already installed. Needs root.
# (Benchmark-only extras are not installed here: bench/agent_bench compares
# with CFEngine when `apt-get install cfengine3` has been run; see
# docs/BENCHMARKS.md.)
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config ccache git
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libssl-dev libseccomp-dev libcap-dev libsqlite3-dev sqlite3 libyaml-cpp-dev
  libcurl4-openssl-dev rapidjson-dev
  libgtest-dev libgmock-dev librapidcheck-dev libbenchmark-dev
  clang libclang-rt-14-dev openssl procps iproute2 util-linux
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
  echo "setup: missing packages: ${missing[*]} (run as root to install them)" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
