#include "server/vault/local_backend.h"

#include <chrono>
#include <set>

#include "common/secret_ref.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "server/vault/vault_crypto.h"
#include "vocab/hex.h"

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
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer hex,
                        sandbox::SecretBuffer::Create(2 * kAesKeyLen + 1));
  std::span<uint8_t> h = hex.RevealMutable();
  if (!vocab::HexInto(key.Reveal(), h.first(2 * kAesKeyLen))) {
    return absl::InternalError("key file text: hex length mismatch");
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
    const std::filesystem::path& secrets_dir, std::shared_ptr<vault::VersionFloorSource> floor) {
  auto dir = vault::SecureDir::Open(secrets_dir, /*create=*/false);
  if (!dir.ok()) {
    if (absl::IsNotFound(dir.status())) {
      return absl::FailedPreconditionError(
          StrCat("secrets directory ", secrets_dir.string(),
                 " does not exist; run `vigocli secrets init` first"));
    }
    return dir.status();
  }
  std::unique_ptr<LocalBackend> b(new LocalBackend(
      secrets_dir, std::make_shared<const vault::SecureDir>(std::move(dir).value()),
      std::move(floor)));
  VIGO_RETURN_IF_ERROR(b->LoadKeys());
  return b;
}

std::shared_ptr<const vault::SecureDir> LocalBackend::Dir() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dir_;
}

absl::Status LocalBackend::LoadKeys(std::shared_ptr<const vault::SecureDir> install) {
  std::shared_ptr<const vault::SecureDir> dir = install ? install : Dir();
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer cur, vault::LoadKeyFile(*dir, vault::kMasterKeyFile));
  auto current = std::make_shared<Key>();
  current->id = vault::KeyIdFor(cur.Reveal());
  current->bytes = std::move(cur);
  std::shared_ptr<Key> pending;
  if (dir->Exists(vault::kPendingKeyFile)) {
    auto next = vault::LoadKeyFile(*dir, vault::kPendingKeyFile);
    if (next.ok()) {
      pending = std::make_shared<Key>();
      pending->id = vault::KeyIdFor(next->Reveal());
      pending->bytes = std::move(next).value();
    } else if (!absl::IsFailedPrecondition(next.status()) || dir->Exists(vault::kPendingKeyFile)) {
      // Still there and unusable (mode, owner, format): a real problem.
      return next.status();
    }
    // Otherwise it was renamed over .master.key between our two reads (a
    // rotation just finished); the caller reloads on an unknown key id.
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (install) dir_ = std::move(install);
  current_ = std::move(current);
  pending_ = std::move(pending);
  return absl::OkStatus();
}

absl::Status LocalBackend::Refresh() {
  // By path, not through the open descriptor: the directory may have been
  // replaced (moved away and a copy put back) since we opened it. Nothing is
  // swapped unless the new directory and its keys pass every check.
  auto dir = vault::SecureDir::Open(path_, /*create=*/false);
  if (!dir.ok()) {
    if (absl::IsNotFound(dir.status())) {
      return absl::FailedPreconditionError(
          StrCat("secrets directory ", path_.string(), " does not exist any more"));
    }
    return dir.status();
  }
  return LoadKeys(std::make_shared<const vault::SecureDir>(std::move(dir).value()));
}

bool LocalBackend::RotationPending() const { return Dir()->Exists(vault::kPendingKeyFile); }

absl::Status LocalBackend::CheckHealth() {
  VIGO_RETURN_IF_ERROR(LoadKeys());
  VIGO_ASSIGN_OR_RETURN(std::vector<std::string> files, Dir()->ListFiles());
  (void)files;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<uint8_t>> LocalBackend::ReadFile(const vault::SecureDir& dir,
                                                            std::string_view path) {
  VIGO_RETURN_IF_ERROR(vault::ValidateLocalPath(path));
  VIGO_ASSIGN_OR_RETURN(std::optional<std::vector<uint8_t>> file,
                        dir.Read(path, vault::kMaxSecretFileLen));
  if (!file) return absl::NotFoundError(StrCat("secret '", path, "' not found"));
  return std::move(*file);
}

absl::StatusOr<sandbox::SecretBuffer> LocalBackend::Decrypt(const vault::SecureDir& dir,
                                                            std::string_view path,
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
                                   (dir.base() / std::string(path)).string(), "]"));
      }
      return v;
    }
    // Another process may have rotated the key since we loaded it.
    VIGO_RETURN_IF_ERROR(LoadKeys());
  }
  return absl::DataLossError(StrCat("secret '", path,
                                    "': encrypted under an unknown master key [file ",
                                    (dir.base() / std::string(path)).string(), "]"));
}

