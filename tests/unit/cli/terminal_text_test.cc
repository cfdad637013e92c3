// cli::TerminalText, the one escaper for everything vigocli prints that an
// envoy supplied: nothing it returns can drive a terminal (no C0, DEL, C1,
// U+2028/U+2029, bidi or invisible characters), its output is valid UTF-8,
// and it is lossless (an independent unescaper in this file gets the exact
// input back), checked over every byte, every byte pair, every code point and
// random strings.
#include "cli/terminal_text.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "rapidcheck.h"
#include "rapidcheck/gtest.h"

namespace vigo::cli {
namespace {

// Independent oracle: a naive decoder (any lead byte, any continuation),
// accepted only if re-encoding gives back the same bytes (no overlongs), the
// code point is not a surrogate and at most U+10FFFF.
std::string Encode(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    s.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    s.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

// The code points of `s`, or nullopt when `s` is not well-formed UTF-8.
std::optional<std::vector<uint32_t>> Decode(const std::string& s) {
  std::vector<uint32_t> cps;
  size_t i = 0;
  while (i < s.size()) {
    uint8_t b = static_cast<uint8_t>(s[i]);
    size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return std::nullopt;
    uint32_t cp = len == 1 ? b : (b & (0x7F >> len));
    for (size_t k = 1; k < len; ++k) {
      uint8_t c = static_cast<uint8_t>(s[i + k]);
      if ((c >> 6) != 2) return std::nullopt;
      cp = (cp << 6) | (c & 0x3F);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
    if (Encode(cp) != s.substr(i, len)) return std::nullopt;
    cps.push_back(cp);
    i += len;
  }
  return cps;
}

// What must never reach the terminal raw (the list and the
// Trojan-Source bidi controls).
bool MustBeEscaped(uint32_t cp) {
  return cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F) || cp == 0x2028 || cp == 0x2029 ||
         (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069) ||
         (cp >= 0x200B && cp <= 0x200F) || cp == 0xFEFF;
}

int Hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Inverse of TerminalText, written from its header's table.
std::optional<std::string> Unescape(const std::string& t) {
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i] != '\\') {
      out.push_back(t[i]);
      continue;
    }
    if (++i >= t.size()) return std::nullopt;
    switch (t[i]) {
      case '\\':
        out.push_back('\\');
        break;
      case 'n':
        out.push_back('\n');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'x': {
        if (i + 2 >= t.size()) return std::nullopt;
        int h = Hex(t[i + 1]), l = Hex(t[i + 2]);
        if (h < 0 || l < 0) return std::nullopt;
        out.push_back(static_cast<char>(h * 16 + l));
        i += 2;
        break;
      }
      case 'u': {
        if (i + 1 >= t.size() || t[i + 1] != '{') return std::nullopt;
        size_t close = t.find('}', i + 2);
        if (close == std::string::npos || close == i + 2) return std::nullopt;
        uint32_t cp = 0;
        for (size_t k = i + 2; k < close; ++k) {
          int d = Hex(t[k]);
          if (d < 0) return std::nullopt;
          cp = cp * 16 + static_cast<uint32_t>(d);
        }
        out += Encode(cp);
        i = close;
        break;
      }
      default:
        return std::nullopt;
    }
  }
  return out;
}

// Every property at once, for one input.
void CheckSafeAndLossless(const std::string& in) {
  const std::string t = TerminalText(in);
  auto cps = Decode(t);
  ASSERT_TRUE(cps.has_value()) << "output is not valid UTF-8 for input of " << in.size()
                               << " bytes";
  for (uint32_t cp : *cps) {
    ASSERT_FALSE(MustBeEscaped(cp)) << "U+" << std::hex << cp << " reached the output";
  }
  auto back = Unescape(t);
  ASSERT_TRUE(back.has_value()) << "output does not parse as escapes: " << t;
  ASSERT_EQ(*back, in) << "escaping lost or changed bytes: " << t;
}

TEST(TerminalTextTest, EverySingleByteIsSafeAndLossless) {
  for (int b = 0; b < 256; ++b) {
    std::string in(1, static_cast<char>(b));
    CheckSafeAndLossless(in);
    if (b >= 0x20 && b < 0x7F && b != '\\') {
      EXPECT_EQ(TerminalText(in), in) << "printable ASCII is kept: " << b;
    } else {
      EXPECT_EQ(TerminalText(in)[0], '\\') << "byte " << b << " is escaped";
    }
  }
}

