// Untrusted bytes as valid UTF-8 text, for proto3 `string` fields.
//
//   std::string text = EscapeInvalidUtf8(scrubbed_output);   // lossless, valid UTF-8
//   std::string same = UnescapeInvalidUtf8(text);             // == scrubbed_output
//   std::string tail = Utf8Tail(text, 1024);                  // never cuts a character
//
// Why: a proto3 `string` field that holds bytes which are not well-formed
// UTF-8 makes the receiver's ParseFromArray fail, so a command that prints
// one Latin-1 or binary byte must not have it copied into such a field. The
// worker escapes command output once, after scrubbing (agent-worker/apply.cc);
// the broker makes every text field of the worker's report valid the same way
// (agent-broker/worker_link.cc); the server keeps stored report texts valid
// (server/service/agent_service.cc). One definition here, used by all three.
//
// The escaping (EscapeInvalidUtf8):
//   - every byte that is not part of a well-formed UTF-8 sequence (overlong
//     forms, surrogates, code points above U+10FFFF and truncated sequences
//     included) becomes the four characters \xHH (lower-case hex; HH is
//     always 80-ff, since ASCII bytes are always well-formed);
//   - a run of backslashes is doubled only when it stands right before an
//     escaped byte or before a literal "x" + two hex digits whose value is
//     80-ff (the text that would otherwise read as an escaped byte); every
//     other backslash is kept as is, so ordinary output (JSON "\n", "\u00e9",
//     Windows paths) reads unchanged and the decoding views of the leak scan
//     (common/decode_views.h) still see its escapes;
//   - everything else (well-formed UTF-8, NUL and other control characters
//     included: they are valid in a proto3 string) is copied.
// The mapping is injective and UnescapeInvalidUtf8 is its inverse: a run of
// m backslashes followed by x + hex 80-ff stands for m/2 backslashes and the
// literal text when m is even, for (m-1)/2 backslashes and the byte when m is
// odd; anything else is literal. Text that is valid UTF-8 and holds no such
// run is its own escaping. The C-escape decoding view (\\ and \xNN) of the
// escaped text gives back the original bytes around every escaped byte, so
// the server's leak scan still finds a raw value that holds invalid bytes.
//
// Thread safety: pure functions.
// SECURITY: these copy bytes; callers scrub secrets first (an escape can
// only be computed from the bytes it describes, it hides nothing).
#ifndef VIGO_COMMON_UTF8_TEXT_H_
#define VIGO_COMMON_UTF8_TEXT_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace vigo {

// Length of the well-formed UTF-8 sequence starting at s[i] (1-4), or 0 when
// the byte at s[i] does not start one. NUL counts as well-formed (length 1).
size_t Utf8SequenceLength(std::string_view s, size_t i);

// True when every byte of `s` belongs to a well-formed UTF-8 sequence.
bool IsValidUtf8(std::string_view s);

// The lossless escaping described above; always valid UTF-8, at most 4x the
// input's size.
std::string EscapeInvalidUtf8(std::string_view s);

// The inverse of EscapeInvalidUtf8 (any input accepted; bytes that are not
// part of an escape are copied).
std::string UnescapeInvalidUtf8(std::string_view s);

// `s` unchanged when it is valid UTF-8, else EscapeInvalidUtf8(s): for text
// fields whose producer promised valid UTF-8 (an honest peer's text passes
// through untouched, a broken one cannot break the next parser).
std::string ValidUtf8Text(std::string_view s);

// The longest suffix of `s` of at most `max_bytes` bytes that does not start
// inside a multi-byte sequence (for valid UTF-8 input, valid UTF-8 out).
std::string_view Utf8Tail(std::string_view s, size_t max_bytes);
// The longest prefix likewise (does not end inside a multi-byte sequence).
std::string_view Utf8Head(std::string_view s, size_t max_bytes);

// Views a text as bytes (for the scanners, which take bytes) without
// reinterpret_cast.
inline std::span<const uint8_t> TextBytes(std::string_view s) {
  return {static_cast<const uint8_t*>(static_cast<const void*>(s.data())), s.size()};
}

}  // namespace vigo

#endif  // VIGO_COMMON_UTF8_TEXT_H_
