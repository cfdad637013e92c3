// vocab/ids.h: the one source of ids and of the wall clock (hex: hex_test.cc).
#include "vocab/ids.h"

#include <set>
#include <string>

#include "gtest/gtest.h"
#include "vocab/hex.h"

namespace vigo::vocab {
namespace {

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
