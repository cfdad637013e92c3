// Database: the SQLite file <root>/db/vigo.db shared by vigosrv and vigocli.
// WAL mode, foreign keys on, busy timeout 5 s. Each module creates its own
// tables (CREATE TABLE IF NOT EXISTS) through EnsureSchema().
//
//   VIGO_ASSIGN_OR_RETURN(auto db, Database::Open(cfg.DatabasePath()));
//   VIGO_ASSIGN_OR_RETURN(Statement st, db->Prepare("SELECT seq FROM audit WHERE ..."));
//   st.BindText(1, envoy);
//   while (true) { VIGO_ASSIGN_OR_RETURN(bool row, st.Step()); if (!row) break; ... }
//
// Thread safety: one Database may be shared by threads; Statement objects
// may not. Lifetime: a Statement must be destroyed before its Database (it
// returns itself to the Database's statement cache). SECURITY: nothing stored here may hold a secret value.
#ifndef VIGO_SERVER_DB_H_
#define VIGO_SERVER_DB_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

struct sqlite3;
struct sqlite3_stmt;

namespace vigo::server {

class Statement {
 public:
  Statement(Statement&&) noexcept;
  Statement& operator=(Statement&&) = delete;
  Statement(const Statement&) = delete;
  ~Statement();

  void BindText(int index, std::string_view value);
  void BindBlob(int index, const void* data, size_t len);
  void BindInt(int index, int64_t value);
  void BindNull(int index);
  // true: a row is available; false: done.
  absl::StatusOr<bool> Step();
  absl::Status Reset();

  std::string ColumnText(int index) const;
  std::string ColumnBlob(int index) const;
  int64_t ColumnInt(int index) const;
  bool ColumnIsNull(int index) const;

 private:
  friend class Database;
  Statement(class Database* owner, sqlite3* db, sqlite3_stmt* stmt)
      : owner_(owner), db_(db), stmt_(stmt) {}
  class Database* owner_;  // the statement goes back to its cache when done
  sqlite3* db_;
  sqlite3_stmt* stmt_;
};

class Database {
 public:
  // Opens an existing database. A missing file is NOT_FOUND naming the path:
  // a typo in database.path must not start a server (or a vigocli write) on
  // a new, empty database that no envoy is registered in (#13.22).
  static absl::StatusOr<std::unique_ptr<Database>> Open(const std::filesystem::path& path);
  // Opens, creating the file 0600 and its directory 0700 when missing. Only
  // `vigosrv init` (and tests) create a database.
  static absl::StatusOr<std::unique_ptr<Database>> Create(const std::filesystem::path& path);
  ~Database();

  absl::Status Exec(std::string_view sql);
  // Compiled statements are cached per SQL text: a Statement that goes out of
  // scope is reset (bindings cleared, read lock released) and kept for the
  // next Prepare of the same text, so hot queries are parsed once.
  absl::StatusOr<Statement> Prepare(std::string_view sql);
  // Runs `sql` (schema statements) once per process per database file.
  absl::Status EnsureSchema(std::string_view sql) { return Exec(sql); }

  // BEGIN IMMEDIATE ... COMMIT helpers. Callers hold `mu()` across a
  // transaction when the Database is shared between threads.
  absl::Status Begin();
  absl::Status Commit();
  void Rollback();
  std::mutex& mu() { return mu_; }

  const std::filesystem::path& path() const { return path_; }

 private:
  friend class Statement;
  static absl::StatusOr<std::unique_ptr<Database>> OpenFile(const std::filesystem::path& path,
                                                            bool create);
  Database(sqlite3* db, std::filesystem::path path) : db_(db), path_(std::move(path)) {}
  // Takes back a finished statement (reset by the caller); finalizes it when
  // the cache already holds one for that SQL or is full.
  void Recycle(sqlite3_stmt* stmt);
  sqlite3* db_;
  std::filesystem::path path_;
  std::mutex mu_;
  std::mutex cache_mu_;
  std::unordered_multimap<std::string, sqlite3_stmt*> idle_;  // under cache_mu_
};

}  // namespace vigo::server

#endif  // VIGO_SERVER_DB_H_
