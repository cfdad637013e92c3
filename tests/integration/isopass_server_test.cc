// The server with `secrets.backend: isopass` against the HTTPS isopass stub
// (tests/helpers/isopass_stub_main.cc):
//  - the real `vigosrv` binary refuses to start, with one clear line, when
//    isopass is down, its certificate does not verify, or a referenced secret
//    is missing; and starts when isopass is up;
//  - an in-process VigoServer resolves isopass values over mTLS, detects a
//    rotated value (epoch bump, new value), answers UNAVAILABLE while isopass
//    is down and recovers by itself;
//  - canary scan: no value or token in logs, stderr, or anywhere under the
//    data root (SQLite database included).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <sstream>
#include <thread>

#include "common/log.h"
#include "common/seal.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sandbox/child_process.h"
#include "server/isopass/isopass_backend.h"
#include "tests/integration/server_fixture.h"

namespace vigo::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kDbPassword[] = "Dq7ZmX3vKt9WpR2L";
constexpr char kDbPasswordRotated[] = "Rt5QwN8zXk2VmJ7H";
constexpr char kApiKey[] = "Ak4TzM9xQr6WvL3P";
constexpr char kLongLivedToken[] = "LLsrv-Wq7ZxK3mTr9VpN4j";

std::string Fixture(std::string_view db_password, bool with_api_key = true) {
  std::string out = StrCat(R"([
  {"id":"1","name":"db-admin","type":"username_password","organization":"acme",
   "value":{"username":"admin","password":")",
                           db_password, R"("}})");
  if (with_api_key) {
    StrAppend(&out, R"(,
  {"id":"2","name":"app/api_key","type":"api_key","organization":"acme","value":")",
              kApiKey, R"("})");
  }
  StrAppend(&out, "]");
  return out;
}

// web-a gets the database password (file content) and the API key (exec stdin).
std::map<std::string, std::string> Stacks() {
  return {
      {"envoys.vgo",
       "envoys:\n"
       "  - match: \"web-*\"\n"
       "    environment: prod\n"
       "    roles: [app]\n"},
      {"roles.vgo",
       "roles:\n"
       "  app:\n"
       "    configcrates: [app]\n"},
      {"environments.vgo",
       "env:\n"
       "  prod:\n"
       "    vars:\n"
       "      db_password: \"secret:db-admin/password\"\n"},
      {"configcrates/app.vgo",
       "configcrate: app\n"
       "resources:\n"
       "  - name: app-config\n"
       "    type: file\n"
       "    target_path: /etc/app.conf\n"
       "    mode: \"0600\"\n"
       "    content: |\n"
       "      password: {{ .Vars.db_password }}\n"
       "  - name: register\n"
       "    type: exec\n"
       "    command: [\"/bin/true\"]\n"
       "    stdin: \"secret:app/api_key\"\n"},
  };
}

class StubProcess {
 public:
  ~StubProcess() { Stop(); }
  int Start(const std::vector<std::string>& args) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return -1;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(p[1], 1);
      std::vector<char*> argv;
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(p[1]);
    std::string line;
    char c;
    while (::read(p[0], &c, 1) == 1 && c != '\n') line.push_back(c);
    ::close(p[0]);
    if (line.rfind("PORT ", 0) != 0) return -1;
    return std::atoi(line.c_str() + 5);
  }
  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }

 private:
  pid_t pid_ = -1;
};

struct VigosrvExit {
  int exit_code = -1;
  bool timed_out = false;
  std::string err;
};

class IsopassServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.path();
    root_ = dir_ / "root";
    for (const char* name : {"isopass", "other"}) {
      auto r = vigo::testing::Run({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                   "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                                   (dir_ / StrCat(name, ".key")).string(), "-out",
                                   (dir_ / StrCat(name, ".pem")).string(), "-days", "2", "-subj",
                                   "/CN=localhost", "-addext",
                                   "subjectAltName=IP:127.0.0.1,DNS:localhost"});
      ASSERT_EQ(r.exit_code, 0) << r.err;
    }
    WriteFileOrDie(dir_ / "stub-token", kLongLivedToken, 0600);
    WriteFileOrDie(dir_ / "control", "", 0600);
    WriteFixture(Fixture(kDbPassword));
    StartStub();

    ASSERT_TRUE(server::InitRoot(root_, "localhost", nullptr).ok());
    fs::remove_all(root_ / "stacks");
    for (const auto& [rel, text] : Stacks()) {
      fs::create_directories((root_ / "stacks" / rel).parent_path());
      WriteFileOrDie(root_ / "stacks" / rel, text, 0640);
    }
    // Outside the data root, so that the canary scan of the root stays meaningful.
    WriteFileOrDie(dir_ / "isopass-token", StrCat(kLongLivedToken, "\n"), 0600);
    WriteServerYaml(dir_ / "isopass.pem");
  }

  void TearDown() override {
    stub_.Stop();
    (void)SetLogFile("");
    std::vector<std::string> canaries = {kDbPassword, kDbPasswordRotated, kApiKey, kLongLivedToken};
    std::istringstream issued(ReadFileOrEmpty(dir_ / "issued-tokens"));
    for (std::string t; std::getline(issued, t);) {
      if (!t.empty()) canaries.push_back(t);
    }
    // Everything under the data root (database, WAL, run/, ...) and every log.
    EXPECT_THAT(FindCanaries(root_, canaries), ::testing::IsEmpty());
    EXPECT_THAT(FindCanaries(dir_ / "logs", canaries), ::testing::IsEmpty());
    EXPECT_THAT(FindCanariesIn(seen_, "messages", canaries), ::testing::IsEmpty());
  }

  void WriteFixture(const std::string& json) {
    WriteFileOrDie(dir_ / "fixture.tmp", json, 0600);
    fs::rename(dir_ / "fixture.tmp", dir_ / "fixture.json");
  }

  void StartStub(int port = 0) {
    port_ = stub_.Start(
        {TestBinPath("isopass_stub").string(), "--cert", (dir_ / "isopass.pem").string(), "--key",
         (dir_ / "isopass.key").string(), "--fixture", (dir_ / "fixture.json").string(),
         "--token-file", (dir_ / "stub-token").string(), "--control", (dir_ / "control").string(),
         "--issued-tokens", (dir_ / "issued-tokens").string(), "--port", std::to_string(port)});
    ASSERT_GT(port_, 0) << "isopass_stub did not start";
  }

  void WriteServerYaml(const fs::path& ca_file) {
    WriteFileOrDie(root_ / "server.yaml",
                   StrCat("server:\n"
                          "  grpc_listen: \"127.0.0.1:0\"\n"
                          "  hostname: \"localhost\"\n"
                          "secrets:\n"
                          "  backend: isopass\n"
                          "  url: https://127.0.0.1:",
                          port_,
                          "\n"
                          "  token_file: ",
                          (dir_ / "isopass-token").string(),
                          "\n"
                          "  ca_file: ",
                          ca_file.string(),
                          "\n"
                          "  poll_interval: 1s\n"
                          "database:\n"
                          "  driver: sqlite\n"
                          "  path: db/vigo.db\n"
                          "log:\n"
                          "  level: trace\n"),
                   0640);
  }

  // Runs `vigosrv --root` expecting it to refuse to start.
  VigosrvExit RunVigosrvExpectingExit() {
    VigosrvExit out;
    fs::create_directories(dir_ / "logs");
    const fs::path err_file = dir_ / "logs" / "vigosrv-refused.err";
    sandbox::UniqueFd err(::open(err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    sandbox::SpawnOptions o;
    o.argv = {BinPath("vigosrv").string(), "--root", root_.string(), "--grpc-listen",
              "127.0.0.1:0"};
    o.env = {"PATH=/usr/bin:/bin"};
    o.fd_map = {{2, err.get()}};
    auto child = sandbox::ChildProcess::Spawn(o);
    if (!child.ok()) {
      ADD_FAILURE() << child.status();
      return out;
    }
    auto exit = child->WaitFor(std::chrono::seconds(60));
    if (!exit.ok()) {
      ADD_FAILURE() << exit.status();
      return out;
    }
    out.timed_out = exit->timed_out;
    out.exit_code = exit->exited ? exit->exit_code : -1;
    out.err = ReadAllFile(err_file);
    seen_ += out.err;
    return out;
  }

  static void ExpectOneClearLine(const VigosrvExit& e, std::string_view cause) {
    EXPECT_FALSE(e.timed_out) << "vigosrv started although it should have refused";
    EXPECT_EQ(e.exit_code, 1) << e.err;
    // The refusal is the last line of stderr; trace-level log lines may
    // precede it, the refusal itself is one line.
    std::string last = e.err;
    while (!last.empty() && last.back() == '\n') last.pop_back();
    last = last.substr(last.rfind('\n') == std::string::npos ? 0 : last.rfind('\n') + 1);
    EXPECT_EQ(last.rfind("vigosrv: ", 0), 0u) << e.err;
    EXPECT_THAT(last, HasSubstr(cause)) << e.err;
  }

  // An in-process server on 127.0.0.1:0 with the isopass backend from server.yaml.
  std::unique_ptr<server::service::VigoServer> StartServer() {
    auto cfg = server::LoadServerConfig(root_);
    EXPECT_TRUE(cfg.ok()) << cfg.status();
    if (!cfg.ok()) return nullptr;
    cfg_ = *cfg;
    server::service::ServerOptions options;
    options.poll_interval = std::chrono::milliseconds(200);
    options.enable_admin = false;
    auto srv = server::service::VigoServer::Create(cfg_, nullptr, options);
    EXPECT_TRUE(srv.ok()) << srv.status();
    if (!srv.ok()) return nullptr;
    absl::Status st = (*srv)->Start("127.0.0.1:0");
    EXPECT_TRUE(st.ok()) << st;
    return st.ok() ? std::move(*srv) : nullptr;
  }

  EnvoyCreds IssueEnvoy(const std::string& name) {
    EnvoyCreds c;
    c.name = name;
    c.dir = dir_ / "envoys" / name;
    fs::create_directories(c.dir);
    server::tls::CaFiles ca{cfg_.TlsDir() / "ca.pem", cfg_.TlsDir() / "ca.key"};
    auto info = server::tls::IssueClientCert(ca, c.dir / "cert.pem", c.dir / "key.pem", name,
                                             std::chrono::hours(24));
    EXPECT_TRUE(info.ok()) << info.status();
    if (!info.ok()) return c;
    auto db = server::Database::Create(cfg_.DatabasePath());
    EXPECT_TRUE(db.ok()) << db.status();
    if (!db.ok()) return c;
    server::service::ServerStore store(db->get());
    EXPECT_TRUE(store.RecordEnvoyCert(name, *info).ok());
    c.ca_pem = ReadAllFile(cfg_.TlsDir() / "ca.pem");
    c.cert_pem = ReadAllFile(c.dir / "cert.pem");
    c.key_pem = ReadAllFile(c.dir / "key.pem");
    return c;
  }

  std::unique_ptr<v1::VigoAgent::Stub> AgentStub(const EnvoyCreds& c, int port) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = c.ca_pem;
    o.pem_cert_chain = c.cert_pem;
    o.pem_private_key = c.key_pem;
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);
    return v1::VigoAgent::NewStub(
        grpc::CreateCustomChannel(StrCat("127.0.0.1:", port), grpc::SslCredentials(o), args));
  }

  struct Resolved {
    grpc::Status status;
    std::map<std::string, std::string> values;  // test-only copies of known canaries
  };
  Resolved Resolve(v1::VigoAgent::Stub& stub, const std::string& envoy,
                   const std::vector<std::string>& refs, uint64_t epoch) {
    Resolved out;
    auto key = RecipientKey::Generate();
    EXPECT_TRUE(key.ok());
    if (!key.ok()) return out;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::ResolveSecretsRequest req;
    for (const auto& r : refs) req.add_refs(r);
    req.set_secrets_epoch(epoch);
    req.set_recipient_key(key->public_key());
    v1::ResolveSecretsResponse resp;
    out.status = stub.ResolveSecrets(&ctx, req, &resp);
    seen_ += out.status.error_message();
    for (const auto& v : resp.values()) {
      SealContext sc{envoy, resp.secrets_epoch(), v.ref(), resp.call_id()};
      auto opened = key->Open(resp.server_key(), sc, SealedBox{v.nonce(), v.ciphertext()});
      EXPECT_TRUE(opened.ok()) << opened.status();
      if (opened.ok()) {
        auto b = opened->Reveal();
        out.values[v.ref()] = std::string(b.begin(), b.end());
      }
    }
    return out;
  }

  v1::PolicyBundle CheckIn(v1::VigoAgent::Stub& stub) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::CheckInRequest req;
    v1::CheckInResponse resp;
    grpc::Status st = stub.CheckIn(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    EXPECT_TRUE(resp.has_bundle());
    return resp.bundle();
  }

  TempDir tmp_;
  fs::path dir_, root_;
  StubProcess stub_;
  int port_ = 0;
  server::ServerConfig cfg_;
  std::string seen_;
};

