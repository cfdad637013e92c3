// Decoding views of a text: the text as a reader would see it after undoing
// one layer of escaping, with every decoded byte mapped back to the range of
// original bytes it came from. Shared by the worker's output scrubber
// (agent-worker/scrub.h) and the server's report leak scan
// (server/service/leak_scan.h), so both search the same views.
//
//   VIGO_ASSIGN_OR_RETURN(std::vector<DecodeView> views, BuildDecodeViews(text));
//   for (const DecodeView& view : views) {
//     // search view.Data(); a hit [a, b) of the view is
//     // [view.OriginalBegin(a), view.OriginalEnd(b)) of `text`.
//   }
//
// Views (DecodeViewKind), each decoding every escape it recognises and
// keeping every other byte as is:
//   - kUnwrapLines: CR and LF removed (MIME / PEM base64 wrapped at any
//     width, hex dumps wrapped by `xxd -p`);
//   - kUrl: %XX (any case) and '+' for space;
//   - kCEscape: C / Python byte-string escapes: \xNN, octal \NNN, \n \r \t
//     \\ \' \" \a \b \f \v;
//   - kJsonUtf8: JSON string escapes, \uXXXX as the UTF-8 of the code point,
//     surrogate pairs, \/ \" \\ \b \f \n \r \t (a lone surrogate stays
//     literal);
//   - kJsonLatin1: the same, but \u00XX as the single byte XX (encoders that
//     escape bytes, not code points);
//   - kNoWhitespace: every ASCII whitespace byte removed (characters printed
//     with spaces between them, hex with space separators, the hex column
//     of `xxd` / `hexdump -C` line by line; built only when the text has a
//     space or tab);
//   - kOdChars: `od -c` output decoded back to its bytes (octal offset, then
//     4-column fields: a character, \0 \a \b \f \n \r \t \v, three octal
//     digits, ** for a continuation byte), each byte mapped to its field;
//   - kHexDump: `xxd` and `hexdump -C` lines decoded back to their bytes
//     (the lines of a dump joined), each byte mapped to the range from its
//     hex digits to its character in the ASCII column, so a hit covers both
//     columns; a line counts only when its ASCII column shows exactly its
//     bytes (printable as is, others as '.').
// Not decoded: two stacked escapings (one view undoes one layer), HTML
// entities, quoted-printable, hex separated by ':' or '-', compression,
// anything else.
//
// Failure: RESOURCE_EXHAUSTED when the locked arena cannot hold a view, or
// when the text is longer than 4 GiB - 1 (offsets are 32-bit). Callers must
// fail closed (treat the text as unscanned).
//
// Memory: a decoded view holds at most text.size() bytes in a SecretBuffer
// plus two 32-bit offsets per decoded byte on the heap. BuildDecodeView
// returns std::nullopt (no allocation) when the text contains no character
// the view decodes, so the view would equal the text. An identity view
// borrows the text (which must outlive it).
//
// Thread safety: pure functions; a built view is immutable and may be read
// from several threads (the arena allocator is thread-safe).
//
// SECURITY: a decoded view may contain plaintext that the text held only in
// escaped form, so its bytes live in a SecretBuffer, wiped when the view is
// destroyed. The offsets are positions in the text, not its content. Nothing
// here logs or puts bytes of the text into a Status.
#ifndef VIGO_COMMON_DECODE_VIEWS_H_
#define VIGO_COMMON_DECODE_VIEWS_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"

namespace vigo {

enum class DecodeViewKind {
  kUnwrapLines,
  kUrl,
  kCEscape,
  kJsonUtf8,
  kJsonLatin1,
  kNoWhitespace,
  kOdChars,
  kHexDump
};

// Every kind, in the order BuildDecodeViews builds them.
inline constexpr DecodeViewKind kDecodeViewKinds[] = {
    DecodeViewKind::kUnwrapLines, DecodeViewKind::kUrl,        DecodeViewKind::kCEscape,
    DecodeViewKind::kJsonUtf8,    DecodeViewKind::kJsonLatin1, DecodeViewKind::kNoWhitespace,
    DecodeViewKind::kOdChars,     DecodeViewKind::kHexDump};

class DecodeView {
 public:
  // The text itself (borrowed; byte i maps to [i, i + 1)).
  static DecodeView Identity(std::span<const uint8_t> text);

  DecodeView(DecodeView&&) = default;
  DecodeView& operator=(DecodeView&&) = default;

  std::span<const uint8_t> Data() const {
    return owned_ ? owned_->Reveal().first(len_) : identity_;
  }
  size_t size() const { return owned_ ? len_ : identity_.size(); }
  // True for a decoding: a partial escape cut off at either end of the text
  // stays literal, so the view's edges may hold escape characters.
  bool decoded() const { return decoded_; }

  // First original byte of view byte `a` (a < size()).
  size_t OriginalBegin(size_t a) const {
    if (!owned_) return a;
    return runs_.empty() ? beg_[a] : RunOrigin(a);
  }
  // One past the last original byte of view byte `b - 1` (0 < b <= size()).
  size_t OriginalEnd(size_t b) const {
    if (!owned_) return b;
    return runs_.empty() ? end_[b - 1] : RunOrigin(b - 1) + 1;
  }

 private:
  friend class DecodeViewWriter;
  DecodeView() = default;
  // Original byte of view byte `a` in a view made of copied runs.
  size_t RunOrigin(size_t a) const;

  std::span<const uint8_t> identity_;
  std::optional<sandbox::SecretBuffer> owned_;  // decoded bytes, first len_ used
  size_t len_ = 0;
  // Original range of each decoded byte (first len_ set; not zero-filled),
  // for views that decode escapes.
  std::unique_ptr<uint32_t[]> beg_, end_;
  // For views that only drop bytes (line breaks, whitespace): the view is
  // runs of the text copied as is, each (first view byte, its original
  // byte), sorted. No per-byte offsets: 8 bytes a run instead of 8 a byte.
  std::vector<std::pair<uint32_t, uint32_t>> runs_;
  bool decoded_ = false;
};

// The view of `text` of one kind, or std::nullopt when the text has nothing
// that view would decode (the view would be the text itself).
absl::StatusOr<std::optional<DecodeView>> BuildDecodeView(DecodeViewKind kind,
                                                          std::span<const uint8_t> text);

// The identity view first, then every decoding view that differs from it.
absl::StatusOr<std::vector<DecodeView>> BuildDecodeViews(std::span<const uint8_t> text);

}  // namespace vigo

#endif  // VIGO_COMMON_DECODE_VIEWS_H_
