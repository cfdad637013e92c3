// The marker that stands for a secret in a bundle, stated once: the server
// writes `__VIGO_SECRET__<path>__END__` where a `.vgo` value says
// `secret:<path>`, the agent finds and replaces it at apply time, and no
// other text (an envoy name, a path) may contain the prefix
// (common/secret_ref.h parses markers).
//
// Header-only constants.
#ifndef VIGO_VOCAB_SECRET_MARKER_H_
#define VIGO_VOCAB_SECRET_MARKER_H_

#include <string_view>

namespace vigo::vocab {

inline constexpr std::string_view kSecretMarkerPrefix = "__VIGO_SECRET__";
inline constexpr std::string_view kSecretMarkerSuffix = "__END__";

}  // namespace vigo::vocab

#endif  // VIGO_VOCAB_SECRET_MARKER_H_
