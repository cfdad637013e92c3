#include "common/seal.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <memory>
#include <span>
#include <utility>

#include "common/status_macros.h"
#include "common/strings.h"
#include "vocab/hex.h"
#include "vocab/ids.h"

namespace vigo {
namespace {

constexpr std::string_view kLabel = "vigo-seal-v1";

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* p) const { EVP_PKEY_CTX_free(p); }
};
struct CipherCtxFree {
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
};
struct KdfCtxFree {
  void operator()(EVP_KDF_CTX* p) const { EVP_KDF_CTX_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

const unsigned char* U8(std::string_view s) {
  return static_cast<const unsigned char*>(static_cast<const void*>(s.data()));
}

unsigned char* MU8(std::string& s) {
  return static_cast<unsigned char*>(static_cast<void*>(s.data()));
}

absl::StatusOr<Pkey> PublicFromRaw(std::string_view raw, const char* what) {
  if (raw.size() != kSealKeyLen) {
    return absl::InvalidArgumentError(
        StrCat(what, " is ", raw.size(), " bytes; an X25519 public key is 32"));
  }
  Pkey key(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, U8(raw), raw.size()));
  if (!key) return absl::InvalidArgumentError(StrCat(what, " is not a valid X25519 key"));
  return key;
}

// X25519(own, peer) into a SecretBuffer. OpenSSL refuses an all-zero result
// (low-order peer point), which we report as INVALID_ARGUMENT.
absl::StatusOr<sandbox::SecretBuffer> Derive(EVP_PKEY* own, EVP_PKEY* peer) {
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, own, nullptr));
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer) != 1) {
    return absl::InvalidArgumentError("X25519 key agreement refused the peer key");
  }
  size_t len = 0;
  if (EVP_PKEY_derive(ctx.get(), nullptr, &len) != 1 || len != 32) {
    return absl::InternalError("X25519 derive: unexpected length");
  }
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer shared, sandbox::SecretBuffer::Create(len));
  if (EVP_PKEY_derive(ctx.get(), shared.RevealMutable().data(), &len) != 1 || len != 32) {
    return absl::InvalidArgumentError("X25519 key agreement failed (low-order peer key?)");
  }
  return shared;
}

// Algorithms fetched once per process (OpenSSL 3's implicit fetch on every
// EVP_aes_256_gcm() / EVP_KDF_fetch call is a provider lookup under a lock).
// Never freed: they live as long as the process.
const EVP_CIPHER* Aes256Gcm() {
  static const EVP_CIPHER* cipher = [] {
    const EVP_CIPHER* c = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    return c != nullptr ? c : EVP_aes_256_gcm();
  }();
  return cipher;
}

EVP_KDF* HkdfAlgorithm() {
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  return kdf;
}

absl::StatusOr<sandbox::SecretBuffer> Hkdf(const sandbox::SecretBuffer& ikm, std::string_view salt,
                                           std::string_view info) {
  EVP_KDF* kdf = HkdfAlgorithm();
  if (kdf == nullptr) return absl::InternalError("HKDF is not available in this OpenSSL");
  std::unique_ptr<EVP_KDF_CTX, KdfCtxFree> kctx(EVP_KDF_CTX_new(kdf));
  if (!kctx) return absl::InternalError("HKDF context allocation failed");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(
          OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.Reveal().data()), ikm.Reveal().size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<char*>(salt.data()),
                                        salt.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()),
                                        info.size()),
      OSSL_PARAM_construct_end(),
  };
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer key, sandbox::SecretBuffer::Create(32));
  if (EVP_KDF_derive(kctx.get(), key.RevealMutable().data(), key.size(), params) != 1) {
    return absl::InternalError("HKDF derive failed");
  }
  return key;
}

absl::StatusOr<sandbox::SecretBuffer> SessionKey(const sandbox::SecretBuffer& shared,
                                                 std::string_view call_id,
                                                 std::string_view recipient_pub,
                                                 std::string_view server_pub) {
  std::string info = StrCat(kLabel, recipient_pub, server_pub);
  return Hkdf(shared, call_id, info);
}

