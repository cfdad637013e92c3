// vocab/hex.h: the one hex encoder, validator and decoder.
#include "vocab/hex.h"

#include <array>
#include <cctype>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace vigo::vocab {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {static_cast<const uint8_t*>(static_cast<const void*>(s.data())), s.size()};
}

std::string AllBytes() {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  return all;
}

TEST(HexTest, EncodesEveryByteAsTwoLowerCaseDigits) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  const std::string hex = Hex(all);
  ASSERT_EQ(hex.size(), 512u);
  EXPECT_EQ(hex.substr(0, 6), "000102");
  EXPECT_EQ(hex.substr(0x7f * 2, 4), "7f80");
  EXPECT_EQ(hex.substr(508), "feff");
  EXPECT_TRUE(IsLowerHex(hex, 512));
  EXPECT_EQ(Hex(std::string_view()), "");
}

TEST(HexTest, IsLowerHexRefusesUpperCaseOtherCharactersAndWrongLength) {
  EXPECT_TRUE(IsLowerHex("0a9f"));
  EXPECT_FALSE(IsLowerHex("0A9F"));
  EXPECT_FALSE(IsLowerHex("0a9g"));
  EXPECT_FALSE(IsLowerHex(""));
  EXPECT_FALSE(IsLowerHex("0a9f", 5));
  EXPECT_TRUE(IsLowerHex("0a9f", 4));
}

TEST(HexTest, HexIntoWritesLowerOrUpperCaseIntoTheCallersBuffer) {
  const std::string all = AllBytes();
  std::vector<uint8_t> lower(512), upper(512);
  ASSERT_TRUE(HexInto(Bytes(all), lower));
  ASSERT_TRUE(HexInto(Bytes(all), upper, HexCase::kUpper));
  EXPECT_EQ(std::string(lower.begin(), lower.end()), Hex(all));
  std::string want_upper = Hex(all);
  for (char& c : want_upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(std::string(upper.begin(), upper.end()), want_upper);
  EXPECT_EQ(std::string(upper.begin() + 0xab * 2, upper.begin() + 0xab * 2 + 2), "AB");
}

TEST(HexTest, HexIntoRefusesAWrongSizedBufferAndWritesNothing) {
  std::array<uint8_t, 5> out;
  out.fill('.');
  EXPECT_FALSE(HexInto(Bytes("ab"), std::span<uint8_t>(out).first(3)));
  EXPECT_FALSE(HexInto(Bytes("ab"), out));
  for (uint8_t c : out) EXPECT_EQ(c, '.');
  EXPECT_TRUE(HexInto(Bytes(""), std::span<uint8_t>()));
}

TEST(HexTest, HexDigitValueTakesEitherCaseAndNothingElse) {
  EXPECT_EQ(HexDigitValue('0'), 0);
  EXPECT_EQ(HexDigitValue('9'), 9);
  EXPECT_EQ(HexDigitValue('a'), 10);
  EXPECT_EQ(HexDigitValue('f'), 15);
  EXPECT_EQ(HexDigitValue('A'), 10);
  EXPECT_EQ(HexDigitValue('F'), 15);
  int digits = 0;
  for (int c = 0; c < 256; ++c) {
    if (HexDigitValue(static_cast<uint8_t>(c)) >= 0) ++digits;
  }
  EXPECT_EQ(digits, 22);
  EXPECT_EQ(HexDigitValue('g'), -1);
  EXPECT_EQ(HexDigitValue('G'), -1);
  EXPECT_EQ(HexDigitValue(0xe1), -1);
}

TEST(HexTest, IsHexTakesEitherCaseButNotEmptyOrOtherCharacters) {
  EXPECT_TRUE(IsHex("0a9F"));
  EXPECT_TRUE(IsHex("DEADbeef"));
  EXPECT_FALSE(IsHex(""));
  EXPECT_FALSE(IsHex("0x1f"));
  EXPECT_FALSE(IsHex("12 3"));
}

TEST(HexTest, ParseHexRoundTripsEveryByteInEitherCase) {
  const std::string all = AllBytes();
  const std::vector<uint8_t> want(all.begin(), all.end());
  std::string hex = Hex(all);
  EXPECT_EQ(ParseHex(hex), want);
  for (char& c : hex) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_EQ(ParseHex(hex), want);
  EXPECT_EQ(ParseHex(""), std::vector<uint8_t>());
}

TEST(HexTest, ParseHexRefusesOddLengthAndNonHexCharacters) {
  EXPECT_EQ(ParseHex("abc"), std::nullopt);
  EXPECT_EQ(ParseHex("0g"), std::nullopt);
  EXPECT_EQ(ParseHex("g0"), std::nullopt);
  EXPECT_EQ(ParseHex(" 00"), std::nullopt);
  EXPECT_EQ(ParseHex("00\n"), std::nullopt);
}

TEST(HexTest, ParseHexIntoNeedsTheExactOutputSize) {
  std::array<uint8_t, 2> out{};
  EXPECT_TRUE(ParseHexInto(Bytes("a0B1"), out));
  EXPECT_EQ(out[0], 0xa0);
  EXPECT_EQ(out[1], 0xb1);
  EXPECT_FALSE(ParseHexInto(Bytes("a0"), out));
  EXPECT_FALSE(ParseHexInto(Bytes("a0b1c2"), out));
  EXPECT_FALSE(ParseHexInto(Bytes("a0b"), std::span<uint8_t>(out).first(1)));
  EXPECT_FALSE(ParseHexInto(Bytes("zz00"), out));
}

}  // namespace
}  // namespace vigo::vocab
