// The worker's lockdown step, as one call from WorkerMain (run before the
// first message is read). Delegates to the sandbox library's lockdown when it
// is available; see docs/operator/agent.md "Process model".
#ifndef VIGO_AGENT_WORKER_WORKER_LOCKDOWN_H_
#define VIGO_AGENT_WORKER_WORKER_LOCKDOWN_H_

#include <string>

#include "absl/status/statusor.h"
#include "vigo/v1/bundle.pb.h"

namespace vigo::worker {

struct WorkerLockdownOptions {
  int socket_fd = 3;              // the only fd kept besides 0-2
  std::string run_as_user;        // --worker-user ("" = stay as started)
  std::string apply_root;
  bool insecure_allow_unlocked_memory = false;
};

// Makes the worker die with the broker (PR_SET_PDEATHSIG), initializes the
// locked arena, and applies the sandbox lockdown. Any failure is fatal for
// the caller. Returns the attestation report read back from the kernel.
absl::StatusOr<v1::AttestationReport> LockDownWorkerProcess(const WorkerLockdownOptions& options);

}  // namespace vigo::worker

#endif  // VIGO_AGENT_WORKER_WORKER_LOCKDOWN_H_
