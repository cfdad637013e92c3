// References (`secret:<path>`) and markers (`__VIGO_SECRET__<path>__END__`).
//
//   VIGO_RETURN_IF_ERROR(ValidateSecretPath("webapp/db_pw"));
//   std::string m = MarkerFor("webapp/db_pw");   // "__VIGO_SECRET__webapp/db_pw__END__"
//   VIGO_ASSIGN_OR_RETURN(auto refs, FindReferences(content, RefScan::kEmbedded));
//   VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer out, SubstituteMarkers(text, lookup));
//
// Path grammar (CONTRACT §3): 1–256 bytes; segments separated by '/', each
// [A-Za-z0-9_.-]+, none equal to "." or ".."; no leading or trailing '/'.
// One addition to the contract: a path may not contain "__" (two
// underscores). The marker delimiters are made of '_' and letters, so with
// "__" allowed a path like "a__END__b" would give a marker that decodes to a
// different path ("a"). Without it every marker decodes to exactly one path.
//
// Markers: FindMarkers reports every occurrence of "__VIGO_SECRET__"; each
// must be followed by a valid path and "__END__", and no occurrence may start
// inside the previous marker (overlapping readings are an error, never a
// guess).
//
// Embedded references (file `content`): "secret:" starts a reference when it is
// at the start of the string or follows a character that cannot be part of a
// path or a word ([A-Za-z0-9_./-]); the path then runs to the first character
// not allowed in a path. "secret:" followed by no path character is ordinary
// text (so YAML like `client_secret: x` is not a reference). A reference whose
// path is present but invalid (e.g. `secret:a//b`, `secret:../x`) is an error.
//
// Error messages name the problem and the offending path (a path is not a
// secret); they never contain surrounding text from the value.
#ifndef VIGO_COMMON_SECRET_REF_H_
#define VIGO_COMMON_SECRET_REF_H_

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"
#include "vocab/secret_marker.h"

namespace vigo {

inline constexpr std::string_view kRefPrefix = "secret:";
inline constexpr std::string_view kMarkerPrefix = vocab::kSecretMarkerPrefix;
inline constexpr std::string_view kMarkerSuffix = vocab::kSecretMarkerSuffix;
inline constexpr size_t kMaxSecretPathLen = 256;

// OK, or INVALID_ARGUMENT naming the problem ("secret path is empty",
// "secret path segment '..' is not allowed", "secret path has a character
// that is not allowed at byte 3", "secret path is 257 bytes; the limit is 256",
// "secret path has '__' (two underscores) at byte 1; ...", ...), followed by
// the path quoted with non-printable bytes escaped.
absl::Status ValidateSecretPath(std::string_view path);

// The marker for a valid path. Precondition: ValidateSecretPath(path).ok().
std::string MarkerFor(std::string_view path);

enum class RefScan {
  kWholeValue,  // the value is a reference only if it is exactly "secret:<path>"
  kEmbedded,    // references may appear anywhere inside the string
};

struct RefMatch {
  size_t offset = 0;  // of "secret:"
  size_t length = 0;  // "secret:" + path
  std::string path;
};

// Every reference in `value`, in order. INVALID_ARGUMENT on a malformed one.
absl::StatusOr<std::vector<RefMatch>> FindReferences(std::string_view value, RefScan mode);

// `value` with every reference replaced by its marker.
absl::StatusOr<std::string> ReplaceReferencesWithMarkers(std::string_view value, RefScan mode);

struct MarkerMatch {
  size_t offset = 0;
  size_t length = 0;
  std::string path;
};

// Every marker in `text`, in order. INVALID_ARGUMENT when text contains the
// marker prefix without a well-formed marker after it.
absl::StatusOr<std::vector<MarkerMatch>> FindMarkers(std::string_view text);

// True when `text` contains the marker prefix anywhere (used to refuse
// forged markers in config input).
bool ContainsMarkerText(std::string_view text);

// Looks up the value of a path. Returns a borrowed buffer that must outlive
// the SubstituteMarkers call, or an error (which SubstituteMarkers returns).
using SecretLookup =
    std::function<absl::StatusOr<const sandbox::SecretBuffer*>(std::string_view path)>;

// `text` with every marker replaced by its value, built directly in a
// SecretBuffer (two passes: size, then fill; no intermediate std::string).
absl::StatusOr<sandbox::SecretBuffer> SubstituteMarkers(std::string_view text,
                                                        const SecretLookup& lookup);

}  // namespace vigo

#endif  // VIGO_COMMON_SECRET_REF_H_
