// The isopass backend against a real HTTPS stub (tests/helpers/isopass_stub_main.cc)
// on 127.0.0.1: every type and field, tokens (reuse, expiry, 401 handling),
// rotation, outages and recovery, malformed responses, TLS and configuration
// refusals. Every test ends with a canary scan of the trace-level log and of
// every error message the test saw.
#include "server/isopass/isopass_backend.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_env.h"
#include "vocab/wire_limits.h"

namespace vigo::server {
namespace {

namespace fs = std::filesystem;
using sandbox::SecretBuffer;
using ::testing::HasSubstr;
using ::testing::Not;

// Values are random-looking so that the canary scan (which also looks for
// every 8-byte substring) cannot match ordinary log text.
constexpr char kRawValue[] = "Rw7qZt2KpX9vLm4N";
constexpr char kRawValue2[] = "Hn3xQ8wTz5KcJr6B";
constexpr char kNumberValue[] = "31415926535897932";
constexpr char kUpUser[] = "dbAdminUsr7Kq";
constexpr char kUpPassword[] = "Pw9zXq4VmT2kLr8S";
constexpr char kLegacyPassword[] = "Lg5TrW8qZm3XvK1p";
constexpr char kKvSecret[] = "Kv2QmZ7xTr9WpL4n";
constexpr char kTlsKey[] = "Tk8VrQ3mXz6PwL2j";
constexpr char kTlsCert[] = "Tc4NzK9qWm7XrV5b";
constexpr char kLongLivedToken[] = "LLtok-Zq8XvW3mKr7TpN2c";

std::string Str(const SecretBuffer& b) {
  auto bytes = b.Reveal();
  return std::string(bytes.begin(), bytes.end());
}

std::string FixtureJson(std::string_view raw_value, std::string_view kv_updated_at) {
  return StrCat(R"([
  {"id":"1","name":"app/api_key","type":"api_key","organization_id":"o1","organization":"acme",
   "tags":[],"scopes":[],"value":")",
                raw_value, R"("},
  {"id":"2","name":"app/pin","type":"number","organization":"acme","value":)",
                kNumberValue, R"(},
  {"id":"3","name":"db-admin","type":"username_password","organization":"acme",
   "value":{"username":")",
                kUpUser, R"(","password":")", kUpPassword, R"("}},
  {"id":"4","name":"db-legacy","type":"username_password","organization":"acme",
   "value":"{\"username\":\"legacy\",\"password\":\")",
                kLegacyPassword, R"(\"}"},
  {"id":"5","name":"app-config","type":"key_value_pair","organization":"acme",
   "updated_at":")",
                kv_updated_at, R"(",
   "value":{"region":"eu-1","secret_key":")",
                kKvSecret, R"(","port":5432,"debug":true}},
  {"id":"6","name":"web-tls","type":"tls_bundle","organization":"acme",
   "value":{"certificate":")",
                kTlsCert, R"(","private_key":")", kTlsKey, R"(",
            "ca_chain":["CA-one","CA-two"]}},
  {"id":"7","name":"escaped","type":"note","organization":"acme",
   "value":"line1\nline2 \u00e9 \"q\""}
])");
}

// The stub process: started with its flags, killed (SIGKILL) and reaped on Stop().
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

void MakeSelfSignedCert(const fs::path& dir, const std::string& name) {
  auto r = testing::Run({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                         "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
                         (dir / (name + ".key")).string(), "-out", (dir / (name + ".pem")).string(),
                         "-days", "2", "-subj", "/CN=localhost", "-addext",
                         "subjectAltName=IP:127.0.0.1,DNS:localhost"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

class IsopassBackendTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    certs_ = new testing::TempDir();
    MakeSelfSignedCert(certs_->path(), "server");
    MakeSelfSignedCert(certs_->path(), "other");
  }
  static void TearDownTestSuite() {
    delete certs_;
    certs_ = nullptr;
  }

  void SetUp() override {
    dir_ = tmp_.path();
    log_ = dir_ / "vigo.log";
    ASSERT_TRUE(SetLogFile(log_.string()).ok());
    SetLogLevel(LogLevel::kTrace);
    testing::WriteFileOrDie(dir_ / "token", StrCat(kLongLivedToken, "\n"), 0600);
    testing::WriteFileOrDie(dir_ / "stub-token", kLongLivedToken, 0600);
    WriteFixture(FixtureJson(kRawValue, "2026-01-01T00:00:00Z"));
    testing::WriteFileOrDie(dir_ / "control", "", 0600);
    StartStub();
  }

  void TearDown() override {
    stub_.Stop();
    (void)SetLogFile("");
    std::vector<std::string> canaries = {kRawValue,   kRawValue2,     kNumberValue,    kUpUser,
                                         kUpPassword, kKvSecret,      kLegacyPassword, kTlsKey,
                                         kTlsCert,    kLongLivedToken};
    std::istringstream issued(testing::ReadFileOrEmpty(dir_ / "issued-tokens"));
    for (std::string t; std::getline(issued, t);) {
      if (!t.empty()) canaries.push_back(t);
    }
    const std::string log = testing::ReadFileOrEmpty(log_);
    EXPECT_THAT(testing::FindCanariesIn(log, "vigo.log", canaries), ::testing::IsEmpty());
    EXPECT_THAT(testing::FindCanariesIn(errors_, "error messages", canaries), ::testing::IsEmpty());
  }

  void WriteFixture(const std::string& json) {
    // Atomic replace: the stub re-reads the fixture on every request.
    testing::WriteFileOrDie(dir_ / "fixture.tmp", json, 0600);
    fs::rename(dir_ / "fixture.tmp", dir_ / "fixture.json");
  }
  void Control(const std::string& text) {
    testing::WriteFileOrDie(dir_ / "control.tmp", text, 0600);
    fs::rename(dir_ / "control.tmp", dir_ / "control");
  }

  void StartStub(int port = 0) {
    port_ = stub_.Start({testing::TestBinPath("isopass_stub").string(), "--cert",
                         (certs_->path() / "server.pem").string(), "--key",
                         (certs_->path() / "server.key").string(), "--fixture",
                         (dir_ / "fixture.json").string(), "--token-file",
                         (dir_ / "stub-token").string(), "--control", (dir_ / "control").string(),
                         "--request-log", (dir_ / "requests.log").string(), "--issued-tokens",
                         (dir_ / "issued-tokens").string(), "--port", std::to_string(port)});
    ASSERT_GT(port_, 0) << "isopass_stub did not start";
  }

  IsopassOptions Options() const {
    IsopassOptions o;
    o.url = StrCat("https://127.0.0.1:", port_);
    o.token_file = dir_ / "token";
    o.ca_file = certs_->path() / "server.pem";
    o.poll_interval = std::chrono::seconds(60);
    o.connect_timeout = std::chrono::milliseconds(2000);
    o.total_timeout = std::chrono::milliseconds(5000);
    o.failure_backoff = std::chrono::milliseconds(0);
    return o;
  }

  std::unique_ptr<IsopassBackend> Open(const IsopassOptions& o) {
    auto b = IsopassBackend::Create(o);
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? std::move(*b) : nullptr;
  }
  std::unique_ptr<IsopassBackend> OpenHealthy() {
    auto b = Open(Options());
    if (b == nullptr) return nullptr;
    absl::Status st = b->CheckHealth();
    EXPECT_TRUE(st.ok()) << st;
    return b;
  }

  // Records an error message for the canary scan and returns it.
  std::string Note(const absl::Status& st) {
    std::string m(st.message());
    errors_ += m;
    errors_ += "\n";
    return m;
  }

  std::string GetStr(SecretBackend& b, std::string_view path) {
    auto v = b.Get(path);
    if (!v.ok()) {
      ADD_FAILURE() << path << ": " << Note(v.status());
      return "";
    }
    return Str(*v);
  }

  int CountRequests(std::string_view line) const {
    std::istringstream in(testing::ReadFileOrEmpty(dir_ / "requests.log"));
    int n = 0;
    for (std::string l; std::getline(in, l);) n += (l == line);
    return n;
  }
  std::string Requests() const { return testing::ReadFileOrEmpty(dir_ / "requests.log"); }

  static testing::TempDir* certs_;
  testing::TempDir tmp_;
  fs::path dir_;
  fs::path log_;
  StubProcess stub_;
  int port_ = 0;
  std::string errors_;
};

testing::TempDir* IsopassBackendTest::certs_ = nullptr;

TEST_F(IsopassBackendTest, ResolvesEveryTypeAndField) {
  auto b = OpenHealthy();
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(GetStr(*b, "app/api_key"), kRawValue);
  EXPECT_EQ(GetStr(*b, "app/pin"), kNumberValue);
  EXPECT_EQ(GetStr(*b, "db-admin/username"), kUpUser);
  EXPECT_EQ(GetStr(*b, "db-admin/password"), kUpPassword);
  EXPECT_EQ(GetStr(*b, "db-legacy/username"), "legacy");
  EXPECT_EQ(GetStr(*b, "db-legacy/password"), kLegacyPassword);
  EXPECT_EQ(GetStr(*b, "app-config/region"), "eu-1");
  EXPECT_EQ(GetStr(*b, "app-config/secret_key"), kKvSecret);
  EXPECT_EQ(GetStr(*b, "app-config/port"), "5432");
  EXPECT_EQ(GetStr(*b, "app-config/debug"), "true");
  EXPECT_EQ(GetStr(*b, "web-tls/certificate"), kTlsCert);
  EXPECT_EQ(GetStr(*b, "web-tls/private_key"), kTlsKey);
  EXPECT_EQ(GetStr(*b, "web-tls/ca_chain"), "CA-one\nCA-two");
  EXPECT_EQ(GetStr(*b, "escaped"), "line1\nline2 \xc3\xa9 \"q\"");

  EXPECT_EQ(b->Exists("db-admin/password").value_or(false), true);
  EXPECT_EQ(b->Exists("app/api_key").value_or(false), true);
  // A structured secret is addressed by its fields only.
  EXPECT_EQ(b->Exists("db-admin").value_or(true), false);
  auto whole = b->Get("db-admin");
  ASSERT_FALSE(whole.ok());
  EXPECT_EQ(whole.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Note(whole.status()), HasSubstr("'db-admin/password'"));
  auto no_field = b->Get("db-admin/token");
  EXPECT_EQ(no_field.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Note(no_field.status()), HasSubstr("has no field 'token'"));
  auto missing = b->Get("nope/missing");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Note(missing.status()), HasSubstr("'nope/missing'"));
  EXPECT_EQ(b->Exists("nope").value_or(true), false);
  auto bad = b->Get("../etc/passwd");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  Note(bad.status());

  auto all = b->List("");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all, ::testing::ElementsAre(
                        "app-config/debug", "app-config/port", "app-config/region",
                        "app-config/secret_key", "app/api_key", "app/pin", "db-admin/password",
                        "db-admin/username", "db-legacy/password", "db-legacy/username", "escaped",
                        "web-tls/ca_chain", "web-tls/certificate", "web-tls/private_key"));
  auto app = b->List("app/");
  ASSERT_TRUE(app.ok());
  EXPECT_THAT(*app, ::testing::ElementsAre("app/api_key", "app/pin"));
  // One search answered all of the above.
  EXPECT_EQ(CountRequests("POST /api/client/search 200"), 1);
}

