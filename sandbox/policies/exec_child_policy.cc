// The exec-child layer: installed by the worker in each forked child right
// before execve of a resource command (LockDownExecChild, loaded from BPF
// compiled before fork). It stacks on the worker's filter, which the child
// inherits, so the child is bound by BOTH: the worker allowlist is the
// ceiling, and this layer restates the hard-denial floor so that a command
// keeps it even if the worker's allowlist is ever widened. Default ALLOW on
// purpose: commands are arbitrary operator programs, and the kernel applies
// the most restrictive verdict of all stacked filters.
#include "sandbox/policies/policy_util.h"
#include "sandbox/seccomp_policy.h"

namespace vigo::sandbox {

const Policy& ExecChildPolicy() {
  static const Policy kPolicy{
      "exec_child", Allow(), policies::kHardDenials,
      "denial floor stacked on the worker filter for every command the worker runs"};
  return kPolicy;
}

}  // namespace vigo::sandbox
