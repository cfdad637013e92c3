// vigocli config validate / bundle show / who-needs against a real data root
// with the local backend (runs the built vigocli binary).
#include <filesystem>
#include <string>
#include <vector>

#include "common/secret_ref.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_env.h"

namespace vigo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kValue[] = "cli-canary-Zq81vXw0pLm3";

class StacksCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path().string();
    testing::WriteFileOrDie(dir_.path() / "server.yaml",
                            "secrets:\n  backend: local\n  secrets_dir: secrets\n");
    testing::WriteFileOrDie(dir_.path() / "pass", "correct horse battery staple\n");
    // The database (only `vigosrv init` creates one); its example stack is
    // replaced by the test's.
    ASSERT_EQ(
        testing::Run({testing::BinPath("vigosrv").string(), "init", "--root", root_}).exit_code, 0);
    fs::remove_all(dir_.path() / "stacks");
    fs::copy(testing::SourcePath("tests/data/stacks/basic"), dir_.path() / "stacks",
             fs::copy_options::recursive);
    ASSERT_EQ(
        Cli({"secrets", "init", "--passphrase-file", (dir_.path() / "pass").string()}).exit_code,
        0);
    ASSERT_EQ(
        Cli({"secrets", "unlock", "--passphrase-file", (dir_.path() / "pass").string()}).exit_code,
        0);
    auto set = Cli({"secrets", "set", "webapp/prod/db_password"}, kValue);
    ASSERT_EQ(set.exit_code, 0) << set.err;
  }

  testing::RunResult Cli(std::vector<std::string> args, std::string_view in = {}) {
    std::vector<std::string> argv = {testing::BinPath("vigocli").string(), "--root", root_};
    argv.insert(argv.end(), args.begin(), args.end());
    testing::RunResult r = testing::Run(argv, in);
    EXPECT_THAT(r.out, Not(HasSubstr(kValue)));
    EXPECT_THAT(r.err, Not(HasSubstr(kValue)));
    return r;
  }

  testing::TempDir dir_;
  std::string root_;
};

