#!/usr/bin/env bash
# README command one: the end-to-end demo (server, vault, two agents applying a
# secret-bearing bundle on this machine).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
echo "demo: the end-to-end demo is not built yet (issue: Proof)." >&2
exit 1
