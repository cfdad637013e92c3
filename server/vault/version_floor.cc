#include "server/vault/version_floor.h"

#include "common/status_macros.h"
#include "common/strings.h"

namespace vigo::server::vault {
namespace {

constexpr char kSchema[] =
    "CREATE TABLE IF NOT EXISTS vault_versions ("
    " path TEXT PRIMARY KEY,"
    " version INTEGER NOT NULL)";

}  // namespace

absl::StatusOr<std::shared_ptr<VersionFloor>> VersionFloor::Open(
    const std::filesystem::path& db_path) {
  VIGO_ASSIGN_OR_RETURN(std::unique_ptr<Database> db, Database::Open(db_path));
  auto floor = std::make_shared<VersionFloor>(db.get());
  floor->owned_ = std::move(db);
  return floor;
}

absl::StatusOr<uint64_t> VersionFloor::Floor(std::string_view path) {
  // No CREATE here: the read path must not need to write (full disk).
  {
    VIGO_ASSIGN_OR_RETURN(
        Statement t,
        db_->Prepare(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'vault_versions'"));
    VIGO_ASSIGN_OR_RETURN(bool has, t.Step());
    if (!has) return uint64_t{0};
  }
  VIGO_ASSIGN_OR_RETURN(Statement st,
                        db_->Prepare("SELECT version FROM vault_versions WHERE path = ?"));
  st.BindText(1, path);
  VIGO_ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return uint64_t{0};
  return static_cast<uint64_t>(st.ColumnInt(0));
}

absl::Status VersionFloor::RaiseInTransaction(Database* db, std::string_view path,
                                              uint64_t version) {
  VIGO_RETURN_IF_ERROR(db->Exec(kSchema));
  VIGO_ASSIGN_OR_RETURN(
      Statement st,
      db->Prepare("INSERT INTO vault_versions (path, version) VALUES (?, ?) "
                  "ON CONFLICT(path) DO UPDATE SET version = MAX(version, excluded.version)"));
  st.BindText(1, path);
  st.BindInt(2, static_cast<int64_t>(version));
  VIGO_ASSIGN_OR_RETURN(bool row, st.Step());
  (void)row;
  return absl::OkStatus();
}

}  // namespace vigo::server::vault
