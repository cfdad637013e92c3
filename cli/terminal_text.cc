#include "cli/terminal_text.h"

#include <cstdint>
#include <cstdio>

namespace vigo::cli {
namespace {

// The length of the well-formed UTF-8 sequence starting at s[i] (Unicode
// Table 3-7: no overlong forms, no surrogates, nothing above U+10FFFF), or 0
// when s[i] does not start one. Sets *cp to its code point.
size_t WellFormedLength(std::string_view s, size_t i, uint32_t* cp) {
  auto at = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
  const uint8_t b0 = at(0);
  size_t len = 0;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;  // overlong
    if (b0 == 0xED) hi = 0x9F;  // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;  // overlong
    if (b0 == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  if (at(1) < lo || at(1) > hi) return 0;
  for (size_t k = 2; k < len; ++k) {
    if (at(k) < 0x80 || at(k) > 0xBF) return 0;
  }
  uint32_t v = b0 & (0xFF >> (len + 1));
  for (size_t k = 1; k < len; ++k) v = (v << 6) | (at(k) & 0x3F);
  *cp = v;
  return len;
}

// Code points a terminal does not show as themselves: C1 controls, line and
// paragraph separators, and invisible or bidirectional formatting characters
// (they can hide text or reorder what the operator reads).
bool UnsafeCodePoint(uint32_t cp) {
  return (cp >= 0x80 && cp <= 0x9F) || cp == 0xAD || cp == 0x61C || cp == 0x180E ||
         (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x2028 && cp <= 0x202E) ||
         (cp >= 0x2060 && cp <= 0x206F) || cp == 0xFEFF || (cp >= 0xFFF9 && cp <= 0xFFFB) ||
         (cp >= 0xE0000 && cp <= 0xE007F);
}

void AppendByteEscape(std::string* out, uint8_t b) {
  char buf[8];
  std::snprintf(buf, sizeof(buf), "\\x%02X", b);
  out->append(buf);
}

}  // namespace

std::string TerminalText(std::string_view untrusted) {
  std::string out;
  out.reserve(untrusted.size());
  size_t i = 0;
  while (i < untrusted.size()) {
    const uint8_t b = static_cast<uint8_t>(untrusted[i]);
    if (b < 0x80) {
      switch (b) {
        case '\\':
          out.append("\\\\");
          break;
        case '\n':
          out.append("\\n");
          break;
        case '\r':
          out.append("\\r");
          break;
        case '\t':
          out.append("\\t");
          break;
        default:
          if (b < 0x20 || b == 0x7F) {
            AppendByteEscape(&out, b);
          } else {
            out.push_back(static_cast<char>(b));
          }
      }
      ++i;
      continue;
    }
    uint32_t cp = 0;
    const size_t len = WellFormedLength(untrusted, i, &cp);
    if (len == 0) {
      AppendByteEscape(&out, b);
      ++i;
      continue;
    }
    if (UnsafeCodePoint(cp)) {
      char buf[16];
      std::snprintf(buf, sizeof(buf), "\\u{%04X}", static_cast<unsigned>(cp));
      out.append(buf);
    } else {
      out.append(untrusted.substr(i, len));
    }
    i += len;
  }
  return out;
}

}  // namespace vigo::cli
