// A victim for the sandbox tests.
//
//   sandbox_victim broker   LockDownBroker (non-dumpable, seccomp), print
//                           "ready <pid>", then block reading stdin until EOF
//   sandbox_victim plain    same without any lockdown (the control)
//   sandbox_victim syscall NR   make raw syscall NR with zero args, exit 0
//
// The environment (e.g. VIGO_TEST_CANARY) and a copy of it in memory are
// what the attacker-side tests try to read.
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "sandbox/lockdown.h"

namespace {

int BlockUntilEof() {
  char buf[64];
  while (::read(0, buf, sizeof(buf)) > 0) {
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  std::string mode = argv[1];
  // Keep a heap copy of the canary too (what /proc/<pid>/mem would expose).
  const char* canary = std::getenv("VIGO_TEST_CANARY");
  volatile char* copy = canary ? strdup(canary) : nullptr;
  (void)copy;
  if (mode == "syscall" && argc == 3) {
    ::syscall(std::atol(argv[2]), 0, 0, 0, 0, 0, 0);
    return 0;
  }
  if (mode == "broker") {
    vigo::sandbox::BrokerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2};
    auto r = vigo::sandbox::LockDownBroker(spec);
    if (!r.ok()) {
      std::fprintf(stderr, "victim: %s\n", std::string(r.status().message()).c_str());
      return 1;
    }
  } else if (mode != "plain") {
    return 2;
  }
  char line[64];
  int n = std::snprintf(line, sizeof(line), "ready %d\n", static_cast<int>(::getpid()));
  if (::write(1, line, static_cast<size_t>(n)) != n) return 1;
  return BlockUntilEof();
}
