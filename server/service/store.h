// ServerStore: the server's own tables in <root>/db/vigo.db: issued envoy
// certificates (revocation, last seen), the persisted secrets_epoch, and
// stored run results. Shared by vigosrv and vigocli.
//
//   VIGO_ASSIGN_OR_RETURN(auto db, Database::Open(cfg.DatabasePath()));
//   ServerStore store(db.get());
//   VIGO_RETURN_IF_ERROR(store.Init());
//   VIGO_RETURN_IF_ERROR(store.RecordEnvoyCert("web-1", cert_info));
//   VIGO_ASSIGN_OR_RETURN(CertLookup c, store.LookupCert(fingerprint));  // every call
//   VIGO_ASSIGN_OR_RETURN(uint64_t epoch, store.BumpEpoch());
//
// Tables:
//   envoy_certs(id, name, serial, fingerprint UNIQUE, issued_at_ms,
//               not_after_unix, revoked_at_ms NULL, last_seen_ms NULL)
//   server_state(key PRIMARY KEY, value INTEGER)     -- 'secrets_epoch'
//   runs(id PRIMARY KEY, envoy, bundle_digest, secrets_epoch, started_ms,
//        finished_ms, received_ms, outcome, redacted)
//   run_results(run_id, idx, name, type, status, action, message, redactions)
//                -- redactions added by a migration (ALTER TABLE ... ADD
//                   COLUMN, default 0) when an older database is opened
//   run_sizes(run_id, envoy, bytes)   -- per-envoy quota accounting
//   run_appliers(run_id PRIMARY KEY, landlock_abi, enforced, rights, domain,
//                domain_truncated, cap_eff, setup_us, no_new_process)
//                -- the run's applier attestation; domain is the directories
//                   joined with '\n'. Added after runs: a database created
//                   before it gets the (empty) table at Init, its old runs
//                   keep no row (RunRecord::applier unset). no_new_process
//                   added by a migration (default 0) like redactions.
//
// Thread safety: all methods are safe to call concurrently (one internal
// mutex per store; SQLite serializes across processes with its busy timeout).
// SECURITY: nothing here holds a secret value; run messages are stored only
// after the caller redacted them (see leak_scan.h).
#ifndef VIGO_SERVER_SERVICE_STORE_H_
#define VIGO_SERVER_SERVICE_STORE_H_

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/db.h"
#include "server/tls/pki.h"

namespace vigo::server::service {

// CREATE TABLE IF NOT EXISTS for every table above, and the initial epoch.
absl::Status EnsureServerSchema(Database& db);

struct EnvoyCertRecord {
  int64_t id = 0;
  std::string name;
  std::string serial;
  std::string fingerprint;
  int64_t issued_at_ms = 0;
  int64_t not_after_unix = 0;
  std::optional<int64_t> revoked_at_ms;
  std::optional<int64_t> last_seen_ms;
};

enum class CertState { kActive, kRevoked, kUnknown };
struct CertLookup {
  CertState state = CertState::kUnknown;
  std::string name;  // recorded envoy name (empty when unknown)
};

struct ResultRecord {
  std::string name, type, status, action, message;
  int64_t redactions = 0;  // exec: output runs the worker redacted (count only)
};

// How the run's applier was confined (v1::ApplierAttestation, texts already
// leak-scanned and bounded by the caller).
struct ApplierRecord {
  int32_t landlock_abi = 0;
  bool enforced = false;
  std::string rights;
  std::vector<std::string> domain;
  bool domain_truncated = false;
  std::string cap_eff;
  int64_t setup_us = 0;
  bool no_new_process = false;  // the applier loaded its seccomp layer (no fork, no exec)
};

struct RunRecord {
  std::string id;
  std::string envoy;
  std::string bundle_digest;
  uint64_t secrets_epoch = 0;
  int64_t started_ms = 0;
  int64_t finished_ms = 0;
  int64_t received_ms = 0;
  std::string outcome;
  bool redacted = false;  // the server removed leaked values before storing
  std::vector<ResultRecord> results;  // filled by GetRun only
  int64_t result_count = 0;
  std::optional<ApplierRecord> applier;  // absent: the agent sent none (older agent)
};

class ServerStore {
 public:
  // Borrows `db`, which must outlive the store.
  explicit ServerStore(Database* db) : db_(db) {}

  absl::Status Init();

  // Envoy certificates.
  // ALREADY_EXISTS when the fingerprint is already recorded.
  absl::Status RecordEnvoyCert(std::string_view name, const tls::CertInfo& cert);
  absl::StatusOr<std::vector<EnvoyCertRecord>> ListEnvoyCerts();
  // Revokes every active certificate of `name`; returns how many. NOT_FOUND
  // when the name has no active certificate.
  absl::StatusOr<int> RevokeEnvoy(std::string_view name);
  absl::StatusOr<CertLookup> LookupCert(std::string_view fingerprint);
  absl::Status TouchLastSeen(std::string_view fingerprint);

  // secrets_epoch: starts at 1, only ever increases.
  absl::StatusOr<uint64_t> LoadEpoch();
  absl::StatusOr<uint64_t> BumpEpoch();

  // Runs. ALREADY_EXISTS when `run.id` exists for another envoy; storing the
  // same id again for the same envoy replaces nothing and returns OK
  // (agents retry). With `envoy_quota_bytes` > 0 the envoy's stored runs
  // (StoredRunBytes each) stay within that many bytes: its oldest runs are
  // deleted to make room, and a single run larger than the quota is
  // RESOURCE_EXHAUSTED.
  absl::Status StoreRun(const RunRecord& run, const std::vector<ResultRecord>& results,
                        int64_t envoy_quota_bytes = 0);
  // Deletes every run received before `received_before_ms` (with its
  // results); returns how many.
  absl::StatusOr<int64_t> PruneRuns(int64_t received_before_ms);
  // Newest first; `envoy` empty = all; limit <= 0 = all.
  absl::StatusOr<std::vector<RunRecord>> ListRuns(std::string_view envoy, int64_t limit);
  // NOT_FOUND naming the id.
  absl::StatusOr<RunRecord> GetRun(std::string_view id);

 private:
  Database* db_;
  std::mutex mu_;
};

// What one stored run counts against its envoy's quota: its texts plus a
// fixed per-row overhead.
int64_t StoredRunBytes(const RunRecord& run, const std::vector<ResultRecord>& results);

// Run ids from agents: 1–64 bytes of [A-Za-z0-9_.-].
absl::Status ValidateRunId(std::string_view id);

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_STORE_H_
