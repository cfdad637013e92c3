// Runs one exec resource's command: no shell, a clean environment, optional
// stdin bytes from a SecretBuffer, output captured into a SecretBuffer (it may
// echo a value; the caller scrubs it), timeout killing the process group.
//
//   ExecSpec spec{.argv = {"/usr/bin/tee", "/dev/null"}, .env = {"PATH=..."}};
//   VIGO_ASSIGN_OR_RETURN(ExecOutcome out, RunCommand(spec, &stdin_buf));
//
// The child gets fds 0/1/2 only (stdin pipe, output pipe twice); every other
// fd — in particular the broker socketpair — is closed before exec.
//
// Seccomp: every child loads the exec-child layer (sandbox/lockdown.h,
// LockDownExecChildAsyncSignalSafe: RLIMIT_CORE 0, no_new_privs, the
// exec-child filter stacked on the inherited worker filter) between fork and
// execve. The seal is compiled once by the caller (PrepareExecChildSeal) and
// is required: without it, or when loading it fails, the command is not run.
// A confined command (ExecSpec::confine) also enters its Landlock domain and
// the no-network layer there, before the exec-child filter.
#ifndef VIGO_AGENT_WORKER_EXEC_RUNNER_H_
#define VIGO_AGENT_WORKER_EXEC_RUNNER_H_

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sandbox/lockdown.h"
#include "sandbox/secret_buffer.h"

namespace vigo::worker {

inline constexpr const char* kExecPath = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";

struct ExecSpec {
  std::vector<std::string> argv;   // argv[0]: absolute path, or a name looked up in kExecPath
  std::vector<std::string> env;    // complete environment
  std::optional<std::string> cwd;
  std::chrono::milliseconds timeout{300000};
  size_t max_output_bytes = 64 * 1024;  // tail kept
  // Required (not owned; must outlive the call): the precompiled exec-child
  // filter each child loads before execve.
  const sandbox::ExecChildSeal* exec_child_seal = nullptr;
  // A process the clean-up after a timeout must spare (the applier waiting
  // for this command's result). 0: none.
  pid_t spare_pid = 0;
  // The resource's `confine:` (agent-worker/exec_confine.h; default:
  // none). Loaded in the child with the seal; when it cannot be, the
  // command is not run.
  sandbox::ExecChildConfinement confine;
};

struct ExecOutcome {
  bool exited = false;
  int exit_code = -1;
  int signal = 0;
  bool timed_out = false;
  sandbox::SecretBuffer output;  // stdout+stderr tail; may contain values
};

// NOT_FOUND when argv[0] cannot be found; FAILED_PRECONDITION when
// spec.exec_child_seal is null (nothing is spawned); other errors when the
// child cannot be started, including the exec-child layer failing to load in
// the child (the child then exits without exec; the message says
// "exec-child seccomp layer could not be loaded", or "exec-child seccomp
// layer or confinement could not be loaded" for a confined command). A
// non-zero exit is not an
// error (see ExecOutcome).
absl::StatusOr<ExecOutcome> RunCommand(const ExecSpec& spec, const sandbox::SecretBuffer* stdin_data);

}  // namespace vigo::worker

#endif  // VIGO_AGENT_WORKER_EXEC_RUNNER_H_
