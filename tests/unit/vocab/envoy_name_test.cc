// vocab/envoy_name.h: the one envoy-name grammar (certificate CN, stacks,
// CLI, caller identity).
#include "vocab/envoy_name.h"

#include <string>

#include "gtest/gtest.h"

namespace vigo::vocab {
namespace {

TEST(EnvoyNameTest, Validation) {
  for (const char* ok : {"web-1", "a", "db01.prod", "x_y", "A9"}) {
    EXPECT_TRUE(ValidateEnvoyName(ok).ok()) << ok;
  }
  for (const char* bad : {"", "-web", ".x", "_x", "a/b", "a b", "web*", "a\nb", "é"}) {
    EXPECT_FALSE(ValidateEnvoyName(bad).ok()) << bad;
  }
  EXPECT_FALSE(ValidateEnvoyName(std::string(kMaxEnvoyNameBytes + 1, 'a')).ok());
  EXPECT_TRUE(ValidateEnvoyName(std::string(kMaxEnvoyNameBytes, 'a')).ok());
  EXPECT_EQ(kMaxEnvoyNameBytes, 64u);  // the X.509 upper bound of a common name
  EXPECT_FALSE(ValidateEnvoyName(std::string("a\0b", 3)).ok());
}

TEST(EnvoyNameTest, MarkerTextIsRefused) {
  EXPECT_FALSE(ValidateEnvoyName("a__VIGO_SECRET__b").ok());
  EXPECT_TRUE(ValidateEnvoyName("a__VIGO_SECRE").ok());  // not the whole prefix
}

TEST(EnvoyNameTest, ErrorsNameTheOffsetNotTheName) {
  absl::Status st = ValidateEnvoyName("okpart$secretish");
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("byte 6"), std::string::npos) << st;
  EXPECT_EQ(st.message().find("secretish"), std::string::npos) << st;
}

}  // namespace
}  // namespace vigo::vocab