absl::Status CheckNoNul(std::string_view s, const char* what) {
  if (s.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(StrCat("seal context: ", what, " contains a NUL byte"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Aad(const SealContext& ctx, std::string_view call_id) {
  VIGO_RETURN_IF_ERROR(CheckNoNul(ctx.envoy, "envoy"));
  VIGO_RETURN_IF_ERROR(CheckNoNul(ctx.ref, "ref"));
  VIGO_RETURN_IF_ERROR(CheckNoNul(call_id, "call id"));
  std::string aad(kLabel);
  aad.push_back('\0');
  StrAppend(&aad, ctx.envoy);
  aad.push_back('\0');
  StrAppend(&aad, ctx.epoch);
  aad.push_back('\0');
  StrAppend(&aad, ctx.ref);
  aad.push_back('\0');
  StrAppend(&aad, call_id);
  return aad;
}

absl::StatusOr<std::string> RawPublic(EVP_PKEY* key) {
  std::string pub(kSealKeyLen, '\0');
  size_t len = pub.size();
  if (EVP_PKEY_get_raw_public_key(key, MU8(pub), &len) != 1 || len != kSealKeyLen) {
    return absl::InternalError("X25519: cannot export public key");
  }
  return pub;
}

absl::StatusOr<Pkey> NewX25519() {
  Pkey key(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
  if (!key) return absl::InternalError("X25519 key generation failed");
  return key;
}

}  // namespace

absl::StatusOr<RecipientKey> RecipientKey::Generate() {
  VIGO_ASSIGN_OR_RETURN(Pkey key, NewX25519());
  RecipientKey out;
  VIGO_ASSIGN_OR_RETURN(out.public_key_, RawPublic(key.get()));
  size_t len = 0;
  if (EVP_PKEY_get_raw_private_key(key.get(), nullptr, &len) != 1 || len != 32) {
    return absl::InternalError("X25519: cannot export private key");
  }
  VIGO_ASSIGN_OR_RETURN(out.private_key_, sandbox::SecretBuffer::Create(len));
  if (EVP_PKEY_get_raw_private_key(key.get(), out.private_key_.RevealMutable().data(), &len) != 1) {
    return absl::InternalError("X25519: cannot export private key");
  }
  return out;
}

absl::StatusOr<SealOpener> RecipientKey::OpenerFor(std::string_view server_public_key,
                                                   std::string_view call_id) const {
  if (private_key_.size() != 32) return absl::FailedPreconditionError("recipient key is empty");
  VIGO_ASSIGN_OR_RETURN(Pkey server, PublicFromRaw(server_public_key, "server key"));
  Pkey own(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, private_key_.Reveal().data(),
                                        private_key_.size()));
  if (!own) return absl::InternalError("X25519: cannot load recipient key");
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer shared, Derive(own.get(), server.get()));
  SealOpener out;
  out.call_id_ = std::string(call_id);
  VIGO_ASSIGN_OR_RETURN(out.key_, SessionKey(shared, out.call_id_, public_key_, server_public_key));
  return out;
}

absl::StatusOr<sandbox::SecretBuffer> RecipientKey::Open(std::string_view server_public_key,
                                                         const SealContext& ctx,
                                                         const SealedBox& box) const {
  VIGO_ASSIGN_OR_RETURN(SealOpener opener, OpenerFor(server_public_key, ctx.call_id));
  return opener.Open(ctx, box);
}

absl::StatusOr<sandbox::SecretBuffer> SealOpener::Open(const SealContext& ctx,
                                                       const SealedBox& box) const {
  if (box.nonce.size() != kSealNonceLen) {
    return absl::InvalidArgumentError(
        StrCat("sealed value for '", ctx.ref, "': nonce is ", box.nonce.size(), " bytes; want 12"));
  }
  if (box.ciphertext.size() < kSealTagLen) {
    return absl::InvalidArgumentError(
        StrCat("sealed value for '", ctx.ref, "': ciphertext shorter than the GCM tag"));
  }
  if (ctx.call_id != call_id_) {
    return absl::InvalidArgumentError("seal context call id differs from the opener's call id");
  }
  if (key_.size() != 32) return absl::FailedPreconditionError("opener has no key");
  VIGO_ASSIGN_OR_RETURN(std::string aad, Aad(ctx, ctx.call_id));
  const sandbox::SecretBuffer& key = key_;
  const size_t ct_len = box.ciphertext.size() - kSealTagLen;
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer out, sandbox::SecretBuffer::Create(ct_len));
  CipherCtx c(EVP_CIPHER_CTX_new());
  if (!c) return absl::InternalError("cipher context allocation failed");
  int n = 0;
  bool ok =
      EVP_DecryptInit_ex(c.get(), Aes256Gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_IVLEN, kSealNonceLen, nullptr) == 1 &&
      EVP_DecryptInit_ex(c.get(), nullptr, nullptr, key.Reveal().data(), U8(box.nonce)) == 1 &&
      EVP_DecryptUpdate(c.get(), nullptr, &n, U8(aad), static_cast<int>(aad.size())) == 1;
  if (ok && ct_len > 0) {
    ok = EVP_DecryptUpdate(c.get(), out.RevealMutable().data(), &n, U8(box.ciphertext),
                           static_cast<int>(ct_len)) == 1 &&
         static_cast<size_t>(n) == ct_len;
  }
  std::string tag = box.ciphertext.substr(ct_len);
  ok = ok && EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_TAG, kSealTagLen, tag.data()) == 1;
  unsigned char final_buf[16];
  int fin = 0;
  ok = ok && EVP_DecryptFinal_ex(c.get(), final_buf, &fin) == 1;
  if (!ok) {
    out.Clear();  // never hand out unauthenticated plaintext
    return absl::DataLossError(StrCat("sealed value for '", ctx.ref, "' does not authenticate"));
  }
  return out;
}

