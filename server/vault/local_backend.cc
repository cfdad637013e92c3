#include "server/vault/local_backend.h"

#include <chrono>
#include <set>

#include "common/secret_ref.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "server/vault/vault_crypto.h"

namespace vigo::server {
namespace vault {

absl::Status ValidateLocalPath(std::string_view path) {
  VIGO_RETURN_IF_ERROR(ValidateSecretPath(path));
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    std::string_view seg =
        path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (IsReservedName(seg)) {
      return absl::InvalidArgumentError(
          StrCat("secret path '", path, "': segment '", seg,
                 "' is reserved for the vault's own files (.vigo*, .master.key*)"));
    }
    if (slash == std::string_view::npos) break;
    start = slash + 1;
  }
  return absl::OkStatus();
}

namespace {

// A fresh random key as key-file text (64 hex characters + newline), built
// in a SecretBuffer so the key never sits in an ordinary string.
absl::StatusOr<sandbox::SecretBuffer> NewKeyFileText() {
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer key, RandomSecret(kAesKeyLen));
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer hex, sandbox::SecretBuffer::Create(2 * kAesKeyLen + 1));
  static constexpr char kHex[] = "0123456789abcdef";
  std::span<uint8_t> h = hex.RevealMutable();
  std::span<const uint8_t> k = key.Reveal();
  for (size_t i = 0; i < k.size(); ++i) {
    h[2 * i] = static_cast<uint8_t>(kHex[k[i] >> 4]);
    h[2 * i + 1] = static_cast<uint8_t>(kHex[k[i] & 0xf]);
  }
  h[2 * kAesKeyLen] = '\n';
  return hex;
}

}  // namespace

absl::Status CreateMasterKey(const std::filesystem::path& secrets_dir) {
  VIGO_ASSIGN_OR_RETURN(SecureDir dir, SecureDir::Open(secrets_dir, /*create=*/true));
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer text, NewKeyFileText());
  return dir.CreateExclusive(kMasterKeyFile, text.Reveal());
}

absl::Status CreatePendingKey(const SecureDir& dir) {
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer text, NewKeyFileText());
  return dir.CreateExclusive(kPendingKeyFile, text.Reveal());
}

absl::StatusOr<sandbox::SecretBuffer> LoadKeyFile(const SecureDir& dir, std::string_view name) {
  const std::string full = (dir.base() / std::string(name)).string();
  auto raw = dir.ReadPrivate(name, 256);
  if (!raw.ok()) {
    if (absl::IsNotFound(raw.status())) {
      return absl::FailedPreconditionError(
          StrCat("master key ", full, " is missing; run `vigocli secrets init` first"));
    }
    return raw.status();
  }
  std::span<const uint8_t> text = raw->Reveal();
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text = text.first(text.size() - 1);
  }
  if (text.size() != 2 * kAesKeyLen) {
    return absl::FailedPreconditionError(
        StrCat("master key ", full, " is malformed: expected 64 hex characters, found ",
               text.size(), " bytes"));
  }
  auto key = HexDecodeSecret(text);
  if (!key.ok()) {
    return absl::FailedPreconditionError(
        StrCat("master key ", full, " is malformed: it has a character that is not hex"));
  }
  return std::move(key).value();
}

}  // namespace vault

namespace {

uint64_t NowMicros() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalBackend>> LocalBackend::Open(
    const std::filesystem::path& secrets_dir) {
  auto dir = vault::SecureDir::Open(secrets_dir, /*create=*/false);
  if (!dir.ok()) {
    if (absl::IsNotFound(dir.status())) {
      return absl::FailedPreconditionError(
          StrCat("secrets directory ", secrets_dir.string(),
                 " does not exist; run `vigocli secrets init` first"));
    }
    return dir.status();
  }
  std::unique_ptr<LocalBackend> b(new LocalBackend(std::move(dir).value()));
  VIGO_RETURN_IF_ERROR(b->LoadKeys());
  return b;
}

absl::Status LocalBackend::LoadKeys() {
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer cur, vault::LoadKeyFile(dir_, vault::kMasterKeyFile));
  auto current = std::make_shared<Key>();
  current->id = vault::KeyIdFor(cur.Reveal());
  current->bytes = std::move(cur);
  std::shared_ptr<Key> pending;
  if (dir_.Exists(vault::kPendingKeyFile)) {
    auto next = vault::LoadKeyFile(dir_, vault::kPendingKeyFile);
    if (next.ok()) {
      pending = std::make_shared<Key>();
      pending->id = vault::KeyIdFor(next->Reveal());
      pending->bytes = std::move(next).value();
    } else if (!absl::IsFailedPrecondition(next.status()) ||
               dir_.Exists(vault::kPendingKeyFile)) {
      // Still there and unusable (mode, owner, format): a real problem.
      return next.status();
    }
    // Otherwise it was renamed over .master.key between our two reads (a
    // rotation just finished); the caller reloads on an unknown key id.
  }
  std::lock_guard<std::mutex> lock(mu_);
  current_ = std::move(current);
  pending_ = std::move(pending);
  return absl::OkStatus();
}

