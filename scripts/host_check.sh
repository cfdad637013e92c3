#!/usr/bin/env bash
# The suite must leave its machine as it found it. scripts/test.sh records
# the shared paths the tests touch (device nodes, temp dirs, host identity
# files, the sysctl a test sets and restores, mounts, loop devices) before
# ctest and compares after it:
#   scripts/host_check.sh snapshot FILE   write the state to FILE
#   scripts/host_check.sh compare FILE    exit 1 and name every difference
# A regression here is how `fchmod(0, 0)` on an inherited /dev/null (mode
# 0000 for every process on the machine) would have been caught.
set -euo pipefail

state() {
  local p
  for p in /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/ptmx \
    /dev/shm /tmp /var/tmp /etc /etc/passwd /etc/group /etc/shadow /etc/hosts \
    /etc/hostname /etc/resolv.conf; do
    if [[ -e "$p" || -L "$p" ]]; then
      # type, mode, owner, device numbers; contents for the small identity files
      echo "node $p $(stat -c '%F %a %u:%g %t:%T' "$p")"
    else
      echo "node $p absent"
    fi
  done
  for p in /etc/passwd /etc/group /etc/hosts /etc/hostname; do
    [[ -f "$p" ]] && echo "sha $p $(sha256sum <"$p" | cut -d' ' -f1)"
  done
  echo "hostname $(hostname)"
  echo "core_pattern $(cat /proc/sys/kernel/core_pattern)"
  # Mount points and loop devices a test created must be gone again.
  findmnt -rn -o TARGET,FSTYPE | sort | sed 's/^/mount /'
  if command -v losetup >/dev/null; then
    losetup -n -O NAME,BACK-FILE 2>/dev/null | sort | sed 's/^/loop /'
  fi
}

case "${1:-}" in
  snapshot)
    state >"$2"
    ;;
  compare)
    if ! diff_out=$(diff <(cat "$2") <(state)); then
      echo "host_check: the test suite changed shared state of this machine:" >&2
      echo "$diff_out" >&2
      exit 1
    fi
    echo "host_check: device nodes, temp dirs, identity files, mounts and loop devices unchanged"
    ;;
  *)
    echo "usage: scripts/host_check.sh snapshot FILE | compare FILE" >&2
    exit 2
    ;;
esac