absl::StatusOr<uint64_t> LocalBackend::FloorOf(std::string_view path) {
  if (!floor_) return uint64_t{0};
  auto f = floor_->Floor(path);
  if (!f.ok()) {
    // Fail closed: without the floor a rolled-back file cannot be told apart.
    return absl::Status(f.status().code(),
                        StrCat("secret '", path, "': cannot read its highest committed version: ",
                               f.status().message()));
  }
  return *f;
}

absl::Status LocalBackend::CheckFloor(std::string_view path, uint64_t version) {
  VIGO_ASSIGN_OR_RETURN(uint64_t floor, FloorOf(path));
  if (version >= floor) return absl::OkStatus();
  return absl::DataLossError(StrCat(
      "secret '", path, "': the vault file has version ", version, ", older than version ", floor,
      " already committed for this path (a restored or rolled-back file); refusing it. "
      "To go back on purpose run `vigocli secrets restore ",
      path, "`"));
}

absl::StatusOr<bool> LocalBackend::Exists(std::string_view path) {
  auto file = ReadFile(*Dir(), path);
  if (absl::IsNotFound(file.status())) return false;
  if (!file.ok()) return file.status();
  VIGO_RETURN_IF_ERROR(vault::ParseSecretFileHeader(*file, path).status());
  return true;
}

absl::StatusOr<sandbox::SecretBuffer> LocalBackend::Get(std::string_view path) {
  std::shared_ptr<const vault::SecureDir> dir = Dir();
  VIGO_ASSIGN_OR_RETURN(std::vector<uint8_t> file, ReadFile(*dir, path));
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer value, Decrypt(*dir, path, file));
  // The counter is authenticated now (it is in the associated data).
  VIGO_ASSIGN_OR_RETURN(vault::SecretFileHeader h, vault::ParseSecretFileHeader(file, path));
  VIGO_RETURN_IF_ERROR(CheckFloor(path, h.version));
  return value;
}

absl::StatusOr<uint64_t> LocalBackend::Version(std::string_view path) {
  std::shared_ptr<const vault::SecureDir> dir = Dir();
  VIGO_ASSIGN_OR_RETURN(std::vector<uint8_t> file, ReadFile(*dir, path));
  // Authenticate first: the counter is only trusted from a file that decrypts.
  VIGO_RETURN_IF_ERROR(Decrypt(*dir, path, file).status());
  VIGO_ASSIGN_OR_RETURN(vault::SecretFileHeader h, vault::ParseSecretFileHeader(file, path));
  VIGO_RETURN_IF_ERROR(CheckFloor(path, h.version));
  return h.version;
}

absl::StatusOr<std::vector<std::string>> LocalBackend::List(std::string_view prefix) {
  VIGO_ASSIGN_OR_RETURN(std::vector<std::string> files, Dir()->ListFiles());
  std::vector<std::string> out;
  for (std::string& f : files) {
    if (f.compare(0, prefix.size(), prefix) != 0) continue;
    if (!vault::ValidateLocalPath(f).ok()) continue;  // not a vault file name
    out.push_back(std::move(f));
  }
  return out;
}

std::shared_ptr<const LocalBackend::Key> LocalBackend::WriteKey() {
  std::lock_guard<std::mutex> l(mu_);
  // During an interrupted rotation new writes use the pending key: it is
  // the one that will remain.
  return pending_ ? pending_ : current_;
}

absl::Status LocalBackend::Undo(const vault::SecureDir& dir, std::string_view path,
                                const std::optional<std::vector<uint8_t>>& old,
                                const absl::Status& failure) {
  absl::Status undo = old ? dir.WriteAtomic(path, *old) : dir.Remove(path);
  if (!old && absl::IsNotFound(undo)) undo = absl::OkStatus();
  if (undo.ok()) {
    return absl::Status(failure.code(), StrCat(failure.message(), "; the change was undone: '",
                                               path, "' is as it was"));
  }
  return absl::Status(failure.code(), StrCat(failure.message(), "; undoing the change of '", path,
                                             "' failed too: ", undo.message()));
}

