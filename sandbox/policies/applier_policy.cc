// The applier layer: stacked on the worker filter the applier inherits, and
// loaded by the per-bundle applier (agent-worker/applier.h) as its first act
// after fork, from BPF compiled before the fork (also: the arena's pages
// stay locked and the worker's half stays read-only, and no IP socket).
// The applier writes the
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
#include <sys/mman.h>
#include <sys/socket.h>

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
    {"madvise",
     ArgIn(2, {MADV_REMOVE, MADV_COLD, MADV_PAGEOUT}),
     Errno(EPERM),
     "MADV_REMOVE frees the shared arena's locked pages (they come back unlocked, may reach "
     "swap and escape the wipe); COLD and PAGEOUT push pages out"},
    {"mprotect",
     ArgHasAll(2, PROT_WRITE),
     Errno(EPERM),
     "the worker's half of the arena is read-only here and stays so (its copies feed the "
     "scrubber); nothing the applier runs makes memory writable later"},
    {"pkey_mprotect", ArgHasAll(2, PROT_WRITE), Errno(EPERM), "as mprotect"},
    {"socket",
     AnyOf(ArgIn(0, {AF_INET, AF_INET6}), ArgEq(0, AF_NETLINK)),
     Errno(EPERM),
     "the applier talks to the worker only (its socketpair); Unix sockets stay for NSS "
     "lookups of owners (nscd, sssd)"},
};
// clang-format on

}  // namespace

const Policy& ApplierPolicy() {
  static const Policy kPolicy{
      "applier", Allow(), kApplierRules,
      "stacked on the worker filter in the per-bundle applier: no new process, no program, no "
      "IP or netlink socket, no unlocking of the arena, no writable remapping"};
  return kPolicy;
}

}  // namespace vigo::sandbox
