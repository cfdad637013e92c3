// The on-disk format of one local-vault secret (format version 1).
//
//   offset size  field
//   0      6     magic "VIGOSV"
//   6      2     format version, big-endian (1)
//   8      8     key id: HMAC-SHA256(master key, "vigo-vault-key-id-v1")[0..8)
//   16     8     version counter, big-endian (changes whenever the value does)
//   24     12    nonce (random per write)
//   36     4     ciphertext length N, big-endian (N <= kMaxValueBytes)
//   40     N     AES-256-GCM ciphertext
//   40+N   16    GCM tag
//
// Associated data = the 40 header bytes || "\0path\0" || the secret path. So the
// format version, the key id, the version counter and the path are all
// authenticated: a file copied or renamed to another path, an edited
// counter, or any flipped bit fails with DATA_LOSS. (A whole older file for the
// same path authenticates; LocalBackend refuses it by its version floor.)
//
//   VIGO_ASSIGN_OR_RETURN(std::vector<uint8_t> file,
//                         EncryptSecretFile(key, "webapp/db_pw", /*version=*/7, value));
//   VIGO_ASSIGN_OR_RETURN(SecretFileHeader h, ParseSecretFileHeader(file, "webapp/db_pw"));
//   VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer v, DecryptSecretFile(key, "webapp/db_pw", file));
#ifndef VIGO_SERVER_VAULT_SECRET_FILE_H_
#define VIGO_SERVER_VAULT_SECRET_FILE_H_

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"
#include "vocab/wire_limits.h"

namespace vigo::server::vault {

// The largest value the local vault stores: 1 MiB.
inline constexpr size_t kMaxValueBytes = vocab::kMaxSecretValueBytes;  // 1 MiB
inline constexpr uint16_t kSecretFileVersion = 1;
inline constexpr size_t kSecretHeaderLen = 40;
inline constexpr size_t kKeyIdLen = 8;
inline constexpr size_t kMaxSecretFileLen = kSecretHeaderLen + kMaxValueBytes + 16;

using KeyId = std::array<uint8_t, kKeyIdLen>;

// The key id of a 32-byte master key (not secret: a 64-bit HMAC of a constant).
KeyId KeyIdFor(std::span<const uint8_t> key);

struct SecretFileHeader {
  uint16_t format_version = 0;
  KeyId key_id{};
  uint64_t version = 0;
  uint32_t ciphertext_len = 0;
};

// Structural checks only (magic, format version, lengths). DATA_LOSS naming
// `path` for a short, truncated, overlong or foreign file. Not authenticated.
absl::StatusOr<SecretFileHeader> ParseSecretFileHeader(std::span<const uint8_t> file,
                                                       std::string_view path);

// INVALID_ARGUMENT naming `path` when the value is larger than kMaxValueBytes.
absl::StatusOr<std::vector<uint8_t>> EncryptSecretFile(std::span<const uint8_t> key,
                                                       std::string_view path, uint64_t version,
                                                       const sandbox::SecretBuffer& value);

// DATA_LOSS naming `path` when the file is malformed or does not authenticate
// under `key` for `path`. Plaintext goes straight into the returned buffer.
absl::StatusOr<sandbox::SecretBuffer> DecryptSecretFile(std::span<const uint8_t> key,
                                                        std::string_view path,
                                                        std::span<const uint8_t> file);

}  // namespace vigo::server::vault

#endif  // VIGO_SERVER_VAULT_SECRET_FILE_H_