absl::StatusOr<uint64_t> LocalBackend::Set(std::string_view path,
                                           const sandbox::SecretBuffer& value,
                                           const CommitFn& commit) {
  VIGO_RETURN_IF_ERROR(vault::ValidateLocalPath(path));
  if (value.size() > vault::kMaxValueBytes) {
    return absl::InvalidArgumentError(
        StrCat("value for '", path, "' is ", value.size(), " bytes; the local vault limit is ",
               vault::kMaxValueBytes, " bytes (1 MiB)"));
  }
  std::shared_ptr<const vault::SecureDir> dir = Dir();
  VIGO_ASSIGN_OR_RETURN(sandbox::UniqueFd lock, dir->LockExclusive());
  dir->RemoveTempFiles();
  VIGO_RETURN_IF_ERROR(LoadKeys());
  uint64_t version = NowMicros();
  VIGO_ASSIGN_OR_RETURN(std::optional<std::vector<uint8_t>> old,
                        dir->Read(path, vault::kMaxSecretFileLen));
  if (old) {
    auto h = vault::ParseSecretFileHeader(*old, path);
    // Strictly increasing even across clock steps; a delete + set starts
    // from the clock so it never reuses an earlier version.
    if (h.ok() && h->version >= version) version = h->version + 1;
  }
  // Above everything ever committed, whatever file is in place now.
  VIGO_ASSIGN_OR_RETURN(uint64_t floor, FloorOf(path));
  if (floor >= version) version = floor + 1;
  std::shared_ptr<const Key> key = WriteKey();
  VIGO_ASSIGN_OR_RETURN(std::vector<uint8_t> file,
                        vault::EncryptSecretFile(key->bytes.Reveal(), path, version, value));
  VIGO_RETURN_IF_ERROR(dir->WriteAtomic(path, file));
  if (commit) {
    absl::Status st = commit(version);
    if (!st.ok()) return Undo(*dir, path, old, st);
  }
  return version;
}

absl::Status LocalBackend::Delete(std::string_view path, const CommitFn& commit) {
  VIGO_RETURN_IF_ERROR(vault::ValidateLocalPath(path));
  std::shared_ptr<const vault::SecureDir> dir = Dir();
  VIGO_ASSIGN_OR_RETURN(sandbox::UniqueFd lock, dir->LockExclusive());
  dir->RemoveTempFiles();
  // The bytes are kept (ciphertext only) to put back if the commit fails.
  auto old = dir->Read(path, vault::kMaxSecretFileLen);
  if (old.ok() && !old->has_value()) {
    return absl::NotFoundError(StrCat("secret '", path, "' not found"));
  }
  if (!old.ok() && commit) return old.status();
  absl::Status st = dir->Remove(path);
  if (absl::IsNotFound(st)) return absl::NotFoundError(StrCat("secret '", path, "' not found"));
  VIGO_RETURN_IF_ERROR(st);
  if (commit) {
    uint64_t version = 0;
    if (auto h = vault::ParseSecretFileHeader(**old, path); h.ok()) version = h->version;
    absl::Status c = commit(version);
    if (!c.ok()) return Undo(*dir, path, *old, c);
  }
  return absl::OkStatus();
}

absl::StatusOr<LocalBackend::RestoreResult> LocalBackend::Restore(
    std::string_view path, std::optional<std::vector<uint8_t>> file,
    const RestoreCommitFn& commit) {
  VIGO_RETURN_IF_ERROR(vault::ValidateLocalPath(path));
  std::shared_ptr<const vault::SecureDir> dir = Dir();
  VIGO_ASSIGN_OR_RETURN(sandbox::UniqueFd lock, dir->LockExclusive());
  dir->RemoveTempFiles();
  VIGO_RETURN_IF_ERROR(LoadKeys());
  VIGO_ASSIGN_OR_RETURN(std::optional<std::vector<uint8_t>> current,
                        dir->Read(path, vault::kMaxSecretFileLen));
  if (!file) {
    if (!current) {
      return absl::NotFoundError(StrCat("secret '", path,
                                        "' not found; give the vault file to restore with "
                                        "--from-file"));
    }
    file = current;
  }
  // Authenticated for this very path under a key we hold: a file of another
  // path or a foreign vault is refused like any tampered file.
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer value, Decrypt(*dir, path, *file));
  VIGO_ASSIGN_OR_RETURN(vault::SecretFileHeader from, vault::ParseSecretFileHeader(*file, path));
  RestoreResult result;
  result.from_version = from.version;
  uint64_t version = NowMicros();
  if (current) {
    auto h = vault::ParseSecretFileHeader(*current, path);
    if (h.ok() && h->version >= version) version = h->version + 1;
  }
  VIGO_ASSIGN_OR_RETURN(uint64_t floor, FloorOf(path));
  if (floor >= version) version = floor + 1;
  if (from.version >= version) version = from.version + 1;
  result.version = version;
  std::shared_ptr<const Key> key = WriteKey();
  VIGO_ASSIGN_OR_RETURN(std::vector<uint8_t> out,
                        vault::EncryptSecretFile(key->bytes.Reveal(), path, version, value));
  VIGO_RETURN_IF_ERROR(dir->WriteAtomic(path, out));
  if (commit) {
    absl::Status st = commit(result);
    if (!st.ok()) return Undo(*dir, path, current, st);
  }
  return result;
}

