// EscapeInvalidUtf8: command output with bytes that are not UTF-8 becomes
// valid UTF-8 text that names every byte, and UnescapeInvalidUtf8 gives the
// bytes back.
#include "common/utf8_text.h"

#include <string>

#include "gtest/gtest.h"
#include "rapidcheck/gtest.h"

namespace vigo {
namespace {

using namespace std::string_literals;

TEST(Utf8TextTest, InvalidBytesBecomeHexEscapes) {
  EXPECT_EQ(EscapeInvalidUtf8("\xff\xfe"), "\\xff\\xfe");
  EXPECT_EQ(EscapeInvalidUtf8("caf\xe9"), "caf\\xe9");
  EXPECT_EQ(EscapeInvalidUtf8("euro \xe2\x82"), "euro \\xe2\\x82");          // truncated sequence
  EXPECT_EQ(EscapeInvalidUtf8("\xc0\xaf"), "\\xc0\\xaf");                    // overlong '/'
  EXPECT_EQ(EscapeInvalidUtf8("\xed\xa0\x80"), "\\xed\\xa0\\x80");           // surrogate
  EXPECT_EQ(EscapeInvalidUtf8("\xf4\x90\x80\x80"), "\\xf4\\x90\\x80\\x80");  // > U+10FFFF
}

TEST(Utf8TextTest, ValidTextIsUnchanged) {
  for (std::string s :
       {"plain"s, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91"s, "json \\n \\u00e9 \\\\ C:\\temp"s,
        "nul \0 and \x01 controls"s, "ascii escape \\x41 stays"s, "trailing \\"s}) {
    EXPECT_TRUE(IsValidUtf8(s)) << s;
    EXPECT_EQ(EscapeInvalidUtf8(s), s) << s;
    EXPECT_EQ(ValidUtf8Text(s), s) << s;
  }
}

TEST(Utf8TextTest, BackslashesBeforeWhatReadsAsAnEscapedByteAreDoubled) {
  // Literal text "\xe9" must not read back as the byte e9.
  EXPECT_EQ(EscapeInvalidUtf8("\\xe9"), "\\\\xe9");
  EXPECT_EQ(UnescapeInvalidUtf8("\\\\xe9"), "\\xe9");
  // A backslash right before a bad byte.
  EXPECT_EQ(EscapeInvalidUtf8("\\\xe9"), "\\\\\\xe9");
  EXPECT_EQ(UnescapeInvalidUtf8("\\\\\\xe9"), "\\\xe9");
  EXPECT_EQ(UnescapeInvalidUtf8("caf\\xe9"), "caf\xe9");
}

TEST(Utf8TextTest, TailAndHeadNeverCutACharacter) {
  const std::string s =
      "a\xe2\x82\xac"
      "b";  // a € b
  EXPECT_EQ(Utf8Tail(s, 4),
            "\xe2\x82\xac"
            "b");
  EXPECT_EQ(Utf8Tail(s, 3), "b");
  EXPECT_EQ(Utf8Head(s, 3), "a");
  EXPECT_EQ(Utf8Head(s, 4), "a\xe2\x82\xac");
  EXPECT_EQ(Utf8Tail(s, 10), s);
}

RC_GTEST_PROP(Utf8TextProperty, EscapeIsValidAndLossless, (const std::string& s)) {
  const std::string e = EscapeInvalidUtf8(s);
  RC_ASSERT(IsValidUtf8(e));
  RC_ASSERT(UnescapeInvalidUtf8(e) == s);
  RC_ASSERT(e.size() <= 4 * s.size());
  RC_ASSERT(IsValidUtf8(ValidUtf8Text(s)));
}

RC_GTEST_PROP(Utf8TextProperty, EscapeIsLosslessOnBackslashHeavyInput, ()) {
  // Inputs built from the characters that matter to the escaping.
  const std::string s = *rc::gen::container<std::string>(
      rc::gen::element('\\', 'x', 'e', '9', '0', 'A', 'f', '\xe9', '\xc3', '\xa9', '\xff', 'n'));
  const std::string e = EscapeInvalidUtf8(s);
  RC_ASSERT(IsValidUtf8(e));
  RC_ASSERT(UnescapeInvalidUtf8(e) == s);
  const std::string_view tail = Utf8Tail(e, e.size() / 2);
  RC_ASSERT(IsValidUtf8(tail));
  RC_ASSERT(IsValidUtf8(Utf8Head(e, e.size() / 2)));
}

}  // namespace
}  // namespace vigo