TEST_F(StacksCliTest, ValidateOkAndErrors) {
  auto ok = Cli({"config", "validate"});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("stacks OK: 5 files, 1 envoy rules, 2 configcrates, 1 secret"));

  testing::WriteFileOrDie(dir_.path() / "stacks/configcrates/bad.vgo",
                          "configcrate: bad\nresources:\n  - name: x\n    type: exec\n"
                          "    command: [\"secret:webapp/prod/db_password\"]\n"
                          "    stdin: \"secret:nope/x\"\n");
  auto bad = Cli({"config", "validate"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_THAT(bad.err,
              HasSubstr("stacks/configcrates/bad.vgo:5: key 'command[0]': secret reference"));
  EXPECT_THAT(
      bad.err,
      HasSubstr("stacks/configcrates/bad.vgo:6: key 'stdin': secret 'nope/x' does not exist"));
  auto json = Cli({"config", "validate", "--json"});
  EXPECT_EQ(json.exit_code, 1);
  EXPECT_THAT(json.out,
              HasSubstr("{\"ok\":false,\"errors\":[{\"file\":\"configcrates/bad.vgo\",\"line\":5"));
}

TEST_F(StacksCliTest, BundleShow) {
  auto json = Cli({"bundle", "show", "--envoy", "web-1", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"envoy_name\": \"web-1\""));
  EXPECT_THAT(json.out, HasSubstr(MarkerFor("webapp/prod/db_password")));
  EXPECT_THAT(json.out, HasSubstr("\"secret_refs\": [\n  \"webapp/prod/db_password\"\n ]"));
  auto text = Cli({"bundle", "show", "--envoy", "web-1"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("matches rule 'web-*' (stacks/envoys.vgo:3)"));
  EXPECT_THAT(text.out, HasSubstr("secret_refs: \"webapp/prod/db_password\""));
  EXPECT_EQ(Cli({"bundle", "show", "--envoy", "db-1"}).exit_code, 4);
  EXPECT_EQ(Cli({"bundle", "show"}).exit_code, 2);
  EXPECT_EQ(Cli({"bundle", "show", "--envoy", "web-1", "--bogus"}).exit_code, 2);
  EXPECT_EQ(Cli({"bundle", "show", "--envoy", "bad name"}).exit_code, 2);
}

TEST_F(StacksCliTest, WhoNeeds) {
  auto r = Cli({"who-needs", "webapp/prod/db_password", "--envoy", "web-1", "--envoy", "db-1",
                "--envoy=web-2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("  web-1\n  web-2\n"));
  EXPECT_THAT(r.out, Not(HasSubstr("db-1")));
  EXPECT_THAT(r.out, HasSubstr("web-*"));
  auto none = Cli({"who-needs", "other/path"});
  EXPECT_EQ(none.exit_code, 0);
  EXPECT_THAT(none.out, HasSubstr("(none"));
  auto json = Cli({"who-needs", "webapp/prod/db_password", "--json"});
  EXPECT_THAT(
      json.out,
      HasSubstr("{\"kind\":\"rule\",\"match\":\"web-*\",\"file\":\"envoys.vgo\",\"line\":3"));
  EXPECT_EQ(Cli({"who-needs", "../bad"}).exit_code, 2);
  EXPECT_EQ(Cli({"who-needs"}).exit_code, 2);
}

TEST(StacksCliRegistryTest, WhoNeedsChecksIssuedEnvoysAndBundleUsesServerEpoch) {
  testing::TempDir dir;
  std::string root = (dir.path() / "root").string();
  auto init = testing::Run({testing::BinPath("vigosrv").string(), "init", "--root", root});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  fs::remove_all(fs::path(root) / "stacks");
  ASSERT_EQ(testing::Run({testing::BinPath("vigosrv").string(), "init", "--root", root}).exit_code,
            0);
  fs::remove_all(fs::path(root) / "stacks");
  fs::copy(testing::SourcePath("tests/data/stacks/basic"), fs::path(root) / "stacks",
           fs::copy_options::recursive);
  testing::WriteFileOrDie(dir.path() / "pass", "correct horse battery staple\n");
  auto cli = [&](std::vector<std::string> args, std::string_view in = {}) {
    std::vector<std::string> argv = {testing::BinPath("vigocli").string(), "--root", root};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::Run(argv, in);
  };
  std::string pass = (dir.path() / "pass").string();
  ASSERT_EQ(cli({"secrets", "init", "--passphrase-file", pass}).exit_code, 0);
  ASSERT_EQ(cli({"secrets", "unlock", "--passphrase-file", pass}).exit_code, 0);
  ASSERT_EQ(cli({"secrets", "set", "webapp/prod/db_password"}, kValue).exit_code, 0);
  for (const char* name : {"web-7", "db-3"}) {
    auto issued = cli({"envoy", "issue", name, "--out", (dir.path() / name).string()});
    ASSERT_EQ(issued.exit_code, 0) << issued.err;
  }
  auto r = cli({"who-needs", "webapp/prod/db_password"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("(2 checked, issued envoys included):\n  web-7\nrules"));
  auto b = cli({"bundle", "show", "--envoy", "web-7", "--json"});
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_THAT(b.out, HasSubstr("\"secrets_epoch\": \"1\""));  // the server's initial epoch
}

TEST_F(StacksCliTest, HelpEverywhere) {
  for (std::vector<std::string> args :
       std::vector<std::vector<std::string>>{{"config", "--help"},
                                             {"config", "validate", "--help"},
                                             {"bundle", "show", "--help"},
                                             {"who-needs", "--help"}}) {
    auto r = Cli(args);
    EXPECT_EQ(r.exit_code, 0) << args[0];
    EXPECT_THAT(r.out, HasSubstr("usage: vigocli"));
  }
  EXPECT_EQ(Cli({"config", "check"}).exit_code, 2);
}

}  // namespace
}  // namespace vigo
