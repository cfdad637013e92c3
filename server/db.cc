#include "server/db.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/syscall_status.h"
#include "sandbox/unique_fd.h"

namespace vigo::server {
namespace {

absl::Status SqliteError(sqlite3* db, std::string_view what, const std::filesystem::path& path) {
  const char* msg = db != nullptr ? sqlite3_errmsg(db) : "out of memory";
  int code = db != nullptr ? sqlite3_extended_errcode(db) : SQLITE_NOMEM;
  std::string text = StrCat("database ", path.string(), ": ", what, ": ", msg);
  switch (code & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(text);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(text);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(text);
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_READONLY:
      return absl::PermissionDeniedError(text);
    case SQLITE_CANTOPEN:
      return absl::FailedPreconditionError(text);
    default:
      return absl::InternalError(text);
  }
}

// Creates `dir` (and parents) with mode 0700 when missing. Existing
// directories keep their mode: an operator may have chosen a stricter one.
absl::Status EnsureDir(const std::filesystem::path& dir) {
  if (dir.empty()) return absl::OkStatus();
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) {
      return absl::FailedPreconditionError(
          StrCat("database directory ", dir.string(), " exists and is not a directory"));
    }
    return absl::OkStatus();
  }
  VIGO_RETURN_IF_ERROR(EnsureDir(dir.parent_path()));
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return sandbox::ErrnoStatus(errno, "mkdir", dir.string());
  }
  return absl::OkStatus();
}

}  // namespace

Statement::Statement(Statement&& other) noexcept
    : owner_(other.owner_), db_(other.db_), stmt_(std::exchange(other.stmt_, nullptr)) {}

Statement::~Statement() {
  if (stmt_ == nullptr) return;
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  owner_->Recycle(stmt_);
}

void Statement::BindText(int index, std::string_view value) {
  sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
}

void Statement::BindBlob(int index, const void* data, size_t len) {
  sqlite3_bind_blob64(stmt_, index, data, len, SQLITE_TRANSIENT);
}

void Statement::BindInt(int index, int64_t value) { sqlite3_bind_int64(stmt_, index, value); }

void Statement::BindNull(int index) { sqlite3_bind_null(stmt_, index); }

absl::StatusOr<bool> Statement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const char* file = sqlite3_db_filename(db_, "main");
  return SqliteError(db_, "step", file != nullptr ? file : "");
}

absl::Status Statement::Reset() {
  int rc = sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
  if (rc != SQLITE_OK) {
    const char* file = sqlite3_db_filename(db_, "main");
    return SqliteError(db_, "reset", file != nullptr ? file : "");
  }
  return absl::OkStatus();
}

std::string Statement::ColumnText(int index) const {
  const unsigned char* p = sqlite3_column_text(stmt_, index);
  int n = sqlite3_column_bytes(stmt_, index);
  if (p == nullptr || n <= 0) return std::string();
  std::string out(static_cast<size_t>(n), '\0');
  for (int i = 0; i < n; ++i) out[static_cast<size_t>(i)] = static_cast<char>(p[i]);
  return out;
}

std::string Statement::ColumnBlob(int index) const {
  const void* p = sqlite3_column_blob(stmt_, index);
  int n = sqlite3_column_bytes(stmt_, index);
  if (p == nullptr || n <= 0) return std::string();
  const char* c = static_cast<const char*>(p);
  return std::string(c, c + n);
}

int64_t Statement::ColumnInt(int index) const { return sqlite3_column_int64(stmt_, index); }

bool Statement::ColumnIsNull(int index) const {
  return sqlite3_column_type(stmt_, index) == SQLITE_NULL;
}

absl::StatusOr<std::unique_ptr<Database>> Database::Open(const std::filesystem::path& path) {
  return OpenFile(path, /*create=*/false);
}

absl::StatusOr<std::unique_ptr<Database>> Database::Create(const std::filesystem::path& path) {
  return OpenFile(path, /*create=*/true);
}