absl::StatusOr<EphemeralKey> EphemeralKey::Generate() {
  VIGO_ASSIGN_OR_RETURN(Pkey key, NewX25519());
  EphemeralKey out;
  out.pkey_ = key.release();
  return out;
}

EphemeralKey::EphemeralKey(EphemeralKey&& other) noexcept
    : pkey_(std::exchange(other.pkey_, nullptr)) {}

EphemeralKey& EphemeralKey::operator=(EphemeralKey&& other) noexcept {
  if (this != &other) {
    EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey_));
    pkey_ = std::exchange(other.pkey_, nullptr);
  }
  return *this;
}

EphemeralKey::~EphemeralKey() { EVP_PKEY_free(static_cast<EVP_PKEY*>(pkey_)); }

absl::StatusOr<std::string> NewCallId() { return vocab::RandomHexId(16); }

absl::StatusOr<Sealer> Sealer::Create(std::string_view recipient_public_key) {
  VIGO_ASSIGN_OR_RETURN(EphemeralKey server, EphemeralKey::Generate());
  VIGO_ASSIGN_OR_RETURN(std::string call_id, NewCallId());
  return Create(recipient_public_key, std::move(server), std::move(call_id));
}

absl::StatusOr<Sealer> Sealer::Create(std::string_view recipient_public_key,
                                      EphemeralKey server_key, std::string call_id) {
  // The server's ephemeral private key lives only in this scope.
  Pkey server(static_cast<EVP_PKEY*>(std::exchange(server_key.pkey_, nullptr)));
  if (!server) return absl::InvalidArgumentError("server key is empty (already used?)");
  if (!vocab::IsLowerHex(call_id, 32)) {
    return absl::InvalidArgumentError("call id must be 32 lower-case hex characters");
  }
  VIGO_ASSIGN_OR_RETURN(Pkey recipient, PublicFromRaw(recipient_public_key, "recipient_key"));
  Sealer s;
  s.recipient_public_key_ = std::string(recipient_public_key);
  s.call_id_ = std::move(call_id);
  VIGO_ASSIGN_OR_RETURN(s.server_public_key_, RawPublic(server.get()));
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer shared, Derive(server.get(), recipient.get()));
  VIGO_ASSIGN_OR_RETURN(
      s.key_, SessionKey(shared, s.call_id_, s.recipient_public_key_, s.server_public_key_));
  return s;
}

absl::StatusOr<SealedBox> Sealer::Seal(const SealContext& ctx,
                                       const sandbox::SecretBuffer& value) const {
  if (!ctx.call_id.empty() && ctx.call_id != call_id_) {
    return absl::InvalidArgumentError("seal context call id differs from the sealer's call id");
  }
  if (key_.size() != 32) return absl::FailedPreconditionError("sealer has no key");
  VIGO_ASSIGN_OR_RETURN(std::string aad, Aad(ctx, call_id_));
  SealedBox box;
  box.nonce.resize(kSealNonceLen);
  if (RAND_bytes(MU8(box.nonce), kSealNonceLen) != 1) {
    return absl::InternalError("RAND_bytes failed");
  }
  box.ciphertext.resize(value.size() + kSealTagLen);
  auto* ct = MU8(box.ciphertext);
  CipherCtx c(EVP_CIPHER_CTX_new());
  if (!c) return absl::InternalError("cipher context allocation failed");
  int n = 0;
  bool ok =
      EVP_EncryptInit_ex(c.get(), Aes256Gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_IVLEN, kSealNonceLen, nullptr) == 1 &&
      EVP_EncryptInit_ex(c.get(), nullptr, nullptr, key_.Reveal().data(), U8(box.nonce)) == 1 &&
      EVP_EncryptUpdate(c.get(), nullptr, &n, U8(aad), static_cast<int>(aad.size())) == 1;
  if (ok && !value.empty()) {
    ok = EVP_EncryptUpdate(c.get(), ct, &n, value.Reveal().data(),
                           static_cast<int>(value.size())) == 1 &&
         static_cast<size_t>(n) == value.size();
  }
  int fin = 0;
  ok = ok && EVP_EncryptFinal_ex(c.get(), ct + value.size(), &fin) == 1 && fin == 0;
  ok =
      ok && EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, kSealTagLen, ct + value.size()) == 1;
  if (!ok) return absl::InternalError(StrCat("sealing '", ctx.ref, "' failed"));
  return box;
}

}  // namespace vigo
