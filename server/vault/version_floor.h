// VersionFloor: the highest version counter ever committed per secret path
// of the local vault, kept in the database (table `vault_versions`) so that
// restoring an older, validly encrypted vault file is refused.
//
//   VIGO_ASSIGN_OR_RETURN(auto floor, VersionFloor::Open(cfg.DatabasePath()));
//   VIGO_ASSIGN_OR_RETURN(auto vault, LocalBackend::Open(cfg.SecretsDir(), floor));
//   // writers (vigocli), inside the audit record's transaction:
//   audit.AppendWith(event, [&](Database* db) {
//     return VersionFloor::RaiseInTransaction(db, "webapp/db_pw", version);
//   });
//
// Why the database and not the vault directory: a rollback is a file put back
// in <secrets>/ (a backup, a copy, a snapshot), and anything kept next to the
// files (even under the master key's MAC) goes back with them. The floor lives
// in a different file, changes only through SQLite, and only in the same
// transaction as the hash-chained audit record that explains it, so it never
// moves without an audited change and never moves down (MAX on upsert).
// Restoring the database itself is outside this guard, as is root (SECURITY.md).
//
// Thread safety: thread-safe (one SQLite connection in FULLMUTEX mode).
// SECURITY: stores paths and counters only, never values.
#ifndef VIGO_SERVER_VAULT_VERSION_FLOOR_H_
#define VIGO_SERVER_VAULT_VERSION_FLOOR_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>

#include "absl/status/statusor.h"
#include "server/db.h"
#include "server/vault/local_backend.h"

namespace vigo::server::vault {

class VersionFloor : public VersionFloorSource {
 public:
  // Its own connection to the database at `db_path` (created when missing).
  static absl::StatusOr<std::shared_ptr<VersionFloor>> Open(const std::filesystem::path& db_path);
  // Borrows `db`, which must outlive this object.
  explicit VersionFloor(Database* db) : db_(db) {}

  // 0 when no version was ever committed for `path` (or the table does not
  // exist yet). Reads only: works on a full disk.
  absl::StatusOr<uint64_t> Floor(std::string_view path) override;

  // Raises the floor of `path` to `version` (never lowers it). Runs inside
  // the caller's open transaction on `db`.
  static absl::Status RaiseInTransaction(Database* db, std::string_view path, uint64_t version);

 private:
  std::unique_ptr<Database> owned_;
  Database* db_;
};

}  // namespace vigo::server::vault

#endif  // VIGO_SERVER_VAULT_VERSION_FLOOR_H_
