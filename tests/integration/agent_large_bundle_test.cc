// Issue 13.5: a bundle whose values total more than one ResolveSecrets reply
// (4 MiB) could never be resolved: every run failed RESOURCE_EXHAUSTED. Six
// values of 900 KiB (5.3 MiB; the local vault stores at most 1 MiB each),
// referenced by one envoy, applied by the real `vigo run --once` +
// `vigo-worker` against a real server: the agent converges, every file holds
// its value, and the audit's "ok" records release each path exactly once.
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/server_fixture.h"

namespace vigo::testing {
namespace {

namespace fs = std::filesystem;

constexpr int kSecrets = 6;
constexpr size_t kValueBytes = 900 * 1024;

std::string Value(int i) {
  // Distinct per secret and position, so a swapped or truncated value shows.
  std::string v = StrCat("BIGCANARY-", i, "-");
  while (v.size() < kValueBytes) v += static_cast<char>('a' + (v.size() * 7 + i) % 26);
  v.resize(kValueBytes);
  return v;
}

ServerFixtureOptions Options() {
  ServerFixtureOptions o;
  std::string env = "env:\n  prod:\n    vars:\n";
  std::string crate = "configcrate: big\nresources:\n";
  for (int i = 0; i < kSecrets; ++i) {
    StrAppend(&env, "      s", i, ": \"secret:big/s", i, "\"\n");
    StrAppend(&crate, "  - name: f", i, "\n    type: file\n    target_path: /etc/big/f", i,
              ".bin\n    mode: \"0600\"\n    content: \"{{ .Vars.s", i, " }}\"\n");
    o.secrets[StrCat("big/s", i)] = Value(i);
  }
  o.stacks = {
      {"envoys.vgo", "envoys:\n  - match: \"web-1\"\n    environment: prod\n    roles: [app]\n"},
      {"roles.vgo", "roles:\n  app:\n    configcrates: [big]\n"},
      {"environments.vgo", env},
      {"configcrates/big.vgo", crate},
  };
  o.server_options.enable_watcher = false;
  return o;
}

TEST(AgentLargeBundleTest, ValuesTotallingMoreThanOneReplyAreResolvedInSeveralCalls) {
  ServerFixture fx(Options());
  ASSERT_TRUE(fx.ok()) << fx.error();
  EnvoyCreds creds = fx.IssueEnvoy("web-1");
  ASSERT_TRUE(fx.ok()) << fx.error();
  AgentDirs dirs;
  const fs::path& root = dirs.root;
  const fs::path& state = dirs.state;
  const std::vector<std::string> argv = AgentArgv("once", fx.target(), creds, dirs, "debug");

  RunResult r = vigo::testing::Run(argv);
  ASSERT_EQ(r.exit_code, 0) << r.err.substr(r.err.size() > 4000 ? r.err.size() - 4000 : 0);
  for (int i = 0; i < kSecrets; ++i) {
    const fs::path f = root / StrCat("etc/big/f", i, ".bin");
    const std::string got = ReadFileOrEmpty(f);
    EXPECT_EQ(got.size(), kValueBytes) << f;
    EXPECT_TRUE(got == Value(i)) << f << " does not hold its value";
  }
  // Every "ok" record names only what its reply released: together each
  // path exactly once, in more than one call, and no failed call.
  std::map<std::string, int> released;
  int ok_calls = 0;
  for (const auto& rec : fx.AuditRecords()) {
    if (rec.event.event != "secret.resolve") continue;
    EXPECT_EQ(rec.event.outcome, "ok") << rec.event.detail;
    ++ok_calls;
    for (const std::string& p : rec.event.paths) ++released[p];
  }
  EXPECT_GE(ok_calls, 2);
  ASSERT_EQ(released.size(), static_cast<size_t>(kSecrets));
  for (const auto& [path, n] : released) EXPECT_EQ(n, 1) << path;

  // No value in the agent's output or its state dir.
  EXPECT_EQ(FindCanariesIn(r.err + r.out, "agent logs", {"BIGCANARY-"}),
            std::vector<std::string>{});
  EXPECT_EQ(FindCanaries(state, {"BIGCANARY-"}), std::vector<std::string>{});
}

}  // namespace
}  // namespace vigo::testing
