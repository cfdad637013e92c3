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
// Writers (Set/Delete/Rotate) serialize across processes with flock on
// <secrets>/.vigo-lock. Readers take no lock.
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
}  // namespace vault

class LocalBackend : public SecretBackend {
 public:
  // Opens the vault in `secrets_dir` and loads its key(s).
  static absl::StatusOr<std::unique_ptr<LocalBackend>> Open(
      const std::filesystem::path& secrets_dir);

  std::string_view Name() const override { return "local"; }
  absl::Status CheckHealth() override;
  absl::StatusOr<bool> Exists(std::string_view path) override;
  absl::StatusOr<sandbox::SecretBuffer> Get(std::string_view path) override;
  absl::StatusOr<uint64_t> Version(std::string_view path) override;
  absl::StatusOr<std::vector<std::string>> List(std::string_view prefix) override;

  // Stores `value` atomically; returns the new version counter.
  absl::StatusOr<uint64_t> Set(std::string_view path, const sandbox::SecretBuffer& value);
  // NOT_FOUND when missing.
  absl::Status Delete(std::string_view path);

  struct RotateResult {
    size_t secrets = 0;       // files under the new key at the end
    size_t reencrypted = 0;   // files this run re-encrypted
    bool resumed = false;     // finished an interrupted rotation
  };
  // Called at each step ("next-key", "file" after each re-encrypted file with
  // the running count, "before-swap", "after-swap"); tests use it to crash.
  using RotateHook = std::function<void(std::string_view step, size_t files_done)>;
  absl::StatusOr<RotateResult> Rotate(const RotateHook& hook = nullptr);

  // True when an interrupted rotation is pending (.master.key.next exists).
  bool RotationPending() const;
  const std::filesystem::path& secrets_dir() const { return dir_.base(); }

 private:
  struct Key {
    sandbox::SecretBuffer bytes;
    vault::KeyId id{};
  };
  explicit LocalBackend(vault::SecureDir dir) : dir_(std::move(dir)) {}
  absl::Status LoadKeys();
  absl::StatusOr<std::vector<uint8_t>> ReadFile(std::string_view path);
  // Decrypts `file` with whichever loaded key its key id names (reloading
  // the keys once when neither matches: another process may have rotated).
  absl::StatusOr<sandbox::SecretBuffer> Decrypt(std::string_view path,
                                                std::span<const uint8_t> file);

  vault::SecureDir dir_;
  mutable std::mutex mu_;  // guards the two pointers (keys are immutable)
  std::shared_ptr<const Key> current_;
  std::shared_ptr<const Key> pending_;  // null unless a rotation is in progress
};

}  // namespace vigo::server

#endif  // VIGO_SERVER_VAULT_LOCAL_BACKEND_H_
