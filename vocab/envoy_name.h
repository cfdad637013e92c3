// The envoy-name grammar, stated once (issue 16: the stacks compiler took
// 1-253 bytes, the PKI 1-64, so envoys.vgo and `bundle show` accepted names
// that could never get a certificate). One grammar for the certificate's
// CN, the stacks' envoy names, the CLI and the caller identity:
// [A-Za-z0-9._-], 1-64 bytes (the X.509 upper bound of a common name),
// starting with a letter or digit, and never holding the secret marker's
// prefix (a name is substituted into bundles).
//
//   if (absl::Status s = vocab::ValidateEnvoyName(name); !s.ok()) return s;
//
// Thread safety: a plain function.
#ifndef VIGO_VOCAB_ENVOY_NAME_H_
#define VIGO_VOCAB_ENVOY_NAME_H_

#include <cstddef>
#include <string_view>

#include "absl/status/status.h"

namespace vigo::vocab {

inline constexpr size_t kMaxEnvoyNameBytes = 64;

// OK, or INVALID_ARGUMENT naming the problem (the byte offset of a bad
// character, never the name itself: it may be text an envoy chose).
absl::Status ValidateEnvoyName(std::string_view name);

}  // namespace vigo::vocab

#endif  // VIGO_VOCAB_ENVOY_NAME_H_