TEST_F(IsopassBackendTest, ExactNameWinsOverFieldAndDuplicatesAreRefused) {
  WriteFixture(StrCat(R"([
    {"name":"svc","type":"key_value_pair","value":{"user":"from-field","other":"x"}},
    {"name":"svc/user","type":"raw","value":"from-exact-name"},
    {"name":"dup","type":"raw","organization":"acme","value":")",
                      kRawValue, R"("},
    {"name":"dup","type":"raw","organization":"globex","value":")",
                      kRawValue2, R"("},
    {"name":"broken","type":"username_password","value":"{not json )",
                      kUpPassword, R"("}
  ])"));
  auto b = OpenHealthy();
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(GetStr(*b, "svc/user"), "from-exact-name");
  EXPECT_EQ(GetStr(*b, "svc/other"), "x");
  auto dup = b->Get("dup");
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Note(dup.status()), HasSubstr("2 secrets named 'dup' (organizations: acme, globex)"));
  EXPECT_FALSE(b->Exists("dup").ok());
  auto broken = b->Get("broken/password");
  ASSERT_FALSE(broken.ok());
  EXPECT_THAT(Note(broken.status()), HasSubstr("'broken' (type username_password) has a value"));
}

// Issue 16 (wire limits): a value over the 1 MiB every part of Vigo carries
// is refused by the backend, naming the path, at load (Exists) and at
// resolve, instead of being served to an agent whose IPC refuses it (which
// ended the broker on every run, blaming the worker). Exactly 1 MiB is
// served; so is a small field of a secret whose other field is too big.
TEST_F(IsopassBackendTest, AValueOverTheSharedLimitIsRefusedNamingItsPath) {
  const std::string at_limit(vocab::kMaxSecretValueBytes, 'a');
  const std::string over(vocab::kMaxSecretValueBytes + 1, 'b');
  WriteFixture(StrCat(R"([
    {"name":"big","type":"raw","value":")",
                      over, R"("},
    {"name":"fits","type":"raw","value":")",
                      at_limit, R"("},
    {"name":"kv","type":"key_value_pair","value":{"small":"s","large":")",
                      over, R"("}}
  ])"));
  IsopassOptions o = Options();
  o.max_body_bytes = 8 << 20;
  auto b = Open(o);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->CheckHealth().ok());
  for (const char* path : {"big", "kv/large"}) {
    SCOPED_TRACE(path);
    auto v = b->Get(path);
    ASSERT_FALSE(v.ok());
    EXPECT_EQ(v.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(Note(v.status()), HasSubstr(StrCat("isopass secret '", path, "' is ",
                                                   vocab::kMaxSecretValueBytes + 1, " bytes")));
    EXPECT_THAT(std::string(v.status().message()), HasSubstr("at most 1048576 bytes"));
    EXPECT_FALSE(b->Exists(path).ok());
  }
  auto fits = b->Get("fits");
  ASSERT_TRUE(fits.ok()) << fits.status();
  EXPECT_EQ(fits->size(), vocab::kMaxSecretValueBytes);
  EXPECT_EQ(GetStr(*b, "kv/small"), "s");
}

