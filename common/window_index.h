// WindowIndex: finds, in one pass over a text, every run of at least
// `window` consecutive bytes that also occurs in one of many byte strings
// (the encoded forms of secret values, common/secret_forms.h). This is what
// makes a slice, a line or the first and last bytes of a value visible to
// the scrubber and the leak scan, not only the whole value.
//
//   WindowIndex index(12, /*keep_tags=*/true);
//   VIGO_RETURN_IF_ERROR(index.Add(std::move(form), tag, flush));  // SecretBuffer forms
//   VIGO_RETURN_IF_ERROR(index.Search(text, [&](uint32_t tag, size_t a, size_t b) {
//     // [a, b) of `text` is a whole short form or a window of a long one
//   }));
//   index.Clear();                                   // wipes forms and table
//
// What is reported:
//   - every window [i, i + window) of the text that equals a window of a
//     form at least `window` bytes long (so a run of L >= window matching
//     bytes is reported as its L - window + 1 overlapping windows; their
//     union is the run);
//   - every whole occurrence of a form shorter than the window
//     (common/form_index.h), overlapping ones included.
// With keep_tags the tag of a window is that of the first form added that
// holds it; without, windows report kUntagged (the scrubber needs only
// positions, and the table is half the size).
//
// How, in two stages:
//   1. a filter: every 8-byte gram of the long forms goes into an
//      open-addressing table of 32-bit checks (one 64-bit load and a
//      multiply-xorshift mix a gram, load at most 3/4). The text is probed
//      only at every s-th position, s = window - 7: any window of the text
//      holds the gram at the one probed position in its first s bytes, so a
//      window of a form always passes the filter (no false negatives);
//   2. on a filter hit at p, the windows that hold that gram (starting in
//      [p - s + 1, p]) are hashed with a Rabin–Karp hash modulo 2^61 - 1 and
//      looked up in a table of the distinct windows of the long forms (slot
//      from its high bits, a 32-bit check from its low bits, plus a tag with
//      keep_tags), built the first time a hit needs it.
// Clean text costs 1/s lookups a byte in a table it never builds the second
// stage for (12-byte windows: one probe every 5 bytes). A hash collision can
// only add a hit (over-redaction of one window, odds about 2^-32 per
// window), never lose one: equal windows always hash alike.
//
// Memory: the forms, the filter (6 to 11 bytes per gram) and, once a hit
// needs it, the window table (6 to 11 bytes per window, twice that with
// tags), all locked (SecretBuffer). Add calls the caller's flush at
// batch_bytes() of forms, so the tables stay under 8 MiB together and a 1 MiB
// value's 2 MiB hex form is indexed a piece at a time.
//
// Failure: RESOURCE_EXHAUSTED when the locked arena cannot hold the table;
// callers fail closed.
//
// Thread safety: none; one index per scan.
//
// SECURITY: forms and table live in SecretBuffers, wiped by Clear() or
// destruction. The table holds 32-bit checks of hashes of the forms'
// windows: as sensitive as the forms, and kept with them. Hits are reported
// by position and tag, never by content. The rolling hash uses a fixed base:
// a text crafted to collide can only make more of itself redacted.
#ifndef VIGO_COMMON_WINDOW_INDEX_H_
#define VIGO_COMMON_WINDOW_INDEX_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "common/form_index.h"
#include "sandbox/secret_buffer.h"

namespace vigo {

// The redaction window: default, and the floor no configuration can go
// below (shorter windows would redact ordinary words).
inline constexpr size_t kDefaultRedactionWindow = 12;
inline constexpr size_t kMinRedactionWindow = 8;
inline constexpr size_t kMaxRedactionWindow = 4096;

class WindowIndex {
 public:
  using OnHit = std::function<void(uint32_t tag, size_t begin, size_t end)>;
  using Flush = std::function<absl::Status()>;
  static constexpr uint32_t kUntagged = 0xffffffffu;
  // A tag with this bit set: the window is also in a form with another tag
  // (the low bits are the first tag added). Callers naming a hit should
  // prefer windows without it.
  static constexpr uint32_t kSharedTag = 0x80000000u;

  // `window` is clamped to [kMinRedactionWindow, kMaxRedactionWindow].
  explicit WindowIndex(size_t window, bool keep_tags = false);

  // Adds `form` (tags must be below kSharedTag). A form longer than
  // batch_bytes() is added in overlapping pieces (window - 1 bytes of
  // overlap, so every window of the form is in some piece); `flush` is
  // called before a form or piece would take the index past batch_bytes(),
  // and must search and Clear() it. The caller flushes what is left at the
  // end. Empty forms are ignored.
  absl::Status Add(sandbox::SecretBuffer form, uint32_t tag, const Flush& flush);
  // The most bytes of forms the index holds: 240 KiB with tags, 720 KiB
  // without, so that each table has at most 2^19 or 2^20 slots (4 MiB) at
  // load 3/4.
  size_t batch_bytes() const { return keep_tags_ ? size_t{240} << 10 : size_t{720} << 10; }
  size_t bytes() const { return bytes_; }
  bool empty() const { return long_forms_.empty() && short_forms_.empty(); }
  size_t window() const { return window_; }

  absl::Status Search(std::span<const uint8_t> data, const OnHit& on_hit);
  void Clear();

 private:
  // The filter's key: an 8-byte gram, one 64-bit load.
  static constexpr size_t kGram = 8;
  static_assert(kMinRedactionWindow >= kGram);

  absl::Status BuildFilter();
  absl::Status BuildTable();
  // Looks up the windows starting at lo..hi (inclusive) of `data`.
  absl::Status SearchWindows(std::span<const uint8_t> data, size_t lo, size_t hi,
                             const OnHit& on_hit);
  void AddPiece(sandbox::SecretBuffer form, uint32_t tag);

  size_t window_;
  bool keep_tags_;
  std::vector<sandbox::SecretBuffer> long_forms_;
  std::vector<uint32_t> long_tags_;
  size_t windows_ = 0;  // windows of the long forms, duplicates included
  size_t grams_ = 0;    // grams of the long forms, duplicates included
  FormBatch short_forms_;
  size_t bytes_ = 0;
  bool built_ = false;  // the filter is built for the forms added
  std::optional<sandbox::SecretBuffer> filter_;
  uint64_t filter_bits_ = 0;
  std::optional<sandbox::SecretBuffer> table_;  // built on the first filter hit
  uint64_t slot_bits_ = 0;
};

}  // namespace vigo

#endif  // VIGO_COMMON_WINDOW_INDEX_H_
