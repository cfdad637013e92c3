// The applier layer: stacked on the worker filter the applier inherits, and
// loaded by the per-bundle applier (agent-worker/applier.h) as its first act
// after fork, from BPF compiled before the fork. The applier writes the
// bundle's files with file capabilities inside its Landlock domain; it has no
// use for a new process or program, so a bug (or an attacker) in it cannot
// start one that would carry those capabilities, read the bundle's values in
// place, or outlive it. Exec resources are started by the worker, which this
// layer does not bind.
//
// Loaded even under --insecure-skip-lockdown (the applier needs no opt-out:
// nothing it does legitimately forks or execs), and reported in the
// applier's summary (no_new_process) and the attestation.
//
// Errors, not kills: a refused fork makes the library that tried it report
// a failure the applier turns into a failed resource, which names itself;
// a SIGSYS would fail the bundle with only a signal number.
#include <errno.h>

#include "sandbox/policies/policy_util.h"
#include "sandbox/seccomp_policy.h"

namespace vigo::sandbox {
namespace {

// One row per line reads as a table.
// clang-format off
constexpr SyscallRule kApplierRules[] = {
    {"fork", {}, Errno(EPERM), "the applier starts no process (exec resources are the worker's)"},
    {"vfork", {}, Errno(EPERM), "the applier starts no process"},
    {"clone", {}, Errno(EPERM), "no process and no thread: the applier is single-threaded"},
    {"clone3",
     {},
     Errno(ENOSYS),
     "flags live in memory, so seccomp cannot check them: ENOSYS makes glibc fall back to clone"},
    {"execve", {}, Errno(EPERM), "the applier runs no program"},
    {"execveat", {}, Errno(EPERM), "the applier runs no program"},
};
// clang-format on

}  // namespace

const Policy& ApplierPolicy() {
  static const Policy kPolicy{
      "applier", Allow(), kApplierRules,
      "stacked on the worker filter in the per-bundle applier: no new process, no program"};
  return kPolicy;
}

}  // namespace vigo::sandbox
