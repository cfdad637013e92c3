#include "server/vault/secret_file.h"

#include <algorithm>

#include "common/status_macros.h"
#include "common/strings.h"
#include "server/vault/vault_crypto.h"

namespace vigo::server::vault {
namespace {

constexpr uint8_t kMagic[6] = {'V', 'I', 'G', 'O', 'S', 'V'};

void PutBe(uint8_t* p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i) {
    p[i] = static_cast<uint8_t>(v & 0xff);
    v >>= 8;
  }
}

uint64_t GetBe(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

std::vector<uint8_t> Aad(std::span<const uint8_t> header, std::string_view path) {
  static constexpr uint8_t kSep[6] = {0, 'p', 'a', 't', 'h', 0};
  std::vector<uint8_t> aad;
  aad.reserve(header.size() + sizeof(kSep) + path.size());
  for (uint8_t b : header) aad.push_back(b);
  for (uint8_t b : kSep) aad.push_back(b);
  for (uint8_t b : AsBytes(path)) aad.push_back(b);
  return aad;
}

absl::Status Corrupt(std::string_view path, std::string_view why) {
  return absl::DataLossError(StrCat("secret '", path, "': ", why));
}

}  // namespace

KeyId KeyIdFor(std::span<const uint8_t> key) {
  auto mac = HmacSha256(key, AsBytes("vigo-vault-key-id-v1"));
  KeyId id;
  std::copy(mac.begin(), mac.begin() + kKeyIdLen, id.begin());
  return id;
}

absl::StatusOr<SecretFileHeader> ParseSecretFileHeader(std::span<const uint8_t> file,
                                                       std::string_view path) {
  if (file.size() < kSecretHeaderLen + kGcmTagLen) {
    if (file.size() >= 6 && !std::equal(kMagic, kMagic + 6, file.begin())) {
      return Corrupt(path, "the file is not a Vigo vault file (bad magic)");
    }
    return Corrupt(path, StrCat("the file is truncated (", file.size(), " bytes)"));
  }
  if (!std::equal(kMagic, kMagic + 6, file.begin())) {
    return Corrupt(path, "the file is not a Vigo vault file (bad magic)");
  }
  SecretFileHeader h;
  h.format_version = static_cast<uint16_t>(GetBe(file.data() + 6, 2));
  if (h.format_version != kSecretFileVersion) {
    return Corrupt(path, StrCat("unsupported vault file format version ", h.format_version,
                                " (this build reads version ", kSecretFileVersion, ")"));
  }
  std::copy(file.begin() + 8, file.begin() + 16, h.key_id.begin());
  h.version = GetBe(file.data() + 16, 8);
  h.ciphertext_len = static_cast<uint32_t>(GetBe(file.data() + 36, 4));
  if (h.ciphertext_len > kMaxValueBytes) {
    return Corrupt(path, "the file's length field is larger than the value limit");
  }
  size_t want = kSecretHeaderLen + h.ciphertext_len + kGcmTagLen;
  if (file.size() < want) {
    return Corrupt(path, StrCat("the file is truncated (", file.size(), " of ", want, " bytes)"));
  }
  if (file.size() > want) {
    return Corrupt(path, StrCat("the file has ", file.size() - want, " trailing bytes"));
  }
  return h;
}

absl::StatusOr<std::vector<uint8_t>> EncryptSecretFile(std::span<const uint8_t> key,
                                                       std::string_view path, uint64_t version,
                                                       const sandbox::SecretBuffer& value) {
  if (value.size() > kMaxValueBytes) {
    return absl::InvalidArgumentError(
        StrCat("value for '", path, "' is ", value.size(), " bytes; the local vault limit is ",
               kMaxValueBytes, " bytes (1 MiB)"));
  }
  if (key.size() != kAesKeyLen) return absl::InternalError("master key has the wrong length");
  std::vector<uint8_t> file(kSecretHeaderLen + value.size() + kGcmTagLen);
  uint8_t* h = file.data();
  std::copy(kMagic, kMagic + 6, h);
  PutBe(h + 6, kSecretFileVersion, 2);
  KeyId id = KeyIdFor(key);
  std::copy(id.begin(), id.end(), h + 8);
  PutBe(h + 16, version, 8);
  VIGO_RETURN_IF_ERROR(RandomBytes(std::span<uint8_t>(h + 24, kGcmNonceLen)));
  PutBe(h + 36, value.size(), 4);
  std::span<const uint8_t> header(h, kSecretHeaderLen);
  std::vector<uint8_t> aad = Aad(header, path);
  std::span<uint8_t> ct(file.data() + kSecretHeaderLen, value.size());
  std::span<uint8_t, kGcmTagLen> tag(file.data() + kSecretHeaderLen + value.size(), kGcmTagLen);
  VIGO_RETURN_IF_ERROR(AesGcmSeal(key, std::span<const uint8_t>(h + 24, kGcmNonceLen), aad,
                                  value.Reveal(), ct, tag));
  return file;
}

absl::StatusOr<sandbox::SecretBuffer> DecryptSecretFile(std::span<const uint8_t> key,
                                                        std::string_view path,
                                                        std::span<const uint8_t> file) {
  VIGO_ASSIGN_OR_RETURN(SecretFileHeader h, ParseSecretFileHeader(file, path));
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer out, sandbox::SecretBuffer::Create(h.ciphertext_len));
  std::vector<uint8_t> aad = Aad(file.subspan(0, kSecretHeaderLen), path);
  absl::Status st = AesGcmOpen(
      key, file.subspan(24, kGcmNonceLen), aad, file.subspan(kSecretHeaderLen, h.ciphertext_len),
      std::span<const uint8_t, kGcmTagLen>(file.data() + kSecretHeaderLen + h.ciphertext_len,
                                           kGcmTagLen),
      out.RevealMutable());
  if (!st.ok()) {
    if (absl::IsDataLoss(st)) {
      return Corrupt(path,
                     "authentication failed: the file was altered, corrupted, or copied from "
                     "another path");
    }
    return st;
  }
  return out;
}

}  // namespace vigo::server::vault
