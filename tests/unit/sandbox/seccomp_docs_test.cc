// docs/sandbox.md embeds the output of vigo-policy-table; the walls an
// operator reads must be the walls the code builds.
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "sandbox/seccomp_policy.h"
#include "tests/support/test_env.h"

namespace vigo::sandbox {
namespace {

TEST(SeccompDocsTest, SandboxMdTablesMatchThePolicies) {
  std::ifstream f(vigo::testing::SourcePath("docs/sandbox.md"));
  ASSERT_TRUE(f.good()) << "docs/sandbox.md missing";
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string doc = ss.str();
  const std::string begin = "<!-- BEGIN vigo-policy-table -->\n";
  const std::string end = "<!-- END vigo-policy-table -->";
  size_t b = doc.find(begin), e = doc.find(end);
  ASSERT_NE(b, std::string::npos);
  ASSERT_NE(e, std::string::npos);
  const std::string embedded = doc.substr(b + begin.size(), e - b - begin.size());
  std::string want;
  for (const Policy* p : AllPolicies()) want += PolicyMarkdown(*p) + "\n";
  EXPECT_TRUE(embedded == want)
      << "docs/sandbox.md policy tables are stale; regenerate the block between the markers with "
         "<build>/bin/vigo-policy-table";
}

}  // namespace
}  // namespace vigo::sandbox
