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
// How: the distinct windows of the long forms go into an open-addressing
// table keyed by a Rabin–Karp hash modulo 2^61 - 1 (slot from its high bits,
// a 32-bit check from its low bits; 4 bytes a slot, 8 with tags, load at most
// 1/2); the text is hashed with the same rolling hash, one lookup a position.
// A hash collision can only add a hit (over-redaction of one window, odds
// about 2^-32 per position), never lose one: equal windows always hash alike.
//
// Memory: the forms plus a table of 8 to 16 bytes per window of the long
// forms, all locked (SecretBuffer). Add calls the caller's flush at
// batch_bytes() of forms, so the table stays at 2-4 MiB and a 1 MiB value's
// 2 MiB hex form is indexed a piece at a time.
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
  // called whenever the index holds batch_bytes() or more, and must search
  // and Clear() it. Empty forms are ignored.
  absl::Status Add(sandbox::SecretBuffer form, uint32_t tag, const Flush& flush);
  // The size at which Add flushes: 256 KiB with tags, 512 KiB without
  // (a 4 MiB or 2 MiB table at load 1/2).
  size_t batch_bytes() const { return keep_tags_ ? size_t{256} << 10 : size_t{512} << 10; }
  size_t bytes() const { return bytes_; }
  bool empty() const { return long_forms_.empty() && short_forms_.empty(); }
  size_t window() const { return window_; }

  absl::Status Search(std::span<const uint8_t> data, const OnHit& on_hit);
  void Clear();

 private:
  absl::Status Build();
  void AddPiece(sandbox::SecretBuffer form, uint32_t tag);

  size_t window_;
  bool keep_tags_;
  std::vector<sandbox::SecretBuffer> long_forms_;
  std::vector<uint32_t> long_tags_;
  size_t windows_ = 0;  // windows of the long forms, duplicates included
  FormBatch short_forms_;
  size_t bytes_ = 0;
  bool built_ = false;
  std::optional<sandbox::SecretBuffer> table_;
  uint64_t slot_bits_ = 0;
};

}  // namespace vigo

#endif  // VIGO_COMMON_WINDOW_INDEX_H_
