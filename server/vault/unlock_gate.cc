#include "server/vault/unlock_gate.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <optional>
#include <vector>

#include "common/status_macros.h"
#include "common/strings.h"
#include "server/vault/secure_fs.h"
#include "server/vault/vault_crypto.h"
#include "vocab/hex.h"

namespace vigo::server::vault {

struct UnlockGate::Verifier {
  ScryptParams params;
  std::vector<uint8_t> salt;
  std::vector<uint8_t> verifier;
  sandbox::SecretBuffer token_key;
};

namespace {

constexpr size_t kSaltLen = 16;
constexpr size_t kVerifierLen = 32;
constexpr size_t kTokenKeyLen = 32;

std::string_view AsView(std::span<const uint8_t> s) {
  return std::string_view(static_cast<const char*>(static_cast<const void*>(s.data())), s.size());
}

constexpr size_t kSessionIdLen = 16;

std::string TokenMac(std::span<const uint8_t> key, int64_t uid, std::string_view session,
                     int64_t expires) {
  const std::string nul(1, '\0');
  std::string msg = StrCat("vigo-unlock-v2", nul, uid, nul, session, nul, expires);
  auto mac = HmacSha256(key, AsBytes(msg));
  return vocab::Hex(mac);
}

bool IsSessionId(std::string_view s) {
  return s.size() == 2 * kSessionIdLen &&
         std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool ParseInt(std::string_view s, int64_t* out) {
  if (s.empty() || s.size() > 18) return false;
  int64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  *out = v;
  return true;
}

}  // namespace

int64_t NowUnix() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool UnlockGate::Initialized() const {
  auto dir = SecureDir::Open(secrets_dir_, false);
  return dir.ok() && dir->Exists(kPassphraseFile);
}

absl::Status UnlockGate::SetPassphrase(const sandbox::SecretBuffer& passphrase,
                                       const ScryptParams& params) {
  if (passphrase.empty()) return absl::InvalidArgumentError("the passphrase is empty");
  VIGO_ASSIGN_OR_RETURN(SecureDir dir, SecureDir::Open(secrets_dir_, true));
  std::vector<uint8_t> salt(kSaltLen);
  VIGO_RETURN_IF_ERROR(RandomBytes(salt));
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer v, Scrypt(passphrase.Reveal(), salt, params.n,
                                                        params.r, params.p, kVerifierLen));
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer token_key, RandomSecret(kTokenKeyLen));
  // The verifier and token key are hex-encoded straight into locked memory:
  // no heap temporary ever holds them.
  const std::string head = StrCat("vigo-passphrase v1\nkdf scrypt ", params.n, " ", params.r, " ",
                                  params.p, "\nsalt ", vocab::Hex(salt), "\nverifier ");
  constexpr std::string_view kMid = "\ntoken-key ";
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer text,
                        sandbox::SecretBuffer::Create(head.size() + 2 * kVerifierLen + kMid.size() +
                                                      2 * kTokenKeyLen + 1));
  std::span<uint8_t> w = text.RevealMutable();
  auto put = [&](std::string_view piece) {
    std::memcpy(w.data(), piece.data(), piece.size());
    w = w.subspan(piece.size());
  };
  put(head);
  if (!vocab::HexInto(v.Reveal(), w.first(2 * kVerifierLen))) {
    return absl::InternalError("passphrase file: verifier has the wrong length");
  }
  w = w.subspan(2 * kVerifierLen);
  put(kMid);
  if (!vocab::HexInto(token_key.Reveal(), w.first(2 * kTokenKeyLen))) {
    return absl::InternalError("passphrase file: token key has the wrong length");
  }
  w = w.subspan(2 * kTokenKeyLen);
  put("\n");
  absl::Status st = dir.CreateExclusive(kPassphraseFile, text.Reveal());
  if (absl::IsAlreadyExists(st)) {
    return absl::AlreadyExistsError(
        StrCat("a passphrase is already set (", (secrets_dir_ / kPassphraseFile).string(), ")"));
  }
  return st;
}

