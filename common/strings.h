// StrCat for std::string_view. Debian's Abseil is built with its own
// absl::string_view (ABSL_OPTION_USE_STD_STRING_VIEW 0), so absl::StrCat does
// not accept std::string_view; use vigo::StrCat everywhere instead, and pass
// std::string (not std::string_view) to absl::Status constructors.
// Header-only, so the sandbox library may use it without a link dependency.
#ifndef VIGO_COMMON_STRINGS_H_
#define VIGO_COMMON_STRINGS_H_

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/string_view.h"

namespace vigo {
namespace strings_internal {

inline void Append(std::string* out, std::string_view s) { out->append(s); }
inline void Append(std::string* out, const char* s) { out->append(s ? s : ""); }
inline void Append(std::string* out, const std::string& s) { out->append(s); }
inline void Append(std::string* out, char c) { out->push_back(c); }
#if !defined(ABSL_USES_STD_STRING_VIEW)
// absl::Status::message() returns absl::string_view in Debian's build.
inline void Append(std::string* out, absl::string_view s) { out->append(s.data(), s.size()); }
#endif
template <typename T,
          typename = std::enable_if_t<std::is_integral_v<T> && !std::is_same_v<T, char> &&
                                      !std::is_same_v<T, bool>>>
inline void Append(std::string* out, T v) {
  out->append(std::to_string(v));
}
inline void Append(std::string* out, bool b) { out->append(b ? "true" : "false"); }

}  // namespace strings_internal

template <typename... Args>
std::string StrCat(const Args&... args) {
  std::string out;
  (strings_internal::Append(&out, args), ...);
  return out;
}

template <typename... Args>
void StrAppend(std::string* out, const Args&... args) {
  (strings_internal::Append(out, args), ...);
}

}  // namespace vigo

#endif  // VIGO_COMMON_STRINGS_H_
