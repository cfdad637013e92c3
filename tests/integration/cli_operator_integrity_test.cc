// What `vigocli` tells an operator must be true (issue 13.11, 13.15, 13.16,
// 13.18): read verbs on a wrong path fail instead of creating an empty,
// healthy-looking root; text output cannot be hijacked by what an envoy
// stored; `envoy issue` creates no directory tree and no certificate that
// outlives its CA; `envoy list` computes expiry.
#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/audit.h"
#include "server/db.h"
#include "server/service/store.h"
#include "server/tls/pki.h"
#include "tests/support/test_env.h"
#include "vocab/ids.h"

namespace vigo {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using vigo::testing::BinPath;
using vigo::testing::ReadFileOrEmpty;
using vigo::testing::RunResult;
using vigo::testing::TempDir;
using vigo::testing::WriteFileOrDie;

RunResult CliAt(const fs::path& root, std::vector<std::string> args,
                std::vector<std::string> env = {}) {
  std::vector<std::string> argv = {BinPath("vigocli").string(), "--root", root.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return vigo::testing::Run(argv, {}, env);
}

const std::vector<std::vector<std::string>>& ReadVerbs() {
  static const std::vector<std::vector<std::string>> kVerbs = {{"audit", "list"},
                                                               {"audit", "verify"},
                                                               {"runs", "list"},
                                                               {"runs", "show", "r1"},
                                                               {"envoy", "list"},
                                                               {"secrets", "status"},
                                                               {"secrets", "list"},
                                                               {"--json", "audit", "list"},
                                                               {"--json", "envoy", "list"},
                                                               {"--json", "secrets", "status"}};
  return kVerbs;
}

std::string Name(const std::vector<std::string>& argv) {
  std::string n;
  for (const auto& a : argv) n += a + " ";
  return n;
}

TEST(CliReadVerbsTest, ReadVerbOnAMissingRootFailsNamingItAndCreatesNothing) {
  TempDir tmp;
  const fs::path root = tmp.path() / "no-such-root";
  for (const auto& verb : ReadVerbs()) {
    RunResult r = CliAt(root, verb);
    EXPECT_EQ(r.exit_code, 4) << Name(verb) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr(root.string())) << Name(verb);
    EXPECT_FALSE(fs::exists(root)) << Name(verb) << "created the root";
  }
  // A root under a missing parent: nothing created up the tree either.
  const fs::path deep = tmp.path() / "a" / "b";
  for (const auto& verb : ReadVerbs()) {
    RunResult r = CliAt(deep, verb);
    EXPECT_EQ(r.exit_code, 4) << Name(verb) << r.err;
    EXPECT_FALSE(fs::exists(tmp.path() / "a")) << Name(verb);
  }
}

TEST(CliReadVerbsTest, ReadVerbWithAMistypedDatabasePathFailsAndCreatesNoDatabase) {
  TempDir tmp;
  const fs::path root = tmp.path() / "root";
  RunResult init = vigo::testing::Run(
      {BinPath("vigosrv").string(), "init", "--root", root.string(), "--hostname", "vigo.test"});
  ASSERT_EQ(init.exit_code, 0) << init.err;
  std::string yaml = ReadFileOrEmpty(root / "server.yaml");
  const std::string from = "path: db/vigo.db";
  ASSERT_NE(yaml.find(from), std::string::npos) << yaml;
  yaml.replace(yaml.find(from), from.size(), "path: dbb/vigo.db");
  WriteFileOrDie(root / "server.yaml", yaml, 0640);
  for (std::vector<std::string> verb : {std::vector<std::string>{"audit", "list"},
                                        {"audit", "verify"},
                                        {"runs", "list"},
                                        {"runs", "show", "r1"},
                                        {"envoy", "list"}}) {
    RunResult r = CliAt(root, verb);
    EXPECT_EQ(r.exit_code, 4) << Name(verb) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr((root / "dbb/vigo.db").string())) << Name(verb);
    EXPECT_FALSE(fs::exists(root / "dbb")) << Name(verb) << "created a directory";
  }
}

