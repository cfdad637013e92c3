#include "common/utf8_text.h"

#include <cstdint>
#include <cstring>

#include "vocab/hex.h"

namespace vigo {
namespace {

// s[j..] is "x" + two hex digits naming a byte 80-ff: what an escaped byte
// looks like after its backslash.
bool LooksLikeEscapedByte(std::string_view s, size_t j) {
  return j + 2 < s.size() && s[j] == 'x' && vocab::HexDigitValue(s[j + 1]) >= 8 &&
         vocab::HexDigitValue(s[j + 2]) >= 0;
}

}  // namespace

size_t Utf8SequenceLength(std::string_view s, size_t i) {
  if (i >= s.size()) return 0;
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t len = 0;
  uint32_t cp = 0;
  if ((c & 0xe0) == 0xc0) {
    len = 2;
    cp = c & 0x1f;
  } else if ((c & 0xf0) == 0xe0) {
    len = 3;
    cp = c & 0x0f;
  } else if ((c & 0xf8) == 0xf0) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;  // a continuation byte, or 0xf8-0xff
  }
  if (len > s.size() - i) return 0;  // truncated
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  // Overlong forms, surrogates, beyond Unicode.
  if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
      cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  return len;
}

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t len = Utf8SequenceLength(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

namespace {

// Bytes from `i` on that are ASCII and not '\\' (each is its own escape),
// eight at a time.
size_t PlainAsciiRun(std::string_view s, size_t i) {
  constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
  constexpr uint64_t kBackslashes = kOnes * '\\';
  size_t j = i;
  for (; j + 8 <= s.size(); j += 8) {
    uint64_t w;
    std::memcpy(&w, s.data() + j, sizeof w);
    const uint64_t x = w ^ kBackslashes;
    if (((w | ((x - kOnes) & ~x)) & kHigh) != 0) break;  // a high bit, or a zero byte of x
  }
  while (j < s.size() && static_cast<unsigned char>(s[j]) < 0x80 && s[j] != '\\') ++j;
  return j - i;
}

}  // namespace

std::string EscapeInvalidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (const size_t run = PlainAsciiRun(s, i); run > 0) {
      out.append(s.substr(i, run));
      i += run;
      continue;
    }
    if (s[i] == '\\') {
      size_t j = i;
      while (j < s.size() && s[j] == '\\') ++j;
      // Doubled only where the decoder would otherwise see an escaped byte.
      const bool before_escape =
          j < s.size() && (Utf8SequenceLength(s, j) == 0 || LooksLikeEscapedByte(s, j));
      out.append(before_escape ? 2 * (j - i) : j - i, '\\');
      i = j;
      continue;
    }
    const size_t len = Utf8SequenceLength(s, i);
    if (len == 0) {
      const auto b = static_cast<unsigned char>(s[i]);
      out += "\\x";
      out.push_back(vocab::kLowerHexDigits[b >> 4]);
      out.push_back(vocab::kLowerHexDigits[b & 15]);
      ++i;
      continue;
    }
    out.append(s.substr(i, len));
    i += len;
  }
  return out;
}

std::string UnescapeInvalidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (s[i] != '\\') {
      out.push_back(s[i++]);
      continue;
    }
    size_t j = i;
    while (j < s.size() && s[j] == '\\') ++j;
    const size_t m = j - i;
    if (!LooksLikeEscapedByte(s, j)) {
      out.append(m, '\\');
      i = j;
      continue;
    }
    out.append(m / 2, '\\');
    if (m % 2 == 1) {
      out.push_back(
          static_cast<char>(vocab::HexDigitValue(s[j + 1]) * 16 + vocab::HexDigitValue(s[j + 2])));
      i = j + 3;
    } else {
      i = j;  // the literal "xHH" is copied by the next iterations
    }
  }
  return out;
}

std::string ValidUtf8Text(std::string_view s) {
  return IsValidUtf8(s) ? std::string(s) : EscapeInvalidUtf8(s);
}

std::string_view Utf8Tail(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t start = s.size() - max_bytes;
  while (start < s.size() && (static_cast<unsigned char>(s[start]) & 0xc0) == 0x80) ++start;
  return s.substr(start);
}

std::string_view Utf8Head(std::string_view s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  size_t end = max_bytes;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xc0) == 0x80) --end;
  return s.substr(0, end);
}

}  // namespace vigo
