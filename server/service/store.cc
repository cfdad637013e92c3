#include "server/service/store.h"

#include <openssl/rand.h>

#include <chrono>

#include "common/status_macros.h"
#include "common/strings.h"
#include "vocab/ids.h"

namespace vigo::server::service {
namespace {

constexpr std::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS envoy_certs(
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  serial TEXT NOT NULL,
  fingerprint TEXT NOT NULL UNIQUE,
  issued_at_ms INTEGER NOT NULL,
  not_after_unix INTEGER NOT NULL,
  revoked_at_ms INTEGER,
  last_seen_ms INTEGER);
CREATE INDEX IF NOT EXISTS envoy_certs_name ON envoy_certs(name);
CREATE TABLE IF NOT EXISTS server_state(
  key TEXT PRIMARY KEY,
  value INTEGER NOT NULL);
INSERT OR IGNORE INTO server_state(key, value) VALUES('secrets_epoch', 1);
CREATE TABLE IF NOT EXISTS runs(
  id TEXT PRIMARY KEY,
  envoy TEXT NOT NULL,
  bundle_digest TEXT NOT NULL,
  secrets_epoch INTEGER NOT NULL,
  started_ms INTEGER NOT NULL,
  finished_ms INTEGER NOT NULL,
  received_ms INTEGER NOT NULL,
  outcome TEXT NOT NULL,
  redacted INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS runs_envoy ON runs(envoy, received_ms);
CREATE TABLE IF NOT EXISTS run_results(
  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  idx INTEGER NOT NULL,
  name TEXT NOT NULL,
  type TEXT NOT NULL,
  status TEXT NOT NULL,
  action TEXT NOT NULL,
  message TEXT NOT NULL,
  redactions INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY(run_id, idx));
CREATE TABLE IF NOT EXISTS run_sizes(
  run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
  envoy TEXT NOT NULL,
  bytes INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS run_sizes_envoy ON run_sizes(envoy);
CREATE INDEX IF NOT EXISTS runs_received ON runs(received_ms);
CREATE TABLE IF NOT EXISTS run_appliers(
  run_id TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
  landlock_abi INTEGER NOT NULL,
  enforced INTEGER NOT NULL,
  rights TEXT NOT NULL,
  domain TEXT NOT NULL,
  domain_truncated INTEGER NOT NULL,
  cap_eff TEXT NOT NULL,
  setup_us INTEGER NOT NULL,
  no_new_process INTEGER NOT NULL DEFAULT 0);
)sql";

// Rolls back unless committed.
class Txn {
 public:
  explicit Txn(Database* db) : db_(db) {}
  absl::Status Begin() {
    VIGO_RETURN_IF_ERROR(db_->Begin());
    open_ = true;
    return absl::OkStatus();
  }
  absl::Status Commit() {
    VIGO_RETURN_IF_ERROR(db_->Commit());
    open_ = false;
    return absl::OkStatus();
  }
  ~Txn() {
    if (open_) db_->Rollback();
  }

 private:
  Database* db_;
  bool open_ = false;
};

EnvoyCertRecord ReadCert(const Statement& st) {
  EnvoyCertRecord r;
  r.id = st.ColumnInt(0);
  r.name = st.ColumnText(1);
  r.serial = st.ColumnText(2);
  r.fingerprint = st.ColumnText(3);
  r.issued_at_ms = st.ColumnInt(4);
  r.not_after_unix = st.ColumnInt(5);
  if (!st.ColumnIsNull(6)) r.revoked_at_ms = st.ColumnInt(6);
  if (!st.ColumnIsNull(7)) r.last_seen_ms = st.ColumnInt(7);
  return r;
}

RunRecord ReadRun(const Statement& st) {
  RunRecord r;
  r.id = st.ColumnText(0);
  r.envoy = st.ColumnText(1);
  r.bundle_digest = st.ColumnText(2);
  r.secrets_epoch = static_cast<uint64_t>(st.ColumnInt(3));
  r.started_ms = st.ColumnInt(4);
  r.finished_ms = st.ColumnInt(5);
  r.received_ms = st.ColumnInt(6);
  r.outcome = st.ColumnText(7);
  r.redacted = st.ColumnInt(8) != 0;
  r.result_count = st.ColumnInt(9);
  return r;
}

constexpr std::string_view kRunCols =
    "SELECT id, envoy, bundle_digest, secrets_epoch, started_ms, finished_ms, received_ms, "
    "outcome, redacted, (SELECT COUNT(*) FROM run_results WHERE run_id = runs.id) FROM runs";

}  // namespace

namespace {

// A column a later version added: databases created before it gain it, with
// `declaration`'s default for their old rows.
absl::Status AddColumnIfMissing(Database& db, std::string_view table, std::string_view column,
                                std::string_view declaration) {
  VIGO_ASSIGN_OR_RETURN(Statement q, db.Prepare(StrCat("SELECT COUNT(*) FROM pragma_table_info('",
                                                       table, "') WHERE name = ?")));
  q.BindText(1, std::string(column));
  VIGO_ASSIGN_OR_RETURN(bool row, q.Step());
  if (!row || q.ColumnInt(0) != 0) return absl::OkStatus();
  return db.Exec(StrCat("ALTER TABLE ", table, " ADD COLUMN ", column, " ", declaration));
}

}  // namespace

absl::Status EnsureServerSchema(Database& db) {
  VIGO_RETURN_IF_ERROR(db.EnsureSchema(kSchema));
  // run_results from before the redaction count (issue 15.4): rows read as 0.
  VIGO_RETURN_IF_ERROR(
      AddColumnIfMissing(db, "run_results", "redactions", "INTEGER NOT NULL DEFAULT 0"));
  // run_appliers from before the applier's seccomp layer (issue 14): its
  // rows read as "not loaded", which they were not.
  VIGO_RETURN_IF_ERROR(
      AddColumnIfMissing(db, "run_appliers", "no_new_process", "INTEGER NOT NULL DEFAULT 0"));
  return absl::OkStatus();
}

absl::Status ValidateRunId(std::string_view id) {
  if (id.empty() || id.size() > 64) {
    return absl::InvalidArgumentError("run_id must be 1-64 bytes");
  }
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.';
    if (!ok) return absl::InvalidArgumentError("run_id has a character outside [A-Za-z0-9_.-]");
  }
  return absl::OkStatus();
}

absl::Status ServerStore::Init() {
  std::lock_guard<std::mutex> lock(mu_);
  return EnsureServerSchema(*db_);
}

absl::Status ServerStore::RecordEnvoyCert(std::string_view name, const tls::CertInfo& cert) {
  std::lock_guard<std::mutex> lock(mu_);
  VIGO_ASSIGN_OR_RETURN(
      Statement st,
      db_->Prepare("INSERT INTO envoy_certs(name, serial, fingerprint, issued_at_ms, "
                   "not_after_unix) VALUES(?, ?, ?, ?, ?)"));
  st.BindText(1, name);
  st.BindText(2, cert.serial_hex);
  st.BindText(3, cert.fingerprint_sha256);
  st.BindInt(4, vocab::NowUnixMs());
  st.BindInt(5, cert.not_after_unix);
  auto r = st.Step();
  if (!r.ok()) {
    return absl::AlreadyExistsError(
        StrCat("certificate ", cert.fingerprint_sha256, " for envoy '", name,
               "' could not be recorded: ", std::string(r.status().message())));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<EnvoyCertRecord>> ServerStore::ListEnvoyCerts() {
  std::lock_guard<std::mutex> lock(mu_);
  VIGO_ASSIGN_OR_RETURN(
      Statement st,
      db_->Prepare("SELECT id, name, serial, fingerprint, issued_at_ms, not_after_unix, "
                   "revoked_at_ms, last_seen_ms FROM envoy_certs ORDER BY name, id"));
  std::vector<EnvoyCertRecord> out;
  while (true) {
    VIGO_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(ReadCert(st));
  }
  return out;
}

absl::StatusOr<int> ServerStore::RevokeEnvoy(std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  Txn txn(db_);
  VIGO_RETURN_IF_ERROR(txn.Begin());
  int count = 0;
  {
    VIGO_ASSIGN_OR_RETURN(Statement q,
                          db_->Prepare("SELECT COUNT(*) FROM envoy_certs WHERE name = ? AND "
                                       "revoked_at_ms IS NULL"));
    q.BindText(1, name);
    VIGO_ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) count = static_cast<int>(q.ColumnInt(0));
  }
  if (count == 0) {
    return absl::NotFoundError(StrCat("envoy '", name, "' has no active certificate"));
  }
  VIGO_ASSIGN_OR_RETURN(Statement st,
                        db_->Prepare("UPDATE envoy_certs SET revoked_at_ms = ? WHERE name = ? "
                                     "AND revoked_at_ms IS NULL"));
  st.BindInt(1, vocab::NowUnixMs());
  st.BindText(2, name);
  VIGO_RETURN_IF_ERROR(st.Step().status());
  VIGO_RETURN_IF_ERROR(txn.Commit());
  return count;
}

absl::StatusOr<CertLookup> ServerStore::LookupCert(std::string_view fingerprint) {
  std::lock_guard<std::mutex> lock(mu_);
  VIGO_ASSIGN_OR_RETURN(
      Statement st,
      db_->Prepare("SELECT name, revoked_at_ms FROM envoy_certs WHERE fingerprint = ?"));
  st.BindText(1, fingerprint);
  VIGO_ASSIGN_OR_RETURN(bool row, st.Step());
  CertLookup out;
  if (!row) return out;
  out.name = st.ColumnText(0);
  out.state = st.ColumnIsNull(1) ? CertState::kActive : CertState::kRevoked;
  return out;
}

absl::Status ServerStore::TouchLastSeen(std::string_view fingerprint) {
  std::lock_guard<std::mutex> lock(mu_);
  VIGO_ASSIGN_OR_RETURN(Statement st,
                        db_->Prepare("UPDATE envoy_certs SET last_seen_ms = ? WHERE "
                                     "fingerprint = ?"));
  st.BindInt(1, vocab::NowUnixMs());
  st.BindText(2, fingerprint);
  return st.Step().status();
}

absl::StatusOr<uint64_t> ServerStore::LoadEpoch() {
  std::lock_guard<std::mutex> lock(mu_);
  VIGO_ASSIGN_OR_RETURN(Statement st,
                        db_->Prepare("SELECT value FROM server_state WHERE key = 'secrets_epoch'"));
  VIGO_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return absl::InternalError("server_state has no secrets_epoch row");
  return static_cast<uint64_t>(st.ColumnInt(0));
}

absl::StatusOr<uint64_t> ServerStore::BumpEpoch() {
  std::lock_guard<std::mutex> lock(mu_);
  Txn txn(db_);
  VIGO_RETURN_IF_ERROR(txn.Begin());
  {
    VIGO_ASSIGN_OR_RETURN(
        Statement up,
        db_->Prepare("UPDATE server_state SET value = value + 1 WHERE key = 'secrets_epoch'"));
    VIGO_RETURN_IF_ERROR(up.Step().status());
  }
  VIGO_ASSIGN_OR_RETURN(Statement st,
                        db_->Prepare("SELECT value FROM server_state WHERE key = 'secrets_epoch'"));
  VIGO_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return absl::InternalError("server_state has no secrets_epoch row");
  uint64_t epoch = static_cast<uint64_t>(st.ColumnInt(0));
  VIGO_RETURN_IF_ERROR(txn.Commit());
  return epoch;
}

int64_t StoredRunBytes(const RunRecord& run, const std::vector<ResultRecord>& results) {
  int64_t n = static_cast<int64_t>(run.id.size() + run.envoy.size() + run.bundle_digest.size() +
                                   run.outcome.size() + 64);
  for (const ResultRecord& r : results) {
    n += static_cast<int64_t>(r.name.size() + r.type.size() + r.status.size() + r.action.size() +
                              r.message.size() + 32);
  }
  if (run.applier) {
    n += static_cast<int64_t>(run.applier->rights.size() + run.applier->cap_eff.size() + 64);
    for (const std::string& d : run.applier->domain) n += static_cast<int64_t>(d.size() + 1);
  }
  return n;
}

absl::Status ServerStore::StoreRun(const RunRecord& run, const std::vector<ResultRecord>& results,
                                   int64_t envoy_quota_bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t bytes = StoredRunBytes(run, results);
  if (envoy_quota_bytes > 0 && bytes > envoy_quota_bytes) {
    return absl::ResourceExhaustedError(
        StrCat("run '", run.id, "' is ", bytes, " bytes, more than the per-envoy quota of ",
               envoy_quota_bytes, " bytes"));
  }
  Txn txn(db_);
  VIGO_RETURN_IF_ERROR(txn.Begin());
  {
    VIGO_ASSIGN_OR_RETURN(Statement q, db_->Prepare("SELECT envoy FROM runs WHERE id = ?"));
    q.BindText(1, run.id);
    VIGO_ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) {
      if (q.ColumnText(0) == run.envoy) return absl::OkStatus();  // retry of a stored run
      return absl::AlreadyExistsError(StrCat("run '", run.id, "' already exists"));
    }
  }
  if (envoy_quota_bytes > 0) {
    // Make room: drop this envoy's oldest runs until the new one fits. One
    // envoy can fill only its own share, never the disk.
    while (true) {
      VIGO_ASSIGN_OR_RETURN(
          Statement sum,
          db_->Prepare("SELECT COALESCE(SUM(bytes), 0) FROM run_sizes WHERE envoy = ?"));
      sum.BindText(1, run.envoy);
      VIGO_ASSIGN_OR_RETURN(bool row, sum.Step());
      const int64_t used = row ? sum.ColumnInt(0) : 0;
      if (used + bytes <= envoy_quota_bytes) break;
      std::string oldest;
      {
        VIGO_ASSIGN_OR_RETURN(
            Statement q, db_->Prepare("SELECT r.id FROM runs r JOIN run_sizes s ON s.run_id = r.id "
                                      "WHERE r.envoy = ? ORDER BY r.received_ms, r.id LIMIT 1"));
        q.BindText(1, run.envoy);
        VIGO_ASSIGN_OR_RETURN(bool found, q.Step());
        if (!found) break;  // nothing of this envoy's left to drop
        oldest = q.ColumnText(0);
      }
      VIGO_ASSIGN_OR_RETURN(Statement del, db_->Prepare("DELETE FROM runs WHERE id = ?"));
      del.BindText(1, oldest);
      VIGO_RETURN_IF_ERROR(del.Step().status());
    }
  }
  {
    VIGO_ASSIGN_OR_RETURN(
        Statement st,
        db_->Prepare("INSERT INTO runs(id, envoy, bundle_digest, secrets_epoch, started_ms, "
                     "finished_ms, received_ms, outcome, redacted) VALUES(?,?,?,?,?,?,?,?,?)"));
    st.BindText(1, run.id);
    st.BindText(2, run.envoy);
    st.BindText(3, run.bundle_digest);
    st.BindInt(4, static_cast<int64_t>(run.secrets_epoch));
    st.BindInt(5, run.started_ms);
    st.BindInt(6, run.finished_ms);
    st.BindInt(7, run.received_ms);
    st.BindText(8, run.outcome);
    st.BindInt(9, run.redacted ? 1 : 0);
    VIGO_RETURN_IF_ERROR(st.Step().status());
  }
  {
    VIGO_ASSIGN_OR_RETURN(
        Statement sz, db_->Prepare("INSERT INTO run_sizes(run_id, envoy, bytes) VALUES(?,?,?)"));
    sz.BindText(1, run.id);
    sz.BindText(2, run.envoy);
    sz.BindInt(3, bytes);
    VIGO_RETURN_IF_ERROR(sz.Step().status());
  }
  if (run.applier) {
    const ApplierRecord& a = *run.applier;
    std::string domain;
    for (const std::string& d : a.domain) {
      if (!domain.empty()) domain += '\n';
      domain += d;
    }
    VIGO_ASSIGN_OR_RETURN(
        Statement ap,
        db_->Prepare(
            "INSERT INTO run_appliers(run_id, landlock_abi, enforced, rights, domain, "
            "domain_truncated, cap_eff, setup_us, no_new_process) VALUES(?,?,?,?,?,?,?,?,?)"));
    ap.BindText(1, run.id);
    ap.BindInt(2, a.landlock_abi);
    ap.BindInt(3, a.enforced ? 1 : 0);
    ap.BindText(4, a.rights);
    ap.BindText(5, domain);
    ap.BindInt(6, a.domain_truncated ? 1 : 0);
    ap.BindText(7, a.cap_eff);
    ap.BindInt(8, a.setup_us);
    ap.BindInt(9, a.no_new_process ? 1 : 0);
    VIGO_RETURN_IF_ERROR(ap.Step().status());
  }
  VIGO_ASSIGN_OR_RETURN(
      Statement ins,
      db_->Prepare("INSERT INTO run_results(run_id, idx, name, type, status, action, message, "
                   "redactions) VALUES(?,?,?,?,?,?,?,?)"));
  for (size_t i = 0; i < results.size(); ++i) {
    const ResultRecord& r = results[i];
    VIGO_RETURN_IF_ERROR(ins.Reset());
    ins.BindText(1, run.id);
    ins.BindInt(2, static_cast<int64_t>(i));
    ins.BindText(3, r.name);
    ins.BindText(4, r.type);
    ins.BindText(5, r.status);
    ins.BindText(6, r.action);
    ins.BindText(7, r.message);
    ins.BindInt(8, r.redactions);
    VIGO_RETURN_IF_ERROR(ins.Step().status());
  }
  return txn.Commit();
}

absl::StatusOr<int64_t> ServerStore::PruneRuns(int64_t received_before_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  Txn txn(db_);
  VIGO_RETURN_IF_ERROR(txn.Begin());
  int64_t count = 0;
  {
    VIGO_ASSIGN_OR_RETURN(Statement q,
                          db_->Prepare("SELECT COUNT(*) FROM runs WHERE received_ms < ?"));
    q.BindInt(1, received_before_ms);
    VIGO_ASSIGN_OR_RETURN(bool row, q.Step());
    if (row) count = q.ColumnInt(0);
  }
  if (count > 0) {
    // run_results and run_sizes go with their run (ON DELETE CASCADE).
    VIGO_ASSIGN_OR_RETURN(Statement del, db_->Prepare("DELETE FROM runs WHERE received_ms < ?"));
    del.BindInt(1, received_before_ms);
    VIGO_RETURN_IF_ERROR(del.Step().status());
  }
  VIGO_RETURN_IF_ERROR(txn.Commit());
  return count;
}

absl::StatusOr<std::vector<RunRecord>> ServerStore::ListRuns(std::string_view envoy,
                                                             int64_t limit) {
  std::lock_guard<std::mutex> lock(mu_);
  std::string sql(kRunCols);
  if (!envoy.empty()) sql += " WHERE envoy = ?";
  sql += " ORDER BY received_ms DESC, id";
  if (limit > 0) StrAppend(&sql, " LIMIT ", limit);
  VIGO_ASSIGN_OR_RETURN(Statement st, db_->Prepare(sql));
  if (!envoy.empty()) st.BindText(1, envoy);
  std::vector<RunRecord> out;
  while (true) {
    VIGO_ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    out.push_back(ReadRun(st));
  }
  return out;
}

absl::StatusOr<RunRecord> ServerStore::GetRun(std::string_view id) {
  std::lock_guard<std::mutex> lock(mu_);
  VIGO_ASSIGN_OR_RETURN(Statement st, db_->Prepare(StrCat(kRunCols, " WHERE id = ?")));
  st.BindText(1, id);
  VIGO_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return absl::NotFoundError(StrCat("run '", id, "' not found"));
  RunRecord run = ReadRun(st);
  VIGO_ASSIGN_OR_RETURN(Statement rs,
                        db_->Prepare("SELECT name, type, status, action, message, redactions "
                                     "FROM run_results WHERE run_id = ? ORDER BY idx"));
  rs.BindText(1, id);
  while (true) {
    VIGO_ASSIGN_OR_RETURN(bool r, rs.Step());
    if (!r) break;
    run.results.push_back({rs.ColumnText(0), rs.ColumnText(1), rs.ColumnText(2), rs.ColumnText(3),
                           rs.ColumnText(4), rs.ColumnInt(5)});
  }
  VIGO_ASSIGN_OR_RETURN(
      Statement ap,
      db_->Prepare("SELECT landlock_abi, enforced, rights, domain, "
                   "domain_truncated, cap_eff, setup_us, no_new_process FROM run_appliers "
                   "WHERE run_id = ?"));
  ap.BindText(1, id);
  VIGO_ASSIGN_OR_RETURN(bool has_applier, ap.Step());
  if (has_applier) {
    ApplierRecord a;
    a.landlock_abi = static_cast<int32_t>(ap.ColumnInt(0));
    a.enforced = ap.ColumnInt(1) != 0;
    a.rights = ap.ColumnText(2);
    const std::string domain = ap.ColumnText(3);
    size_t start = 0;
    while (start < domain.size()) {
      size_t nl = domain.find('\n', start);
      if (nl == std::string::npos) nl = domain.size();
      a.domain.push_back(domain.substr(start, nl - start));
      start = nl + 1;
    }
    a.domain_truncated = ap.ColumnInt(4) != 0;
    a.cap_eff = ap.ColumnText(5);
    a.setup_us = ap.ColumnInt(6);
    a.no_new_process = ap.ColumnInt(7) != 0;
    run.applier = std::move(a);
  }
  return run;
}

}  // namespace vigo::server::service