TEST(CliReadVerbsTest, EmptyRootFlagIsAUsageErrorNotTheDefaultRoot) {
  TempDir tmp;
  // If the empty flag fell back to $VIGO_ROOT, this root would be used (and
  // `secrets status` would exit 4 naming it).
  const std::string env = "VIGO_ROOT=" + (tmp.path() / "fallback").string();
  const std::string cli = BinPath("vigocli").string();
  for (std::vector<std::string> argv :
       {std::vector<std::string>{cli, "--root=", "secrets", "status"},
        {cli, "--root", "", "audit", "list"},
        {cli, "envoy", "list", "--root", ""},
        {cli, "runs", "list", "--root="}}) {
    RunResult r = vigo::testing::Run(argv, {}, {env});
    EXPECT_EQ(r.exit_code, 2) << Name(argv) << r.err;
    EXPECT_THAT(r.err, HasSubstr("'--root' is empty")) << Name(argv);
    EXPECT_THAT(r.err, Not(HasSubstr("fallback"))) << Name(argv);
  }
  EXPECT_FALSE(fs::exists(tmp.path() / "fallback"));
}

TEST(CliReadVerbsTest, SecretsStatusExitCodeSaysLockedOrNotInitialized) {
  TempDir tmp;
  TempDir in;
  const fs::path root = tmp.path();
  RunResult r = CliAt(root, {"secrets", "status"});
  EXPECT_EQ(r.exit_code, 4) << r.out;
  EXPECT_THAT(r.out, HasSubstr("not initialized"));
  EXPECT_FALSE(fs::exists(root / "secrets")) << "status created the vault dir";
  EXPECT_FALSE(fs::exists(root / "db")) << "status created the database";
  WriteFileOrDie(in.path() / "pass", "a long test passphrase 123\n");
  ASSERT_EQ(
      vigo::testing::Run({BinPath("vigosrv").string(), "init", "--root", root.string()}).exit_code,
      0);
  ASSERT_EQ(CliAt(root, {"secrets", "init", "--passphrase-file", (in.path() / "pass").string()})
                .exit_code,
            0);
  r = CliAt(root, {"secrets", "status"});
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_THAT(r.out, HasSubstr("locked ("));
  r = CliAt(root, {"--json", "secrets", "status"});
  EXPECT_EQ(r.exit_code, 3) << r.out;
  EXPECT_THAT(r.out, HasSubstr("\"state\":\"locked\""));
  ASSERT_EQ(CliAt(root, {"secrets", "unlock", "--passphrase-file", (in.path() / "pass").string()})
                .exit_code,
            0);
  r = CliAt(root, {"secrets", "status"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("unlocked"));
  ASSERT_EQ(CliAt(root, {"secrets", "lock"}).exit_code, 0);
  EXPECT_EQ(CliAt(root, {"secrets", "status"}).exit_code, 3);
}

// ---------------------------------------------------------------- fixture

class CliRootTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() / "root";
    RunResult r = vigo::testing::Run(
        {BinPath("vigosrv").string(), "init", "--root", root_.string(), "--hostname", "vigo.test"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  RunResult Cli(std::vector<std::string> args) { return CliAt(root_, std::move(args)); }
  // Writes straight to the database, as a server storing what an agent sent.
  template <typename F>
  void WithStore(F f) {
    auto db = server::Database::Create(root_ / "db/vigo.db");
    ASSERT_TRUE(db.ok()) << db.status();
    server::service::ServerStore store(db->get());
    ASSERT_TRUE(store.Init().ok());
    f(store, *db->get());
  }
  TempDir tmp_;
  fs::path root_;
};

// Nothing a terminal acts on. The hostile inputs below hold no character
// worth keeping, so every output byte must be printable ASCII or the newline
// between lines: no C0, DEL, C1 (raw or UTF-8), U+2028/U+2029, RLO or
// invalid UTF-8.
void ExpectNoTerminalControls(const std::string& out, const std::string& what) {
  for (size_t i = 0; i < out.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(out[i]);
    ASSERT_TRUE(c == '\n' || (c >= 0x20 && c < 0x7F))
        << what << ": byte " << static_cast<int>(c) << " at " << i << " in:\n"
        << out;
  }
}

TEST_F(CliRootTest, RunsShowAndListEscapeHostileAgentText) {
  const std::string hostile =
      "\x1b[2J\x1b]0;pwned\x07ok\r\nfake  ok\xe2\x80\xa8\xe2\x80\xa9"
      "\xc2\x9b"
      "31m\xe2\x80\xae\x7f\xff\x01\x9b";
  WithStore([&](server::service::ServerStore& store, server::Database&) {
    server::service::RunRecord run;
    run.id = "hostile-1";
    run.envoy = "web-1";
    run.bundle_digest = "d\x1b[1m";
    run.outcome = "ok" + hostile;
    run.started_ms = run.finished_ms = run.received_ms = vocab::NowUnixMs();
    run.result_count = 1;
    std::vector<server::service::ResultRecord> results = {
        {"name" + hostile, "file" + hostile, "ok" + hostile, "none" + hostile, "msg" + hostile}};
    ASSERT_TRUE(store.StoreRun(run, results).ok());
  });
  RunResult show = Cli({"runs", "show", "hostile-1"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  ExpectNoTerminalControls(show.out, "runs show");
  EXPECT_THAT(show.out, HasSubstr("msg\\x1B[2J\\x1B]0;pwned\\x07ok\\r\\nfake  ok\\u{2028}"));
  // One line per field, header, blank line, column header and one result: the
  // agent's newlines did not add lines.
  EXPECT_EQ(std::count(show.out.begin(), show.out.end(), '\n'), 11) << show.out;
  RunResult list = Cli({"runs", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  ExpectNoTerminalControls(list.out, "runs list");
  EXPECT_EQ(std::count(list.out.begin(), list.out.end(), '\n'), 2) << list.out;
  // JSON stays JSON: escaped by the JSON writer, not by the terminal escaper.
  RunResult json = Cli({"--json", "runs", "show", "hostile-1"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\\u001B[2J"));
  EXPECT_THAT(json.out, Not(HasSubstr("\\x1B")));
}

// Issue 14: `runs show` prints the run's applier attestation (text and
// JSON), its envoy-supplied domain escaped like every other stored text.
TEST_F(CliRootTest, RunsShowPrintsTheAppliersLandlockDomain) {
  WithStore([&](server::service::ServerStore& store, server::Database&) {
    server::service::RunRecord run;
    run.id = "applier-1";
    run.envoy = "web-1";
    run.bundle_digest = "d";
    run.outcome = "ok";
    run.started_ms = run.finished_ms = run.received_ms = vocab::NowUnixMs();
    server::service::ApplierRecord a;
    a.landlock_abi = 7;
    a.enforced = true;
    a.rights = "write_file,remove_dir";
    a.domain = {"/etc/app", "/srv/\x1b[2Jx"};
    a.cap_eff = "0000000000000001";
    a.setup_us = 812;
    a.no_new_process = true;
    run.applier = a;
    server::service::ResultRecord exec{"register", "exec", "changed", "updated", "ran"};
    exec.redactions = 2;
    ASSERT_TRUE(store.StoreRun(run, {exec}).ok());
  });
  RunResult show = Cli({"runs", "show", "applier-1"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  ExpectNoTerminalControls(show.out, "runs show");
  EXPECT_THAT(show.out, HasSubstr("applier   landlock abi 7, enforced; cap_eff 0000000000000001; "
                                  "set-up 812 us; no fork/exec\n"));
  EXPECT_THAT(show.out, HasSubstr("rights    write_file,remove_dir"));
  EXPECT_THAT(show.out, HasSubstr("domain    /etc/app\n"));
  EXPECT_THAT(show.out, HasSubstr("domain    /srv/\\x1B[2Jx"));
  EXPECT_THAT(show.out, HasSubstr("REDACTIONS"));
  EXPECT_THAT(show.out, HasSubstr("register                 exec       changed  updated  2 "));
  RunResult json = Cli({"--json", "runs", "show", "applier-1"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"applier\":{\"landlock_abi\":7,\"enforced\":true"));
  EXPECT_THAT(json.out, HasSubstr("\"domain\":[\"/etc/app\""));
  EXPECT_THAT(json.out, HasSubstr("\"setup_us\":812,\"no_new_process\":true}"));
  EXPECT_THAT(json.out, HasSubstr("\"message\":\"ran\",\"redactions\":2"));
}

TEST_F(CliRootTest, AuditAndEnvoyListEscapeStoredText) {
  WithStore([&](server::service::ServerStore& store, server::Database& db) {
    server::AuditLog log(&db);
    ASSERT_TRUE(log.Append({.event = "envoy.refused",
                            .actor = "grpc",
                            .envoy = "web\x1b[8m",
                            .paths = {"a/\x1b]0;x\x07"},
                            .outcome = "denied",
                            .detail = "cn=\x1b[2Jfake\nline\xe2\x80\xa8"})
                    .ok());
    server::tls::CertInfo cert;
    cert.serial_hex = "AB\x1b[5m";
    cert.fingerprint_sha256 = "f1";
    cert.not_after_unix = ::time(nullptr) + 86400;
    ASSERT_TRUE(store.RecordEnvoyCert("web-1\x1b[31m", cert).ok());
  });
  RunResult audit = Cli({"audit", "list"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  ExpectNoTerminalControls(audit.out, "audit list");
  EXPECT_THAT(audit.out, HasSubstr("cn=\\x1B[2Jfake\\nline\\u{2028}"));
  RunResult envoys = Cli({"envoy", "list"});
  ASSERT_EQ(envoys.exit_code, 0) << envoys.err;
  ExpectNoTerminalControls(envoys.out, "envoy list");
  EXPECT_THAT(envoys.out, HasSubstr("web-1\\x1B[31m"));
}

TEST_F(CliRootTest, EnvoyListComputesExpiredFromNotAfter) {
  const int64_t now = ::time(nullptr);
  WithStore([&](server::service::ServerStore& store, server::Database&) {
    server::tls::CertInfo old_cert;
    old_cert.serial_hex = "01";
    old_cert.fingerprint_sha256 = "aa";
    old_cert.not_after_unix = now - 3600;
    ASSERT_TRUE(store.RecordEnvoyCert("old-1", old_cert).ok());
    server::tls::CertInfo live;
    live.serial_hex = "02";
    live.fingerprint_sha256 = "bb";
    live.not_after_unix = now + 30 * 86400;
    ASSERT_TRUE(store.RecordEnvoyCert("live-1", live).ok());
  });
  RunResult r = Cli({"--json", "envoy", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"name\":\"old-1\",\"state\":\"expired\",\"expired\":true"));
  EXPECT_THAT(r.out, HasSubstr("\"name\":\"live-1\",\"state\":\"active\",\"expired\":false"));
  r = Cli({"envoy", "list"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, ::testing::ContainsRegex("old-1 +expired "));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("live-1 +active "));
}

TEST_F(CliRootTest, EnvoyIssueRefusesAMissingOutParentAndCreatesNothing) {
  const fs::path out = tmp_.path() / "a" / "b" / "c";
  RunResult r = Cli({"envoy", "issue", "web-1", "--out", out.string()});
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr((tmp_.path() / "a" / "b").string()));
  EXPECT_FALSE(fs::exists(tmp_.path() / "a")) << "created missing parents";
  EXPECT_THAT(Cli({"--json", "envoy", "list"}).out, Not(HasSubstr("web-1")));

  // The last component alone is created, 0700.
  const fs::path fresh = tmp_.path() / "fresh";
  r = Cli({"envoy", "issue", "web-1", "--out", fresh.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat st;
  ASSERT_EQ(::stat(fresh.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((fresh / "key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // An existing directory keeps its mode (`--out /tmp` must not chmod /tmp).
  const fs::path shared = tmp_.path() / "shared";
  fs::create_directory(shared);
  ::chmod(shared.c_str(), 0755);
  r = Cli({"envoy", "issue", "web-2", "--out", shared.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_EQ(::stat(shared.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  EXPECT_TRUE(fs::exists(shared / "cert.pem"));
}

TEST_F(CliRootTest, EnvoyIssueDaysThatOutliveTheCaAreRefusedBeforeAnythingIsWritten) {
  auto ca = server::tls::ReadCertInfo(root_ / "tls/ca.pem");
  ASSERT_TRUE(ca.ok()) << ca.status();
  // Whole days the CA has left as of now; by the time vigocli runs it may be
  // one less (the CA was made this very second), never more.
  const int64_t days_left = (ca->not_after_unix - ::time(nullptr)) / 86400;
  const fs::path out = tmp_.path() / "creds";
  RunResult r = Cli(
      {"envoy", "issue", "web-1", "--out", out.string(), "--days", std::to_string(days_left + 1)});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_THAT(r.err, HasSubstr("outlive the CA"));
  const std::string allowed = "longest validity allowed now is ";
  EXPECT_TRUE(r.err.find(allowed + std::to_string(days_left) + " days") != std::string::npos ||
              r.err.find(allowed + std::to_string(days_left - 1) + " days") != std::string::npos)
      << r.err;
  EXPECT_FALSE(fs::exists(out)) << "a refused issue created its directory";
  EXPECT_THAT(Cli({"--json", "envoy", "list"}).out, Not(HasSubstr("web-1")));
  r = Cli(
      {"envoy", "issue", "web-1", "--out", out.string(), "--days", std::to_string(days_left - 1)});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto leaf = server::tls::ReadCertInfo(out / "cert.pem");
  ASSERT_TRUE(leaf.ok());
  EXPECT_LE(leaf->not_after_unix, ca->not_after_unix);
}

}  // namespace
}  // namespace vigo
