// One agent: check in, resolve, let the worker apply, report. `vigo run
// --once` calls RunOnce; `vigo daemon` calls Daemon.
//
//   Agent agent(opts, std::move(client), std::move(worker), StateDir(dir), broker_report);
//   absl::StatusOr<std::string> outcome = agent.RunOnce();   // "ok" | "changed" | "failed"
//
// Server errors UNAVAILABLE / DEADLINE_EXCEEDED are retried with exponential
// backoff and full jitter (0.5 s doubling to 30 s) within `retry_for`.
// FAILED_PRECONDITION from ResolveSecrets (stale epoch) zeroes the cache,
// checks in again and retries once. A worker that dies makes RunOnce return
// UNAVAILABLE (the run is reported failed); the caller exits non-zero.
#ifndef VIGO_AGENT_BROKER_AGENT_H_
#define VIGO_AGENT_BROKER_AGENT_H_

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "agent-broker/agent_client.h"
#include "agent-broker/secret_cache.h"
#include "agent-broker/state_dir.h"
#include "agent-broker/worker_link.h"

namespace vigo::broker {

// At most this many ResolveSecrets calls of one apply are in flight at once.
inline constexpr size_t kMaxConcurrentResolves = 4;

struct AgentOptions {
  std::chrono::seconds interval{300};
  std::chrono::seconds retry_for{60};
};

class Agent {
 public:
  Agent(AgentOptions options, std::unique_ptr<AgentClient> client, WorkerLink worker,
        StateDir state, v1::AttestationReport broker_attestation);
  ~Agent();

  // One cycle. The outcome of the apply, or an error when no apply happened
  // (server unreachable past retry_for, denied) or the worker died (UNAVAILABLE
  // with "vigo-worker" in the message).
  absl::StatusOr<std::string> RunOnce();

  // Runs until `stop` becomes true or the worker dies; the exit code.
  int Daemon(const std::atomic<bool>& stop);

  // Zeroes every cached value.
  void WipeCache() { cache_.Clear(); }

 private:
  // The worker hung up while the daemon runs: reaps it; 0 when this is part
  // of a stop (our own stop flag, possibly arriving just after the worker's
  // SIGTERM), else 1 so the service manager restarts the agent.
  int WorkerGone(const std::atomic<bool>& stop);
  absl::Status Retry(const char* what, const std::function<absl::Status()>& fn);
  // Retry's loop without setting the client's deadline cap (safe to call
  // from several threads at once).
  absl::Status RetryUntil(const char* what, std::chrono::steady_clock::time_point deadline,
                          const std::function<absl::Status()>& fn) const;
  // The ResolveSecrets calls for `parts` (each at most kMaxRefsPerCall refs),
  // up to kMaxConcurrentResolves at a time, values into cache_.
  absl::Status ResolveParts(const v1::PolicyBundle& bundle,
                            const std::vector<std::vector<std::string>>& parts);
  absl::StatusOr<v1::PolicyBundle> CheckIn(bool force_bundle);
  absl::Status ResolveAll(v1::PolicyBundle* bundle);
  void ReportFailure(const v1::PolicyBundle* bundle, int64_t started_ms, const std::string& why);
  absl::Status Report(v1::ReportResultRequest* report);

  AgentOptions options_;
  std::unique_ptr<AgentClient> client_;
  WorkerLink worker_;
  StateDir state_;
  v1::AttestationReport broker_attestation_;
  std::optional<v1::PolicyBundle> bundle_;
  SecretCache cache_;
  bool worker_dead_ = false;
};

}  // namespace vigo::broker

#endif  // VIGO_AGENT_BROKER_AGENT_H_
