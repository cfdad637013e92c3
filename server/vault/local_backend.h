// LocalBackend: the `local` secrets backend, one AES-256-GCM file per secret
// under <root>/secrets/ (format: server/vault/secret_file.h), encrypted under
// the master key <secrets>/.master.key (64 hex characters, mode 0600).
//
//   VIGO_RETURN_IF_ERROR(vault::CreateMasterKey(cfg.SecretsDir()));      // once (init)
//   VIGO_ASSIGN_OR_RETURN(auto vault, LocalBackend::Open(cfg.SecretsDir()));
//   VIGO_ASSIGN_OR_RETURN(uint64_t version, vault->Set("webapp/db_pw", value));
//   VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer v, vault->Get("webapp/db_pw"));
//
// Paths: ValidateSecretPath, and no segment may start with ".vigo" or
// ".master.key" (the vault's own files); every file is reached by openat(2)
// without following symlinks (server/vault/secure_fs.h).
//
// Errors: NOT_FOUND for a missing secret, DATA_LOSS naming the path for a
// tampered, truncated, moved or foreign file, INVALID_ARGUMENT for a bad path
// or a value over kMaxValueBytes (1 MiB), FAILED_PRECONDITION for a missing,
// malformed or too-permissive master key (the message says how to fix it).
//
// Rotation (crash-safe): Rotate() writes a new key to .master.key.next (the
// journal: its presence means "rotation in progress"), re-encrypts each file
// to a temp file + rename under the new key, then renames .master.key.next
// over .master.key. Each file names its key by key id, and readers load both
// keys, so every file is readable at every instant. A later Rotate() (or
// Set) after a crash continues with the pending key and finishes.
//
// Writers (Set/Delete/Rotate/Restore) serialize across processes with flock
// on <secrets>/.vigo-lock. Readers take no lock. Each write first removes
// stale ".vigo-tmp.*" files a killed writer left (SecureDir::RemoveTempFiles).
//
// Rollback: with a VersionFloorSource (server/vault/version_floor.h), Get and
// Version refuse a file whose authenticated counter is below the highest
// version ever committed for its path (DATA_LOSS naming the path and both
// versions); Set always writes above it. Restore() is the one way back.
//
// Commit callbacks: Set/Delete/Restore/Rotate take an optional `commit`
// called under the writer lock once the change is on disk (Rotate: just
// before its commit point). When it fails, the change is undone (the previous
// file is put back; a rotation is re-encrypted back and abandoned) and its
// error is returned: `vigocli` writes the audit record there, so a change and
// its record succeed or fail together. (A crash between the two can still
// leave one without the other.)
//
// Refresh() reopens the directory by path and reloads the keys, so a vault
// directory replaced under a running server (moved away, copy put back) or a
// changed, malformed or loosened master key is seen on the next reload.
//
// Thread safety: all methods are thread-safe.
// SECURITY: values and keys live only in SecretBuffers; errors never hold them.
#ifndef VIGO_SERVER_VAULT_LOCAL_BACKEND_H_
#define VIGO_SERVER_VAULT_LOCAL_BACKEND_H_

#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"
#include "server/backend.h"
#include "server/vault/secret_file.h"
#include "server/vault/secure_fs.h"

namespace vigo::server {

namespace vault {
inline constexpr std::string_view kMasterKeyFile = ".master.key";
inline constexpr std::string_view kPendingKeyFile = ".master.key.next";

// Creates <secrets_dir> (0700) and a fresh random master key file (0600).
// ALREADY_EXISTS when a key is present (never overwrites).
absl::Status CreateMasterKey(const std::filesystem::path& secrets_dir);

// Writes a fresh random key to <dir>/.master.key.next (rotation start).
absl::Status CreatePendingKey(const SecureDir& dir);

// Loads and checks a key file below `dir` (owner, mode, 64 hex characters).
absl::StatusOr<sandbox::SecretBuffer> LoadKeyFile(const SecureDir& dir, std::string_view name);

// A path the local vault accepts: the contract grammar plus no reserved segment.
absl::Status ValidateLocalPath(std::string_view path);

// Where the highest committed version per path comes from.
class VersionFloorSource {
 public:
  virtual ~VersionFloorSource() = default;
  // 0 when none is known.
  virtual absl::StatusOr<uint64_t> Floor(std::string_view path) = 0;
};
}  // namespace vault

class LocalBackend : public SecretBackend {
 public:
  // Opens the vault in `secrets_dir` and loads its key(s).
  // `floor` may be null: then no rollback check (unit tests, tools).
  static absl::StatusOr<std::unique_ptr<LocalBackend>> Open(
      const std::filesystem::path& secrets_dir,
      std::shared_ptr<vault::VersionFloorSource> floor = nullptr);

