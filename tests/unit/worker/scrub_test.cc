// Exec output scrubbing: every encoded form of every value is redacted.
#include "agent-worker/scrub.h"

#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "gtest/gtest.h"
#include "rapidcheck/gtest.h"
#include "tests/support/encodings.h"
#include "tests/support/test_env.h"

namespace vigo::worker {
namespace {

using sandbox::SecretBuffer;
namespace enc = vigo::testing::enc;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string Scrub(std::string_view out, std::string_view value) {
  SecretBuffer v = *SecretBuffer::CopyFrom(Bytes(value));
  return ScrubOutput(Bytes(out), {&v});
}

TEST(ScrubTest, RawHexBase64UrlForms) {
  const std::string canary = "s3cr3t/value+x?";
  for (const std::string& form : vigo::testing::CanaryForms(canary)) {
    std::string out = Scrub("before " + form + " after", canary);
    EXPECT_TRUE(vigo::testing::FindCanariesIn(out, "out", {canary}).empty())
        << form << " -> " << out;
    EXPECT_NE(out.find("before "), std::string::npos);
    EXPECT_NE(out.find(" after"), std::string::npos);
  }
}

std::string ScrubText(std::string_view out, std::string_view value) {
  SecretBuffer v = *SecretBuffer::CopyFrom(Bytes(value));
  return ScrubOutputAsText(Bytes(out), {&v});
}

TEST(ScrubTest, CountsEachRedactedRun) {
  SecretBuffer v = *SecretBuffer::CopyFrom(Bytes("count-me-7Qx"));
  size_t n = 99;
  EXPECT_EQ(ScrubOutputAsText(Bytes("a count-me-7Qx b count-me-7Qx c"), {&v}, &n),
            "a [REDACTED] b [REDACTED] c");
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(ScrubOutputAsText(Bytes("nothing to see"), {&v}, &n), "nothing to see");
  EXPECT_EQ(n, 0u);
  // The second pass (bytes that are not UTF-8, escaped) adds its own runs:
  // the value is the 7 characters caf\xe9, the output holds the byte 0xe9.
  SecretBuffer spelled = *SecretBuffer::CopyFrom(Bytes("caf\\xe9"));
  EXPECT_EQ(ScrubOutputAsText(Bytes("count-me-7Qx caf\xe9;"), {&v, &spelled}, &n),
            "[REDACTED] [REDACTED];");
  EXPECT_EQ(n, 2u);
}

TEST(ScrubTest, OutputAsTextEscapesBytesThatAreNotUtf8) {
  EXPECT_EQ(ScrubText("\xff\xfe caf\xe9 \xe2\x82 ok", "unrelated-value"),
            "\\xff\\xfe caf\\xe9 \\xe2\\x82 ok");
}

TEST(ScrubTest, OutputAsTextRedactsARawValueWithBytesThatAreNotUtf8) {
  const std::string value =
      "K9\xff\xfe"
      "BIN-77a1\xe9";
  const std::string text = ScrubText("<" + value + ">", value);
  EXPECT_EQ(text, "<[REDACTED]>");
}

TEST(ScrubTest, OutputAsTextRedactsAValueThatOnlyTheEscapingSpells) {
  // The value is the 7 ASCII characters caf\xe9; the command printed the
  // 4 bytes c a f e9. Raw, they hold no form of the value; escaped, they
  // would spell it, so the escaped text is scrubbed again.
  const std::string text = ScrubText("pw=caf\xe9;", "caf\\xe9");
  EXPECT_EQ(text.find("caf\\xe9"), std::string::npos) << text;
  EXPECT_NE(text.find("[REDACTED]"), std::string::npos) << text;
}

TEST(ScrubTest, Base64AtAnyAlignment) {
  // base64 of "x" + value and "xy" + value (value not 3-byte aligned in the stream).
  // base64("xcanary-value-1234") and base64("xycanary-value-1234") computed by hand below.
  const std::string v = "canary-value-1234";
  auto b64 = [](std::string_view in) {
    static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
      uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
      for (int k = 0; k < 4; ++k) out.push_back(t[(n >> (18 - 6 * k)) & 63]);
    }
    return out;  // whole groups only; enough for the test
  };
  for (std::string prefix : {"", "x", "xy"}) {
    std::string enc = b64(prefix + v + "zzz");
    std::string out = Scrub(enc, v);
    EXPECT_NE(out.find("[REDACTED]"), std::string::npos) << prefix << ": " << out;
    // No 8-char run of the value's core encoding survives.
    std::string core = b64(v.substr(0, 15));
    EXPECT_EQ(out.find(core.substr(4, 8)), std::string::npos) << prefix << ": " << out;
  }
}

TEST(ScrubTest, TruncatedFragmentAtEdges) {
  const std::string v = "canary-value-abcdef";
  EXPECT_EQ(Scrub("tail: canary-val", v), "tail: [REDACTED]");
  EXPECT_EQ(Scrub("lue-abcdef and more", v), "[REDACTED] and more");
}

TEST(ScrubTest, LeavesOtherTextAlone) {
  EXPECT_EQ(Scrub("nothing to see here", "canary-value"), "nothing to see here");
  EXPECT_EQ(ScrubOutput(Bytes("abc"), {}), "abc");
}

// True when some `window`-byte substring of `form` occurs in `out`.
bool AnyWindowSurvives(std::string_view out, std::string_view form, size_t window = 8) {
  if (form.size() < window) return out.find(form) != std::string_view::npos;
  for (size_t i = 0; i + window <= form.size(); ++i) {
    if (out.find(form.substr(i, window)) != std::string_view::npos) return true;
  }
  return false;
}

std::string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

TEST(ScrubTest, JsonUnicodeAndSolidusEscapes) {
  const std::string v = "s3cr3t/value+x?<&>";
  // Go's encoding/json (HTML-safe), Python's json.dumps, a byte-wise encoder.
  for (const std::string& form :
       {std::string("s3cr3t\\/value+x?\\u003c\\u0026\\u003e"), enc::JsonBytes(v),
        enc::JsonBytes(v, /*upper=*/true, /*all=*/true), enc::JsonBytes(v, false, true)}) {
    std::string out = Scrub("{\"password\":\"" + form + "\",\"ok\":true}", v);
    EXPECT_EQ(out, "{\"password\":\"[REDACTED]\",\"ok\":true}") << form;
  }
  // UTF-8 value, escaped as code points (json.dumps with ensure_ascii).
  const std::string utf8 = "p\xc3\xa4ssw\xc3\xb6rd-geheim-\xf0\x9f\x98\x80!";
  std::string out = Scrub("pw: \"p\\u00e4ssw\\u00F6rd-geheim-\\ud83d\\ude00!\" end", utf8);
  EXPECT_EQ(out, "pw: \"[REDACTED]\" end");
  // Non-UTF-8 bytes escaped one by one as \u00XX.
  const std::string bytes = "\xff\xfe-binary-\x80\x81-key";
  out = Scrub("k=\"" + enc::JsonBytes(bytes) + "\"", bytes);
  EXPECT_EQ(out, "k=\"[REDACTED]\"");
}

TEST(ScrubTest, UrlFormEncodingWithPlusForSpace) {
  const std::string v = "my secret value/+&=%";
  for (bool upper : {true, false}) {
    std::string form = enc::UrlForm(v, upper);
    ASSERT_NE(form.find('+'), std::string::npos);
    std::string out = Scrub("POST user=app&pw=" + form + "&x=1", v);
    EXPECT_EQ(out, "POST user=app&pw=[REDACTED]&x=1") << form;
  }
  // Encoders that escape more than they must (every byte) or less (only '&').
  EXPECT_EQ(Scrub("pw=%6D%79%20secret+value%2f%2B%26%3D%25;", v), "pw=[REDACTED];");
}

TEST(ScrubTest, BackslashXAndOctalEscapes) {
  const std::string v = std::string("\x01\xffkey\\part'\n\x00tail", 14);
  ASSERT_EQ(v.size(), 14u);
  for (const std::string& form : {enc::PyRepr(v), enc::Octal(v)}) {
    std::string out = Scrub("b'" + form + "' done", v);
    EXPECT_EQ(out, "b'[REDACTED]' done") << form;
  }
  // Upper-case hex digits, every byte escaped.
  std::string all;
  for (unsigned char c : v) all += "\\x" + enc::Hex(std::string(1, static_cast<char>(c)), true);
  EXPECT_EQ(Scrub("[" + all + "]", v), "[[REDACTED]]");
}

TEST(ScrubTest, WrappedBase64AndHexDumps) {
  const std::string v = RandomBytes(300, 7);
  const std::string b64 = enc::Base64(v);
  for (const auto& [width, eol] : {std::pair<size_t, std::string>{76, "\r\n"}, {64, "\n"}}) {
    std::string wrapped = enc::Wrap(b64, width, eol);
    std::string out = Scrub("-----BEGIN KEY-----\n" + wrapped + "\n-----END KEY-----\n", v);
    EXPECT_FALSE(AnyWindowSurvives(out, b64)) << out;
    EXPECT_EQ(out.rfind("-----BEGIN KEY-----\n", 0), 0u) << out;
    EXPECT_NE(out.find("-----END KEY-----"), std::string::npos) << out;
  }
  // Inside a longer base64 stream at each alignment, wrapped.
  for (size_t pre = 0; pre < 3; ++pre) {
    std::string stream = enc::Base64(std::string(pre, 'Z') + v + "trailer");
    std::string out = Scrub(enc::Wrap(stream, 76, "\r\n"), v);
    EXPECT_FALSE(AnyWindowSurvives(out, enc::Base64Core(v, pre))) << pre << ": " << out;
  }
  // `xxd -p`: hex, 60 characters a line.
  std::string out = Scrub(enc::Wrap(enc::Hex(v), 60, "\n") + "\n", v);
  EXPECT_FALSE(AnyWindowSurvives(out, enc::Hex(v))) << out;
}

// `xxd` (16 bytes a line, "%08x: 4142 ...  AB..") or `hexdump -C`
// ("%08x  41 42 ...  |AB..|") of `b`, byte for byte as the tools print it.
std::string Dump(std::string_view b, bool xxd) {
  std::string out;
  char buf[16];
  for (size_t at = 0; at < b.size(); at += 16) {
    std::snprintf(buf, sizeof buf, xxd ? "%08zx:" : "%08zx ", at);
    out += buf;
    std::string ascii;
    for (size_t k = 0; k < 16; ++k) {
      if (xxd && k % 2 == 0) out += ' ';
      if (!xxd) out += (k == 8 ? "  " : " ");
      if (at + k < b.size()) {
        const auto c = static_cast<unsigned char>(b[at + k]);
        std::snprintf(buf, sizeof buf, "%02x", c);
        out += buf;
        ascii.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '.');
      } else {
        out += "  ";
      }
    }
    out += xxd ? "  " + ascii + "\n" : "  |" + ascii + "|\n";
  }
  return out;
}

