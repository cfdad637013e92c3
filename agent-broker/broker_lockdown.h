// The broker's lockdown step: one call from the agent after the worker is
// started and the state files are open, before any value exists in this
// process and before gRPC creates its first thread (sandbox/lockdown.h).
#ifndef VIGO_AGENT_BROKER_BROKER_LOCKDOWN_H_
#define VIGO_AGENT_BROKER_BROKER_LOCKDOWN_H_

#include <sys/types.h>

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "vigo/v1/bundle.pb.h"

namespace vigo::broker {

struct BrokerLockdownOptions {
  pid_t worker_pid = -1;
  std::vector<int> keep_fds;            // besides 0-2: worker socket, state files
  std::set<std::string> insecure_skip;  // lockdown steps to skip (reported)
};

// Any failure is fatal for the caller. Returns the attestation report read
// back from the kernel.
absl::StatusOr<v1::AttestationReport> LockDownBrokerProcess(const BrokerLockdownOptions& options);

}  // namespace vigo::broker

#endif  // VIGO_AGENT_BROKER_BROKER_LOCKDOWN_H_
