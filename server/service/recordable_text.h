// What the server may record of a text an envoy chose (a denied ref, an
// attestation string): the text itself only when it is known to be harmless,
// else its length and a keyed fingerprint.
//
//   TextFingerprinter fp = *TextFingerprinter::FromKeyMaterial(server_key_pem);
//   std::string r = fp.Recorded("hunter2");   // "<text, 7 bytes, fp=3f2a...>"
//   DeniedRefRecord d = DeniedRefSample(refs, clean, fp);   // audit paths + detail
//
// Why keyed: a plain hash of a short secret is brute-forced offline by anyone
// who reads the audit log or the server log. The fingerprint is the first 8
// bytes of HMAC-SHA256 under a key derived from the server's TLS private key
// (<root>/tls/server.key, 0600, required to serve): no new file in the data
// root, and whoever can read that key can already impersonate the server.
// The same text gives the same fingerprint until the TLS key is replaced, so
// records can be correlated ("the same wrong ref 40 times") without the text.
//
// Thread safety: a TextFingerprinter is immutable after creation.
// SECURITY: the derived key lives in a SecretBuffer; Recorded() never copies
// any byte of the text into its result.
#ifndef VIGO_SERVER_SERVICE_RECORDABLE_TEXT_H_
#define VIGO_SERVER_SERVICE_RECORDABLE_TEXT_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"

namespace vigo::server::service {

// How many denied refs one audit record names at most.
inline constexpr size_t kDeniedRefSample = 8;

class TextFingerprinter {
 public:
  // Derives the fingerprint key from `key_material` (HMAC-SHA256 with a fixed
  // label). INTERNAL when OpenSSL fails; RESOURCE_EXHAUSTED when no locked
  // memory is left.
  static absl::StatusOr<TextFingerprinter> FromKeyMaterial(std::string_view key_material);

  // 16 lowercase hex digits: the first 8 bytes of HMAC-SHA256(key, text).
  std::string Fingerprint(std::string_view text) const;
  // "<text, N bytes, fp=HEX>".
  std::string Recorded(std::string_view text) const;

 private:
  explicit TextFingerprinter(sandbox::SecretBuffer key) : key_(std::move(key)) {}
  sandbox::SecretBuffer key_;
};

// "<invalid path, N bytes>": how a ref that is not a valid secret path
// (common/secret_ref.h) is recorded everywhere (audit, server log, vigocli).
std::string InvalidPathRecord(size_t bytes);

struct DeniedRefRecord {
  std::vector<std::string> sample;  // at most kDeniedRefSample entries
  std::string detail;               // "denied=N named=K withheld=W [fp=...]"
};

// The audit form of the denied refs of one call: a sample of at most
// kDeniedRefSample refs that are valid paths and for which `clean[i]` is true
// (they passed the leak scan); every other ref is only counted (invalid
// paths) or fingerprinted (valid grammar, but matched a value or could not be
// scanned). `clean` has one entry per ref.
DeniedRefRecord DeniedRefSample(const std::vector<std::string>& refs,
                                const std::vector<bool>& clean, const TextFingerprinter& fp);

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_RECORDABLE_TEXT_H_
