// A bundle with more secrets than one ResolveSecrets call may carry (vigosrv:
// 256) and than one worker batch asks for: 600 files, each with its own secret,
// applied by the real `vigo run --once` + `vigo-worker` against a real server.
// Exercises the broker's concurrent ResolveSecrets calls (each its own thread,
// own key, own cache, merged) and the worker's kResolveBatch round trips:
// every file has its own value and mode, each call is audited with at most
// 256 refs and together they cover the bundle exactly once, the second run
// changes nothing, and no value reaches a log or the state dir.
#include <sys/stat.h>

#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/server_fixture.h"

namespace vigo::testing {
namespace {

namespace fs = std::filesystem;

constexpr int kFiles = 600;
constexpr char kCanaryPrefix[] = "MANYCANARY-7f3e2d1c-";

std::string Value(int i) { return StrCat(kCanaryPrefix, i, "-v"); }

ServerFixtureOptions ManyOptions() {
  ServerFixtureOptions o;
  std::string env = "env:\n  prod:\n    vars:\n";
  std::string crate = "configcrate: files\nresources:\n";
  for (int i = 0; i < kFiles; ++i) {
    StrAppend(&env, "      s", i, ": \"secret:many/s", i, "\"\n");
    StrAppend(&crate, "  - name: f", i, "\n    type: file\n    target_path: /etc/many/f", i,
              ".conf\n    mode: \"0640\"\n    content: \"password = {{ .Vars.s", i, " }}\\n\"\n");
    o.secrets[StrCat("many/s", i)] = Value(i);
  }
  o.stacks = {
      {"envoys.vgo", "envoys:\n  - match: \"web-1\"\n    environment: prod\n    roles: [app]\n"},
      {"roles.vgo", "roles:\n  app:\n    configcrates: [files]\n"},
      {"environments.vgo", env},
      {"configcrates/files.vgo", crate},
  };
  o.server_options.enable_watcher = false;
  return o;
}

TEST(AgentManySecretsTest, SixHundredFilesEachWithItsOwnSecret) {
  ServerFixture fx(ManyOptions());
  ASSERT_TRUE(fx.ok()) << fx.error();
  EnvoyCreds creds = fx.IssueEnvoy("web-1");
  ASSERT_TRUE(fx.ok()) << fx.error();
  AgentDirs dirs;
  const fs::path& root = dirs.root;
  const fs::path& state = dirs.state;
  const std::vector<std::string> argv = AgentArgv("once", fx.target(), creds, dirs);

  RunResult r1 = vigo::testing::Run(argv);
  ASSERT_EQ(r1.exit_code, 0) << r1.err.substr(r1.err.size() > 4000 ? r1.err.size() - 4000 : 0);
  for (int i = 0; i < kFiles; ++i) {
    const fs::path f = root / StrCat("etc/many/f", i, ".conf");
    ASSERT_EQ(ReadFileOrEmpty(f), StrCat("password = ", Value(i), "\n")) << f;
    struct stat st;
    ASSERT_EQ(::stat(f.c_str(), &st), 0) << f;
    EXPECT_EQ(st.st_mode & 07777, 0640u) << f;
  }
  // Three calls (256 + 256 + 88 refs), each audited, together the whole bundle once.
  std::multiset<std::string> asked;
  int calls = 0;
  for (const auto& rec : fx.AuditRecords()) {
    if (rec.event.event != "secret.resolve") continue;
    ++calls;
    EXPECT_EQ(rec.event.outcome, "ok");
    EXPECT_LE(rec.event.paths.size(), 256u);
    asked.insert(rec.event.paths.begin(), rec.event.paths.end());
  }
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(asked.size(), static_cast<size_t>(kFiles));
  EXPECT_EQ(std::set<std::string>(asked.begin(), asked.end()).size(), static_cast<size_t>(kFiles));

  // Second run (fresh agent, cold value cache): values resolved again, nothing written.
  struct stat before;
  ASSERT_EQ(::stat((root / "etc/many/f599.conf").c_str(), &before), 0);
  RunResult r2 = vigo::testing::Run(argv);
  ASSERT_EQ(r2.exit_code, 0) << r2.err.substr(r2.err.size() > 4000 ? r2.err.size() - 4000 : 0);
  std::string run2 = ReadFileOrEmpty(state / "last_run.json");
  EXPECT_NE(run2.find("\"outcome\":\"ok\""), std::string::npos) << run2.substr(0, 400);
  EXPECT_EQ(run2.find("\"status\":\"changed\""), std::string::npos);
  struct stat after;
  ASSERT_EQ(::stat((root / "etc/many/f599.conf").c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);

  // No value in the logs (trace level) or the state dir; no temp file left.
  std::vector<std::string> canaries;
  for (int i = 0; i < kFiles; i += 37) canaries.push_back(Value(i));
  canaries.push_back(kCanaryPrefix);
  EXPECT_EQ(FindCanariesIn(r1.err + r1.out + r2.err + r2.out, "agent logs", canaries),
            std::vector<std::string>{});
  EXPECT_EQ(FindCanaries(state, canaries), std::vector<std::string>{});
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    EXPECT_EQ(e.path().filename().string().find(".vigo-tmp"), std::string::npos) << e.path();
  }
}

}  // namespace
}  // namespace vigo::testing
