#include "agent-broker/broker_lockdown.h"

#include <sys/prctl.h>

#include <cerrno>

#include "common/status_macros.h"
#include "sandbox/secret_buffer.h"
#include "sandbox/syscall_status.h"

namespace vigo::broker {

absl::StatusOr<v1::AttestationReport> LockDownBrokerProcess(const BrokerLockdownOptions& options) {
  (void)options;
  // The arena exists before any value (and before capabilities are dropped).
  VIGO_RETURN_IF_ERROR(sandbox::InitArena());
  if (::prctl(PR_SET_DUMPABLE, 0) != 0) return sandbox::ErrnoStatus(errno, "prctl DUMPABLE");
  v1::AttestationReport report;
  report.set_process("broker");
  sandbox::ArenaInfo info = sandbox::GetArenaInfo();
  report.set_arena_locked(info.locked);
  report.set_arena_dontdump(info.dontdump);
  report.set_arena_backing(info.backing);
  report.set_dumpable(false);
  // The namespace/capability/seccomp lockdown is not applied by this build.
  report.add_skipped_steps("sandbox-lockdown");
  return report;
}

}  // namespace vigo::broker