// The ASCII column of `xxd` / `hexdump -C` of a binary value shows its
// printable bytes with '.' for the rest; with the hex column it is redacted
// line by line, while a dump of other bytes and ordinary text stay.
TEST(ScrubTest, XxdAsciiColumnOfABinaryValueIsRedacted) {
  std::string v = RandomBytes(64, 21);
  for (size_t i = 0; i < v.size(); i += 3)
    v[i] = static_cast<char>('A' + i % 26);  // printable runs
  for (bool xxd : {true, false}) {
    const std::string text = "dump follows\n" + Dump(v, xxd) + "end of dump\n";
    const std::string out = Scrub(text, v);
    EXPECT_EQ(out.find('.'), std::string::npos) << out;  // no ASCII column left
    EXPECT_NE(out.find("dump follows\n"), std::string::npos) << out;
    EXPECT_NE(out.find("end of dump\n"), std::string::npos) << out;
    const std::string other = Dump(RandomBytes(64, 22), xxd);
    EXPECT_EQ(Scrub(other, v), other);
  }
}

// A line whose ASCII column starts with a space (byte 16 of the dump is ' '):
// the column is found from the end of the line, so a window across the two
// lines leaves nothing readable in the joined ASCII columns (review of
// issue 15: the parser took the column's leading space for the gap).
TEST(ScrubTest, XxdLineWhoseAsciiColumnStartsWithASpaceIsDecoded) {
  const std::string v = "correct horse battery staple and more words here";
  ASSERT_EQ(v[7], ' ');
  const std::string shown = "xxxxxxxxx" + v.substr(0, 18);  // v[7] is byte 16
  for (bool xxd : {true, false}) {
    const std::string out = Scrub(Dump(shown, xxd), v);
    std::string ascii;  // the ASCII columns, joined, as a reader sees them
    for (size_t at = 0; at < out.size();) {
      size_t eol = out.find('\n', at);
      if (eol == std::string::npos) eol = out.size();
      const std::string line = out.substr(at, eol - at);
      const size_t two = line.rfind("  ");
      if (two != std::string::npos) ascii += line.substr(two + 2);
      at = eol + 1;
    }
    for (size_t k = 0; k + 12 <= v.size(); ++k) {
      EXPECT_EQ(ascii.find(v.substr(k, 12)), std::string::npos)
          << (xxd ? "xxd" : "hexdump -C") << " window at " << k << ":\n"
          << out;
    }
    EXPECT_EQ(out.find("horse"), std::string::npos) << out;
  }
}

