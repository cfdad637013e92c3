#include "common/decode_views.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "vocab/hex.h"

namespace vigo {
namespace {

using Bytes = std::span<const uint8_t>;

absl::Status ArenaFull() {
  return absl::ResourceExhaustedError("decode view: locked arena cannot hold the decoded text");
}

bool Has(Bytes o, uint8_t c) { return std::find(o.begin(), o.end(), c) != o.end(); }

// Single-character escapes as (letter after '\\', decoded byte) pairs.
constexpr std::string_view kJsonSimple("\"\"\\\\//b\bf\fn\nr\rt\t");
constexpr std::string_view kCSimple("n\nr\rt\ta\ab\bf\fv\v\\\\''\"\"");

// The byte `\<d>` stands for under `pairs`, or -1.
int SimpleEscape(uint8_t d, std::string_view pairs) {
  for (size_t k = 0; k + 1 < pairs.size(); k += 2) {
    if (static_cast<uint8_t>(pairs[k]) == d) return static_cast<uint8_t>(pairs[k + 1]);
  }
  return -1;
}

}  // namespace

// Appends decoded bytes with their original ranges. Capacity is the text's
// size: no decoding produces more bytes than it consumes (the longest, a
// 4-byte UTF-8 sequence, comes from a 12-character surrogate pair).
class DecodeViewWriter {
 public:
  // `runs`: the view will be written with PutRun only (a view that drops
  // bytes and keeps the others as is), so no per-byte offsets are kept.
  static absl::StatusOr<DecodeViewWriter> Create(size_t capacity, bool runs = false) {
    if (capacity > std::numeric_limits<uint32_t>::max()) {
      return absl::ResourceExhaustedError("decode view: text longer than 4 GiB - 1");
    }
    auto buf = sandbox::SecretBuffer::Create(std::max<size_t>(capacity, 1));
    if (!buf.ok()) return ArenaFull();
    DecodeViewWriter w;
    w.view_.owned_ = std::move(*buf);
    const size_t n = std::max<size_t>(capacity, 1);
    if (!runs) {
      w.view_.beg_.reset(new uint32_t[n]);  // default-initialised: no 4 bytes a byte of memset
      w.view_.end_.reset(new uint32_t[n]);
    }
    w.data_ = w.view_.owned_->RevealMutable().data();
    w.cap_ = n;
    return w;
  }
  // Appends text[orig, orig + n) as is (a writer created with runs only).
  void PutRun(Bytes text, size_t orig, size_t n) {
    if (n == 0) return;
    if (view_.beg_ || view_.len_ + n > cap_) std::abort();  // a decoder bug, never input
    std::memcpy(data_ + view_.len_, text.data() + orig, n);
    view_.runs_.emplace_back(static_cast<uint32_t>(view_.len_), static_cast<uint32_t>(orig));
    view_.len_ += n;
  }
  // At most `capacity` Puts (every view writes at most one byte per byte of
  // the text it decodes).
  void Put(uint8_t b, size_t from, size_t to) {
    const size_t k = view_.len_++;
    if (k >= cap_ || !view_.beg_) std::abort();  // a decoder bug, never input
    data_[k] = b;
    view_.beg_[k] = static_cast<uint32_t>(from);
    view_.end_[k] = static_cast<uint32_t>(to);
  }
  // UTF-8 of a code point (no surrogates), every byte mapped to [from, to).
  void PutUtf8(uint32_t cp, size_t from, size_t to) {
    if (cp < 0x80) {
      Put(static_cast<uint8_t>(cp), from, to);
    } else if (cp < 0x800) {
      Put(static_cast<uint8_t>(0xC0 | (cp >> 6)), from, to);
      Put(static_cast<uint8_t>(0x80 | (cp & 0x3F)), from, to);
    } else if (cp < 0x10000) {
      Put(static_cast<uint8_t>(0xE0 | (cp >> 12)), from, to);
      Put(static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F)), from, to);
      Put(static_cast<uint8_t>(0x80 | (cp & 0x3F)), from, to);
    } else {
      Put(static_cast<uint8_t>(0xF0 | (cp >> 18)), from, to);
      Put(static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F)), from, to);
      Put(static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F)), from, to);
      Put(static_cast<uint8_t>(0x80 | (cp & 0x3F)), from, to);
    }
  }
  DecodeView Finish(bool decoded) && {
    view_.decoded_ = decoded;
    return std::move(view_);
  }

 private:
  DecodeViewWriter() = default;
  DecodeView view_;
  uint8_t* data_ = nullptr;
  size_t cap_ = 0;
};

