// Symlink-proof file access below one directory, for the vault.
//
//   VIGO_ASSIGN_OR_RETURN(SecureDir dir, SecureDir::Open("/srv/vigo/secrets", /*create=*/true));
//   VIGO_RETURN_IF_ERROR(dir.WriteAtomic("webapp/db_pw", bytes));
//   VIGO_ASSIGN_OR_RETURN(std::optional<std::vector<uint8_t>> b, dir.Read("webapp/db_pw", max));
//
// Every relative path is walked one segment at a time with openat(2) and
// O_NOFOLLOW | O_DIRECTORY (intermediate) or O_NOFOLLOW (leaf): a symlink
// anywhere below the base directory is refused (FAILED_PRECONDITION naming
// the path), so nothing outside the base can be read or replaced through it.
// Callers validate the path grammar first (ValidateSecretPath).
//
// Writes are atomic and durable: a temp file ".vigo-tmp.<random>" created in
// the target's own directory with O_EXCL and mode 0600, written, fsync'ed,
// renamed over the target, then the directory is fsync'ed. A failure at any
// point (ENOSPC, crash) leaves the previous file intact. New directories are
// created 0700.
//
// Thread safety: a SecureDir may be used from several threads (each call
// opens its own descriptors).
#ifndef VIGO_SERVER_VAULT_SECURE_FS_H_
#define VIGO_SERVER_VAULT_SECURE_FS_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"
#include "sandbox/unique_fd.h"

namespace vigo::server::vault {

inline constexpr std::string_view kTempPrefix = ".vigo-tmp.";
// A temp file this old belongs to no live writer (a write of at most 1 MiB
// plus fsync never takes this long).
inline constexpr std::chrono::seconds kStaleTempAge{60};

class SecureDir {
 public:
  // Opens `base` (created 0700 with parents when `create`). NOT_FOUND when
  // missing and !create.
  static absl::StatusOr<SecureDir> Open(const std::filesystem::path& base, bool create);

  const std::filesystem::path& base() const { return base_; }
  int fd() const { return fd_.get(); }

  // The file's bytes, or nullopt when it does not exist. Refuses symlinks,
  // non-regular files and files larger than `max_bytes`.
  absl::StatusOr<std::optional<std::vector<uint8_t>>> Read(std::string_view rel,
                                                          size_t max_bytes) const;
  // Reads a small file straight into a SecretBuffer (key material). Also
  // checks that it is owned by the running uid and not accessible by group or
  // other; the error says how to fix it. NOT_FOUND when missing.
  absl::StatusOr<sandbox::SecretBuffer> ReadPrivate(std::string_view rel, size_t max_bytes) const;

  bool Exists(std::string_view rel) const;

  // `sync_dir` = false skips the directory fsync after the rename (the caller
  // batches it with SyncDirOf before depending on the rename's durability).
  absl::Status WriteAtomic(std::string_view rel, std::span<const uint8_t> bytes,
                           bool sync_dir = true) const;
  // fsyncs the directory that holds `rel`.
  absl::Status SyncDirOf(std::string_view rel) const;
  // Like WriteAtomic but fails with ALREADY_EXISTS when the target exists
  // (link(2) of the temp file: never replaces).
  absl::Status CreateExclusive(std::string_view rel, std::span<const uint8_t> bytes) const;
  // Atomically renames `from` to `to` (same directory tree) and fsyncs.
  absl::Status Rename(std::string_view from, std::string_view to) const;
  // NOT_FOUND when missing. Removes directories left empty (below base).
  absl::Status Remove(std::string_view rel) const;

  // Regular files below base, as relative paths, sorted. Names starting with
  // ".vigo" or ".master.key" are the vault's own files and are skipped, so
  // are symlinks and special files.
  absl::StatusOr<std::vector<std::string>> ListFiles() const;
  // Deletes leftover temp files (a writer killed between create and rename):
  // regular files named ".vigo-tmp.*", owned by the running uid, whose mtime
  // is at least `min_age` old. Callers hold LockExclusive(), so no vault
  // writer is live; the age rule also spares an unlock-gate write in flight
  // (those take no lock). Symlinks and other files are never touched or
  // followed (fstatat AT_SYMLINK_NOFOLLOW, openat O_NOFOLLOW). Returns how
  // many were removed.
  size_t RemoveTempFiles(std::chrono::seconds min_age = kStaleTempAge) const;

  // An exclusive advisory lock (flock) on base/.vigo-lock, held until the
  // returned fd is closed. Serializes writers across processes.
  absl::StatusOr<sandbox::UniqueFd> LockExclusive() const;

 private:
  SecureDir(std::filesystem::path base, sandbox::UniqueFd fd)
      : base_(std::move(base)), fd_(std::move(fd)) {}
  // Opens the directory holding `rel`'s last segment; sets *leaf.
  absl::StatusOr<sandbox::UniqueFd> OpenParent(std::string_view rel, bool create,
                                               std::string* leaf) const;
  absl::Status WriteTemp(int dir_fd, std::string_view rel, std::span<const uint8_t> bytes,
                         std::string* temp_name) const;

  std::filesystem::path base_;
  sandbox::UniqueFd fd_;
};

// True for names that belong to the vault itself (".vigo*", ".master.key*").
bool IsReservedName(std::string_view segment);

}  // namespace vigo::server::vault

#endif  // VIGO_SERVER_VAULT_SECURE_FS_H_
