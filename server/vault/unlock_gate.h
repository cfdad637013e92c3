// The operator unlock gate for `vigocli secrets` (CONTRACT §6).
//
//   UnlockGate gate(cfg.root, cfg.SecretsDir());
//   VIGO_RETURN_IF_ERROR(gate.SetPassphrase(pass));            // secrets init
//   if (gate.CheckPassphrase(pass).ok()) gate.Unlock(now);      // secrets unlock
//   VIGO_ASSIGN_OR_RETURN(UnlockGate::State s, gate.CheckAndExtend(now));  // gated verbs
//
// Passphrase: stored only as a scrypt verifier (N=2^15, r=8, p=1, 16-byte
// random salt, 32-byte output) in <secrets>/.vigo-passphrase (0600), next to
// a random 32-byte token key.
//
// Unlock token: <root>/.secrets-unlocked (0600) holds
//   "vigo-unlock v2 uid=U session=S expires=T mac=HEX"
// with mac = HMAC-SHA256(token key, "vigo-unlock-v2\0" U "\0" S "\0" T).
// Creating the file by hand does not unlock: the MAC needs the token key,
// which only readers of the 0600 passphrase file (i.e. whoever could read the
// vault anyway) have. The window is 24 h and slides: each gated verb
// re-issues the token with a fresh expiry and the same session. Read-only
// verbs use Check() and never rewrite the token (they work on a full disk).
//
// Revocation: <secrets>/.vigo-unlock-session (0600) holds the current session
// id S (128 random bits, hex). `unlock` and `lock` both replace it with a
// fresh one before anything else, and a token is valid only while its S is
// the current one, so `lock` revokes every token issued before it: putting
// back a saved copy of an earlier sentinel does not reopen the gate (its S is
// stale, and the MAC binds S). A random id rather than a counter: a deleted or
// garbled file can only lock (no id matches), never roll a counter back onto
// an old token. The id lives in the vault directory, not next to the sentinel
// in <root>: whoever can put back both files could as well put back the vault.
//
// Failed passphrases are counted in <secrets>/.vigo-unlock-failures; the
// caller sleeps DelayFor(count) after each failure (1 s, doubling, ≤ 30 s;
// the count resets 15 minutes after the last failure or on success).
//
// The server's read path never consults the gate.
// Thread safety: not synchronized; one CLI process uses it.
#ifndef VIGO_SERVER_VAULT_UNLOCK_GATE_H_
#define VIGO_SERVER_VAULT_UNLOCK_GATE_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"

namespace vigo::server::vault {

inline constexpr std::string_view kPassphraseFile = ".vigo-passphrase";
inline constexpr std::string_view kUnlockFailuresFile = ".vigo-unlock-failures";
inline constexpr std::string_view kUnlockTokenFile = ".secrets-unlocked";
inline constexpr std::string_view kUnlockSessionFile = ".vigo-unlock-session";
inline constexpr int64_t kUnlockWindowSeconds = 24 * 3600;
inline constexpr int64_t kFailureWindowSeconds = 15 * 60;

struct ScryptParams {
  uint64_t n = uint64_t{1} << 15;
  uint64_t r = 8;
  uint64_t p = 1;
};

class UnlockGate {
 public:
  UnlockGate(std::filesystem::path root, std::filesystem::path secrets_dir)
      : root_(std::move(root)), secrets_dir_(std::move(secrets_dir)) {}

  // True when the passphrase verifier exists (secrets init ran).
  bool Initialized() const;
  // Stores the verifier and a fresh token key. ALREADY_EXISTS when present;
  // INVALID_ARGUMENT for an empty passphrase.
  absl::Status SetPassphrase(const sandbox::SecretBuffer& passphrase,
                             const ScryptParams& params = {});
  // OK on a match; PERMISSION_DENIED ("wrong passphrase") otherwise;
  // FAILED_PRECONDITION when not initialized or the verifier file is bad.
  absl::Status CheckPassphrase(const sandbox::SecretBuffer& passphrase) const;

  // Starts a new session (revoking every earlier token), then writes a token
  // valid until now + 24 h.
  absl::Status Unlock(int64_t now_unix);
  // Replaces the session id, which revokes every token issued so far (saved
  // copies included), then removes the token file (OK when absent). An error
  // when the session could not be replaced: then nothing was revoked.
  absl::Status Lock();
  // Lock(), then `commit` (vigocli writes the audit record there). When the
  // commit fails the previous session id and token are put back, so the gate
  // is as it was, and the commit's error is returned.
  absl::Status Lock(const std::function<absl::Status()>& commit);

  struct State {
    bool unlocked = false;
    int64_t expires_unix = 0;  // when unlocked
    std::string reason;        // when locked: why ("no unlock token", "expired", ...)
  };
  absl::StatusOr<State> Check(int64_t now_unix) const;
  // Check(), and when unlocked re-issue the token (sliding window).
  absl::StatusOr<State> CheckAndExtend(int64_t now_unix);

  // Failure throttling.
  int RecentFailures(int64_t now_unix) const;
  int RecordFailure(int64_t now_unix);  // returns the new count
  void ResetFailures();
  static std::chrono::seconds DelayFor(int failures);

 private:
  struct Verifier;
  absl::StatusOr<Verifier> LoadVerifier() const;
  // The current session id; empty when there is none (no token is valid).
  absl::StatusOr<std::string> Session() const;
  // Writes a fresh session id and returns it.
  absl::StatusOr<std::string> NewSession();
  absl::Status WriteToken(const Verifier& v, std::string_view session, int64_t expires);
  std::filesystem::path root_;
  std::filesystem::path secrets_dir_;
};

int64_t NowUnix();

}  // namespace vigo::server::vault

#endif  // VIGO_SERVER_VAULT_UNLOCK_GATE_H_
