#include "agent-worker/worker_lockdown.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

#include "agent-worker/fs_ops.h"
#include "common/ipc/attestation_proto.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "sandbox/attestation.h"
#include "sandbox/lockdown.h"
#include "sandbox/secret_buffer.h"
#include "sandbox/syscall_status.h"

namespace vigo::worker {
namespace {

absl::Status DieWithBroker() {
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) return sandbox::ErrnoStatus(errno, "prctl PDEATHSIG");
  if (::getppid() == 1) return absl::FailedPreconditionError("broker already gone");
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::AttestationReport> LockDownWorkerProcess(const WorkerLockdownOptions& options) {
  VIGO_RETURN_IF_ERROR(DieWithBroker());
  // Exec resources must never inherit the socketpair.
  int flags = ::fcntl(options.socket_fd, F_GETFD);
  if (flags < 0 || ::fcntl(options.socket_fd, F_SETFD, flags | FD_CLOEXEC) != 0) {
    return sandbox::ErrnoStatus(errno, "fcntl FD_CLOEXEC", "socket");
  }
  sandbox::ArenaOptions arena;
  arena.insecure_allow_unlocked = options.insecure_allow_unlocked_memory;
  // Two halves: the worker's (the bundle's values, exec buffers) and one
  // for the bundle's applier, which allocates only there
  // (agent-worker/applier.h; sandbox/secret_buffer.h ReserveChildArena).
  arena.capacity_bytes = 2 * kApplierArenaBytes;
  VIGO_RETURN_IF_ERROR(sandbox::ConfigureArena(arena));

  sandbox::WorkerLockdownSpec spec;
  spec.keep_fds = {0, 1, 2, options.socket_fd};
  spec.hidden_paths = options.hidden_paths;
  spec.insecure_skip = options.insecure_skip;
  if (!options.run_as_user.empty()) {
    VIGO_ASSIGN_OR_RETURN(uid_t uid, LookupUser(options.run_as_user));
    // The user's primary group.
    gid_t gid = static_cast<gid_t>(uid);
    if (auto g = LookupGroup(options.run_as_user); g.ok()) gid = *g;
    spec.run_as = sandbox::UserSwitch{uid, gid, {}};
  }
  const auto started = std::chrono::steady_clock::now();
  VIGO_ASSIGN_OR_RETURN(sandbox::LockdownResult result, sandbox::LockDownWorker(spec));
  // The cost of the jail (namespaces, /dev, procfs, covers, filter), once
  // per worker start (docs/BENCHMARKS.md).
  Log(LogLevel::kDebug, "worker locked down",
      {{"took_us", std::chrono::duration_cast<std::chrono::microseconds>(
                       std::chrono::steady_clock::now() - started)
                       .count()}});
  VIGO_RETURN_IF_ERROR(sandbox::ReserveChildArena(kApplierArenaBytes));
  for (const std::string& s : result.skipped_steps) {
    Log(LogLevel::kWarn, "insecure: lockdown step skipped", {{"process", "worker"}, {"step", s}});
  }
  // A credential change clears the parent-death signal: set it again.
  VIGO_RETURN_IF_ERROR(DieWithBroker());
  VIGO_ASSIGN_OR_RETURN(sandbox::AttestationReport att, sandbox::CollectAttestation());
  att.process = "worker";
  return ipc::ToProto(att);
}

}  // namespace vigo::worker