TEST(TerminalTextTest, EveryBytePairIsSafeAndLossless) {
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      std::string in{static_cast<char>(a), static_cast<char>(b)};
      CheckSafeAndLossless(in);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(TerminalTextTest, EveryCodePointIsKeptOrEscaped) {
  for (uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
    if (cp >= 0xD800 && cp <= 0xDFFF) continue;
    const std::string in = Encode(cp);
    const std::string t = TerminalText(in);
    if (MustBeEscaped(cp)) {
      ASSERT_EQ(t[0], '\\') << "U+" << std::hex << cp << " must be escaped";
    }
    ASSERT_EQ(Unescape(t), in) << "U+" << std::hex << cp;
    ASSERT_TRUE(t == in || t[0] == '\\') << "U+" << std::hex << cp;
  }
}

TEST(TerminalTextTest, HostileSequencesAreVisible) {
  EXPECT_EQ(TerminalText("\x1b[2J\x1b]0;pwned\x07"), "\\x1B[2J\\x1B]0;pwned\\x07");
  EXPECT_EQ(TerminalText("ok\nrun  fake  ok"), "ok\\nrun  fake  ok");
  EXPECT_EQ(TerminalText("a\xe2\x80\xa8"
                         "b"),
            "a\\u{2028}b");
  EXPECT_EQ(TerminalText("\xe2\x80\xa9"), "\\u{2029}");
  EXPECT_EQ(TerminalText("\xc2\x9b"
                         "31m"),
            "\\u{009B}31m");  // C1 CSI
  EXPECT_EQ(TerminalText("\xe2\x80\xae"
                         "txt.exe"),
            "\\u{202E}txt.exe");  // RLO
  EXPECT_EQ(TerminalText("\xff\xfe"), "\\xFF\\xFE");
  EXPECT_EQ(TerminalText("\xc0\xaf"), "\\xC0\\xAF");           // overlong '/'
  EXPECT_EQ(TerminalText("\xed\xa0\x80"), "\\xED\\xA0\\x80");  // a surrogate
  EXPECT_EQ(TerminalText("\xe2\x80"), "\\xE2\\x80");           // truncated
  EXPECT_EQ(TerminalText("C:\\x1B"), "C:\\\\x1B");  // a literal backslash cannot fake an escape
}

TEST(TerminalTextTest, OrdinaryTextIsUnchanged) {
  for (std::string s : {"", "web-1", "wrote /etc/app.conf (0640 root:root)",
                        "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82"}) {
    EXPECT_EQ(TerminalText(s), s);
  }
}

RC_GTEST_PROP(TerminalTextProperty, RandomBytesAreSafeAndLossless, (std::vector<uint8_t> bytes)) {
  std::string in(bytes.begin(), bytes.end());
  CheckSafeAndLossless(in);
  RC_ASSERT(!::testing::Test::HasFailure());
}

RC_GTEST_PROP(TerminalTextProperty, MixedHostileFragmentsAreSafeAndLossless, ()) {
  static const std::vector<std::string> kFragments = {"\x1b[31m",     "\x1b]0;t\x07",
                                                      "\n",           "\r",
                                                      "\t",           "\\",
                                                      "\xc2\x85",     "\xc2\x9b",
                                                      "\xe2\x80\xa8", "\xe2\x80\xa9",
                                                      "\xe2\x80\xae", "\xef\xbb\xbf",
                                                      "\xc3\xa9",     "\xf0\x9f\x99\x82",
                                                      "\xe2\x80",     "\xf4\x90\x80\x80",
                                                      "plain",        "\\x1B",
                                                      "\\u{2028}"};
  auto picks =
      *rc::gen::container<std::vector<size_t>>(rc::gen::inRange<size_t>(0, kFragments.size()));
  std::string in;
  for (size_t p : picks) in += kFragments[p];
  CheckSafeAndLossless(in);
  RC_ASSERT(!::testing::Test::HasFailure());
}

}  // namespace
}  // namespace vigo::cli