bool LocalBackend::RotationPending() const { return dir_.Exists(vault::kPendingKeyFile); }

absl::Status LocalBackend::CheckHealth() {
  VIGO_RETURN_IF_ERROR(LoadKeys());
  VIGO_ASSIGN_OR_RETURN(std::vector<std::string> files, dir_.ListFiles());
  (void)files;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint8_t>> LocalBackend::ReadFile(std::string_view path) {
  VIGO_RETURN_IF_ERROR(vault::ValidateLocalPath(path));
  VIGO_ASSIGN_OR_RETURN(std::optional<std::vector<uint8_t>> file,
                        dir_.Read(path, vault::kMaxSecretFileLen));
  if (!file) return absl::NotFoundError(StrCat("secret '", path, "' not found"));
  return std::move(*file);
}

absl::StatusOr<sandbox::SecretBuffer> LocalBackend::Decrypt(std::string_view path,
                                                            std::span<const uint8_t> file) {
  VIGO_ASSIGN_OR_RETURN(vault::SecretFileHeader h, vault::ParseSecretFileHeader(file, path));
  for (int attempt = 0; attempt < 3; ++attempt) {
    std::shared_ptr<const Key> cur, pend;
    {
      std::lock_guard<std::mutex> lock(mu_);
      cur = current_;
      pend = pending_;
    }
    const Key* key = nullptr;
    if (cur && cur->id == h.key_id) key = cur.get();
    if (pend && pend->id == h.key_id) key = pend.get();
    if (key != nullptr) {
      auto v = vault::DecryptSecretFile(key->bytes.Reveal(), path, file);
      if (!v.ok()) {
        return absl::Status(v.status().code(),
                            StrCat(v.status().message(), " [file ",
                                   (dir_.base() / std::string(path)).string(), "]"));
      }
      return v;
    }
    // Another process may have rotated the key since we loaded it.
    VIGO_RETURN_IF_ERROR(LoadKeys());
  }
  return absl::DataLossError(StrCat("secret '", path, "': encrypted under an unknown master key [file ",
                                    (dir_.base() / std::string(path)).string(), "]"));
}

absl::StatusOr<bool> LocalBackend::Exists(std::string_view path) {
  auto file = ReadFile(path);
  if (absl::IsNotFound(file.status())) return false;
  if (!file.ok()) return file.status();
  VIGO_RETURN_IF_ERROR(vault::ParseSecretFileHeader(*file, path).status());
  return true;
}

absl::StatusOr<sandbox::SecretBuffer> LocalBackend::Get(std::string_view path) {
  VIGO_ASSIGN_OR_RETURN(std::vector<uint8_t> file, ReadFile(path));
  return Decrypt(path, file);
}

absl::StatusOr<uint64_t> LocalBackend::Version(std::string_view path) {
  VIGO_ASSIGN_OR_RETURN(std::vector<uint8_t> file, ReadFile(path));
  // Authenticate first: the counter is only trusted from a file that decrypts.
  VIGO_RETURN_IF_ERROR(Decrypt(path, file).status());
  VIGO_ASSIGN_OR_RETURN(vault::SecretFileHeader h, vault::ParseSecretFileHeader(file, path));
  return h.version;
}

absl::StatusOr<std::vector<std::string>> LocalBackend::List(std::string_view prefix) {
  VIGO_ASSIGN_OR_RETURN(std::vector<std::string> files, dir_.ListFiles());
  std::vector<std::string> out;
  for (std::string& f : files) {
    if (f.compare(0, prefix.size(), prefix) != 0) continue;
    if (!vault::ValidateLocalPath(f).ok()) continue;  // not a vault file name
    out.push_back(std::move(f));
  }
  return out;
}

absl::StatusOr<uint64_t> LocalBackend::Set(std::string_view path,
                                           const sandbox::SecretBuffer& value) {
  VIGO_RETURN_IF_ERROR(vault::ValidateLocalPath(path));
  if (value.size() > vault::kMaxValueBytes) {
    return absl::InvalidArgumentError(
        StrCat("value for '", path, "' is ", value.size(), " bytes; the local vault limit is ",
               vault::kMaxValueBytes, " bytes (1 MiB)"));
  }
  VIGO_ASSIGN_OR_RETURN(sandbox::UniqueFd lock, dir_.LockExclusive());
  VIGO_RETURN_IF_ERROR(LoadKeys());
  uint64_t version = NowMicros();
  VIGO_ASSIGN_OR_RETURN(std::optional<std::vector<uint8_t>> old,
                        dir_.Read(path, vault::kMaxSecretFileLen));
  if (old) {
    auto h = vault::ParseSecretFileHeader(*old, path);
    // Strictly increasing even across clock steps; a delete + set starts
    // from the clock so it never reuses an earlier version.
    if (h.ok() && h->version >= version) version = h->version + 1;
  }
  std::shared_ptr<const Key> key;
  {
    std::lock_guard<std::mutex> l(mu_);
    // During an interrupted rotation new writes use the pending key: it is
    // the one that will remain.
    key = pending_ ? pending_ : current_;
  }
  VIGO_ASSIGN_OR_RETURN(std::vector<uint8_t> file,
                        vault::EncryptSecretFile(key->bytes.Reveal(), path, version, value));
  VIGO_RETURN_IF_ERROR(dir_.WriteAtomic(path, file));
  return version;
}

absl::Status LocalBackend::Delete(std::string_view path) {
  VIGO_RETURN_IF_ERROR(vault::ValidateLocalPath(path));
  VIGO_ASSIGN_OR_RETURN(sandbox::UniqueFd lock, dir_.LockExclusive());
  absl::Status st = dir_.Remove(path);
  if (absl::IsNotFound(st)) return absl::NotFoundError(StrCat("secret '", path, "' not found"));
  return st;
}

absl::StatusOr<LocalBackend::RotateResult> LocalBackend::Rotate(const RotateHook& hook) {
  auto step = [&hook](std::string_view name, size_t n) {
    if (hook) hook(name, n);
  };
  VIGO_ASSIGN_OR_RETURN(sandbox::UniqueFd lock, dir_.LockExclusive());
  dir_.RemoveTempFiles();
  RotateResult result;
  VIGO_RETURN_IF_ERROR(LoadKeys());
  {
    std::lock_guard<std::mutex> l(mu_);
    result.resumed = pending_ != nullptr;
  }
  if (!result.resumed) {
    VIGO_RETURN_IF_ERROR(vault::CreatePendingKey(dir_));
    VIGO_RETURN_IF_ERROR(LoadKeys());
    step("next-key", 0);
  }
  std::shared_ptr<const Key> cur, next;
  {
    std::lock_guard<std::mutex> l(mu_);
    cur = current_;
    next = pending_;
  }
  if (!next) return absl::InternalError("rotation: the new key did not load");
  VIGO_ASSIGN_OR_RETURN(std::vector<std::string> files, dir_.ListFiles());
  std::set<std::string> dirs_to_sync;
  for (const std::string& path : files) {
    if (!vault::ValidateLocalPath(path).ok()) continue;
    VIGO_ASSIGN_OR_RETURN(std::optional<std::vector<uint8_t>> file,
                          dir_.Read(path, vault::kMaxSecretFileLen));
    if (!file) continue;  // deleted meanwhile (cannot happen under the lock)
    auto h = vault::ParseSecretFileHeader(*file, path);
    if (!h.ok()) {
      return absl::DataLossError(
          StrCat("rotation stopped, nothing lost: ", h.status().message(),
                 ". Restore or delete that file, then run `vigocli secrets rotate` again"));
    }
    ++result.secrets;
    if (h->key_id == next->id) continue;  // done by an interrupted run
    if (h->key_id != cur->id) {
      return absl::DataLossError(
          StrCat("rotation stopped, nothing lost: secret '", path,
                 "' is encrypted under an unknown master key. Restore or delete it, then run "
                 "`vigocli secrets rotate` again"));
    }
    auto value = vault::DecryptSecretFile(cur->bytes.Reveal(), path, *file);
    if (!value.ok()) {
      return absl::DataLossError(
          StrCat("rotation stopped, nothing lost: ", value.status().message(),
                 ". Restore or delete that file, then run `vigocli secrets rotate` again"));
    }
    VIGO_ASSIGN_OR_RETURN(std::vector<uint8_t> out,
                          vault::EncryptSecretFile(next->bytes.Reveal(), path, h->version, *value));
    // The directory fsync is batched below: until the commit the old key is
    // still on disk, so a rename lost in a crash only means this file is
    // re-encrypted again by the next run.
    VIGO_RETURN_IF_ERROR(dir_.WriteAtomic(path, out, /*sync_dir=*/false));
    size_t slash = path.rfind('/');
    dirs_to_sync.insert(slash == std::string::npos ? std::string() : path.substr(0, slash));
    ++result.reencrypted;
    step("file", result.reencrypted);
  }
  for (const std::string& d : dirs_to_sync) {
    VIGO_RETURN_IF_ERROR(dir_.SyncDirOf(d.empty() ? std::string("x") : StrCat(d, "/x")));
  }
  step("before-swap", result.reencrypted);
  // The commit point: one atomic rename makes the new key current.
  VIGO_RETURN_IF_ERROR(dir_.Rename(vault::kPendingKeyFile, vault::kMasterKeyFile));
  step("after-swap", result.reencrypted);
  VIGO_RETURN_IF_ERROR(LoadKeys());
  return result;
}

}  // namespace vigo::server
