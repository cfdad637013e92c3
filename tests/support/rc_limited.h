// Runs a rapidcheck property with a bounded number of cases, for properties
// whose every case starts real processes (a server, agents). The seed and
// other parameters still come from RC_PARAMS, so a failure reproduces with
// RC_PARAMS="seed=..." as usual, and max_success / max_size set there
// override the bound (RC_PARAMS="max_success=1000" for a soak).
//
//   TEST(EntitlementProperty, ResolveIffEntitled) {
//     vigo::testing::CheckLimited(8, [] { ... RC_ASSERT(...); });
//   }
#ifndef VIGO_TESTS_SUPPORT_RC_LIMITED_H_
#define VIGO_TESTS_SUPPORT_RC_LIMITED_H_

#include <rapidcheck.h>
#include <rapidcheck/detail/Configuration.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace vigo::testing {

template <typename Testable>
void CheckLimited(int max_cases, Testable&& testable) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  rc::detail::TestMetadata metadata;
  metadata.id = std::string(info->test_suite_name()) + "/" + info->name();
  metadata.description = info->name();
  rc::detail::TestParams params = rc::detail::configuration().testParams;
  // An auditor's RC_PARAMS wins: max_success / max_size given there are used
  // as is (a long soak needs no code change); otherwise the bounds above.
  const char* env = std::getenv("RC_PARAMS");
  const std::string given = env != nullptr ? env : "";
  if (given.find("max_success") == std::string::npos) {
    params.maxSuccess = std::min(params.maxSuccess, max_cases);
  }
  if (given.find("max_size") == std::string::npos) params.maxSize = std::min(params.maxSize, 30);
  auto result = rc::detail::checkTestable(std::forward<Testable>(testable), metadata, params);
  if (!result.template is<rc::detail::SuccessResult>()) {
    std::ostringstream ss;
    rc::detail::printResultMessage(result, ss);
    FAIL() << ss.str();
  }
}

}  // namespace vigo::testing

#endif  // VIGO_TESTS_SUPPORT_RC_LIMITED_H_
