// The local vault under a running server: a reload sees a replaced vault
// directory and a changed master key (issue 13.21), and refuses a rolled-back
// vault file (issue 13.12). The server is built the way vigosrv builds it
// (OpenBackend: local vault + version floor in the database) and serves on
// 127.0.0.1:0; writes go through the real vigocli.
#include <sys/stat.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/server_fixture.h"

namespace vigo::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kPass[] = "a long test passphrase 123";

class VaultServerReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerFixtureOptions o;
    o.start = false;
    o.server_options.enable_admin = false;
    o.server_options.enable_watcher = false;
    fx_ = std::make_unique<ServerFixture>(o);
    ASSERT_TRUE(fx_->ok()) << fx_->error();
    WriteFileOrDie(fx_->tmp() / "pass", std::string(kPass) + "\n");
    RunResult r = Cli({"secrets", "init", "--passphrase-file", (fx_->tmp() / "pass").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = Cli({"secrets", "unlock", "--passphrase-file", (fx_->tmp() / "pass").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void TearDown() override {
    if (srv_) srv_->Shutdown();
  }
  RunResult Cli(std::vector<std::string> args, std::string_view in = {}) {
    std::vector<std::string> argv = {BinPath("vigocli").string(), "--root", fx_->root().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return ::vigo::testing::Run(argv, in);
  }
  uint64_t Set(const std::string& path, const std::string& value) {
    RunResult r = Cli({"--json", "secrets", "set", path}, value);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    size_t at = r.out.find("\"version\":");
    return at == std::string::npos ? 0 : std::stoull(r.out.substr(at + 10));
  }
  // A stack that references `path`, then a serving server (like vigosrv).
  void StartServer(const std::string& path) {
    WriteFileOrDie(fx_->root() / "stacks" / "environments.vgo",
                   "env:\n  default:\n    vars: { site: \"secret:" + path + "\" }\n", 0640);
    server::service::ServerOptions so;
    so.enable_admin = false;
    so.enable_watcher = false;
    auto srv = server::service::VigoServer::Create(fx_->cfg(), /*backend=*/nullptr, so);
    ASSERT_TRUE(srv.ok()) << srv.status();
    srv_ = std::move(*srv);
    ASSERT_TRUE(srv_->Start("127.0.0.1:0").ok());
  }
  std::string Served(const std::string& path) {
    auto v = srv_->backend().Get(path);
    if (!v.ok()) return "error: " + std::string(v.status().message());
    auto b = v->Reveal();
    return std::string(b.begin(), b.end());
  }
  fs::path Secrets() const { return fx_->cfg().SecretsDir(); }

  std::unique_ptr<ServerFixture> fx_;
  std::unique_ptr<server::service::VigoServer> srv_;
};

TEST_F(VaultServerReloadTest, ReloadReopensAReplacedSecretsDirectory) {
  Set("app/pw", "before");
  StartServer("app/pw");
  ASSERT_EQ(Served("app/pw"), "before");
  // Move the directory away, put a copy back, change the copy.
  const fs::path old_dir = fx_->tmp() / "secrets.moved";
  fs::rename(Secrets(), old_dir);
  fs::copy(old_dir, Secrets(), fs::copy_options::recursive);
  ::chmod(Secrets().c_str(), 0700);
  Set("app/pw", "after");
  ASSERT_TRUE(srv_->Reload("test: replaced directory").ok());
  EXPECT_EQ(Served("app/pw"), "after");

  // A loosened, then a malformed master key in the live directory: the
  // reload fails naming it, and the last good state keeps serving.
  const fs::path key = Secrets() / ".master.key";
  const std::string key_text = ReadAllFile(key);
  ASSERT_EQ(::chmod(key.c_str(), 0644), 0);
  auto r = srv_->Reload("test: loose key");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("mode 0644"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr(key.string()));
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);
  WriteFileOrDie(key, "not a key\n", 0600);
  r = srv_->Reload("test: malformed key");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("malformed"));
  EXPECT_EQ(Served("app/pw"), "after");
  WriteFileOrDie(key, key_text, 0600);
  EXPECT_TRUE(srv_->Reload("test: key back").ok());
  EXPECT_EQ(Served("app/pw"), "after");
}

TEST_F(VaultServerReloadTest, RolledBackVaultFileIsRefusedByARunningServer) {
  const uint64_t v1 = Set("app/pw", "old-value");
  const std::string old_bytes = ReadAllFile(Secrets() / "app/pw");
  const uint64_t v2 = Set("app/pw", "new-value");
  StartServer("app/pw");
  ASSERT_EQ(Served("app/pw"), "new-value");
  WriteFileOrDie(Secrets() / "app/pw", old_bytes, 0600);
  auto r = srv_->Reload("test: rolled back");
  ASSERT_FALSE(r.ok());
  const std::string msg(r.status().message());
  EXPECT_THAT(msg, HasSubstr("app/pw"));
  EXPECT_THAT(msg, HasSubstr("version " + std::to_string(v1)));
  EXPECT_THAT(msg, HasSubstr("version " + std::to_string(v2)));
  // What a ResolveSecrets would read now: refused, never the old value.
  EXPECT_THAT(Served("app/pw"), HasSubstr("older than version " + std::to_string(v2)));
  // The audited way back.
  RunResult cli = Cli({"secrets", "restore", "app/pw"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err;
  ASSERT_TRUE(srv_->Reload("test: restored").ok());
  EXPECT_EQ(Served("app/pw"), "old-value");
  cli = Cli({"audit", "list", "--json"});
  EXPECT_THAT(cli.out, HasSubstr("\"event\":\"secret.restore\""));
}

// #13.23: while the stacks fail to load, a changed secret must reach every
// agent the same way. Daemons cache values per secrets_epoch, so the epoch
// has to move even though the stacks stay the last good ones; with no
// secret change it stays (no needless re-resolve).
TEST_F(VaultServerReloadTest, SecretChangeReachesAgentsWhileStacksFailToLoad) {
  Set("app/pw", "first");
  StartServer("app/pw");
  const uint64_t e0 = srv_->epoch();
  WriteFileOrDie(fx_->root() / "stacks" / "roles.vgo", "roles: [unclosed\n", 0640);
  auto r = srv_->Reload("test: broken stacks");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(srv_->epoch(), e0) << "nothing changed in the vault: the epoch stays";

  Set("app/pw", "second");
  r = srv_->Reload("test: broken stacks, changed secret");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("roles.vgo"));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("referenced secrets changed"));
  const uint64_t e1 = srv_->epoch();
  EXPECT_GT(e1, e0);
  EXPECT_EQ(Served("app/pw"), "second");
  r = srv_->Reload("test: broken stacks, nothing new");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(srv_->epoch(), e1);

  // A deleted referenced secret moves it too: every agent re-resolves and is
  // told the same thing.
  RunResult d = Cli({"secrets", "delete", "app/pw"});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  r = srv_->Reload("test: broken stacks, deleted secret");
  ASSERT_FALSE(r.ok());
  EXPECT_GT(srv_->epoch(), e1);
}

}  // namespace
}  // namespace vigo::testing