// A form cut off by either end of the output: every length from 4 bytes
// (below the window) up, for the raw and the hex form, at the start (the
// capture kept only a tail) and at the end (the command was killed
// mid-write). Text beyond the cut is kept.
TEST(ScrubTest, EveryFragmentOfFourOrMoreBytesAtAnEdgeIsRedacted) {
  const std::string v = "Zq81xPp03kVv7Hn2Lm5Tt9Rr4Ww6Yy0Bb";
  for (const std::string& form : {v, enc::Hex(v)}) {
    for (size_t k = 4; k <= 30; ++k) {
      EXPECT_EQ(Scrub(form.substr(form.size() - k) + " | tail text", v), "[REDACTED] | tail text")
          << k;
      EXPECT_EQ(Scrub("head text | " + form.substr(0, k), v), "head text | [REDACTED]") << k;
    }
    // Three bytes are not enough at an edge.
    EXPECT_EQ(Scrub(form.substr(form.size() - 3) + " | tail text", v),
              form.substr(form.size() - 3) + " | tail text");
  }
}

TEST(ScrubTest, EscapeCutByTheTailIsRedacted) {
  const std::string v = "cut-canary/value with space";
  const std::string url = enc::UrlForm(v);  // cut%2Fcanary... style
  const std::string json = enc::JsonBytes(v, false, true);
  // The capture kept only a tail starting inside an escape, or the command
  // died in the middle of one.
  std::string out = Scrub(url.substr(url.find('%') + 1) + " and then", v);
  EXPECT_EQ(out, "[REDACTED] and then") << out;
  out = Scrub(json.substr(3) + "\" more", v);
  EXPECT_EQ(out, "[REDACTED]\" more") << out;
  out = Scrub("start \"" + json.substr(0, json.size() - 4), v);
  EXPECT_EQ(out, "start \"[REDACTED]") << out;
  ASSERT_EQ(url.substr(0, 12), "cut-canary%2");
  out = Scrub("start " + url.substr(0, 12), v);
  EXPECT_EQ(out, "start [REDACTED]") << out;
}

