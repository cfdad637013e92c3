// Each compiled seccomp filter must match its checked-in golden PFC export
// byte for byte (Chromium bpf_dsl/golden): a policy change is a reviewed diff.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "sandbox/seccomp_policy.h"
#include "tests/support/test_env.h"

namespace vigo::sandbox {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string FirstDifference(const std::string& want, const std::string& got) {
  std::istringstream a(want), b(got);
  std::string la, lb;
  for (int line = 1;; ++line) {
    bool ha = static_cast<bool>(std::getline(a, la));
    bool hb = static_cast<bool>(std::getline(b, lb));
    if (!ha && !hb) return "no line differs (trailing bytes?)";
    if (la != lb || ha != hb) {
      return "line " + std::to_string(line) + ":\n  golden:   " + (ha ? la : "<eof>") +
             "\n  compiled: " + (hb ? lb : "<eof>");
    }
  }
}

class SeccompGoldenTest : public ::testing::TestWithParam<const Policy*> {};

TEST_P(SeccompGoldenTest, CompiledFilterMatchesGolden) {
  const Policy& policy = *GetParam();
  auto filter = CompilePolicy(policy, GoldenCompileOptions());
  ASSERT_TRUE(filter.ok()) << filter.status();
  auto pfc = filter->ExportPfc();
  ASSERT_TRUE(pfc.ok()) << pfc.status();
  ASSERT_FALSE(pfc->empty());

  const std::string rel = std::string("sandbox/policies/golden/") + policy.process + ".x86_64.pfc";
  const std::string path = vigo::testing::SourcePath(rel).string();
  const char* update = std::getenv("VIGO_UPDATE_GOLDENS");
  if (update != nullptr && std::string(update) == "1") {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << *pfc;
    ASSERT_TRUE(out.good()) << "cannot write " << path;
    GTEST_SKIP() << "rewrote " << path << " (VIGO_UPDATE_GOLDENS=1); review and commit it";
  }
  const std::string golden = ReadAll(path);
  ASSERT_FALSE(golden.empty()) << "missing golden " << rel
                               << "; create it with VIGO_UPDATE_GOLDENS=1";
  EXPECT_TRUE(golden == *pfc)
      << "the compiled " << policy.process << " filter differs from " << rel << "\n"
      << FirstDifference(golden, *pfc) << "\n"
      << "If the policy change is intended, regenerate and commit the golden:\n"
      << "  VIGO_UPDATE_GOLDENS=1 ctest -R unit_sandbox_seccomp_golden_test\n"
      << "  (or: <build>/bin/vigo-policy-table --write-goldens sandbox/policies/golden)";
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, SeccompGoldenTest, ::testing::ValuesIn(AllPolicies()),
                         [](const auto& param_info) {
                           return std::string(param_info.param->process);
                         });

// The golden is not vacuous: a one-row change to a policy changes the export.
TEST(SeccompGoldenSensitivityTest, RemovingARowChangesTheExport) {
  const Policy& broker = BrokerPolicy();
  auto full = CompilePolicy(broker, GoldenCompileOptions());
  ASSERT_TRUE(full.ok()) << full.status();
  Policy smaller = broker;
  smaller.rules = broker.rules.subspan(1);
  auto reduced = CompilePolicy(smaller, GoldenCompileOptions());
  ASSERT_TRUE(reduced.ok()) << reduced.status();
  EXPECT_NE(*full->ExportPfc(), *reduced->ExportPfc());
}

}  // namespace
}  // namespace vigo::sandbox
