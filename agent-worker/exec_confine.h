// What an exec resource's `confine:` needs, built in the worker before the
// command's fork (allocation and path walks are not possible in the child).
//
//   VIGO_ASSIGN_OR_RETURN(ExecConfineSetup c,
//                         PrepareExecConfine(r.confine(), root_fd, apply_root,
//                                            sandbox::LandlockAbi()));
//   spec.landlock_ruleset_fd = c.writes ? c.writes->fd() : -1;  // exec_runner.h
//   spec.deny_network = c.deny_network;
//
// writable: a Landlock ruleset handling every write right of the kernel's
// ABI (sandbox/landlock.h), with one rule per listed path. Each path is
// prefixed with the apply root the way target paths are and resolved below
// the root's fd without following a link (fs_ops.h): a symlink planted on
// the way cannot widen the domain. A listed path must exist (Landlock rules
// attach to existing objects) and be a directory (writes anywhere beneath
// it) or a regular file (write and truncate that file only). "/" means the
// apply root itself. An empty list allows no writes at all, except to
// /dev/null, /dev/zero and /dev/full, which are always allowed (programs
// redirect to them; they store nothing).
//
// Fail closed: a kernel without Landlock (landlock_abi 0) and a resource
// with `writable` is FAILED_PRECONDITION; the command is never run
// unconfined. `network: false` alone needs no Landlock (it is a seccomp
// layer, sandbox/lockdown.h).
//
// Errors (the resource fails, the command does not run): INVALID_ARGUMENT
// for a path the server would have refused (relative, '..', a marker, more
// than kMaxConfineWritable, writable without restrict_writes);
// FAILED_PRECONDITION for a missing path, a symlink on the way, an object
// that is neither a directory nor a regular file, or no Landlock. Messages
// name the path as the bundle gives it, never a value.
#ifndef VIGO_AGENT_WORKER_EXEC_CONFINE_H_
#define VIGO_AGENT_WORKER_EXEC_CONFINE_H_

#include <optional>
#include <string_view>

#include "absl/status/statusor.h"
#include "sandbox/landlock.h"
#include "vigo/v1/bundle.pb.h"

namespace vigo::worker {

struct ExecConfineSetup {
  std::optional<sandbox::LandlockRuleset> writes;  // set when writes are confined
  bool deny_network = false;
};

// `root_fd`: the apply root (borrowed); `root`: its path ("" = "/"), for
// messages. `landlock_abi`: sandbox::LandlockAbi() in production.
absl::StatusOr<ExecConfineSetup> PrepareExecConfine(const v1::ExecConfine& confine, int root_fd,
                                                    std::string_view root, int landlock_abi);

}  // namespace vigo::worker

#endif  // VIGO_AGENT_WORKER_EXEC_CONFINE_H_