TEST_F(IsopassBackendTest, ShortLivedTokenIsReusedUntilNearExpiry) {
  auto b = OpenHealthy();
  ASSERT_NE(b, nullptr);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(b->Refresh().ok());
  EXPECT_EQ(b->token_exchanges(), 1u);
  EXPECT_EQ(CountRequests("POST /api/auth/token 201"), 1);
  EXPECT_EQ(CountRequests("POST /api/client/search 200"), 4);
}

TEST_F(IsopassBackendTest, TokenExpiringWithinThirtySecondsIsReplaced) {
  Control("token_ttl=20\n");  // inside the 30 s margin: every call exchanges first
  auto b = OpenHealthy();
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->Refresh().ok());
  // me + search (CheckHealth) + search (Refresh): three exchanges, no 401.
  EXPECT_EQ(b->token_exchanges(), 3u);
  EXPECT_THAT(Requests(), Not(HasSubstr(" 401")));
}

TEST_F(IsopassBackendTest, ExpiredTokenIsRefreshedBeforeUse) {
  // expires_at has whole seconds: a 4 s token is valid for more than 3 s.
  Control("token_ttl=4\n");
  IsopassOptions o = Options();
  o.token_refresh_margin = std::chrono::seconds(1);
  auto b = Open(o);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->CheckHealth().ok());
  EXPECT_EQ(b->token_exchanges(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(3200));
  absl::Status st = b->Refresh();
  ASSERT_TRUE(st.ok()) << Note(st);
  EXPECT_EQ(b->token_exchanges(), 2u);
  EXPECT_THAT(Requests(), Not(HasSubstr(" 401")));
}