absl::StatusOr<UnlockGate::Verifier> UnlockGate::LoadVerifier() const {
  const std::string file = (secrets_dir_ / kPassphraseFile).string();
  auto dir = SecureDir::Open(secrets_dir_, false);
  if (!dir.ok() || !dir->Exists(kPassphraseFile)) {
    return absl::FailedPreconditionError(
        StrCat("the vault is not initialized (", file, " is missing); run `vigocli secrets init`"));
  }
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer raw, dir->ReadPrivate(kPassphraseFile, 4096));
  Verifier v;
  bool have_kdf = false, have_salt = false, have_ver = false, have_key = false;
  std::span<const uint8_t> rest = raw.Reveal();
  int line_no = 0;
  auto bad = [&](std::string_view why) {
    return absl::FailedPreconditionError(StrCat(file, ":", line_no, ": ", why));
  };
  while (!rest.empty()) {
    ++line_no;
    auto nl = std::find(rest.begin(), rest.end(), uint8_t{'\n'});
    std::span<const uint8_t> line = rest.first(static_cast<size_t>(nl - rest.begin()));
    rest = nl == rest.end() ? std::span<const uint8_t>() : rest.subspan(line.size() + 1);
    std::string_view l = AsView(line);
    if (line_no == 1) {
      if (l != "vigo-passphrase v1") return bad("not a Vigo passphrase file (version line)");
      continue;
    }
    if (l.empty()) continue;
    size_t sp = l.find(' ');
    std::string_view key = l.substr(0, sp);
    std::string_view val = sp == std::string_view::npos ? std::string_view() : l.substr(sp + 1);
    if (key == "kdf") {
      int64_t n = 0, r = 0, p = 0;
      std::vector<std::string_view> parts;
      size_t s = 0;
      while (s <= val.size()) {
        size_t e = val.find(' ', s);
        parts.push_back(
            val.substr(s, e == std::string_view::npos ? std::string_view::npos : e - s));
        if (e == std::string_view::npos) break;
        s = e + 1;
      }
      if (parts.size() != 4 || parts[0] != "scrypt" || !ParseInt(parts[1], &n) ||
          !ParseInt(parts[2], &r) || !ParseInt(parts[3], &p) || n < 2 || r < 1 || p < 1) {
        return bad("bad kdf line");
      }
      v.params = {static_cast<uint64_t>(n), static_cast<uint64_t>(r), static_cast<uint64_t>(p)};
      have_kdf = true;
    } else if (key == "salt") {
      auto salt = vocab::ParseHex(val);
      if (!salt || salt->empty()) return bad("bad salt");
      v.salt = std::move(*salt);
      have_salt = true;
    } else if (key == "verifier") {
      auto verifier = vocab::ParseHex(val);
      if (!verifier || verifier->size() != kVerifierLen) return bad("bad verifier");
      v.verifier = std::move(*verifier);
      have_ver = true;
    } else if (key == "token-key") {
      auto k = HexDecodeSecret(line.subspan(sp + 1));
      if (!k.ok() || k->size() != kTokenKeyLen) return bad("bad token key");
      v.token_key = std::move(k).value();
      have_key = true;
    } else {
      return bad("unknown entry");
    }
  }
  if (!have_kdf || !have_salt || !have_ver || !have_key) {
    return absl::FailedPreconditionError(StrCat(file, ": incomplete passphrase file"));
  }
  return v;
}