absl::StatusOr<std::unique_ptr<Database>> Database::OpenFile(const std::filesystem::path& path,
                                                             bool create) {
  if (create) VIGO_RETURN_IF_ERROR(EnsureDir(path.parent_path()));
  // SECURITY/DURABILITY: never open() and close() a database file that
  // SQLite may already hold in this process. POSIX record locks belong to the
  // process, and closing ANY fd of the file drops all of them; another process
  // (vigocli) then believes it is the last connection and deletes the WAL
  // under the live server, whose later commits (audit records) land in an
  // unlinked file. So: create a missing file ourselves (0600 from its first
  // byte; no connection can exist yet), and only lstat()/chmod() an existing
  // one. Symlinks are refused here and again by SQLITE_OPEN_NOFOLLOW.
  {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) {
      if (errno != ENOENT && errno != ENOTDIR) {
        return sandbox::ErrnoStatus(errno, "stat", path.string());
      }
      if (!create) {
        return absl::NotFoundError(
            StrCat("database ", path.string(),
                   " does not exist (check database.path in server.yaml; only `vigosrv init` "
                   "creates the database)"));
      }
      sandbox::UniqueFd fd(
          ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
      if (!fd && errno != EEXIST) {
        return sandbox::ErrnoStatus(errno, "create database", path.string());
      }
      if (::lstat(path.c_str(), &st) != 0)
        return sandbox::ErrnoStatus(errno, "stat", path.string());
    }
    if (!S_ISREG(st.st_mode)) {
      return absl::FailedPreconditionError(
          StrCat("database ", path.string(), " is not a regular file"));
    }
    if ((st.st_mode & 077) != 0 && st.st_uid == ::geteuid()) {
      // Tighten a database another tool created loosely; it holds the audit chain.
      if (::chmod(path.c_str(), 0600) != 0)
        return sandbox::ErrnoStatus(errno, "chmod", path.string());
    }
  }
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw,
                           SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) |
                               SQLITE_OPEN_FULLMUTEX | SQLITE_OPEN_NOFOLLOW,
                           nullptr);
  if (rc != SQLITE_OK) {
    absl::Status st = SqliteError(raw, "open", path);
    sqlite3_close(raw);
    return st;
  }
  std::unique_ptr<Database> db(new Database(raw, path));
  sqlite3_busy_timeout(raw, 5000);
  sqlite3_extended_result_codes(raw, 1);
  VIGO_RETURN_IF_ERROR(db->Exec("PRAGMA journal_mode=WAL"));
  VIGO_RETURN_IF_ERROR(db->Exec("PRAGMA foreign_keys=ON"));
  VIGO_RETURN_IF_ERROR(db->Exec("PRAGMA synchronous=FULL"));
  return db;
}

Database::~Database() {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    for (auto& [sql, stmt] : idle_) sqlite3_finalize(stmt);
    idle_.clear();
  }
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

void Database::Recycle(sqlite3_stmt* stmt) {
  constexpr size_t kMaxIdle = 64;
  const char* sql = sqlite3_sql(stmt);
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (sql != nullptr && idle_.size() < kMaxIdle && idle_.count(sql) < 2) {
      idle_.emplace(sql, stmt);
      return;
    }
  }
  sqlite3_finalize(stmt);
}

absl::Status Database::Exec(std::string_view sql) {
  std::string s(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, s.c_str(), nullptr, nullptr, &err);
  if (err != nullptr) sqlite3_free(err);
  if (rc != SQLITE_OK) return SqliteError(db_, "exec", path_);
  return absl::OkStatus();
}

absl::StatusOr<Statement> Database::Prepare(std::string_view sql) {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = idle_.find(std::string(sql));
    if (it != idle_.end()) {
      sqlite3_stmt* cached = it->second;
      idle_.erase(it);
      return Statement(this, db_, cached);
    }
  }
  sqlite3_stmt* stmt = nullptr;
  const char* tail = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, &tail);
  if (rc != SQLITE_OK) {
    if (stmt != nullptr) sqlite3_finalize(stmt);
    return SqliteError(db_, "prepare", path_);
  }
  if (stmt == nullptr) return absl::InvalidArgumentError("prepare: empty SQL statement");
  return Statement(this, db_, stmt);
}

absl::Status Database::Begin() { return Exec("BEGIN IMMEDIATE"); }

absl::Status Database::Commit() { return Exec("COMMIT"); }

void Database::Rollback() {
  if (sqlite3_get_autocommit(db_) == 0) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
}

}  // namespace vigo::server
