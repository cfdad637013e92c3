// Sealing secret values to an agent's ephemeral key (ResolveSecrets).
//
//   Agent:  VIGO_ASSIGN_OR_RETURN(RecipientKey key, RecipientKey::Generate());
//           request.set_recipient_key(key.public_key());
//   Server: VIGO_ASSIGN_OR_RETURN(Sealer s, Sealer::Create(request.recipient_key()));
//           SealContext ctx{.envoy = envoy, .epoch = epoch, .ref = ref, .call_id = s.call_id()};
//           VIGO_ASSIGN_OR_RETURN(SealedBox box, s.Seal(ctx, value));  // per ref
//           response.set_server_key(s.server_public_key()); response.set_call_id(s.call_id());
//   Agent:  SealContext ctx{envoy_from_own_cert, response.secrets_epoch(), ref,
//   response.call_id()};
//           VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer v,
//                                 key.Open(response.server_key(), ctx, box));
//
// Construction: X25519(server ephemeral, recipient) → shared secret;
// HKDF-SHA256(ikm = shared, salt = call_id, info = "vigo-seal-v1" ||
// recipient_pub || server_pub) → 32-byte key; AES-256-GCM with a random
// 96-bit nonce per value; AAD = "vigo-seal-v1\0" envoy "\0" epoch(decimal)
// "\0" ref "\0" call_id. Envoy, ref and call id may not contain NUL, so the
// AAD encoding is unambiguous. A box opened under any other envoy, epoch, ref,
// call id or server key fails with DATA_LOSS. The server's X25519 private key
// is used for exactly one Sealer and freed (OpenSSL cleanses it) before
// Sealer::Create returns; it may be generated ahead of time (EphemeralKey, for
// a pool that takes key generation off the request path) but is never reused.
// The derived AES key lives in a SecretBuffer for the Sealer's lifetime.
//
// SECURITY: plaintext is read from and written to SecretBuffers only (GCM
// decrypts straight into the output buffer; on authentication failure the
// buffer is wiped and dropped). Shared secrets and derived keys live in
// SecretBuffers. Errors never contain key or value bytes.
//
// Thread safety: a Sealer / RecipientKey may be used from several threads for
// const calls (each Seal/Open uses its own cipher context).
#ifndef VIGO_COMMON_SEAL_H_
#define VIGO_COMMON_SEAL_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"

namespace vigo {

inline constexpr size_t kSealKeyLen = 32;  // X25519 public key bytes
inline constexpr size_t kSealNonceLen = 12;
inline constexpr size_t kSealTagLen = 16;

struct SealContext {
  std::string envoy;
  uint64_t epoch = 0;
  std::string ref;
  std::string call_id;
};

struct SealedBox {
  std::string nonce;       // 12 bytes
  std::string ciphertext;  // ciphertext || 16-byte tag
};

// The session key of one ResolveSecrets response (one X25519 agreement and
// one HKDF), for opening all of its boxes.
class SealOpener {
 public:
  // DATA_LOSS when the box does not authenticate (wrong context, wrong server
  // key, tampered nonce or ciphertext); INVALID_ARGUMENT on malformed sizes or
  // when ctx.call_id is not this opener's call id.
  absl::StatusOr<sandbox::SecretBuffer> Open(const SealContext& ctx, const SealedBox& box) const;

 private:
  friend class RecipientKey;
  SealOpener() = default;
  sandbox::SecretBuffer key_;  // HKDF output
  std::string call_id_;
};

class RecipientKey {
 public:
  // A fresh X25519 key pair; the private half lives in a SecretBuffer.
  static absl::StatusOr<RecipientKey> Generate();
  const std::string& public_key() const { return public_key_; }  // 32 bytes
  // The opener for a response with this server key and call id: the key
  // agreement is done once, not once per value. INVALID_ARGUMENT for a
  // malformed or low-order server key.
  absl::StatusOr<SealOpener> OpenerFor(std::string_view server_public_key,
                                       std::string_view call_id) const;
  // One box: OpenerFor(server_public_key, ctx.call_id), then Open.
  absl::StatusOr<sandbox::SecretBuffer> Open(std::string_view server_public_key,
                                             const SealContext& ctx, const SealedBox& box) const;

 private:
  RecipientKey() = default;
  sandbox::SecretBuffer private_key_;
  std::string public_key_;
};

// A server-side X25519 key pair generated ahead of its single use. Move-only;
// Sealer::Create consumes it, so one key can never seal two calls. The private
// half lives inside OpenSSL's EVP_PKEY (cleansed by OpenSSL when freed).
class EphemeralKey {
 public:
  static absl::StatusOr<EphemeralKey> Generate();
  EphemeralKey(EphemeralKey&& other) noexcept;
  EphemeralKey& operator=(EphemeralKey&& other) noexcept;
  EphemeralKey(const EphemeralKey&) = delete;
  EphemeralKey& operator=(const EphemeralKey&) = delete;
  ~EphemeralKey();

 private:
  friend class Sealer;
  EphemeralKey() = default;
  void* pkey_ = nullptr;  // EVP_PKEY*, owned
};

// 32 lower-case hex characters from the CSPRNG (the form of Sealer::call_id).
absl::StatusOr<std::string> NewCallId();

class Sealer {
 public:
  // INVALID_ARGUMENT when the recipient key is not 32 bytes or is a
  // low-order point (the X25519 shared secret would be all zeros).
  static absl::StatusOr<Sealer> Create(std::string_view recipient_public_key);
  // Same, with a server key generated earlier and a call id chosen by the
  // caller (so it can be audited before sealing starts). `call_id` must come
  // from NewCallId(): anything but 32 lower-case hex characters is
  // INVALID_ARGUMENT. `server_key` is consumed whatever the outcome.
  static absl::StatusOr<Sealer> Create(std::string_view recipient_public_key,
                                       EphemeralKey server_key, std::string call_id);
  const std::string& server_public_key() const { return server_public_key_; }
  // 32 lower-case hex characters from the CSPRNG.
  const std::string& call_id() const { return call_id_; }
  // Seals `value` under ctx. ctx.call_id must be empty (then call_id() is
  // used) or equal to call_id(); anything else is INVALID_ARGUMENT, so the
  // AAD always binds the call id that the response carries.
  absl::StatusOr<SealedBox> Seal(const SealContext& ctx, const sandbox::SecretBuffer& value) const;

 private:
  Sealer() = default;
  sandbox::SecretBuffer key_;  // HKDF output
  std::string recipient_public_key_;
  std::string server_public_key_;
  std::string call_id_;
};

}  // namespace vigo

#endif  // VIGO_COMMON_SEAL_H_
