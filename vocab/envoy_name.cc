#include "vocab/envoy_name.h"

#include <string>

#include "vocab/secret_marker.h"

namespace vigo::vocab {

absl::Status ValidateEnvoyName(std::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("envoy name is empty");
  if (name.size() > kMaxEnvoyNameBytes) {
    return absl::InvalidArgumentError("envoy name is " + std::to_string(name.size()) +
                                      " bytes; the limit is " + std::to_string(kMaxEnvoyNameBytes));
  }
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  if (!alnum(name[0])) {
    return absl::InvalidArgumentError("envoy name must start with a letter or digit");
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    if (!alnum(c) && c != '-' && c != '_' && c != '.') {
      return absl::InvalidArgumentError("envoy name has a character that is not allowed at byte " +
                                        std::to_string(i) + " (allowed: A-Z a-z 0-9 - _ .)");
    }
  }
  if (name.find(kSecretMarkerPrefix) != std::string_view::npos) {
    return absl::InvalidArgumentError("envoy name holds marker text");
  }
  return absl::OkStatus();
}

}  // namespace vigo::vocab
