// The decoding views shared by the worker's scrubber and the server's leak
// scan: what each view decodes, that it maps every decoded byte back to the
// original bytes it came from, and that a text with nothing to decode gets
// no view.
#include "common/decode_views.h"

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace vigo {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {static_cast<const uint8_t*>(static_cast<const void*>(s.data())), s.size()};
}

std::string Str(std::span<const uint8_t> b) { return std::string(b.begin(), b.end()); }

// The view of `kind`, which must exist.
DecodeView Build(DecodeViewKind kind, std::string_view text) {
  auto v = BuildDecodeView(kind, Bytes(text));
  EXPECT_TRUE(v.ok()) << v.status();
  EXPECT_TRUE(v->has_value());
  return std::move(**v);
}

// The original text behind view bytes [a, b).
std::string Origin(const DecodeView& v, std::string_view text, size_t a, size_t b) {
  return std::string(text.substr(v.OriginalBegin(a), v.OriginalEnd(b) - v.OriginalBegin(a)));
}

TEST(DecodeViewsTest, UrlDecodesPercentAndPlusAndMapsBack) {
  const std::string text = "a=x%2Fy+z%zz";
  DecodeView v = Build(DecodeViewKind::kUrl, text);
  EXPECT_EQ(Str(v.Data()), "a=x/y z%zz");
  EXPECT_TRUE(v.decoded());
  EXPECT_EQ(Origin(v, text, 3, 4), "%2F");
  EXPECT_EQ(Origin(v, text, 2, 6), "x%2Fy+");
}

TEST(DecodeViewsTest, JsonDecodesEscapesAndSurrogatePairs) {
  const std::string text = R"(p\u0061ss\/\n\ud83d\ude00\u00e9)";
  DecodeView utf8 = Build(DecodeViewKind::kJsonUtf8, text);
  EXPECT_EQ(Str(utf8.Data()), "pass/\n\xF0\x9F\x98\x80\xC3\xA9");
  EXPECT_EQ(Origin(utf8, text, 1, 2), "\\u0061");
  EXPECT_EQ(Origin(utf8, text, 6, 10), "\\ud83d\\ude00");
  DecodeView latin1 = Build(DecodeViewKind::kJsonLatin1, text);
  EXPECT_EQ(Str(latin1.Data()), "pass/\n\xF0\x9F\x98\x80\xE9");
  // No \u00XX >= 0x80: the Latin-1 view would equal the UTF-8 one.
  auto none = BuildDecodeView(DecodeViewKind::kJsonLatin1, Bytes(R"(a\u0041)"));
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

TEST(DecodeViewsTest, CEscapesAndUnwrapping) {
  const std::string text = "\\x41\\102\\t\\q";
  DecodeView c = Build(DecodeViewKind::kCEscape, text);
  EXPECT_EQ(Str(c.Data()), "AB\t\\q");
  EXPECT_EQ(Origin(c, text, 0, 2), "\\x41\\102");
  const std::string wrapped = "abc\r\ndef\nghi";
  DecodeView u = Build(DecodeViewKind::kUnwrapLines, wrapped);
  EXPECT_EQ(Str(u.Data()), "abcdefghi");
  EXPECT_FALSE(u.decoded());
  EXPECT_EQ(Origin(u, wrapped, 2, 7), "c\r\ndef\ng");
}

TEST(DecodeViewsTest, PlainTextGetsOnlyTheIdentityView) {
  const std::string text = "nothing_to_decode_here";
  auto views = BuildDecodeViews(Bytes(text));
  ASSERT_TRUE(views.ok());
  ASSERT_EQ(views->size(), 1u);
  EXPECT_EQ(Str((*views)[0].Data()), text);
  EXPECT_EQ((*views)[0].OriginalBegin(3), 3u);
  EXPECT_EQ((*views)[0].OriginalEnd(5), 5u);
  // One line break, one '%', one '\': unwrap, URL, C and JSON (UTF-8) views.
  auto more = BuildDecodeViews(Bytes("a\nb%41c\\x41"));
  ASSERT_TRUE(more.ok());
  EXPECT_EQ(more->size(), 5u);
}

TEST(DecodeViewsTest, SpacedCharactersAndOdDumpsAreDecoded) {
  const std::string spaced = "pw: h u n t e r\t2 !";
  auto views = BuildDecodeViews(Bytes(spaced));
  ASSERT_TRUE(views.ok());
  DecodeView w = Build(DecodeViewKind::kNoWhitespace, spaced);
  EXPECT_EQ(Str(w.Data()), "pw:hunter2!");
  EXPECT_EQ(Origin(w, spaced, 3, 10), "h u n t e r\t2");
  // `printf 'ab c\n\351' | od -c` (GNU, C locale).
  const std::string od =
      "0000000   a   b       c  \\n 351\n"
      "0000006\n";
  DecodeView o = Build(DecodeViewKind::kOdChars, od);
  // The od line's own line break is layout, not data.
  EXPECT_EQ(Str(o.Data()),
            "ab c\n\xe9"
            "0000006\n");
  EXPECT_EQ(Origin(o, od, 0, 2), "   a   b");
  // Text that only looks like an offset stays literal.
  EXPECT_FALSE(BuildDecodeView(DecodeViewKind::kOdChars, Bytes("no dump here")).value());
}

// `printf 'AB\x01CDEFGHIJKLMNOPQRSTU\xffvwxyz' | xxd` and `| hexdump -C`
// (as the tools print them): both decode to the bytes, the lines of the dump
// joined, and each byte maps from its hex digits to its ASCII-column
// character, so a hit covers both columns.
TEST(DecodeViewsTest, XxdAndHexdumpLinesAreDecodedWithBothColumns) {
  const std::string bytes(
      "AB\x01"
      "CDEFGHIJKLMNOPQRSTU\xffvwxyz",
      28);
  const std::string xxd =
      "00000000: 4142 0143 4445 4647 4849 4a4b 4c4d 4e4f  AB.CDEFGHIJKLMNO\n"
      "00000010: 5051 5253 5455 ff76 7778 797a            PQRSTU.vwxyz\n";
  DecodeView x = Build(DecodeViewKind::kHexDump, xxd);
  EXPECT_EQ(Str(x.Data()), bytes);
  EXPECT_EQ(Origin(x, xxd, 0, 1), "4142 0143 4445 4647 4849 4a4b 4c4d 4e4f  A");  // hex to char
  EXPECT_EQ(Origin(x, xxd, 27, 28), "7a            PQRSTU.vwxyz");
  const std::string hd =
      "00000000  41 42 01 43 44 45 46 47  48 49 4a 4b 4c 4d 4e 4f  |AB.CDEFGHIJKLMNO|\n"
      "00000010  50 51 52 53 54 55 ff 76  77 78 79 7a              |PQRSTU.vwxyz|\n"
      "0000001c\n";
  DecodeView h = Build(DecodeViewKind::kHexDump, hd);
  EXPECT_EQ(Str(h.Data()), bytes + "0000001c\n");  // the closing offset line stays literal
  EXPECT_EQ(Origin(h, hd, 22, 23), "ff 76  77 78 79 7a              |PQRSTU.");  // 0xff: '.'
  // A line whose ASCII column does not show its bytes is not a dump line.
  const std::string forged = "00000000: 4142 4344  ABCE\n";
  EXPECT_FALSE(BuildDecodeView(DecodeViewKind::kHexDump, Bytes(forged)).value());
  EXPECT_FALSE(BuildDecodeView(DecodeViewKind::kHexDump, Bytes("cafe: not a dump\n")).value());
}

}  // namespace
}  // namespace vigo