TEST_F(IsopassServerTest, VigosrvRefusesToStartWhenIsopassIsDown) {
  stub_.Stop();
  ExpectOneClearLine(RunVigosrvExpectingExit(), "cannot reach isopass");
}

TEST_F(IsopassServerTest, VigosrvRefusesToStartWhenCertificateDoesNotVerify) {
  WriteServerYaml(dir_ / "other.pem");
  ExpectOneClearLine(RunVigosrvExpectingExit(), "TLS verification failed");
}

TEST_F(IsopassServerTest, VigosrvRefusesToStartWhenTokenIsRefused) {
  WriteFileOrDie(dir_ / "stub-token", "a-different-token", 0600);
  ExpectOneClearLine(RunVigosrvExpectingExit(), "isopass refused the token from");
}

TEST_F(IsopassServerTest, VigosrvRefusesToStartWhenReferencedSecretIsMissing) {
  WriteFixture(Fixture(kDbPassword, /*with_api_key=*/false));
  ExpectOneClearLine(RunVigosrvExpectingExit(), "app/api_key");
}

TEST_F(IsopassServerTest, VigosrvStartsWhenIsopassIsUp) {
  auto p = StartVigosrv(root_, dir_ / "logs");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->address, HasSubstr("127.0.0.1:"));
  p->child.Kill(SIGTERM);
  auto exit = p->child.WaitFor(std::chrono::seconds(30));
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->exited && exit->exit_code == 0) << ReadAllFile(p->err_file);
  // The trace-level server log mentions isopass requests but no value.
  EXPECT_THAT(ReadAllFile(p->err_file), HasSubstr("isopass"));
}