// A value longer than the kept tail: the output may be nothing but an
// interior slice of it (no edge of the value to anchor on).
TEST(ScrubTest, ValueLongerThanTheTailRedactsAnInteriorSlice) {
  const std::string v = RandomBytes(100 * 1024, 11);
  const size_t tail = 64 * 1024;
  for (const std::string& form : {v, enc::Hex(v), enc::Base64(v), enc::JsonBytes(v, false, true)}) {
    ASSERT_GT(form.size(), tail + 2000);
    std::string slice = form.substr(1000, tail);  // neither end of the form
    std::string out = Scrub(slice, v);
    EXPECT_EQ(out, std::string(kRedacted)) << form.size();
  }
  // Wrapped, as a 100 KiB certificate printed by `openssl x509` would be.
  std::string pem = enc::Wrap(enc::Base64(v), 64, "\n");
  EXPECT_EQ(Scrub(pem.substr(pem.size() - tail - 3, tail), v), std::string(kRedacted));
  // The tail ends with the value's last bytes and some text after it.
  std::string out = Scrub(v.substr(v.size() - tail + 10) + "\nexit 1\n", v);
  EXPECT_EQ(out, std::string(kRedacted) + "\nexit 1\n");
  // Unrelated output is not touched because a long value exists.
  EXPECT_EQ(Scrub("all good: 3 files written\n", v), "all good: 3 files written\n");
}

TEST(ScrubTest, OrdinaryOutputWithEscapesIsLeftAlone) {
  const std::string text = "50% done + 3 more\r\nC:\\path\\x41\\u0041 {\"a\":\"b\\/c\"}\n";
  EXPECT_EQ(Scrub(text, "canary-value-123"), text);
}

// When the arena cannot hold the forms of a value, nothing is returned.
TEST(ScrubTest, FailsClosedWhenTheArenaCannotHoldTheForms) {
  // 6 MiB value: raw copy + hex (12 MiB) exceed the 16 MiB arena.
  auto big = SecretBuffer::Create(6 << 20);
  ASSERT_TRUE(big.ok()) << big.status();
  std::memset(big->RevealMutable().data(), 'q', big->size());
  EXPECT_EQ(ScrubOutput(Bytes("some output"), {&*big}), std::string(kWithheld));
  big->Clear();
  // The arena is usable again afterwards.
  EXPECT_EQ(Scrub("x canary-value-9 y", "canary-value-9"), "x [REDACTED] y");
}

RC_GTEST_PROP(ScrubProperty, EmbeddedValueNeverSurvives,
              (const std::string& pre, const std::string& post)) {
  // Lower-case alphanumerics: the value cannot be re-formed around "[REDACTED]".
  std::string value = *rc::gen::suchThat(rc::gen::container<std::string>(rc::gen::elementOf(
                                             std::string("abcdefghijklmnopqrstuvwxyz0123456789"))),
                                         [](const std::string& s) { return s.size() >= 8; });
  std::string out = Scrub(pre + value + post, value);
  RC_ASSERT(out.find(value) == std::string::npos);
}

}  // namespace
}  // namespace vigo::worker
