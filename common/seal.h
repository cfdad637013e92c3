// Sealing secret values to an agent's ephemeral key (ResolveSecrets).
//
//   Agent:  VIGO_ASSIGN_OR_RETURN(RecipientKey key, RecipientKey::Generate());
//           request.set_recipient_key(key.public_key());
//   Server: VIGO_ASSIGN_OR_RETURN(Sealer s, Sealer::Create(request.recipient_key()));
//           VIGO_ASSIGN_OR_RETURN(SealedBox box, s.Seal(ctx, value));  // per ref
//           response.set_server_key(s.server_public_key()); response.set_call_id(s.call_id());
//   Agent:  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer v,
//                                 key.Open(server_key, ctx, box));
//
// Construction: X25519(server ephemeral, recipient) → shared secret;
// HKDF-SHA256(ikm = shared, salt = call_id, info = "vigo-seal-v1" ||
// recipient_pub || server_pub) → 32-byte key; AES-256-GCM with a random
// 96-bit nonce per value; AAD = "vigo-seal-v1\0" envoy "\0" epoch "\0" ref
// "\0" call_id. A box opened under any other envoy, epoch, ref or call id
// fails. The server key is fresh per call and discarded after it.
// SECURITY: plaintext is read from and written to SecretBuffers only; the
// derived key lives in a SecretBuffer.
#ifndef VIGO_COMMON_SEAL_H_
#define VIGO_COMMON_SEAL_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"

namespace vigo {

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

class RecipientKey {
 public:
  static absl::StatusOr<RecipientKey> Generate();
  const std::string& public_key() const { return public_key_; }  // 32 bytes
  // DATA_LOSS when the box does not authenticate.
  absl::StatusOr<sandbox::SecretBuffer> Open(std::string_view server_public_key,
                                             const SealContext& ctx, const SealedBox& box) const;
  // (private key held in a SecretBuffer)
 private:
  sandbox::SecretBuffer private_key_;
  std::string public_key_;
};

class Sealer {
 public:
  // INVALID_ARGUMENT when the recipient key is not 32 bytes.
  static absl::StatusOr<Sealer> Create(std::string_view recipient_public_key);
  const std::string& server_public_key() const { return server_public_key_; }
  const std::string& call_id() const { return call_id_; }
  absl::StatusOr<SealedBox> Seal(const SealContext& ctx, const sandbox::SecretBuffer& value) const;

 private:
  sandbox::SecretBuffer key_;  // HKDF output
  std::string recipient_public_key_;
  std::string server_public_key_;
  std::string call_id_;
};

}  // namespace vigo

#endif  // VIGO_COMMON_SEAL_H_
