// The server's policy state: the loaded stacks, the secrets_epoch, the
// versions of every referenced secret, and the compiled bundle of each envoy
// (cached per state). Load at start, Reload on request, RefreshSecretsOnly
// when the stacks no longer load but a referenced secret changed.
//
//   PolicyStore policy(cfg, &backend, &store, audit);
//   VIGO_RETURN_IF_ERROR(policy.LoadInitial());               // first epoch, or the first error
//   auto state = policy.state();                              // shared, immutable
//   auto bundle = policy.BundleFor(state, "web-1");           // cached until the next epoch
//   absl::StatusOr<uint64_t> epoch = policy.Reload("admin");  // keeps the old state on failure
//
// Every successful load is a new epoch, persisted (ServerStore::BumpEpoch)
// so a restart never goes back. A failed reload keeps serving the last good
// stacks and audits why (config.reload, outcome failed); a referenced secret
// that changed meanwhile still moves the epoch (RefreshSecretsOnly), so a
// `--once` agent and a daemon get the same answer.
//
// Thread safety: all methods are thread-safe; Reload and RefreshSecretsOnly
// are serialised by one mutex.
#ifndef VIGO_SERVER_SERVICE_POLICY_STATE_H_
#define VIGO_SERVER_SERVICE_POLICY_STATE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/audit.h"
#include "server/backend.h"
#include "server/server_config.h"
#include "server/service/store.h"
#include "server/stacks.h"

namespace vigo::server::service {

// One loaded configuration generation.
struct PolicyState {
  std::shared_ptr<const Stacks> stacks;
  uint64_t epoch = 0;
  std::map<std::string, uint64_t> versions;  // referenced path → backend Version()
};

class PolicyStore {
 public:
  // Writes one audit record and returns whether it was committed.
  using AuditFn = std::function<absl::Status(const AuditEvent&)>;
  static constexpr size_t kMaxCachedBundles = 100000;

  // `backend` and `store` must outlive this.
  PolicyStore(const ServerConfig& cfg, SecretBackend* backend, ServerStore* store, AuditFn audit)
      : cfg_(cfg), backend_(backend), store_(store), audit_(std::move(audit)) {}

  // The first load (start-up): the first error as one line ("stacks: <file:line ...>
  // (and N more)"); audits config.reload reason=startup on success.
  absl::Status LoadInitial();

  // Reloads the stacks against the backend (after Refresh()); on success
  // bumps and returns the new epoch and audits config.reload; on failure
  // keeps the current state, audits the failure and returns the error
  // (file:line, no values). `reason` is recorded as given (the caller bounds it).
  absl::StatusOr<uint64_t> Reload(const std::string& reason);

  // True when a referenced secret's Version() differs from the state's, or
  // cannot be read, or the backend cannot be refreshed (what the watcher asks).
  bool VersionsChanged();
  // True when the last Reload failed (the watcher retries it at every check).
  bool last_reload_failed() const { return last_reload_failed_.load(); }

  std::shared_ptr<const PolicyState> state() const;
  uint64_t epoch() const { return state()->epoch; }

  // The compiled bundle for `envoy` under `state` (cached while `state` is
  // the current one; at most kMaxCachedBundles).
  absl::StatusOr<std::shared_ptr<const CompiledBundle>> BundleFor(
      const std::shared_ptr<const PolicyState>& state, const std::string& envoy);

 private:
  absl::StatusOr<std::shared_ptr<const PolicyState>> Load(LoadReport* report);
  absl::StatusOr<std::map<std::string, uint64_t>> Versions(const Stacks& stacks);
  // After a failed stacks load: re-reads the versions of what the last good
  // stacks reference and, when any differs, installs the same stacks under a
  // new epoch. True when the epoch moved. Caller holds reload_mu_.
  absl::StatusOr<bool> RefreshSecretsOnly();
  void Install(std::shared_ptr<const PolicyState> next);

  const ServerConfig& cfg_;
  SecretBackend* backend_;
  ServerStore* store_;
  AuditFn audit_;

  mutable std::mutex state_mu_;
  std::shared_ptr<const PolicyState> state_;                                   // under state_mu_
  std::map<std::string, std::shared_ptr<const CompiledBundle>> bundle_cache_;  // under state_mu_
  const PolicyState* bundle_cache_state_ = nullptr;                            // under state_mu_
  std::mutex reload_mu_;
  std::atomic<bool> last_reload_failed_{false};
};

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_POLICY_STATE_H_
