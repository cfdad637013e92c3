// The real vigosrv and vigocli binaries: init, fail-fast start-up, envoy
// certificates, admin reload, SIGHUP, revocation through the CLI.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "tests/integration/server_fixture.h"

namespace vigo::testing {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    if (end > start) out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

class ServerStartupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() / "root";
    RunResult r = ::vigo::testing::Run({BinPath("vigosrv").string(), "init", "--root", root_.string(),
                       "--hostname", "vigo.test"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    pass_ = tmp_.path() / "pass";
    WriteFileOrDie(pass_, "a long test passphrase 123\n", 0600);
    r = Cli({"secrets", "init", "--passphrase-file", pass_.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  RunResult Cli(std::vector<std::string> args, std::string_view in = {}) {
    std::vector<std::string> argv = {BinPath("vigocli").string(), "--root", root_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return ::vigo::testing::Run(argv, in);
  }
  RunResult Serve() {
    return ::vigo::testing::Run({BinPath("vigosrv").string(), "--root", root_.string(), "--grpc-listen",
                "127.0.0.1:0"});
  }
  void ExpectOneLineNaming(const RunResult& r, const std::vector<std::string>& words) {
    EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
    auto lines = Lines(r.err);
    ASSERT_EQ(lines.size(), 1u) << r.err;
    for (const auto& w : words) EXPECT_NE(lines[0].find(w), std::string::npos) << lines[0];
  }

  TempDir tmp_;
  fs::path root_;
  fs::path pass_;
};

TEST_F(ServerStartupTest, InitCreatesTheSkeletonAndNeverOverwrites) {
  struct stat st {};
  ASSERT_EQ(::stat((root_ / "tls" / "ca.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((root_ / "tls" / "server.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat((root_ / "secrets").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_EQ(::stat((root_ / "run").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_TRUE(fs::exists(root_ / "db" / "vigo.db"));
  EXPECT_TRUE(fs::exists(root_ / "stacks" / "envoys.vgo"));
  auto info = server::tls::ReadCertInfo(root_ / "tls" / "server.pem");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->common_name, "vigo.test");
  EXPECT_TRUE(server::tls::CheckServerTlsMaterial(root_ / "tls").ok());

  WriteFileOrDie(root_ / "server.yaml.mark", "x");
  const std::string yaml = ReadAllFile(root_ / "server.yaml") + "# operator edit\n";
  WriteFileOrDie(root_ / "server.yaml", yaml, 0640);
  const std::string ca = ReadAllFile(root_ / "tls" / "ca.pem");
  RunResult r = ::vigo::testing::Run({BinPath("vigosrv").string(), "init", "--root", root_.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadAllFile(root_ / "server.yaml"), yaml);
  EXPECT_EQ(ReadAllFile(root_ / "tls" / "ca.pem"), ca);
  EXPECT_NE(r.out.find("kept    server.yaml"), std::string::npos) << r.out;
}

TEST_F(ServerStartupTest, UnknownKeyInServerYamlNamesKeyAndFile) {
  std::string yaml = ReadAllFile(root_ / "server.yaml");
  ASSERT_NE(yaml.find("  interval: 5m"), std::string::npos);
  yaml.replace(yaml.find("  interval: 5m"), 14, "  intervall: 5m");
  WriteFileOrDie(root_ / "server.yaml", yaml, 0640);
  RunResult r = Serve();
  ExpectOneLineNaming(r, {"server.yaml", "intervall"});
}

// #13.22: a typo in database.path must not start a server on a new, empty
// database in which no envoy is registered; only `vigosrv init` creates one.
TEST_F(ServerStartupTest, MissingDatabaseIsRefusedAndNotCreated) {
  std::string yaml = ReadAllFile(root_ / "server.yaml");
  ASSERT_NE(yaml.find("path: db/vigo.db"), std::string::npos);
  yaml.replace(yaml.find("path: db/vigo.db"), 16, "path: db/vigo-typo.db");
  WriteFileOrDie(root_ / "server.yaml", yaml, 0640);
  ExpectOneLineNaming(Serve(), {"vigo-typo.db", "does not exist", "vigosrv init"});
  EXPECT_FALSE(fs::exists(root_ / "db" / "vigo-typo.db"));
  // vigocli writes refuse it too, and change nothing in the vault.
  RunResult r = Cli({"secrets", "unlock"}, "a long test passphrase 123\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("vigo-typo.db"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(root_ / "db" / "vigo-typo.db"));
}

// #13.23: a key given twice and a boolean that is not one are errors at
// file:line, not "the last one wins" or a silent false.
TEST_F(ServerStartupTest, DuplicateKeyInServerYamlNamesBothLines) {
  WriteFileOrDie(root_ / "server.yaml", "log:\n  level: info\n  level: debug\n", 0640);
  ExpectOneLineNaming(Serve(), {"server.yaml:3", "duplicate key 'log.level'", "line 2"});
  WriteFileOrDie(root_ / "server.yaml", "log:\n  level: info\nlog:\n  json: true\n", 0640);
  ExpectOneLineNaming(Serve(), {"server.yaml:3", "duplicate key 'log'"});
}

TEST_F(ServerStartupTest, LogJsonThatIsNotABooleanIsAnError) {
  WriteFileOrDie(root_ / "server.yaml", "log:\n  json: maybe\n", 0640);
  ExpectOneLineNaming(Serve(), {"server.yaml:2", "log.json", "maybe", "true or false"});
}

// #13.23: port 99999 was accepted (gRPC listened on 99999 mod 65536), and a
// listen failure printed gRPC's own dump before the promised one line.
TEST_F(ServerStartupTest, PortOutOfRangeIsAnErrorNamingTheKey) {
  std::string yaml = ReadAllFile(root_ / "server.yaml");
  ASSERT_NE(yaml.find("127.0.0.1:1530"), std::string::npos);
  yaml.replace(yaml.find("127.0.0.1:1530"), 14, "127.0.0.1:99999");
  WriteFileOrDie(root_ / "server.yaml", yaml, 0640);
  ExpectOneLineNaming(::vigo::testing::Run({BinPath("vigosrv").string(), "--root", root_.string()}),
                      {"server.yaml:", "server.grpc_listen", "99999"});
  yaml.replace(yaml.find("127.0.0.1:99999"), 15, "127.0.0.1:1530");
  WriteFileOrDie(root_ / "server.yaml", yaml, 0640);
  ExpectOneLineNaming(::vigo::testing::Run({BinPath("vigosrv").string(), "--root", root_.string(),
                                            "--grpc-listen", "127.0.0.1:70000"}),
                      {"70000"});
}

TEST_F(ServerStartupTest, PortInUseIsExactlyOneLine) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof a;
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const std::string addr = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  RunResult r = ::vigo::testing::Run({"/usr/bin/timeout", "20", BinPath("vigosrv").string(),
                                      "--root", root_.string(), "--grpc-listen", addr});
  ::close(fd);
  // The stacks are loaded before the port is bound, so the info line
  // "stacks loaded" may come first; what must not is gRPC's own output, and
  // the cause is one `vigosrv:` line, the last.
  EXPECT_EQ(r.exit_code, 1) << r.err;
  auto lines = Lines(r.err);
  ASSERT_FALSE(lines.empty());
  EXPECT_NE(lines.back().find("vigosrv: cannot listen on " + addr), std::string::npos) << r.err;
  EXPECT_NE(lines.back().find("in use"), std::string::npos) << r.err;
  int ours = 0;
  for (const std::string& l : lines) {
    if (l.rfind("vigosrv:", 0) == 0) ++ours;
    EXPECT_EQ(l.find("grpc"), std::string::npos) << "gRPC output: " << l;
    EXPECT_EQ(l.find("chttp2"), std::string::npos) << "gRPC output: " << l;
  }
  EXPECT_EQ(ours, 1) << r.err;
}

TEST_F(ServerStartupTest, MalformedServerYamlFails) {
  WriteFileOrDie(root_ / "server.yaml", "server: [unclosed\n", 0640);
  ExpectOneLineNaming(Serve(), {"server.yaml"});
}

TEST_F(ServerStartupTest, MissingReferencedSecretNamesThePath) {
  WriteFileOrDie(root_ / "stacks" / "environments.vgo",
                 "env:\n  default:\n    vars: { site: \"secret:nowhere/to-be-found\" }\n", 0640);
  ExpectOneLineNaming(Serve(), {"nowhere/to-be-found"});
}

TEST_F(ServerStartupTest, BadTlsMaterialNamesTheFile) {
  WriteFileOrDie(root_ / "tls" / "server.pem", "-----BEGIN CERTIFICATE-----\ngarbage\n", 0644);
  ExpectOneLineNaming(Serve(), {"server.pem"});
}

TEST_F(ServerStartupTest, ServerCertFromAnotherCaIsRefused) {
  fs::remove(root_ / "tls" / "ca.pem");
  fs::remove(root_ / "tls" / "ca.key");
  ASSERT_TRUE(server::tls::CreateCa({root_ / "tls" / "ca.pem", root_ / "tls" / "ca.key"}, "x").ok());
  ExpectOneLineNaming(Serve(), {"server.pem", "ca.pem"});
}

TEST_F(ServerStartupTest, UnhealthyBackendFails) {
  fs::remove(root_ / "secrets" / ".master.key");
  ExpectOneLineNaming(Serve(), {"backend", "local"});
}

TEST_F(ServerStartupTest, HelpAndUsage) {
  RunResult r = ::vigo::testing::Run({BinPath("vigosrv").string(), "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--grpc-listen"), std::string::npos);
  EXPECT_EQ(::vigo::testing::Run({BinPath("vigosrv").string(), "--bogus"}).exit_code, 2);
  EXPECT_EQ(::vigo::testing::Run({BinPath("vigosrv").string(), "frobnicate"}).exit_code, 2);
  EXPECT_EQ(Cli({"envoy", "issue", "--help"}).exit_code, 0);
  EXPECT_EQ(Cli({"envoy", "issue", "a/b", "--out", (tmp_.path() / "x").string()}).exit_code, 2);
  EXPECT_EQ(Cli({"envoy", "issue", "web-1"}).exit_code, 2);
  EXPECT_EQ(Cli({"runs", "list", "--bogus"}).exit_code, 2);
  EXPECT_EQ(Cli({"runs", "show", "nope"}).exit_code, 4);
  EXPECT_EQ(Cli({"envoy", "revoke", "nobody"}).exit_code, 4);
  // No server running: reload fails cleanly.
  RunResult rl = Cli({"server", "reload"});
  EXPECT_EQ(rl.exit_code, 1);
  EXPECT_NE(rl.err.find("no server"), std::string::npos) << rl.err;
}

TEST_F(ServerStartupTest, ServeIssueReloadSighupRevoke) {
  // Envoy certificate through the CLI.
  const fs::path creds = tmp_.path() / "creds";
  RunResult r = Cli({"envoy", "issue", "web-1", "--out", creds.string()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(::stat((creds / "key.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(fs::exists(creds / "ca.pem"));
  auto info = server::tls::ReadCertInfo(creds / "cert.pem");
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->common_name, "web-1");
  // Refuses to overwrite.
  EXPECT_NE(Cli({"envoy", "issue", "web-1", "--out", creds.string()}).exit_code, 0);
  r = Cli({"--json", "envoy", "list"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("\"name\":\"web-1\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"state\":\"active\""), std::string::npos) << r.out;

  auto srv = StartVigosrv(root_, tmp_.path() / "logs");
  ASSERT_TRUE(srv.ok()) << srv.status();
  EXPECT_EQ(srv->address.rfind("127.0.0.1:", 0), 0u) << srv->address;
  EXPECT_EQ(ReadAllFile(root_ / "run" / "vigosrv.addr"), srv->address + "\n");
  ASSERT_EQ(::stat((root_ / "run" / "admin.sock").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  EnvoyCreds c{"web-1", creds, ReadAllFile(creds / "ca.pem"), ReadAllFile(creds / "cert.pem"),
               ReadAllFile(creds / "key.pem"), *info};
  auto stub = v1::VigoAgent::NewStub(grpc::CreateChannel(srv->address, ServerFixture::Creds(c)));
  auto checkin = [&](grpc::Status* status) {
    grpc::ClientContext ctx;
    v1::CheckInRequest req;
    v1::CheckInResponse resp;
    *status = stub->CheckIn(&ctx, req, &resp);
    return resp;
  };
  grpc::Status gst;
  v1::CheckInResponse b1 = checkin(&gst);
  ASSERT_TRUE(gst.ok()) << gst.error_message();
  ASSERT_TRUE(b1.has_bundle());
  EXPECT_EQ(b1.bundle().envoy_name(), "web-1");
  const uint64_t e1 = b1.bundle().secrets_epoch();

  // A run report shows in `vigocli runs`.
  {
    grpc::ClientContext ctx;
    v1::ReportResultRequest req;
    req.set_run_id("cli-run-1");
    req.set_outcome("failed");
    auto* res = req.add_results();
    res->set_name("motd");
    res->set_type("file");
    res->set_status("failed");
    res->set_action("blocked");
    res->set_message("target exists and is a directory");
    v1::ReportResultResponse resp;
    ASSERT_TRUE(stub->ReportResult(&ctx, req, &resp).ok());
  }
  r = Cli({"--json", "runs", "list", "--envoy", "web-1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"id\":\"cli-run-1\""), std::string::npos) << r.out;
  EXPECT_EQ(Cli({"--json", "runs", "list", "--envoy", "web-2"}).out, "");
  r = Cli({"runs", "show", "cli-run-1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("target exists and is a directory"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"action\":\"blocked\""), std::string::npos) << r.out;

  // A second server on the same root refuses, without touching the first.
  r = Serve();
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("another vigosrv"), std::string::npos) << r.err;

  // vigocli server reload → epoch + 1.
  r = Cli({"server", "reload"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(StrCat("secrets_epoch ", e1 + 1)), std::string::npos) << r.out;
  // SIGHUP → epoch + 1 again.
  srv->child.Kill(SIGHUP);
  uint64_t e3 = 0;
  for (int i = 0; i < 100; ++i) {
    v1::CheckInResponse b = checkin(&gst);
    e3 = b.bundle().secrets_epoch();
    if (e3 == e1 + 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(e3, e1 + 2);

  // A broken stack: reload fails with the file named, server keeps serving.
  WriteFileOrDie(root_ / "stacks" / "roles.vgo", "roles:\n  base: {configcrates: [nope]}\n", 0640);
  r = Cli({"server", "reload"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("nope"), std::string::npos) << r.err;
  checkin(&gst);
  EXPECT_TRUE(gst.ok());

  // Revocation through the CLI reaches the running server on the next call.
  r = Cli({"envoy", "revoke", "web-1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  checkin(&gst);
  // (This once failed because the server's view of the WAL went stale: see
  // server/db.cc on POSIX locks. The runs CLI calls above exercise that.)
  EXPECT_EQ(gst.error_code(), grpc::StatusCode::UNAUTHENTICATED) << ReadAllFile(srv->err_file);
  EXPECT_EQ(Cli({"envoy", "revoke", "web-1"}).exit_code, 4);
  r = Cli({"audit", "list", "--json"});
  EXPECT_NE(r.out.find("envoy.issue"), std::string::npos);
  EXPECT_NE(r.out.find("envoy.revoke"), std::string::npos);
  EXPECT_NE(r.out.find("config.reload"), std::string::npos);

  srv->child.Kill(SIGTERM);
  auto done = srv->child.WaitFor(std::chrono::seconds(10));
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(done->exited && done->exit_code == 0) << ReadAllFile(srv->err_file);
  EXPECT_FALSE(fs::exists(root_ / "run" / "admin.sock"));
}

}  // namespace
}  // namespace vigo::testing
