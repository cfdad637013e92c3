// Cryptographic building blocks of the local vault (OpenSSL 3 EVP):
// AES-256-GCM, the CSPRNG, HMAC-SHA256, scrypt and hex. Used by the secret
// file format, the master key and the unlock gate.
//
//   VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer key, RandomSecret(32));
//   VIGO_RETURN_IF_ERROR(AesGcmSeal(key, nonce, aad, value.Reveal(), &ciphertext, &tag));
//
// SECURITY: keys and plaintext are only ever read from / written to
// SecretBuffers. Errors never contain key or value bytes.
// Thread safety: every function is reentrant (own cipher context per call).
#ifndef VIGO_SERVER_VAULT_VAULT_CRYPTO_H_
#define VIGO_SERVER_VAULT_VAULT_CRYPTO_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"

namespace vigo::server::vault {

inline constexpr size_t kAesKeyLen = 32;
inline constexpr size_t kGcmNonceLen = 12;
inline constexpr size_t kGcmTagLen = 16;

// Bytes from the OpenSSL CSPRNG. INTERNAL if it fails.
absl::Status RandomBytes(std::span<uint8_t> out);
absl::StatusOr<sandbox::SecretBuffer> RandomSecret(size_t len);

// AES-256-GCM. `out` receives plaintext.size() bytes of ciphertext.
absl::Status AesGcmSeal(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                        std::span<const uint8_t> aad, std::span<const uint8_t> plaintext,
                        std::span<uint8_t> out, std::span<uint8_t, kGcmTagLen> tag);
// Decrypts straight into `out` (ciphertext.size() bytes). On authentication
// failure returns DATA_LOSS (message: "authentication failed") and wipes `out`.
absl::Status AesGcmOpen(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                        std::span<const uint8_t> aad, std::span<const uint8_t> ciphertext,
                        std::span<const uint8_t, kGcmTagLen> tag, std::span<uint8_t> out);

// HMAC-SHA256 (32 bytes).
std::array<uint8_t, 32> HmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> data);

// scrypt (RFC 7914) via EVP_PBE_scrypt, output into a SecretBuffer.
absl::StatusOr<sandbox::SecretBuffer> Scrypt(std::span<const uint8_t> passphrase,
                                             std::span<const uint8_t> salt, uint64_t n, uint64_t r,
                                             uint64_t p, size_t out_len);

// Hex encoding and decoding of ordinary bytes: vocab/hex.h (vocab::Hex,
// vocab::HexInto, vocab::ParseHex).
// Hex text (either case) held in a SecretBuffer → bytes in a new
// SecretBuffer (for keys).
// INVALID_ARGUMENT (no content in the message) on malformed input.
absl::StatusOr<sandbox::SecretBuffer> HexDecodeSecret(std::span<const uint8_t> hex);

// Views a byte string as bytes without reinterpret_cast.
inline std::span<const uint8_t> AsBytes(std::string_view s) {
  return {static_cast<const uint8_t*>(static_cast<const void*>(s.data())), s.size()};
}

}  // namespace vigo::server::vault

#endif  // VIGO_SERVER_VAULT_VAULT_CRYPTO_H_
