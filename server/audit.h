// AuditLog: the append-only, SHA-256 hash-chained audit log in the database
// (table `audit`). Shared by vigosrv and vigocli.
//
//   AuditLog audit(db);
//   VIGO_RETURN_IF_ERROR(audit.Append({.event = "secret.set", .actor = "uid:0",
//                                      .paths = {"webapp/db_pw"}, .outcome = "ok"}));
//   VIGO_ASSIGN_OR_RETURN(AuditVerifyResult r, audit.Verify());
//
// Each record's hash = SHA-256(prev_hash || canonical encoding of every stored
// field); the first record's prev_hash is 64 zeros. Verify() recomputes the
// chain and names the first record whose stored bytes do not match.
// SECURITY: records carry paths and names, never values.
#ifndef VIGO_SERVER_AUDIT_H_
#define VIGO_SERVER_AUDIT_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "server/db.h"

namespace vigo::server {

struct AuditEvent {
  std::string event;               // a contract event name, e.g. "secret.resolve.denied"
  std::string actor;               // "uid:0", "envoy:web-1", "server"
  std::string envoy;               // envoy name or ""
  std::vector<std::string> paths;  // secret paths involved
  std::string outcome = "ok";      // ok | denied | failed | ...
  std::string detail;              // short free text, never a value
};

struct AuditRecord {
  int64_t seq = 0;
  int64_t time_unix_ms = 0;
  AuditEvent event;
  std::string prev_hash;  // hex
  std::string hash;       // hex
};

struct AuditVerifyResult {
  bool ok = true;
  int64_t records = 0;
  std::optional<int64_t> first_bad_seq;
  std::string problem;  // e.g. "hash mismatch", "prev_hash does not link"
};

class AuditLog {
 public:
  // Borrows `db`; creates the table if needed on first use.
  explicit AuditLog(Database* db) : db_(db) {}

  // Appends atomically (BEGIN IMMEDIATE), safe across processes.
  absl::Status Append(const AuditEvent& event);
  // Appends all `events`, in order, in one transaction (one commit, so one
  // fsync under synchronous=FULL): either every record is chained and
  // durable or none is. Used for group commit by the server's AuditWriter.
  absl::Status AppendBatch(std::span<const AuditEvent> events);
  // Appends `event` and runs `also` on the same connection inside the same
  // transaction: both commit or neither does (used to raise the vault's
  // version floor together with the record that explains it).
  using InTransaction = std::function<absl::Status(Database* db)>;
  absl::Status AppendWith(const AuditEvent& event, const InTransaction& also);
  absl::StatusOr<std::vector<AuditRecord>> List(int64_t after_seq = 0, int64_t limit = -1);
  absl::StatusOr<AuditVerifyResult> Verify();

 private:
  absl::Status EnsureTable();
  absl::Status AppendBatchWith(std::span<const AuditEvent> events, const InTransaction& also);
  Database* db_;
  bool table_ready_ = false;
};

// One JSON object (CONTRACT §6 fields) for `audit list --json`.
std::string AuditRecordJson(const AuditRecord& record);

}  // namespace vigo::server

#endif  // VIGO_SERVER_AUDIT_H_
