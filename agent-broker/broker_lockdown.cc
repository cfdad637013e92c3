#include "agent-broker/broker_lockdown.h"

#include "common/ipc/attestation_proto.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "sandbox/attestation.h"
#include "sandbox/lockdown.h"

namespace vigo::broker {

absl::StatusOr<v1::AttestationReport> LockDownBrokerProcess(const BrokerLockdownOptions& options) {
  sandbox::BrokerLockdownSpec spec;
  spec.keep_fds = {0, 1, 2};
  spec.keep_fds.insert(spec.keep_fds.end(), options.keep_fds.begin(), options.keep_fds.end());
  spec.worker_pid = options.worker_pid;
  // One --insecure-skip-lockdown list serves both processes: the steps only
  // the worker has are the worker's to report (it validates them), not an
  // unknown step of the broker's.
  spec.insecure_skip = options.insecure_skip;
  spec.insecure_skip.erase(sandbox::kStepMountNamespace);
  spec.insecure_skip.erase(sandbox::kStepPidNamespace);
  spec.insecure_skip.erase(sandbox::kStepLandlock);
  VIGO_ASSIGN_OR_RETURN(sandbox::LockdownResult result, sandbox::LockDownBroker(spec));
  for (const std::string& s : result.skipped_steps) {
    Log(LogLevel::kWarn, "insecure: lockdown step skipped", {{"process", "broker"}, {"step", s}});
  }
  VIGO_ASSIGN_OR_RETURN(sandbox::AttestationReport att, sandbox::CollectAttestation());
  att.process = "broker";
  return ipc::ToProto(att);
}

}  // namespace vigo::broker
