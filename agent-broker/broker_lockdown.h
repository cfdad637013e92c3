// The broker's lockdown step, one call from the agent after the worker is
// started and before any value exists in this process.
#ifndef VIGO_AGENT_BROKER_BROKER_LOCKDOWN_H_
#define VIGO_AGENT_BROKER_BROKER_LOCKDOWN_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "vigo/v1/bundle.pb.h"

namespace vigo::broker {

struct BrokerLockdownOptions {
  pid_t worker_pid = -1;
  int worker_fd = -1;
  std::string state_dir;
  bool insecure_allow_unlocked_memory = false;
};

// Initializes the locked arena, makes the process non-dumpable and applies
// the sandbox lockdown. Any failure is fatal for the caller. Returns the
// attestation report read back from the kernel.
absl::StatusOr<v1::AttestationReport> LockDownBrokerProcess(const BrokerLockdownOptions& options);

}  // namespace vigo::broker

#endif  // VIGO_AGENT_BROKER_BROKER_LOCKDOWN_H_