TEST_F(IsopassBackendTest, RevokedTokenGets401ThenOneReExchangeSucceeds) {
  auto b = OpenHealthy();
  ASSERT_NE(b, nullptr);
  Control("revoke=1\n");
  absl::Status st = b->Refresh();
  ASSERT_TRUE(st.ok()) << Note(st);
  EXPECT_EQ(CountRequests("POST /api/client/search 401"), 1);
  EXPECT_EQ(b->token_exchanges(), 2u);
  EXPECT_THAT(Requests(), HasSubstr("POST /api/client/search 401\nPOST /api/auth/token 201\n"
                                    "POST /api/client/search 200\n"));
  EXPECT_EQ(GetStr(*b, "app/api_key"), kRawValue);
}

TEST_F(IsopassBackendTest, Persistent401IsAClearError) {
  Control("api_401=always\n");
  auto b = Open(Options());
  ASSERT_NE(b, nullptr);
  absl::Status st = b->CheckHealth();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), absl::StatusCode::kUnauthenticated);
  const std::string m = Note(st);
  EXPECT_THAT(m, HasSubstr("HTTP 401 twice"));
  EXPECT_THAT(m, HasSubstr("/api/client/me"));
  EXPECT_THAT(m, HasSubstr((dir_ / "token").string()));
  EXPECT_EQ(m.find('\n'), std::string::npos);
  EXPECT_EQ(CountRequests("GET /api/client/me 401"), 2);
  EXPECT_EQ(CountRequests("POST /api/auth/token 201"), 2);
}

