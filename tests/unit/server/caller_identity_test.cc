// CallerIdentity's last_seen throttle: at most one write a minute per
// certificate, bounded memory, and a certificate seen right after the table
// was cleared is still remembered (the old code wrote through a reference
// into the map it had just cleared).
#include "server/service/caller_identity.h"

#include <string>

#include "gtest/gtest.h"

namespace vigo::server::service {
namespace {

TEST(CallerIdentityTest, LastSeenIsWrittenOnceAMinutePerCertificate) {
  CallerIdentity callers(nullptr);
  EXPECT_TRUE(callers.ShouldTouch("fp-a"));
  EXPECT_FALSE(callers.ShouldTouch("fp-a"));
  EXPECT_TRUE(callers.ShouldTouch("fp-b"));
  EXPECT_FALSE(callers.ShouldTouch("fp-b"));
}

TEST(CallerIdentityTest, TheCertificateThatFillsTheTableIsRememberedAfterTheClear) {
  CallerIdentity callers(nullptr);
  for (size_t i = 0; i < CallerIdentity::kMaxTouched; ++i) {
    ASSERT_TRUE(callers.ShouldTouch("fp-" + std::to_string(i)));
  }
  // The table is full: the next new certificate clears it and is recorded.
  EXPECT_TRUE(callers.ShouldTouch("fp-new"));
  EXPECT_FALSE(callers.ShouldTouch("fp-new"));
  // Everything before the clear is forgotten (bounded memory): written again.
  EXPECT_TRUE(callers.ShouldTouch("fp-0"));
  // A certificate already in a full table does not clear it.
  EXPECT_FALSE(callers.ShouldTouch("fp-new"));
}

}  // namespace
}  // namespace vigo::server::service
