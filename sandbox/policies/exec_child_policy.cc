// The exec-child layer: installed by the worker in each forked child right
// before execve of a resource command (LockDownExecChild, loaded from BPF
// compiled before fork). It stacks on the worker's filter, which the child
// inherits, so the child is bound by BOTH: the worker allowlist is the
// ceiling, and this layer restates the hard-denial floor so that a command
// keeps it even if the worker's allowlist is ever widened. Default ALLOW on
// purpose: commands are arbitrary operator programs, and the kernel applies
// the most restrictive verdict of all stacked filters.
#include <sys/ioctl.h>

#include <array>

#include "sandbox/policies/policy_util.h"
#include "sandbox/seccomp_policy.h"

namespace vigo::sandbox {
namespace {

// ioctl's request is an `unsigned int` in the kernel: compare the low 32 bits
// only, so setting the register's upper half cannot slip past the rule.
constexpr uint64_t kLow32 = 0xffffffffULL;

constexpr ArgRule TerminalInjection() {
  ArgRule r;
  const uint64_t requests[] = {TIOCSTI, TIOCLINUX};
  for (uint64_t req : requests) {
    r.any_of[r.size].cmps[0] = {1, CmpOp::kMaskedEq, kLow32, req, ValueSource::kLiteral};
    r.any_of[r.size].size = 1;
    ++r.size;
  }
  return r;
}

// clang-format off
constexpr SyscallRule kExecChildExtra[] = {
    {"ioctl", TerminalInjection(), KillProcess(),
     "TIOCSTI pushes input into a terminal (a shell runs it after vigo exits); TIOCLINUX "
     "(selection paste) does the same on a virtual console. A second wall: commands also run "
     "in their own session, without a controlling terminal, and /dev has no tty"},
};
// clang-format on

constexpr auto kExecChildRules =
    policies::Concat(std::to_array(policies::kHardDenials), std::to_array(kExecChildExtra));

}  // namespace

const Policy& ExecChildPolicy() {
  static const Policy kPolicy{
      "exec_child", Allow(), kExecChildRules,
      "denial floor stacked on the worker filter for every command the worker runs"};
  return kPolicy;
}

}  // namespace vigo::sandbox