TEST_F(IsopassBackendTest, RefusedLongLivedTokenIsAClearError) {
  testing::WriteFileOrDie(dir_ / "stub-token", "some-other-token", 0600);
  auto b = Open(Options());
  ASSERT_NE(b, nullptr);
  absl::Status st = b->CheckHealth();
  EXPECT_EQ(st.code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(Note(st), HasSubstr(StrCat("isopass refused the token from ",
                                         (dir_ / "token").string(), " (HTTP 401")));
}

TEST_F(IsopassBackendTest, RotationChangesVersion) {
  auto b = OpenHealthy();
  ASSERT_NE(b, nullptr);
  auto v1 = b->Version("app/api_key");
  auto kv1 = b->Version("app-config/secret_key");
  auto stable1 = b->Version("db-admin/password");
  ASSERT_TRUE(v1.ok() && kv1.ok() && stable1.ok());
  // updated_at is used when present (microseconds since the epoch).
  EXPECT_EQ(*kv1, 1767225600000000u);

  WriteFixture(FixtureJson(kRawValue2, "2026-02-01T00:00:00Z"));
  // Within the poll interval the snapshot is served as is.
  EXPECT_EQ(*b->Version("app/api_key"), *v1);
  ASSERT_TRUE(b->Refresh().ok());
  auto v2 = b->Version("app/api_key");
  ASSERT_TRUE(v2.ok());
  EXPECT_NE(*v2, *v1);
  EXPECT_NE(*b->Version("app-config/secret_key"), *kv1);
  EXPECT_EQ(*b->Version("db-admin/password"), *stable1);  // unchanged value, same fingerprint
  EXPECT_EQ(GetStr(*b, "app/api_key"), kRawValue2);
}

TEST_F(IsopassBackendTest, PollIntervalRefreshesByItself) {
  IsopassOptions o = Options();
  o.poll_interval = std::chrono::seconds(1);
  auto b = Open(o);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->CheckHealth().ok());
  auto v1 = b->Version("app/api_key");
  ASSERT_TRUE(v1.ok());
  WriteFixture(FixtureJson(kRawValue2, "2026-01-01T00:00:00Z"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  auto v2 = b->Version("app/api_key");
  ASSERT_TRUE(v2.ok());
  EXPECT_NE(*v1, *v2);
  EXPECT_EQ(GetStr(*b, "app/api_key"), kRawValue2);
}

TEST_F(IsopassBackendTest, DownAtStartFailsHealthWithOneClearLine) {
  stub_.Stop();
  auto b = Open(Options());  // no network at Create
  ASSERT_NE(b, nullptr);
  absl::Status st = b->CheckHealth();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  const std::string m = Note(st);
  EXPECT_THAT(m, HasSubstr("cannot reach isopass"));
  EXPECT_THAT(m, HasSubstr(StrCat("https://127.0.0.1:", port_)));
  EXPECT_EQ(m.find('\n'), std::string::npos);
}

TEST_F(IsopassBackendTest, DownWhileRunningIsUnavailableThenRecovers) {
  IsopassOptions o = Options();
  o.poll_interval = std::chrono::seconds(1);
  auto b = Open(o);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->CheckHealth().ok());
  EXPECT_EQ(GetStr(*b, "db-admin/password"), kUpPassword);
  stub_.Stop();
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  auto get = b->Get("db-admin/password");
  ASSERT_FALSE(get.ok());
  EXPECT_EQ(get.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Note(get.status()), HasSubstr("cannot reach isopass"));
  EXPECT_EQ(b->Exists("db-admin/password").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(b->Version("db-admin/password").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(b->List("").status().code(), absl::StatusCode::kUnavailable);

  StartStub(port_);  // same port: isopass is back
  EXPECT_EQ(GetStr(*b, "db-admin/password"), kUpPassword);
}

TEST_F(IsopassBackendTest, MalformedTruncatedAndOversizedResponsesAreClearErrors) {
  IsopassOptions o = Options();
  o.poll_interval = std::chrono::seconds(0);  // every call fetches
  auto b = Open(o);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->CheckHealth().ok());
  struct Case {
    std::string control;
    absl::StatusCode code;
    std::string message;
  } cases[] = {
      {"search=malformed", absl::StatusCode::kUnavailable, "is not valid JSON"},
      {"search=truncated", absl::StatusCode::kUnavailable, "is not valid JSON"},
      {"search=notarray", absl::StatusCode::kUnavailable, "is not a JSON array"},
      {"search=cut", absl::StatusCode::kUnavailable, "cannot reach isopass"},
      {"search=oversized", absl::StatusCode::kResourceExhausted,
       "larger than the limit of 4194304"},
      {"status_search=503", absl::StatusCode::kUnavailable, "with HTTP 503"},
      {"status_search=403", absl::StatusCode::kPermissionDenied, "HTTP 403"},
      {"status_search=302", absl::StatusCode::kFailedPrecondition, "redirect (HTTP 302)"},
      {"status_search=404", absl::StatusCode::kFailedPrecondition, "HTTP 404"},
  };
  for (const Case& c : cases) {
    Control(c.control + "\n");
    auto get = b->Get("app/api_key");
    ASSERT_FALSE(get.ok()) << c.control;
    EXPECT_EQ(get.status().code(), c.code) << c.control << ": " << get.status();
    const std::string m = Note(get.status());
    EXPECT_THAT(m, HasSubstr(c.message)) << c.control;
    EXPECT_THAT(m, HasSubstr("/api/client/search")) << c.control;
    EXPECT_EQ(m.find('\n'), std::string::npos);
  }
  Control("");
  EXPECT_EQ(GetStr(*b, "app/api_key"), kRawValue);
}

TEST_F(IsopassBackendTest, SmallBodyCapIsEnforced) {
  IsopassOptions o = Options();
  o.max_body_bytes = 256;
  auto b = Open(o);
  ASSERT_NE(b, nullptr);
  absl::Status st = b->CheckHealth();
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(Note(st), HasSubstr("larger than the limit of 256 bytes"));
}

TEST_F(IsopassBackendTest, ResultCountAtLimitIsPossibleTruncation) {
  IsopassOptions o = Options();
  o.search_limit = 7;  // the fixture has exactly 7 secrets
  auto b = Open(o);
  ASSERT_NE(b, nullptr);
  absl::Status st = b->CheckHealth();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(Note(st), HasSubstr("may be truncated"));
  o.search_limit = 3;  // the stub cuts the list at the limit
  b = Open(o);
  EXPECT_EQ(b->CheckHealth().code(), absl::StatusCode::kFailedPrecondition);
  o.search_limit = 8;
  b = Open(o);
  EXPECT_TRUE(b->CheckHealth().ok());
}

TEST_F(IsopassBackendTest, SlowIsopassTimesOut) {
  Control("delay_ms=3000\n");
  IsopassOptions o = Options();
  o.total_timeout = std::chrono::milliseconds(500);
  auto b = Open(o);
  ASSERT_NE(b, nullptr);
  absl::Status st = b->CheckHealth();
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(Note(st), HasSubstr("cannot reach isopass"));
}

TEST_F(IsopassBackendTest, WrongCaIsRefused) {
  IsopassOptions o = Options();
  o.ca_file = certs_->path() / "other.pem";
  auto b = Open(o);
  ASSERT_NE(b, nullptr);
  absl::Status st = b->CheckHealth();
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable);
  const std::string m = Note(st);
  EXPECT_THAT(m, HasSubstr("TLS verification failed"));
  EXPECT_THAT(m, HasSubstr("other.pem"));
  // Nothing reached the application layer: not even the token exchange.
  EXPECT_EQ(Requests(), "");
  // The system store does not trust the test CA either.
  o.ca_file.clear();
  b = Open(o);
  EXPECT_EQ(b->CheckHealth().code(), absl::StatusCode::kUnavailable);
}

TEST_F(IsopassBackendTest, PlainHttpAndCredentialUrlsAreRefused) {
  IsopassOptions o = Options();
  o.url = StrCat("http://127.0.0.1:", port_);
  auto b = IsopassBackend::Create(o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Note(b.status()), HasSubstr("plain http://, which is refused"));
  o.url = StrCat("HTTP://127.0.0.1:", port_);
  EXPECT_FALSE(IsopassBackend::Create(o).ok());
  o.url = StrCat("https://user:Cr3dPw9x@127.0.0.1:", port_);
  b = IsopassBackend::Create(o);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(Note(b.status()), Not(HasSubstr("Cr3dPw9x")));
  o.url = "ftp://127.0.0.1/";
  EXPECT_FALSE(IsopassBackend::Create(o).ok());
  // A token in a query string or fragment is never repeated in the error,
  // whichever check fails first.
  for (std::string url : {StrCat("https://127.0.0.1:", port_, "/v1?token=Qy8TokZ3"),
                          StrCat("http://127.0.0.1:", port_, "/v1?token=Qy8TokZ3"),
                          std::string("ftp://h/#Qy8TokZ3"), std::string("https://?Qy8TokZ3")}) {
    o.url = url;
    b = IsopassBackend::Create(o);
    ASSERT_FALSE(b.ok()) << url;
    EXPECT_THAT(Note(b.status()), Not(HasSubstr("Qy8TokZ3"))) << url;
    EXPECT_THAT(Note(b.status()), HasSubstr("<hidden>")) << url;
  }
  o.url = "";
  EXPECT_FALSE(IsopassBackend::Create(o).ok());
}

TEST_F(IsopassBackendTest, TokenFileMustBePrivateRegularAndOwned) {
  IsopassOptions o = Options();
  ASSERT_EQ(::chmod((dir_ / "token").c_str(), 0644), 0);
  auto b = IsopassBackend::Create(o);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(Note(b.status()), HasSubstr("has mode 0644; it must be 0600"));
  ASSERT_EQ(::chmod((dir_ / "token").c_str(), 0400), 0);
  EXPECT_TRUE(IsopassBackend::Create(o).ok());
  ASSERT_EQ(::chmod((dir_ / "token").c_str(), 0600), 0);

  fs::create_symlink(dir_ / "token", dir_ / "token-link");
  o.token_file = dir_ / "token-link";
  b = IsopassBackend::Create(o);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(Note(b.status()), HasSubstr("symbolic link"));
  o.token_file = dir_ / "absent";
  EXPECT_FALSE(IsopassBackend::Create(o).ok());
  testing::WriteFileOrDie(dir_ / "two-words", "two words\n", 0600);
  o.token_file = dir_ / "two-words";
  b = IsopassBackend::Create(o);
  ASSERT_FALSE(b.ok());
  EXPECT_THAT(Note(b.status()), HasSubstr("one token on one line"));
}

TEST_F(IsopassBackendTest, OpensFromServerConfig) {
  ServerConfig cfg;
  cfg.root = dir_;
  cfg.secrets_backend = "isopass";
  cfg.isopass_url = StrCat("https://127.0.0.1:", port_, "/");
  cfg.isopass_token_file = "token";  // relative to the root
  cfg.isopass_ca_file = (certs_->path() / "server.pem").string();
  auto b = OpenIsopassBackend(cfg);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ((*b)->Name(), "isopass");
  ASSERT_TRUE((*b)->CheckHealth().ok());
  EXPECT_EQ(GetStr(**b, "web-tls/private_key"), kTlsKey);
  auto all = OpenBackend(cfg);  // the generic entry point, with CheckHealth
  ASSERT_TRUE(all.ok()) << all.status();
  cfg.isopass_url = StrCat("http://127.0.0.1:", port_);
  auto refused = OpenIsopassBackend(cfg);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(Note(refused.status()), HasSubstr((dir_ / "server.yaml").string()));
}

TEST_F(IsopassBackendTest, ConcurrentReadersDuringRefreshes) {
  IsopassOptions o = Options();
  o.poll_interval = std::chrono::seconds(0);
  auto b = Open(o);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->CheckHealth().ok());
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        auto v = b->Get("db-admin/password");
        if (!v.ok() || Str(*v) != kUpPassword) ++bad;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
}  // namespace vigo::server