absl::StatusOr<LocalBackend::RotateResult> LocalBackend::Rotate(const RotateHook& hook,
                                                                const RotateCommitFn& commit) {
  auto step = [&hook](std::string_view name, size_t n) {
    if (hook) hook(name, n);
  };
  std::shared_ptr<const vault::SecureDir> dir = Dir();
  VIGO_ASSIGN_OR_RETURN(sandbox::UniqueFd lock, dir->LockExclusive());
  dir->RemoveTempFiles();
  RotateResult result;
  VIGO_RETURN_IF_ERROR(LoadKeys());
  {
    std::lock_guard<std::mutex> l(mu_);
    result.resumed = pending_ != nullptr;
  }
  if (!result.resumed) {
    VIGO_RETURN_IF_ERROR(vault::CreatePendingKey(*dir));
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
  VIGO_ASSIGN_OR_RETURN(std::vector<std::string> files, dir->ListFiles());
  std::set<std::string> dirs_to_sync;
  // The replaced files' bytes (ciphertext), to put back exactly if the commit
  // callback fails.
  std::vector<std::pair<std::string, std::vector<uint8_t>>> originals;
  for (const std::string& path : files) {
    if (!vault::ValidateLocalPath(path).ok()) continue;
    VIGO_ASSIGN_OR_RETURN(std::optional<std::vector<uint8_t>> file,
                          dir->Read(path, vault::kMaxSecretFileLen));
    if (!file) continue;  // deleted meanwhile (cannot happen under the lock)
    auto h = vault::ParseSecretFileHeader(*file, path);
    if (!h.ok()) {
      return absl::DataLossError(
          StrCat("rotation stopped, nothing lost: ", h.status().message(),
                 ". Restore or delete that file, then run `vigocli secrets rotate` again"));
    }
    ++result.secrets;
    result.versions.emplace_back(path, h->version);
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
    VIGO_RETURN_IF_ERROR(dir->WriteAtomic(path, out, /*sync_dir=*/false));
    if (commit && !result.resumed) originals.emplace_back(path, std::move(*file));
    size_t slash = path.rfind('/');
    dirs_to_sync.insert(slash == std::string::npos ? std::string() : path.substr(0, slash));
    ++result.reencrypted;
    step("file", result.reencrypted);
  }
  for (const std::string& d : dirs_to_sync) {
    VIGO_RETURN_IF_ERROR(dir->SyncDirOf(d.empty() ? std::string("x") : StrCat(d, "/x")));
  }
  step("before-swap", result.reencrypted);
  if (commit) {
    absl::Status st = commit(result);
    if (!st.ok()) {
      if (result.resumed) {
        // The rotation was already pending before this run; it stays so
        // (every file is readable under one of the two keys).
        return absl::Status(st.code(), StrCat(st.message(),
                                              "; the master key was not swapped (the interrupted "
                                              "rotation is still pending)"));
      }
      // The original files back, then drop the new key: as before the run.
      for (const auto& [path, bytes] : originals) {
        absl::Status undo = dir->WriteAtomic(path, bytes);
        if (!undo.ok()) {
          return absl::Status(
              st.code(),
              StrCat(st.message(), "; undoing the rotation failed at '", path, "' (",
                     undo.message(), "); nothing is lost: run `vigocli secrets rotate` again"));
        }
      }
      absl::Status rm = dir->Remove(vault::kPendingKeyFile);
      VIGO_RETURN_IF_ERROR(LoadKeys());
      if (!rm.ok()) {
        return absl::Status(st.code(), StrCat(st.message(), "; the rotation was undone but ",
                                              vault::kPendingKeyFile, " stays: ", rm.message()));
      }
      return absl::Status(st.code(), StrCat(st.message(),
                                            "; the rotation was undone: the vault is as it "
                                            "was, under the old master key"));
    }
  }
  // The commit point: one atomic rename makes the new key current.
  VIGO_RETURN_IF_ERROR(dir->Rename(vault::kPendingKeyFile, vault::kMasterKeyFile));
  step("after-swap", result.reencrypted);
  VIGO_RETURN_IF_ERROR(LoadKeys());
  return result;
}

}  // namespace vigo::server
