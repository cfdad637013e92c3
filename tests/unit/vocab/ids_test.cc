// vocab/hex.h and vocab/ids.h: the one hex encoder and the one source of ids.
#include "vocab/ids.h"

#include <set>
#include <string>

#include "gtest/gtest.h"
#include "vocab/hex.h"

namespace vigo::vocab {
namespace {

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

TEST(IdsTest, RandomHexIdHasTwoDigitsPerByteAndDoesNotRepeat) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto id = RandomHexId(8);
    ASSERT_TRUE(id.ok()) << id.status();
    EXPECT_TRUE(IsLowerHex(*id, 16)) << *id;
    seen.insert(*id);
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_FALSE(RandomHexId(0).ok());
  EXPECT_FALSE(RandomHexId(65).ok());
  EXPECT_TRUE(IsLowerHex(RandomHexId(64).value(), 128));
}

TEST(IdsTest, RunIdsAreThirtyTwoHexDigitsAndDistinct) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewRunId();
    EXPECT_TRUE(IsLowerHex(id, 32)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(IdsTest, NowUnixMsIsAfterTheProjectStarted) {
  EXPECT_GT(NowUnixMs(), int64_t{1767225600000});  // 2026-01-01
}

}  // namespace
}  // namespace vigo::vocab
