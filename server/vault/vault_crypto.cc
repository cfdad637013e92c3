#include "server/vault/vault_crypto.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <algorithm>
#include <memory>

#include "common/status_macros.h"
#include "vocab/hex.h"

namespace vigo::server::vault {
namespace {

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

// Fetched once: an implicit fetch per call (EVP_aes_256_gcm()) costs more
// than decrypting a small value.
const EVP_CIPHER* AesGcm() {
  static const EVP_CIPHER* cipher = [] {
    const EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    return c != nullptr ? c : EVP_aes_256_gcm();
  }();
  return cipher;
}

}  // namespace

absl::Status RandomBytes(std::span<uint8_t> out) {
  if (out.empty()) return absl::OkStatus();
  if (RAND_bytes(out.data(), static_cast<int>(out.size())) != 1) {
    return absl::InternalError("the OpenSSL random generator failed");
  }
  return absl::OkStatus();
}

absl::StatusOr<sandbox::SecretBuffer> RandomSecret(size_t len) {
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer buf, sandbox::SecretBuffer::Create(len));
  VIGO_RETURN_IF_ERROR(RandomBytes(buf.RevealMutable()));
  return buf;
}

absl::Status AesGcmSeal(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                        std::span<const uint8_t> aad, std::span<const uint8_t> plaintext,
                        std::span<uint8_t> out, std::span<uint8_t, kGcmTagLen> tag) {
  if (key.size() != kAesKeyLen || nonce.size() != kGcmNonceLen || out.size() != plaintext.size()) {
    return absl::InternalError("AES-GCM: bad key, nonce or buffer size");
  }
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), AesGcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce.size()),
                          nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), nonce.data()) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) {
    return absl::InternalError("AES-GCM: encryption setup failed");
  }
  size_t done = 0;
  // EVP takes int lengths; feed in chunks so any size_t input is safe.
  while (done < plaintext.size()) {
    size_t chunk = std::min<size_t>(plaintext.size() - done, size_t{1} << 30);
    if (EVP_EncryptUpdate(ctx.get(), out.data() + done, &len, plaintext.data() + done,
                          static_cast<int>(chunk)) != 1) {
      return absl::InternalError("AES-GCM: encryption failed");
    }
    done += static_cast<size_t>(len);
  }
  if (EVP_EncryptFinal_ex(ctx.get(), out.data() + done, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(kGcmTagLen),
                          tag.data()) != 1) {
    return absl::InternalError("AES-GCM: encryption failed");
  }
  return absl::OkStatus();
}

absl::Status AesGcmOpen(std::span<const uint8_t> key, std::span<const uint8_t> nonce,
                        std::span<const uint8_t> aad, std::span<const uint8_t> ciphertext,
                        std::span<const uint8_t, kGcmTagLen> tag, std::span<uint8_t> out) {
  if (key.size() != kAesKeyLen || nonce.size() != kGcmNonceLen || out.size() != ciphertext.size()) {
    return absl::InternalError("AES-GCM: bad key, nonce or buffer size");
  }
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  uint8_t tag_copy[kGcmTagLen];
  std::copy(tag.begin(), tag.end(), tag_copy);
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), AesGcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(nonce.size()),
                          nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, key.data(), nonce.data()) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1) {
    return absl::InternalError("AES-GCM: decryption setup failed");
  }
  size_t done = 0;
  while (done < ciphertext.size()) {
    size_t chunk = std::min<size_t>(ciphertext.size() - done, size_t{1} << 30);
    if (EVP_DecryptUpdate(ctx.get(), out.data() + done, &len, ciphertext.data() + done,
                          static_cast<int>(chunk)) != 1) {
      sandbox::SecureZero(out.data(), out.size());
      return absl::DataLossError("authentication failed");
    }
    done += static_cast<size_t>(len);
  }
  if (EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(kGcmTagLen),
                          tag_copy) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), out.data() + done, &len) != 1) {
    sandbox::SecureZero(out.data(), out.size());
    return absl::DataLossError("authentication failed");
  }
  return absl::OkStatus();
}

std::array<uint8_t, 32> HmacSha256(std::span<const uint8_t> key, std::span<const uint8_t> data) {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(), out.data(),
       &len);
  return out;
}

absl::StatusOr<sandbox::SecretBuffer> Scrypt(std::span<const uint8_t> passphrase,
                                             std::span<const uint8_t> salt, uint64_t n, uint64_t r,
                                             uint64_t p, size_t out_len) {
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer out, sandbox::SecretBuffer::Create(out_len));
  // Memory needed is 128*r*N (+p*128*r); allow twice that.
  uint64_t maxmem = 2 * 128 * r * n + 128 * r * p + (1u << 20);
  const char* pass = static_cast<const char*>(static_cast<const void*>(passphrase.data()));
  if (EVP_PBE_scrypt(passphrase.empty() ? "" : pass, passphrase.size(), salt.data(), salt.size(), n,
                     r, p, maxmem, out.RevealMutable().data(), out.size()) != 1) {
    return absl::InternalError("scrypt failed (parameters or memory)");
  }
  return out;
}

absl::StatusOr<sandbox::SecretBuffer> HexDecodeSecret(std::span<const uint8_t> hex) {
  if (hex.size() % 2 != 0) return absl::InvalidArgumentError("odd number of hex characters");
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer out, sandbox::SecretBuffer::Create(hex.size() / 2));
  if (!vocab::ParseHexInto(hex, out.RevealMutable())) {
    return absl::InvalidArgumentError("not a hex character");
  }
  return out;
}

}  // namespace vigo::server::vault
