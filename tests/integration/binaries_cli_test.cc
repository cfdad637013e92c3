// The command-line surface every binary promises (CONTRACT §1, §6): --help
// and --version exit 0, an unknown flag exits 2 (usage), and every vigocli
// command group answers --help.
#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/test_env.h"

namespace vigo::testing {
namespace {

class BinaryTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BinaryTest, HelpVersionAndUnknownFlag) {
  const std::string bin = BinPath(GetParam()).string();
  RunResult help = vigo::testing::Run({bin, "--help"});
  EXPECT_EQ(help.exit_code, 0) << help.err;
  EXPECT_NE(help.out.find("usage"), std::string::npos) << help.out;
  RunResult version = vigo::testing::Run({bin, "--version"});
  EXPECT_EQ(version.exit_code, 0) << version.err;
  EXPECT_NE(version.out.find("0.1.0"), std::string::npos) << version.out;
  RunResult unknown = vigo::testing::Run({bin, "--no-such-flag"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("--no-such-flag"), std::string::npos)
      << "the error names the bad flag: " << unknown.err;
}

INSTANTIATE_TEST_SUITE_P(AllFour, BinaryTest,
                         ::testing::Values("vigosrv", "vigocli", "vigo", "vigo-worker"),
                         [](const ::testing::TestParamInfo<std::string>& param_info) {
                           std::string n = param_info.param;
                           for (char& c : n) {
                             if (c == '-') c = '_';
                           }
                           return n;
                         });

TEST(VigocliTest, EveryCommandAnswersHelp) {
  const std::string cli = BinPath("vigocli").string();
  const std::vector<std::vector<std::string>> commands = {
      {"secrets", "init"},   {"secrets", "unlock"},   {"secrets", "lock"},    {"secrets", "status"},
      {"secrets", "set"},    {"secrets", "reveal"},   {"secrets", "list"},    {"secrets", "delete"},
      {"secrets", "rotate"}, {"secrets", "generate"}, {"config", "validate"}, {"bundle", "show"},
      {"who-needs"},         {"envoy", "issue"},      {"envoy", "list"},      {"envoy", "revoke"},
      {"runs", "list"},      {"runs", "show"},        {"runs", "prune"},      {"audit", "list"},
      {"audit", "verify"},   {"server", "reload"},    {"secrets", "restore"}};
  TempDir root;
  for (std::vector<std::string> argv : commands) {
    std::string name;
    for (const auto& a : argv) name += a + " ";
    argv.insert(argv.begin(), {cli, "--root", root.path().string()});
    argv.push_back("--help");
    RunResult r = vigo::testing::Run(argv);
    EXPECT_EQ(r.exit_code, 0) << name << r.err;
    EXPECT_NE(r.out.find("usage"), std::string::npos) << name << r.out;
  }
}

TEST(VigocliTest, UnknownCommandIsUsage) {
  RunResult r = vigo::testing::Run({BinPath("vigocli").string(), "frobnicate"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("frobnicate"), std::string::npos) << r.err;
}

// One dispatcher for every group (cli/command.h): the same usage, the same
// exit codes, and an unknown verb is not repeated (it may be a value typed
// in the wrong place; the secrets group used to echo it).
TEST(VigocliTest, EveryGroupDispatchesItsVerbsTheSameWay) {
  const std::string cli = BinPath("vigocli").string();
  TempDir root;
  for (const std::string group :
       {"secrets", "config", "bundle", "envoy", "runs", "audit", "server"}) {
    RunResult help = vigo::testing::Run({cli, "--root", root.path().string(), group, "--help"});
    EXPECT_EQ(help.exit_code, 0) << group << help.err;
    EXPECT_EQ(help.out.rfind("usage: vigocli " + group + " VERB ...\n", 0), 0u)
        << group << help.out;
    RunResult none = vigo::testing::Run({cli, "--root", root.path().string(), group});
    EXPECT_EQ(none.exit_code, 2) << group;
    EXPECT_NE(none.err.find("usage: vigocli " + group + " VERB"), std::string::npos) << none.err;
    RunResult unknown =
        vigo::testing::Run({cli, "--root", root.path().string(), group, "hunter2-Sekret"});
    EXPECT_EQ(unknown.exit_code, 2) << group;
    EXPECT_NE(unknown.err.find("unknown verb (14 bytes"), std::string::npos) << unknown.err;
    EXPECT_EQ(unknown.err.find("Sekret"), std::string::npos) << unknown.err;
  }
}

TEST(VigocliTest, AUsageErrorNamesTheVerbAndPointsAtItsHelp) {
  const std::string cli = BinPath("vigocli").string();
  TempDir root;
  RunResult r = vigo::testing::Run({cli, "--root", root.path().string(), "envoy", "issue"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("vigocli envoy issue: ", 0), 0u) << r.err;
  EXPECT_NE(r.err.find("see `vigocli envoy issue --help`"), std::string::npos) << r.err;
  RunResult out =
      vigo::testing::Run({cli, "--root", root.path().string(), "envoy", "issue", "web-1"});
  EXPECT_EQ(out.exit_code, 2);
  EXPECT_NE(out.err.find("vigocli envoy issue: --out DIR is required"), std::string::npos)
      << out.err;
}

// #13.23: `server_load_bench --help` printed nothing and ran the whole bench
// (minutes, a real vigosrv). It prints usage and exits 0; a flag without a
// value is a usage error. The bench binaries sit beside bin/ in the build.
TEST(BenchTest, ServerLoadBenchHelpPrintsUsageAndRunsNothing) {
  const std::string bench = (BinPath("..") / "bench" / "server_load_bench").string();
  RunResult r = ::vigo::testing::Run({bench, "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("usage: server_load_bench"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("###"), std::string::npos) << "the bench ran: " << r.out;
  r = ::vigo::testing::Run({bench, "--rounds"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--rounds needs a value"), std::string::npos) << r.err;
}

// `vigo --hide PATH` (CONTRACT §8, repeatable). A path that does not exist,
// holds a ':' or would cover the apply root is a usage error naming it,
// before anything is created or started (the state dir stays absent).
class HideFlagTest : public ::testing::Test {
 protected:
  RunResult Agent(const std::vector<std::string>& extra) {
    std::vector<std::string> argv = {BinPath("vigo").string(),
                                     "run",
                                     "--once",
                                     "--server",
                                     "127.0.0.1:1",
                                     "--ca-file",
                                     (dir_.path() / "ca.pem").string(),
                                     "--cert-file",
                                     (dir_.path() / "cert.pem").string(),
                                     "--key-file",
                                     (dir_.path() / "key.pem").string(),
                                     "--state-dir",
                                     state().string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return vigo::testing::Run(argv);
  }
  std::filesystem::path state() const { return dir_.path() / "state"; }

  TempDir dir_;
};

TEST_F(HideFlagTest, HelpListsTheFlagAndItsDefaults) {
  RunResult r = vigo::testing::Run({BinPath("vigo").string(), "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--hide VALUE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("repeatable"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("/srv/vigo"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("/var/lib/vigo when they exist"), std::string::npos) << r.out;
}

TEST_F(HideFlagTest, AMissingHidePathIsAUsageErrorNamingItBeforeAnythingStarts) {
  std::filesystem::create_directory(dir_.path() / "present");
  const std::string missing = (dir_.path() / "vault-typo").string();
  RunResult r = Agent({"--hide", (dir_.path() / "present").string(), "--hide", missing});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--hide " + missing + ": no such file or directory"), std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(state())) << "the state dir was created before the check";
}

TEST_F(HideFlagTest, APathWithAColonIsAUsageError) {
  const std::string colon = (dir_.path() / "a:b").string();
  std::filesystem::create_directory(colon);
  RunResult r = Agent({"--hide=" + colon});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("may not contain ':'"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(colon), std::string::npos) << r.err;
}

TEST_F(HideFlagTest, AnApplyRootBeneathAHiddenDirectoryIsAUsageError) {
  std::filesystem::create_directories(dir_.path() / "stage" / "root");
  RunResult r = Agent({"--hide", (dir_.path() / "stage").string(), "--apply-root",
                       (dir_.path() / "stage" / "root").string()});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--apply-root"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("is at or beneath " + (dir_.path() / "stage").string()), std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(state()));
}

}  // namespace
}  // namespace vigo::testing
