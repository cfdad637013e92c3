#include "server/service/recordable_text.h"

#include <openssl/hmac.h>

#include <cstdint>

#include "common/secret_ref.h"
#include "common/strings.h"
#include "vocab/hex.h"

namespace vigo::server::service {
namespace {

constexpr std::string_view kLabel = "vigo text fingerprint key v1";

}  // namespace

absl::StatusOr<TextFingerprinter> TextFingerprinter::FromKeyMaterial(
    std::string_view key_material) {
  auto key = sandbox::SecretBuffer::Create(32);
  if (!key.ok()) return key.status();
  unsigned int len = 0;
  // The label is the message and the key material the HMAC key: an HMAC is a
  // PRF in its key, so the derived key is independent of the TLS use.
  if (HMAC(EVP_sha256(), key_material.data(), static_cast<int>(key_material.size()),
           static_cast<const unsigned char*>(static_cast<const void*>(kLabel.data())),
           kLabel.size(), key->RevealMutable().data(), &len) == nullptr ||
      len != 32) {
    return absl::InternalError("HMAC-SHA256 failed deriving the text fingerprint key");
  }
  return TextFingerprinter(std::move(*key));
}

std::string TextFingerprinter::Fingerprint(std::string_view text) const {
  unsigned char mac[32];
  unsigned int len = 0;
  std::span<const uint8_t> k = key_.Reveal();
  if (HMAC(EVP_sha256(), k.data(), static_cast<int>(k.size()),
           static_cast<const unsigned char*>(static_cast<const void*>(text.data())), text.size(),
           mac, &len) == nullptr) {
    return "unavailable";
  }
  return vocab::Hex(std::span<const uint8_t>(mac, 8));
}

std::string TextFingerprinter::Recorded(std::string_view text) const {
  return StrCat("<text, ", text.size(), " bytes, fp=", Fingerprint(text), ">");
}

std::string InvalidPathRecord(size_t bytes) { return StrCat("<invalid path, ", bytes, " bytes>"); }

DeniedRefRecord DeniedRefSample(const std::vector<std::string>& refs,
                                const std::vector<bool>& clean, const TextFingerprinter& fp) {
  DeniedRefRecord out;
  size_t named = 0, invalid = 0, held = 0;
  std::string held_fps;
  for (size_t i = 0; i < refs.size(); ++i) {
    if (!ValidateSecretPath(refs[i]).ok()) {
      ++invalid;
      if (out.sample.size() < kDeniedRefSample) {
        out.sample.push_back(InvalidPathRecord(refs[i].size()));
      }
    } else if (i >= clean.size() || !clean[i]) {
      // Valid grammar but it matched a value (or could not be scanned): only
      // its length and fingerprint, in the detail, never in `paths`.
      if (++held <= kDeniedRefSample) StrAppend(&held_fps, " ", fp.Recorded(refs[i]));
    } else {
      ++named;
      if (out.sample.size() < kDeniedRefSample) out.sample.push_back(refs[i]);
    }
  }
  out.detail = StrCat("denied=", refs.size(), " named=", named, " invalid=", invalid,
                      " withheld=", held, held_fps);
  return out;
}

}  // namespace vigo::server::service