  std::string_view Name() const override { return "local"; }
  absl::Status CheckHealth() override;
  absl::StatusOr<bool> Exists(std::string_view path) override;
  absl::StatusOr<sandbox::SecretBuffer> Get(std::string_view path) override;
  absl::StatusOr<uint64_t> Version(std::string_view path) override;
  absl::StatusOr<std::vector<std::string>> List(std::string_view prefix) override;
  absl::Status Refresh() override;

  // Gets the version just written; a failure undoes the change.
  using CommitFn = std::function<absl::Status(uint64_t version)>;

  // Stores `value` atomically; returns the new version counter.
  absl::StatusOr<uint64_t> Set(std::string_view path, const sandbox::SecretBuffer& value,
                               const CommitFn& commit = nullptr);
  // NOT_FOUND when missing. `commit` gets the deleted file's version.
  absl::Status Delete(std::string_view path, const CommitFn& commit = nullptr);

  struct RestoreResult {
    uint64_t from_version = 0;  // the counter in the restored file
    uint64_t version = 0;       // the new counter (above every earlier one)
  };
  // Stores again the value of an older vault file for `path`: `file` (e.g. a
  // backup copy), or when empty the file now at `path` (one that Get refuses
  // as rolled back). The file must authenticate for `path` under a loaded
  // key. The value is re-encrypted with a fresh, highest version.
  using RestoreCommitFn = std::function<absl::Status(const RestoreResult&)>;
  absl::StatusOr<RestoreResult> Restore(std::string_view path,
                                        std::optional<std::vector<uint8_t>> file,
                                        const RestoreCommitFn& commit = nullptr);

  struct RotateResult {
    size_t secrets = 0;       // files under the new key at the end
    size_t reencrypted = 0;   // files this run re-encrypted
    bool resumed = false;     // finished an interrupted rotation
    std::vector<std::pair<std::string, uint64_t>> versions;  // every file's counter
  };
  // Called at each step ("next-key", "file" after each re-encrypted file with
  // the running count, "before-swap", "after-swap"); tests use it to crash.
  using RotateHook = std::function<void(std::string_view step, size_t files_done)>;
  using RotateCommitFn = std::function<absl::Status(const RotateResult&)>;
  absl::StatusOr<RotateResult> Rotate(const RotateHook& hook = nullptr,
                                      const RotateCommitFn& commit = nullptr);

  // True when an interrupted rotation is pending (.master.key.next exists).
  bool RotationPending() const;
  const std::filesystem::path& secrets_dir() const { return path_; }

 private:
  struct Key {
    sandbox::SecretBuffer bytes;
    vault::KeyId id{};
  };
  LocalBackend(std::filesystem::path path, std::shared_ptr<const vault::SecureDir> dir,
               std::shared_ptr<vault::VersionFloorSource> floor)
      : path_(std::move(path)), dir_(std::move(dir)), floor_(std::move(floor)) {}
  std::shared_ptr<const vault::SecureDir> Dir() const;
  // Loads the keys from `dir` (default: the current one) and, when given,
  // installs `dir` as the current directory together with them.
  absl::Status LoadKeys(std::shared_ptr<const vault::SecureDir> dir = nullptr);
  absl::StatusOr<std::vector<uint8_t>> ReadFile(const vault::SecureDir& dir, std::string_view path);
  // Decrypts `file` with whichever loaded key its key id names (reloading
  // the keys once when neither matches: another process may have rotated).
  absl::StatusOr<sandbox::SecretBuffer> Decrypt(const vault::SecureDir& dir, std::string_view path,
                                                std::span<const uint8_t> file);
  absl::StatusOr<uint64_t> FloorOf(std::string_view path);
  // DATA_LOSS naming the path and both versions when `version` is below the floor.
  absl::Status CheckFloor(std::string_view path, uint64_t version);
  // Puts `old` back at `path` (or removes `path` when there was none) after
  // `failure`; returns `failure` with what happened appended.
  absl::Status Undo(const vault::SecureDir& dir, std::string_view path,
                    const std::optional<std::vector<uint8_t>>& old, const absl::Status& failure);
  std::shared_ptr<const Key> WriteKey();

  const std::filesystem::path path_;
  mutable std::mutex mu_;  // guards dir_ and the two key pointers (all immutable)
  std::shared_ptr<const vault::SecureDir> dir_;
  std::shared_ptr<const Key> current_;
  std::shared_ptr<const Key> pending_;  // null unless a rotation is in progress
  const std::shared_ptr<vault::VersionFloorSource> floor_;
};

}  // namespace vigo::server

#endif  // VIGO_SERVER_VAULT_LOCAL_BACKEND_H_