namespace {

// The view of `o` that keeps the bytes `keep` accepts, as copied runs.
template <typename Keep>
absl::StatusOr<std::optional<DecodeView>> KeepRuns(Bytes o, Keep keep) {
  auto w = DecodeViewWriter::Create(o.size(), /*runs=*/true);
  if (!w.ok()) return w.status();
  for (size_t i = 0; i < o.size();) {
    while (i < o.size() && !keep(o[i])) ++i;
    const size_t start = i;
    while (i < o.size() && keep(o[i])) ++i;
    w->PutRun(o, start, i - start);
  }
  return std::move(*w).Finish(/*decoded=*/false);
}

// CR and LF removed (wrapped base64 / hex).
absl::StatusOr<std::optional<DecodeView>> UnwrapView(Bytes o) {
  if (!Has(o, '\n') && !Has(o, '\r')) return std::nullopt;
  return KeepRuns(o, [](uint8_t c) { return c != '\n' && c != '\r'; });
}

// %XX (any case) and '+' for space.
absl::StatusOr<std::optional<DecodeView>> UrlView(Bytes o) {
  if (!Has(o, '%') && !Has(o, '+')) return std::nullopt;
  auto w = DecodeViewWriter::Create(o.size());
  if (!w.ok()) return w.status();
  for (size_t i = 0; i < o.size();) {
    if (o[i] == '%' && i + 3 <= o.size() && vocab::HexDigitValue(o[i + 1]) >= 0 &&
        vocab::HexDigitValue(o[i + 2]) >= 0) {
      w->Put(static_cast<uint8_t>(vocab::HexDigitValue(o[i + 1]) * 16 +
                                  vocab::HexDigitValue(o[i + 2])),
             i, i + 3);
      i += 3;
    } else {
      w->Put(o[i] == '+' ? ' ' : o[i], i, i + 1);
      ++i;
    }
  }
  return std::move(*w).Finish(/*decoded=*/true);
}

// The code unit of "\uXXXX" at o[i], or -1.
int32_t UnicodeEscape(Bytes o, size_t i) {
  if (i + 6 > o.size() || o[i] != '\\' || o[i + 1] != 'u') return -1;
  int32_t v = 0;
  for (size_t k = 2; k < 6; ++k) {
    int h = vocab::HexDigitValue(o[i + k]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

// JSON string escapes. `latin1`: \u00XX is the single byte XX; otherwise the
// UTF-8 of the code point.
absl::StatusOr<std::optional<DecodeView>> JsonView(Bytes o, bool latin1) {
  if (!Has(o, '\\')) return std::nullopt;
  if (latin1) {
    // Only differs from the UTF-8 view when some \u00XX has XX >= 0x80.
    bool differs = false;
    for (size_t i = 0; i < o.size() && !differs; ++i) {
      int32_t u = UnicodeEscape(o, i);
      differs = u >= 0x80 && u <= 0xFF;
    }
    if (!differs) return std::nullopt;
  }
  auto w = DecodeViewWriter::Create(o.size());
  if (!w.ok()) return w.status();
  for (size_t i = 0; i < o.size();) {
    if (o[i] == '\\' && i + 1 < o.size()) {
      uint8_t d = o[i + 1];
      const int simple = SimpleEscape(d, kJsonSimple);
      if (simple >= 0) {
        w->Put(static_cast<uint8_t>(simple), i, i + 2);
        i += 2;
        continue;
      }
      int32_t u = UnicodeEscape(o, i);
      if (u >= 0) {
        if (latin1 && u <= 0xFF) {
          w->Put(static_cast<uint8_t>(u), i, i + 6);
          i += 6;
          continue;
        }
        if (u >= 0xD800 && u <= 0xDBFF) {
          int32_t lo = UnicodeEscape(o, i + 6);
          if (lo >= 0xDC00 && lo <= 0xDFFF) {
            uint32_t cp = 0x10000 + ((static_cast<uint32_t>(u) - 0xD800) << 10) +
                          (static_cast<uint32_t>(lo) - 0xDC00);
            w->PutUtf8(cp, i, i + 12);
            i += 12;
            continue;
          }
        } else if (u < 0xDC00 || u > 0xDFFF) {
          w->PutUtf8(static_cast<uint32_t>(u), i, i + 6);
          i += 6;
          continue;
        }
        // A lone surrogate stays literal.
      }
    }
    w->Put(o[i], i, i + 1);
    ++i;
  }
  return std::move(*w).Finish(/*decoded=*/true);
}

// C / Python byte-string escapes: \xNN, octal, single-character escapes.
absl::StatusOr<std::optional<DecodeView>> CEscapeView(Bytes o) {
  if (!Has(o, '\\')) return std::nullopt;
  auto w = DecodeViewWriter::Create(o.size());
  if (!w.ok()) return w.status();
  for (size_t i = 0; i < o.size();) {
    if (o[i] == '\\' && i + 1 < o.size()) {
      uint8_t d = o[i + 1];
      if ((d == 'x' || d == 'X') && i + 4 <= o.size() && vocab::HexDigitValue(o[i + 2]) >= 0 &&
          vocab::HexDigitValue(o[i + 3]) >= 0) {
        w->Put(static_cast<uint8_t>(vocab::HexDigitValue(o[i + 2]) * 16 +
                                    vocab::HexDigitValue(o[i + 3])),
               i, i + 4);
        i += 4;
        continue;
      }
      if (d >= '0' && d <= '7') {
        uint32_t v = 0;
        size_t k = i + 1;
        while (k < o.size() && k < i + 4 && o[k] >= '0' && o[k] <= '7') {
          v = v * 8 + (o[k] - '0');
          ++k;
        }
        if (v <= 0xFF) {
          w->Put(static_cast<uint8_t>(v), i, k);
          i = k;
          continue;
        }
      }
      const int simple = SimpleEscape(d, kCSimple);
      if (simple >= 0) {
        w->Put(static_cast<uint8_t>(simple), i, i + 2);
        i += 2;
        continue;
      }
    }
    w->Put(o[i], i, i + 1);
    ++i;
  }
  return std::move(*w).Finish(/*decoded=*/true);
}

bool IsBlank(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

// Every ASCII whitespace byte removed: characters printed with spaces (or
// tabs) between them, hex with space separators, wrapped dumps.
absl::StatusOr<std::optional<DecodeView>> NoWhitespaceView(Bytes o) {
  if (std::none_of(o.begin(), o.end(), [](uint8_t c) { return c == ' ' || c == '\t'; })) {
    return std::nullopt;  // only line breaks: the same as kUnwrapLines
  }
  return KeepRuns(o, [](uint8_t c) { return !IsBlank(c); });
}

// One `od -c` field starting at o[i] (1-3 spaces, then the character or
// escape); returns the bytes it stands for and advances *i, or false.
bool OdField(Bytes o, size_t end, size_t* i, uint8_t* out, size_t* n) {
  size_t p = *i;
  if (p + 4 <= end && o[p] == ' ' && o[p + 1] == ' ' && o[p + 2] == ' ' && o[p + 3] == ' ') {
    out[0] = ' ';  // the space character: four spaces
    *n = 1;
    *i = p + 4;
    return true;
  }
  size_t lead = 0;
  while (p < end && o[p] == ' ' && lead < 3) ++p, ++lead;
  if (lead == 0) return false;
  size_t q = p;
  while (q < end && o[q] != ' ') ++q;
  const size_t len = q - p;
  *n = 0;
  if (len == 3 && o[p] >= '0' && o[p] <= '3' && o[p + 1] >= '0' && o[p + 1] <= '7' &&
      o[p + 2] >= '0' && o[p + 2] <= '7') {
    out[(*n)++] = static_cast<uint8_t>((o[p] - '0') * 64 + (o[p + 1] - '0') * 8 + (o[p + 2] - '0'));
  } else if (len == 2 && o[p] == '\\') {
    static constexpr std::string_view kOdEscapes("0\0a\ab\bf\fn\nr\rt\tv\v", 16);
    const int b = SimpleEscape(o[p + 1], kOdEscapes);
    if (b < 0) return false;
    out[(*n)++] = static_cast<uint8_t>(b);
  } else if (len == 2 && o[p] == '*' && o[p + 1] == '*') {
    // A continuation byte of a multi-byte character already decoded.
  } else if (len >= 1 && len <= 4 && lead + len <= 4 + 3) {
    // One printable character (a UTF-8 sequence in a UTF-8 locale).
    for (size_t k = 0; k < len; ++k) out[(*n)++] = o[p + k];
  } else {
    return false;
  }
  *i = q;
  return true;
}

// `od -c` output decoded back to the bytes it shows: lines of an octal
// offset of at least 7 digits (the default -Ao) followed by 4-column fields.
// Not decoded (SECURITY.md §4a): `od -An -c`, -Ax/-Ad offsets, BSD
// `hexdump -c`. Each decoded byte
// maps to its field. Lines that are not od lines stay literal.
absl::StatusOr<std::optional<DecodeView>> OdCharsView(Bytes o) {
  // Cheap test first: some line starts with 7 octal digits and a field.
  bool any = false;
  for (size_t i = 0; i + 11 <= o.size() && !any; ++i) {
    if (i > 0 && o[i - 1] != '\n') continue;
    size_t k = i;
    while (k < o.size() && o[k] >= '0' && o[k] <= '7') ++k;
    any = k - i >= 7 && k + 4 <= o.size() && o[k] == ' ';
  }
  if (!any) return std::nullopt;
  auto w = DecodeViewWriter::Create(o.size());
  if (!w.ok()) return w.status();
  for (size_t line = 0; line < o.size();) {
    size_t eol = line;
    while (eol < o.size() && o[eol] != '\n') ++eol;
    size_t i = line;
    while (i < eol && o[i] >= '0' && o[i] <= '7') ++i;
    bool od = i - line >= 7 && i < eol;
    // Decode the fields into a scratch list first: a line that does not
    // parse completely is kept literal.
    struct Field {
      uint8_t bytes[4];
      size_t n, from, to;
    };
    std::vector<Field> fields;
    while (od && i < eol) {
      Field f{};
      f.from = i;
      if (!OdField(o, eol, &i, f.bytes, &f.n)) od = false;
      f.to = i;
      fields.push_back(f);
    }
    if (od && !fields.empty()) {
      for (const Field& f : fields) {
        for (size_t k = 0; k < f.n; ++k) w->Put(f.bytes[k], f.from, f.to);
      }
    } else {
      for (size_t k = line; k < eol; ++k) w->Put(o[k], k, k + 1);
      if (eol < o.size()) w->Put(o[eol], eol, eol + 1);
    }
    line = eol + 1;
  }
  return std::move(*w).Finish(/*decoded=*/true);
}

// One line of `xxd` ("00000010: 4142 4344  ABCD") or `hexdump -C`
// ("00000010  41 42 43 44  |ABCD|"), [line, eol) of `o`: the bytes of its
// hex column, each with the position of its two digits and of its character
// in the ASCII column. False unless the line parses completely and the ASCII
// column shows exactly those bytes (printable as is, others as '.').
struct DumpByte {
  uint8_t b;
  size_t hex, ascii;
};
bool ParseHexDumpLine(Bytes o, size_t line, size_t eol, std::vector<DumpByte>* out) {
  out->clear();
  size_t i = line;
  while (i < eol && vocab::HexDigitValue(o[i]) >= 0) ++i;
  if (i - line < 4 || i >= eol) return false;
  const bool xxd = o[i] == ':';
  if (xxd) {
    ++i;
  } else if (!(i + 2 <= eol && o[i] == ' ' && o[i + 1] == ' ')) {
    return false;
  }
  size_t ascii = 0;  // start of the ASCII column's characters
  for (;;) {
    const size_t gap = i;
    while (i < eol && o[i] == ' ') ++i;
    const size_t spaces = i - gap;
    // xxd: the ASCII column is the line's last out->size() characters, after
    // at least two spaces; it may itself start with (or be all) spaces, so
    // it is found from the end of the line, not after the gap.
    if (xxd && spaces >= 2 && !out->empty() && eol - gap >= out->size() + 2 &&
        i >= eol - out->size()) {
      ascii = eol - out->size();
      break;
    }
    if (i >= eol) return false;  // no ASCII column
    if (!xxd && spaces >= 2 && !out->empty() && o[i] == '|' && eol - i == out->size() + 2 &&
        o[eol - 1] == '|') {
      ascii = i + 1;
      break;
    }
    if (spaces == 0 && !out->empty()) return false;
    size_t j = i;
    while (j < eol && o[j] != ' ') ++j;
    if ((j - i) % 2 != 0) return false;
    for (size_t k = i; k < j; k += 2) {
      const int hi = vocab::HexDigitValue(o[k]), lo = vocab::HexDigitValue(o[k + 1]);
      if (hi < 0 || lo < 0) return false;
      out->push_back({static_cast<uint8_t>(hi * 16 + lo), k, 0});
    }
    i = j;
  }
  for (size_t k = 0; k < out->size(); ++k) {
    DumpByte& d = (*out)[k];
    const uint8_t shown = d.b >= 0x20 && d.b < 0x7f ? d.b : '.';
    if (o[ascii + k] != shown) return false;
    d.ascii = ascii + k;
  }
  return true;
}

// `xxd` / `hexdump -C` output decoded back to its bytes, the lines of a dump
// joined. Each byte maps to the range from its hex digits to its character
// in the ASCII column, so a hit redacts both columns (and whatever of that
// one line lies between them). Lines that are not dump lines stay literal.
absl::StatusOr<std::optional<DecodeView>> HexDumpView(Bytes o) {
  std::vector<DumpByte> bytes;
  bool any = false;
  for (size_t line = 0; line < o.size() && !any;) {
    const uint8_t* nl =
        static_cast<const uint8_t*>(std::memchr(o.data() + line, '\n', o.size() - line));
    const size_t eol = nl == nullptr ? o.size() : static_cast<size_t>(nl - o.data());
    any = vocab::HexDigitValue(o[line]) >= 0 && ParseHexDumpLine(o, line, eol, &bytes);
    line = eol + 1;
  }
  if (!any) return std::nullopt;
  auto w = DecodeViewWriter::Create(o.size());
  if (!w.ok()) return w.status();
  for (size_t line = 0; line < o.size();) {
    const uint8_t* nl =
        static_cast<const uint8_t*>(std::memchr(o.data() + line, '\n', o.size() - line));
    const size_t eol = nl == nullptr ? o.size() : static_cast<size_t>(nl - o.data());
    if (ParseHexDumpLine(o, line, eol, &bytes)) {
      for (const DumpByte& d : bytes) w->Put(d.b, d.hex, d.ascii + 1);
    } else {
      for (size_t k = line; k < eol; ++k) w->Put(o[k], k, k + 1);
      if (eol < o.size()) w->Put(o[eol], eol, eol + 1);
    }
    line = eol + 1;
  }
  return std::move(*w).Finish(/*decoded=*/true);
}

}  // namespace

size_t DecodeView::RunOrigin(size_t a) const {
  // The last run starting at or before view byte a.
  auto it = std::upper_bound(
      runs_.begin(), runs_.end(), a,
      [](size_t x, const std::pair<uint32_t, uint32_t>& r) { return x < r.first; });
  --it;  // runs_[0].first == 0 and a < size(), so `it` is not begin()
  return it->second + (a - it->first);
}

DecodeView DecodeView::Identity(std::span<const uint8_t> text) {
  DecodeView v;
  v.identity_ = text;
  return v;
}

absl::StatusOr<std::optional<DecodeView>> BuildDecodeView(DecodeViewKind kind,
                                                          std::span<const uint8_t> text) {
  switch (kind) {
    case DecodeViewKind::kUnwrapLines:
      return UnwrapView(text);
    case DecodeViewKind::kUrl:
      return UrlView(text);
    case DecodeViewKind::kCEscape:
      return CEscapeView(text);
    case DecodeViewKind::kJsonUtf8:
      return JsonView(text, /*latin1=*/false);
    case DecodeViewKind::kJsonLatin1:
      return JsonView(text, /*latin1=*/true);
    case DecodeViewKind::kNoWhitespace:
      return NoWhitespaceView(text);
    case DecodeViewKind::kOdChars:
      return OdCharsView(text);
    case DecodeViewKind::kHexDump:
      return HexDumpView(text);
  }
  return absl::InvalidArgumentError("decode view: unknown kind");
}

absl::StatusOr<std::vector<DecodeView>> BuildDecodeViews(std::span<const uint8_t> text) {
  std::vector<DecodeView> views;
  views.push_back(DecodeView::Identity(text));
  for (DecodeViewKind kind : kDecodeViewKinds) {
    absl::StatusOr<std::optional<DecodeView>> v = BuildDecodeView(kind, text);
    if (!v.ok()) return v.status();
    if (*v) views.push_back(std::move(**v));
  }
  return views;
}

}  // namespace vigo
