// The worker's lockdown step, as one call from WorkerMain (run before the
// first message is read). See sandbox/lockdown.h for the fixed order; this
// adds the agent-specific parts: die with the broker, keep only fds 0-2 and
// the socketpair, hide the credential and state paths, optional user switch.
#ifndef VIGO_AGENT_WORKER_WORKER_LOCKDOWN_H_
#define VIGO_AGENT_WORKER_WORKER_LOCKDOWN_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"
#include "vigo/v1/bundle.pb.h"

namespace vigo::worker {

// The applier's part of the worker's secret arena (the worker keeps as much).
inline constexpr size_t kApplierArenaBytes = sandbox::kDefaultArenaCapacity;

struct WorkerLockdownOptions {
  int socket_fd = 3;                      // the only fd kept besides 0-2
  std::string run_as_user;                // --worker-user ("" = stay as started)
  std::vector<std::string> hidden_paths;  // key file, state dir (--hide)
  bool insecure_allow_unlocked_memory = false;
  std::set<std::string> insecure_skip;    // lockdown steps to skip (reported)
};

// Any failure is fatal for the caller. Returns the attestation report read
// back from the kernel after lockdown.
absl::StatusOr<v1::AttestationReport> LockDownWorkerProcess(const WorkerLockdownOptions& options);

}  // namespace vigo::worker

#endif  // VIGO_AGENT_WORKER_WORKER_LOCKDOWN_H_
