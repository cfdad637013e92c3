#include "agent-worker/worker_lockdown.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>

#include "common/status_macros.h"
#include "sandbox/secret_buffer.h"
#include "sandbox/syscall_status.h"

namespace vigo::worker {

absl::StatusOr<v1::AttestationReport> LockDownWorkerProcess(const WorkerLockdownOptions& options) {
  // Die with the broker; if it is already gone (re-parented), stop now.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return sandbox::ErrnoStatus(errno, "prctl PDEATHSIG");
  if (::getppid() == 1) return absl::FailedPreconditionError("broker already gone");
  // Children (exec resources) must never inherit the socketpair.
  int flags = ::fcntl(options.socket_fd, F_GETFD);
  if (flags < 0 || ::fcntl(options.socket_fd, F_SETFD, flags | FD_CLOEXEC) != 0) {
    return sandbox::ErrnoStatus(errno, "fcntl FD_CLOEXEC", "socket");
  }
  sandbox::ArenaOptions arena;
  arena.insecure_allow_unlocked = options.insecure_allow_unlocked_memory;
  VIGO_RETURN_IF_ERROR(sandbox::ConfigureArena(arena));
  VIGO_RETURN_IF_ERROR(sandbox::InitArena());
  if (::prctl(PR_SET_DUMPABLE, 0) != 0) return sandbox::ErrnoStatus(errno, "prctl DUMPABLE");

  v1::AttestationReport report;
  report.set_process("worker");
  sandbox::ArenaInfo info = sandbox::GetArenaInfo();
  report.set_arena_locked(info.locked);
  report.set_arena_dontdump(info.dontdump);
  report.set_arena_backing(info.backing);
  report.set_dumpable(false);
  // The namespace/capability/seccomp lockdown is not applied by this build.
  report.add_skipped_steps("sandbox-lockdown");
  return report;
}

}  // namespace vigo::worker
