// ChildProcess: owner of a child started with fork+exec. The destructor kills
// (SIGKILL) and reaps a child that is still running, so no child outlives its
// owner by accident.
//
//   SpawnOptions opts;
//   opts.argv = {"/usr/bin/true"};
//   VIGO_ASSIGN_OR_RETURN(ChildProcess child, ChildProcess::Spawn(opts));
//   VIGO_ASSIGN_OR_RETURN(ExitInfo exit, child.Wait());
#ifndef VIGO_SANDBOX_CHILD_PROCESS_H_
#define VIGO_SANDBOX_CHILD_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "sandbox/unique_fd.h"

namespace vigo::sandbox {

// Errors: INVALID_ARGUMENT for an empty argv, a NUL byte in an argument or an
// environment entry without '='; the errno of the failing step (named in the
// message: "execve /bin/x", "chdir DIR", "dup2") when the child could not
// start; the child is reaped in that case.
//
// Thread safety: Spawn may be called from any thread (the child only runs
// async-signal-safe code between fork and exec). A ChildProcess object is not
// synchronized. Every fd not in fd_map is closed in the child, so secrets held
// in fds never leak into it; the locked arena is not inherited (MADV_DONTFORK).
struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is the executable path (no PATH search)
  std::vector<std::string> env;   // the complete environment ("K=V"); empty = none
  std::optional<std::string> cwd;
  // fds the child receives: {child_fd, parent_fd}. Everything else is closed
  // in the child before exec. stdin/stdout/stderr default to /dev/null unless
  // mapped here.
  std::vector<std::pair<int, int>> fd_map;
  // SIGKILL the child when the parent thread that spawned it dies.
  bool die_with_parent = true;
  // Start the child in its own process group (so timeouts kill the tree).
  bool new_process_group = true;
  // Start the child in a new session (setsid): it has no controlling
  // terminal, so it cannot push input into the operator's shell (TIOCSTI
  // needs the caller's own controlling tty) or receive its job-control
  // signals. A session leader also leads its own process group, so with
  // new_process_group Kill() still reaches the whole group.
  bool new_session = false;
  // Start the child as PID 1 of a new PID namespace (clone CLONE_NEWPID;
  // needs CAP_SYS_ADMIN). When it dies the kernel kills every process left in
  // that namespace, so nothing it started can outlive it; it sees none of
  // the host's processes once it mounts its own procfs. Inside, getppid() is
  // 0, so the "parent exited before exec" check is not possible; the
  // parent-death signal still is.
  bool new_pid_namespace = false;
  // Optional last step in the child, after fds, cwd and signals are set up and
  // right before execve (e.g. sandbox::LockDownExecChildAsyncSignalSafe). It
  // runs between fork and exec, so it must be async-signal-safe: no malloc,
  // no locks. Non-zero return fails the spawn with the errno it left (EPERM
  // when errno is 0), reported as "pre-exec hook".
  int (*pre_exec)(void* arg) = nullptr;
  void* pre_exec_arg = nullptr;
};

struct ExitInfo {
  bool exited = false;  // normal exit
  int exit_code = -1;   // valid when exited
  bool signaled = false;
  int signal = 0;          // valid when signaled
  bool timed_out = false;  // killed by WaitFor's timeout
};

class ChildProcess {
 public:
  static absl::StatusOr<ChildProcess> Spawn(const SpawnOptions& options);

  ChildProcess() = default;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ChildProcess(ChildProcess&& o) noexcept
      : pid_(std::exchange(o.pid_, -1)), own_group_(std::exchange(o.own_group_, false)) {}
  ChildProcess& operator=(ChildProcess&& o) noexcept;
  ~ChildProcess();

  pid_t pid() const { return pid_; }
  bool running() const { return pid_ > 0; }

  // Blocks until the child exits and reaps it; afterwards running() is false.
  // FAILED_PRECONDITION when there is no child.
  absl::StatusOr<ExitInfo> Wait();
  // Waits at most `timeout`; then kills the process group (SIGKILL), reaps,
  // and returns an ExitInfo with timed_out = true. Uses pidfd_open when it can
  // (a seccomp filter that kills on it must use WaitPolling instead).
  absl::StatusOr<ExitInfo> WaitFor(std::chrono::milliseconds timeout);
  // Like WaitFor, with only waitpid(WNOHANG) and short sleeps (for processes
  // whose seccomp filter does not allow pidfd_open, e.g. the broker).
  absl::StatusOr<ExitInfo> WaitPolling(std::chrono::milliseconds timeout);
  // Sends `sig` to the child (or its group when it has one). No-op when no
  // child is owned.
  void Kill(int sig);
  // Adopts an already-forked child (e.g. one a test forked itself).
  static ChildProcess AdoptForTest(pid_t pid);

 private:
  ChildProcess(pid_t pid, bool own_group) : pid_(pid), own_group_(own_group) {}
  pid_t pid_ = -1;
  bool own_group_ = false;  // the child leads its own process group
};

}  // namespace vigo::sandbox

#endif  // VIGO_SANDBOX_CHILD_PROCESS_H_
