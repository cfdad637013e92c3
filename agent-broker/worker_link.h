// The broker's side of the broker ↔ worker protocol (common/ipc/agent_ipc.h).
//
//   VIGO_ASSIGN_OR_RETURN(WorkerLink w, WorkerLink::Start(opts));   // before any secret exists
//   ... lock down, check in, resolve into `cache` ...
//   absl::StatusOr<v1::ReportResultRequest> report = w.ServeRun(bundle, cache);
//
// SECURITY (OpenSSH monitor rule): the worker is untrusted. Any malformed,
// oversized, unknown or out-of-phase message, and any kResolveBatch naming a
// ref not in the current bundle's secret_refs, ends the broker immediately
// (FatalProtocolViolation: one log line, then _exit). A worker that dies or
// closes the socket makes ServeRun return UNAVAILABLE: the run is failed,
// never hung.
#ifndef VIGO_AGENT_BROKER_WORKER_LINK_H_
#define VIGO_AGENT_BROKER_WORKER_LINK_H_

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "agent-broker/secret_cache.h"
#include "common/ipc/agent_ipc.h"
#include "sandbox/child_process.h"
#include "vigo/v1/agent.pb.h"
#include "vigo/v1/bundle.pb.h"
#include "vigo/v1/worker_ipc.pb.h"

namespace vigo::broker {

// Exit code after a protocol violation (CONTRACT §6: 1 = error).
inline constexpr int kProtocolViolationExit = 1;

// Logs `what` and ends the process with kProtocolViolationExit (no unwinding:
// the worker is assumed hostile).
[[noreturn]] void FatalProtocolViolation(std::string_view what, const absl::Status& status);

struct WorkerStartOptions {
  std::string worker_path;  // "" = vigo-worker next to /proc/self/exe
  std::string apply_root;
  std::string worker_user;
  std::string log_level;
  std::string secret_file_dir;
  bool insecure_allow_unlocked_memory = false;
  std::string insecure_skip_lockdown;     // comma-separated step names
  std::vector<std::string> hidden_paths;  // covered in the worker's mount namespace
};

// dirname(/proc/self/exe) + "/vigo-worker".
absl::StatusOr<std::string> DefaultWorkerPath();

// Serves one run over `channel`: sends the bundle, answers every
// kResolveBatch from `cache` (epoch = bundle.secrets_epoch; every ref of
// a batch re-checked against the bundle), returns the worker's report
// after sending kDone. Validates the report (enums, sizes).
absl::StatusOr<v1::ReportResultRequest> ServeRun(ipc::Channel& channel, ipc::PhaseTable& phases,
                                                 const v1::PolicyBundle& bundle,
                                                 const SecretCache& cache);

// Decodes the worker's kReport payload (a vigo.v1.WorkerReport) into the
// report the broker forwards. INVALID_ARGUMENT (the caller ends the broker)
// when the message does not parse, a closed-set field (outcome, status,
// action) holds anything else, a field exceeds its cap, or there are more
// results than `bundle` has resources. The content of a text field never
// fails: name, type and message are copied as valid UTF-8 (common/utf8_text.h
// ValidUtf8Text), so a byte a command printed cannot end the broker or make
// the report unparsable for the server. run_id, bundle_digest and
// secrets_epoch are left for the caller to fill in. The worker's applier
// summary becomes the report's `applier` (ApplierFromSummary).
absl::StatusOr<v1::ReportResultRequest> DecodeWorkerReport(std::span<const uint8_t> payload,
                                                           const v1::PolicyBundle& bundle);

// Bounds on the applier attestation the broker forwards: the domain's
// directories are the bundle's paths (envoy-supplied text), so at most this
// many, each cut to this many bytes (at a character boundary).
inline constexpr int kMaxApplierDomain = 64;
inline constexpr size_t kMaxApplierDomainBytes = 1024;
inline constexpr size_t kMaxApplierTextBytes = 256;  // rights, cap_eff

// The worker's ApplierSummary as the report's ApplierAttestation: texts made
// valid UTF-8 and cut, the domain cut to kMaxApplierDomain directories
// (domain_truncated says so). Never fails.
v1::ApplierAttestation ApplierFromSummary(const v1::ApplierSummary& s);

// Receives and validates the worker's kHello.
absl::StatusOr<v1::AttestationReport> ReceiveHello(ipc::Channel& channel, ipc::PhaseTable& phases);

class WorkerLink {
 public:
  // socketpair + fork/exec of vigo-worker with a clean environment and the
  // socket on fd 3. Does not wait for the hello (see AwaitHello).
  static absl::StatusOr<WorkerLink> Start(const WorkerStartOptions& options);

  absl::Status AwaitHello();
  // Closes the socket, kills and reaps the (idle) worker.
  void Shutdown();
  // After the worker hung up: reaps it. `how` says how it ended ("exit code
  // 3", "signal 9") for the log line that tells the operator why the agent
  // stops; `signal` is the terminating signal or 0.
  struct Death {
    std::string how;
    int signal = 0;
  };
  Death ReapDead();
  absl::StatusOr<v1::ReportResultRequest> ServeRun(const v1::PolicyBundle& bundle,
                                                   const SecretCache& cache) {
    return broker::ServeRun(channel_, phases_, bundle, cache);
  }
  const v1::AttestationReport& attestation() const { return attestation_; }
  pid_t pid() const { return child_.pid(); }
  int fd() const { return channel_.fd(); }

 private:
  sandbox::ChildProcess child_;
  ipc::Channel channel_;
  ipc::PhaseTable phases_;
  v1::AttestationReport attestation_;
};

}  // namespace vigo::broker

#endif  // VIGO_AGENT_BROKER_WORKER_LINK_H_