absl::Status UnlockGate::CheckPassphrase(const sandbox::SecretBuffer& passphrase) const {
  VIGO_ASSIGN_OR_RETURN(Verifier v, LoadVerifier());
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer got, Scrypt(passphrase.Reveal(), v.salt, v.params.n,
                                                          v.params.r, v.params.p, kVerifierLen));
  if (!sandbox::ConstantTimeEquals(got.Reveal(), v.verifier)) {
    return absl::PermissionDeniedError("wrong passphrase");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> UnlockGate::Session() const {
  VIGO_ASSIGN_OR_RETURN(SecureDir dir, SecureDir::Open(secrets_dir_, false));
  VIGO_ASSIGN_OR_RETURN(auto data, dir.Read(kUnlockSessionFile, 128));
  if (!data.has_value()) return std::string();
  std::string_view t = AsView(*data);
  while (!t.empty() && t.back() == '\n') t.remove_suffix(1);
  // A garbled id matches no token: locked, never a fallback.
  return IsSessionId(t) ? std::string(t) : std::string();
}

absl::StatusOr<std::string> UnlockGate::NewSession() {
  VIGO_ASSIGN_OR_RETURN(SecureDir dir, SecureDir::Open(secrets_dir_, false));
  std::vector<uint8_t> id(kSessionIdLen);
  VIGO_RETURN_IF_ERROR(RandomBytes(id));
  std::string session = vocab::Hex(id);
  VIGO_RETURN_IF_ERROR(dir.WriteAtomic(kUnlockSessionFile, AsBytes(StrCat(session, "\n"))));
  return session;
}

absl::Status UnlockGate::WriteToken(const Verifier& v, std::string_view session,
                                    int64_t expires) {
  int64_t uid = static_cast<int64_t>(::geteuid());
  std::string token = StrCat("vigo-unlock v2 uid=", uid, " session=", session,
                             " expires=", expires,
                             " mac=", TokenMac(v.token_key.Reveal(), uid, session, expires), "\n");
  VIGO_ASSIGN_OR_RETURN(SecureDir root, SecureDir::Open(root_, false));
  return root.WriteAtomic(kUnlockTokenFile, AsBytes(token));
}

absl::Status UnlockGate::Unlock(int64_t now_unix) {
  VIGO_ASSIGN_OR_RETURN(Verifier v, LoadVerifier());
  // A new session first: an unlock also ends every earlier token.
  VIGO_ASSIGN_OR_RETURN(std::string session, NewSession());
  return WriteToken(v, session, now_unix + kUnlockWindowSeconds);
}

absl::Status UnlockGate::Lock() {
  // Revoke first (a fresh session id no token carries), then tidy up: once
  // the id is replaced, a left-over or restored token file unlocks nothing.
  if (auto dir = SecureDir::Open(secrets_dir_, false); dir.ok()) {
    if (dir->Exists(kPassphraseFile) || dir->Exists(kUnlockSessionFile)) {
      VIGO_RETURN_IF_ERROR(NewSession().status());
    }
  } else if (!absl::IsNotFound(dir.status())) {
    return dir.status();
  }
  VIGO_ASSIGN_OR_RETURN(SecureDir root, SecureDir::Open(root_, false));
  absl::Status st = root.Remove(kUnlockTokenFile);
  if (absl::IsNotFound(st)) return absl::OkStatus();
  return st;
}

absl::Status UnlockGate::Lock(const std::function<absl::Status()>& commit) {
  // Snapshots of what Lock() replaces (a session id and a MAC'd token: no
  // value, no key), to undo the lock when its audit record cannot be written.
  std::optional<std::vector<uint8_t>> old_session, old_token;
  if (auto dir = SecureDir::Open(secrets_dir_, false); dir.ok()) {
    VIGO_ASSIGN_OR_RETURN(old_session, dir->Read(kUnlockSessionFile, 128));
  }
  if (auto root = SecureDir::Open(root_, false); root.ok()) {
    VIGO_ASSIGN_OR_RETURN(old_token, root->Read(kUnlockTokenFile, 512));
  }
  VIGO_RETURN_IF_ERROR(Lock());
  absl::Status st = commit ? commit() : absl::OkStatus();
  if (st.ok()) return st;
  absl::Status undo;
  if (auto dir = SecureDir::Open(secrets_dir_, false); dir.ok()) {
    undo = old_session ? dir->WriteAtomic(kUnlockSessionFile, *old_session)
                       : dir->Remove(kUnlockSessionFile);
    if (absl::IsNotFound(undo)) undo = absl::OkStatus();
  }
  if (undo.ok() && old_token) {
    VIGO_ASSIGN_OR_RETURN(SecureDir root, SecureDir::Open(root_, false));
    undo = root.WriteAtomic(kUnlockTokenFile, *old_token);
  }
  if (!undo.ok()) {
    return absl::Status(st.code(), StrCat(st.message(),
                                          "; the vault stays locked (putting the "
                                          "unlock back failed: ",
                                          undo.message(), ")"));
  }
  return absl::Status(st.code(),
                      StrCat(st.message(), "; the lock was undone: the vault is as it was"));
}

absl::StatusOr<UnlockGate::State> UnlockGate::Check(int64_t now_unix) const {
  VIGO_ASSIGN_OR_RETURN(Verifier v, LoadVerifier());
  State s;
  auto root = SecureDir::Open(root_, false);
  if (!root.ok()) return root.status();
  auto data = root->Read(kUnlockTokenFile, 512);
  if (!data.ok()) {
    s.reason = StrCat("unlock token unreadable: ", data.status().message());
    return s;
  }
  if (!data->has_value()) {
    s.reason = "no unlock token";
    return s;
  }
  std::string_view t = AsView(**data);
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.remove_suffix(1);
  // "vigo-unlock v2 uid=U session=S expires=T mac=HEX"
  constexpr std::string_view kHead = "vigo-unlock v2 uid=";
  constexpr std::string_view kSession = " session=", kExpires = " expires=", kMac = " mac=";
  int64_t uid = -1, expires = 0;
  std::string_view session, mac;
  bool ok = t.substr(0, kHead.size()) == kHead;
  if (ok) {
    t.remove_prefix(kHead.size());
    size_t a = t.find(kSession);
    size_t b = t.find(kExpires);
    size_t c = t.find(kMac);
    ok = a != std::string_view::npos && b != std::string_view::npos &&
         c != std::string_view::npos && a < b && b < c && ParseInt(t.substr(0, a), &uid) &&
         ParseInt(t.substr(b + kExpires.size(), c - b - kExpires.size()), &expires);
    if (ok) {
      session = t.substr(a + kSession.size(), b - a - kSession.size());
      mac = t.substr(c + kMac.size());
    }
  }
  if (!ok) {
    s.reason = "unlock token is malformed";
    return s;
  }
  std::string want = TokenMac(v.token_key.Reveal(), uid, session, expires);
  if (!sandbox::ConstantTimeEquals(AsBytes(want), AsBytes(mac))) {
    s.reason = "unlock token is not valid (not issued by `vigocli secrets unlock`)";
    return s;
  }
  // A MAC'd token from an earlier session: `secrets lock` (or a later
  // unlock) revoked it, and a saved copy put back stays revoked.
  VIGO_ASSIGN_OR_RETURN(std::string current, Session());
  if (current.empty() || !sandbox::ConstantTimeEquals(AsBytes(current), AsBytes(session))) {
    s.reason = "unlock token was revoked (by `vigocli secrets lock` or a later unlock)";
    return s;
  }
  if (uid != static_cast<int64_t>(::geteuid())) {
    s.reason = StrCat("unlock token was issued to uid ", uid);
    return s;
  }
  if (expires <= now_unix) {
    s.reason = "unlock expired";
    return s;
  }
  s.unlocked = true;
  s.expires_unix = expires;
  return s;
}

absl::StatusOr<UnlockGate::State> UnlockGate::CheckAndExtend(int64_t now_unix) {
  VIGO_ASSIGN_OR_RETURN(State s, Check(now_unix));
  if (!s.unlocked) return s;
  // Same session, later expiry: sliding the window revokes nothing.
  VIGO_ASSIGN_OR_RETURN(Verifier v, LoadVerifier());
  VIGO_ASSIGN_OR_RETURN(std::string session, Session());
  VIGO_RETURN_IF_ERROR(WriteToken(v, session, now_unix + kUnlockWindowSeconds));
  s.expires_unix = now_unix + kUnlockWindowSeconds;
  return s;
}

int UnlockGate::RecentFailures(int64_t now_unix) const {
  auto dir = SecureDir::Open(secrets_dir_, false);
  if (!dir.ok()) return 0;
  auto data = dir->Read(kUnlockFailuresFile, 128);
  if (!data.ok() || !data->has_value()) return 0;
  std::string_view t = AsView(**data);
  size_t sp = t.find(' ');
  int64_t count = 0, last = 0;
  if (sp == std::string_view::npos || !ParseInt(t.substr(0, sp), &count)) return 0;
  std::string_view rest = t.substr(sp + 1);
  while (!rest.empty() && rest.back() == '\n') rest.remove_suffix(1);
  if (!ParseInt(rest, &last)) return 0;
  if (now_unix - last > kFailureWindowSeconds) return 0;
  return static_cast<int>(std::min<int64_t>(count, 1000));
}

int UnlockGate::RecordFailure(int64_t now_unix) {
  int count = RecentFailures(now_unix) + 1;
  auto dir = SecureDir::Open(secrets_dir_, false);
  if (dir.ok()) {
    std::string text = StrCat(count, " ", now_unix, "\n");
    (void)dir->WriteAtomic(kUnlockFailuresFile, AsBytes(text));
  }
  return count;
}

void UnlockGate::ResetFailures() {
  auto dir = SecureDir::Open(secrets_dir_, false);
  if (dir.ok()) (void)dir->Remove(kUnlockFailuresFile);
}

std::chrono::seconds UnlockGate::DelayFor(int failures) {
  if (failures <= 0) return std::chrono::seconds(0);
  int64_t d = int64_t{1} << std::min(failures - 1, 5);
  return std::chrono::seconds(std::min<int64_t>(d, 30));
}

}  // namespace vigo::server::vault