TEST_F(IsopassServerTest, ResolveRotationOutageAndRecovery) {
  fs::create_directories(dir_ / "logs");
  ASSERT_TRUE(SetLogFile((dir_ / "logs" / "server.log").string()).ok());
  SetLogLevel(LogLevel::kTrace);
  auto srv = StartServer();
  ASSERT_NE(srv, nullptr);
  EnvoyCreds a = IssueEnvoy("web-a");
  auto stub = AgentStub(a, srv->port());

  v1::PolicyBundle b1 = CheckIn(*stub);
  std::vector<std::string> refs(b1.secret_refs().begin(), b1.secret_refs().end());
  EXPECT_THAT(refs, ::testing::UnorderedElementsAre("app/api_key", "db-admin/password"));
  Resolved r1 = Resolve(*stub, "web-a", refs, b1.secrets_epoch());
  ASSERT_TRUE(r1.status.ok()) << r1.status.error_message();
  EXPECT_EQ(r1.values["db-admin/password"], kDbPassword);
  EXPECT_EQ(r1.values["app/api_key"], kApiKey);

  // Rotation in isopass: the server notices within the poll interval and
  // bumps the epoch; the new bundle's epoch resolves to the new value.
  const uint64_t e1 = srv->epoch();
  WriteFixture(Fixture(kDbPasswordRotated));
  for (int i = 0; i < 100 && srv->epoch() == e1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GT(srv->epoch(), e1) << "rotation was not detected";
  Resolved stale = Resolve(*stub, "web-a", refs, b1.secrets_epoch());
  EXPECT_EQ(stale.status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  v1::PolicyBundle b2 = CheckIn(*stub);
  EXPECT_EQ(b2.secrets_epoch(), srv->epoch());
  Resolved r2 = Resolve(*stub, "web-a", refs, b2.secrets_epoch());
  ASSERT_TRUE(r2.status.ok()) << r2.status.error_message();
  EXPECT_EQ(r2.values["db-admin/password"], kDbPasswordRotated);

  // isopass goes down: once the snapshot is older than the poll interval,
  // ResolveSecrets fails UNAVAILABLE (never an empty or stale value) and the
  // loaded configuration is kept.
  const uint64_t e2 = srv->epoch();
  stub_.Stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  Resolved down = Resolve(*stub, "web-a", refs, e2);
  EXPECT_EQ(down.status.error_code(), grpc::StatusCode::UNAVAILABLE) << down.status.error_message();
  EXPECT_TRUE(down.values.empty());
  EXPECT_EQ(srv->epoch(), e2);

  // isopass is back on the same address: the server recovers by itself.
  StartStub(port_);
  Resolved back;
  for (int i = 0; i < 50; ++i) {
    back = Resolve(*stub, "web-a", refs, srv->epoch());
    if (back.status.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(back.status.ok()) << back.status.error_message();
  EXPECT_EQ(back.values["db-admin/password"], kDbPasswordRotated);
  srv->Shutdown();
  srv->Wait();
}

// Rotation in isopass reaches the node: the real vigosrv (isopass backend,
// poll 1 s) and the real agent. After the value changes in isopass, the
// server's version poll bumps the epoch and the next `vigo run --once` writes
// the new value.
TEST_F(IsopassServerTest, RotationInIsopassIsWrittenByTheAgent) {
  auto p = StartVigosrv(root_, dir_ / "logs");
  ASSERT_TRUE(p.ok()) << p.status();
  const fs::path creds = dir_ / "creds", apply = dir_ / "apply", state = dir_ / "state";
  fs::create_directories(apply);
  fs::create_directories(state);
  auto issued = vigo::testing::Run({BinPath("vigocli").string(), "--root", root_.string(), "envoy",
                                    "issue", "web-a", "--out", creds.string()});
  ASSERT_EQ(issued.exit_code, 0) << issued.err;
  auto run_agent = [&] {
    auto r = vigo::testing::Run(
        {BinPath("vigo").string(), "run", "--once", "--server", p->address, "--ca-file",
         (creds / "ca.pem").string(), "--cert-file", (creds / "cert.pem").string(), "--key-file",
         (creds / "key.pem").string(), "--state-dir", state.string(), "--apply-root",
         apply.string()});
    seen_ += r.out + r.err;  // scanned for canaries in TearDown
    return r;
  };
  auto first = run_agent();
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_EQ(ReadFileOrEmpty(apply / "etc/app.conf"), StrCat("password: ", kDbPassword, "\n"));

  WriteFixture(Fixture(kDbPasswordRotated));
  std::string got;
  for (int i = 0; i < 30; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto again = run_agent();
    ASSERT_EQ(again.exit_code, 0) << again.err;
    got = ReadFileOrEmpty(apply / "etc/app.conf");
    if (got.find(kDbPasswordRotated) != std::string::npos) break;
  }
  EXPECT_EQ(got, StrCat("password: ", kDbPasswordRotated, "\n"));
  p->child.Kill(SIGTERM);
  (void)p->child.WaitFor(std::chrono::seconds(30));
}

}  // namespace
}  // namespace vigo::testing
