// The encoded forms of a secret value: the one definition of "what a value
// looks like when a command prints it", shared by the worker's output
// scrubber (agent-worker/scrub.h) and the server's report leak scan
// (server/service/leak_scan.h), so the two can never disagree.
//
//   VIGO_RETURN_IF_ERROR(ForEachForm(value.Reveal(), [&](FormKind kind, SecretBuffer form) {
//     index.Add(std::move(form), Tag(path, kind));
//     return absl::OkStatus();
//   }));
//
// Forms (FormKind), each a SecretBuffer:
//   - kRaw: the bytes themselves;
//   - kReversed: the bytes in reverse order (`rev`);
//   - kNoWhitespace: the bytes without ASCII whitespace, only for a value
//     that has some (matched against the whitespace-free decoding view, this
//     catches a value printed with its characters separated by spaces);
//   - kHexLower / kHexUpper: two hex digits per byte;
//   - kBase64 / kBase64Url (RFC 4648 §4 and §5) and kBase32 (§6, upper case):
//     the value as it appears inside a longer encoded stream, at every byte
//     alignment a stream can give it (3 for base64, 5 for base32). A form
//     keeps only the characters determined by the value's bits; where the
//     value's bytes could end the stream, a second form also keeps the last,
//     zero-padded character. Aligned forms (the value starts a group) are
//     always emitted; shifted ones only when they keep at least
//     kMinShiftedFormChars characters (fewer would match by chance).
// A slice or line of a value is found through these forms by the window
// index (common/window_index.h): hex of a slice is a substring of the hex
// form, base64/base32 of a slice a substring of the form of the alignment
// that makes the slice start a group.
//
// Not forms (out of reach, SECURITY.md §4a): compression, encryption, any
// other transformation; lower-case base32; HTML entities, quoted-printable.
//
// Failure: RESOURCE_EXHAUSTED when the locked arena cannot hold a form, or
// whatever status the sink returns (ForEachForm stops at the first error).
// Callers fail closed.
//
// Thread safety: a pure function.
//
// SECURITY: every form is built directly in a SecretBuffer and handed to the
// sink, which owns it; nothing is logged or put into a Status.
#ifndef VIGO_COMMON_SECRET_FORMS_H_
#define VIGO_COMMON_SECRET_FORMS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string_view>

#include "absl/status/status.h"
#include "sandbox/secret_buffer.h"

namespace vigo {

enum class FormKind : uint8_t {
  kRaw,
  kReversed,
  kNoWhitespace,
  kHexLower,
  kHexUpper,
  kBase64,
  kBase64Url,
  kBase32,
};
inline constexpr size_t kFormKindCount = 8;

// "raw", "reversed", "no-whitespace", "hex", "HEX", "base64", "base64url",
// "base32": the names audit records use.
std::string_view FormKindName(FormKind kind);

inline constexpr size_t kMinShiftedFormChars = 6;

using FormSink = std::function<absl::Status(FormKind, sandbox::SecretBuffer)>;

// Every form of `value` (none for an empty value), in FormKind order.
absl::Status ForEachForm(std::span<const uint8_t> value, const FormSink& sink);

}  // namespace vigo

#endif  // VIGO_COMMON_SECRET_FORMS_H_
