// Scrubbing of command output before it leaves the worker.
//
//   std::string safe = ScrubOutput(output.Reveal(), values.Resolved());
//
// What is redacted (each maximal redacted run becomes one "[REDACTED]"):
//   - every occurrence of a form of a value (common/secret_forms.h: raw,
//     reversed, without whitespace, lower/upper hex, base64 in both alphabets
//     and base32, at every byte alignment inside a longer stream);
//   - every run of at least `window` bytes (default 12, never below 8; the
//     bundle's redaction_window, from server.yaml leak_scan.window) of
//     any form of a value (common/window_index.h): a slice, a line, the
//     first and last bytes of a value, in any of those forms;
//   - the same forms seen through the decoding views of the output
//     (common/decode_views.h, shared with the server's report leak scan),
//     so encoders that escape any subset of characters are covered:
//       * URL / form decoding: %XX (any case) and '+' for space;
//       * JSON string escapes: \uXXXX (as the UTF-8 of the code point, and
//         \u00XX also as the single byte XX), surrogate pairs, \/ \" \\ \b \f
//         \n \r \t;
//       * C / Python escapes: \xNN, octal \NNN, \n \r \t \\ \' \" \a \b \f \v;
//       * line unwrapping: CR and LF removed (MIME / PEM base64 wrapped at
//         any width, hex dumps wrapped by `xxd -p`);
//       * whitespace removed (spaced characters, spaced hex), `od -c`, and
//         `xxd` / `hexdump -C` dumps (both columns);
//   - a fragment of at least 4 bytes of a form cut off at either end of the
//     output (the capture keeps only a tail, and a command may be killed
//     mid-write), also when the cut falls inside an escape sequence;
//   - the whole output when it lies entirely inside a form longer than
//     itself (a value longer than the kept tail: only an interior slice of it
//     is visible, with no edge to anchor on).
//
// Fail closed: when the locked arena cannot hold a form, a decoding view or
// an index, nothing of the output is returned but kWithheld.
//
// Cost: linear-ish in the output: each view is probed once per batch of
// forms (720 KiB of forms per batch, common/window_index.h: one gram-filter
// lookup every window - 7 bytes; the exact window table is built only when
// a probe hits); edge checks compare a length only when its end bytes agree
// (a rolling hash past 8 such lengths); the interior check is one memmem per
// view and form longer than it. 1 MiB x 1,000 values: docs/BENCHMARKS.md.
// Memory: the views (each at most the output's size; views that decode keep
// two 32-bit offsets a byte on the heap, views that only drop bytes one
// 16-byte entry per copied run) plus one batch of forms and its tables (at
// most 8 MiB, locked) plus one long form at a time.
//
// Not covered (documented in SECURITY.md §4a): other transformations a
// command may apply (compression, encryption, HTML entities,
// quoted-printable, hex separated by ':' or '-'), two stacked escapings (a Python
// \xNN repr inside a JSON string), an encoding whose first escape is broken
// by the byte before it (a stray '\' before "\u00XX"), and fragments of
// fewer than 4 bytes at the edges.
//
// Thread safety: a pure function; concurrent calls are fine (the arena
// allocator is thread-safe).
//
// SECURITY: forms, decoded views and the prefix index live in SecretBuffers;
// only bytes outside every redacted run are copied into the returned string.
// Empty values are ignored.
#ifndef VIGO_AGENT_WORKER_SCRUB_H_
#define VIGO_AGENT_WORKER_SCRUB_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/window_index.h"
#include "sandbox/secret_buffer.h"

namespace vigo::worker {

inline constexpr std::string_view kRedacted = "[REDACTED]";
inline constexpr std::string_view kWithheld =
    "[REDACTED: output withheld, it could not be scrubbed within the memory limit]";

// `redactions`, when given, receives the number of redacted runs (0 when
// nothing was redacted or when the output was withheld).
std::string ScrubOutput(std::span<const uint8_t> output,
                        const std::vector<const sandbox::SecretBuffer*>& values,
                        size_t* redactions = nullptr, size_t window = kDefaultRedactionWindow);

// ScrubOutput, then the result made valid UTF-8 text for the report
// (common/utf8_text.h EscapeInvalidUtf8: each byte that is not UTF-8 becomes
// \xHH, lossless), then scrubbed once more when the escaping changed
// anything, since the escaped spelling of bytes is a new text a value might
// match. Always valid UTF-8: a command's Latin-1 or binary output cannot make
// the worker's report unparsable. Same failure behaviour as ScrubOutput.
// `redactions` counts the runs of both passes.
std::string ScrubOutputAsText(std::span<const uint8_t> output,
                              const std::vector<const sandbox::SecretBuffer*>& values,
                              size_t* redactions = nullptr,
                              size_t window = kDefaultRedactionWindow);

}  // namespace vigo::worker

#endif  // VIGO_AGENT_WORKER_SCRUB_H_
