// Header-only fixture for server integration tests (and the agent's): a real
// VigoServer in this process on 127.0.0.1:0, with a data root made by
// InitRoot in a TempDir, a real local vault, and real certificates.
//
//   ServerFixture fx({.stacks = {{"envoys.vgo", "..."}, ...},
//                     .secrets = {{"a/db", "canary-value"}}});
//   ASSERT_TRUE(fx.ok()) << fx.error();
//   EnvoyCreds a = fx.IssueEnvoy("web-a");          // recorded, like `vigocli envoy issue`
//   auto stub = fx.Stub(a);                         // mTLS channel with a's cert
//   // a.dir holds ca.pem, cert.pem, key.pem for binaries (`vigo run --server fx.target() ...`)
//
// For the real binary, see RunVigosrv() in server_startup_test.cc: `vigosrv init`,
// then `vigosrv --root R --grpc-listen 127.0.0.1:0` prints "vigosrv: listening on H:P".
#ifndef VIGO_TESTS_INTEGRATION_SERVER_FIXTURE_H_
#define VIGO_TESTS_INTEGRATION_SERVER_FIXTURE_H_

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/client_interceptor.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/strings.h"
#include "sandbox/child_process.h"
#include "sandbox/secret_buffer.h"
#include "server/audit.h"
#include "server/backend.h"
#include "server/db.h"
#include "server/init.h"
#include "server/server_config.h"
#include "server/service/store.h"
#include "server/service/vigo_server.h"
#include "server/tls/pki.h"
#include "server/vault/local_backend.h"
#include "tests/support/test_env.h"
#include "vigo/v1/agent.grpc.pb.h"

namespace vigo::testing {

inline sandbox::SecretBuffer TestBuf(std::string_view s) {
  auto b = sandbox::SecretBuffer::Create(s.size());
  if (!b.ok()) std::abort();
  if (!s.empty()) std::memcpy(b->RevealMutable().data(), s.data(), s.size());
  return std::move(*b);
}

// Test-only: compares a buffer's bytes with a known canary.
inline bool BufEquals(const sandbox::SecretBuffer& b, std::string_view s) {
  auto r = b.Reveal();
  return r.size() == s.size() && (s.empty() || std::memcmp(r.data(), s.data(), s.size()) == 0);
}

inline std::string ReadAllFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Delegates to a real backend; can pretend to be unreachable.
class FlakyBackend : public server::SecretBackend {
 public:
  explicit FlakyBackend(std::unique_ptr<server::SecretBackend> inner) : inner_(std::move(inner)) {}
  std::atomic<bool> unavailable{false};
  // When > 0, every value Get returns is padded to this many bytes (a value
  // larger than the local vault stores, as another backend might hold).
  std::atomic<size_t> pad_values_to{0};
  std::string_view Name() const override { return inner_->Name(); }
  absl::Status CheckHealth() override { return Gate().ok() ? inner_->CheckHealth() : Gate(); }
  absl::StatusOr<bool> Exists(std::string_view p) override {
    if (!Gate().ok()) return Gate();
    return inner_->Exists(p);
  }
  absl::StatusOr<sandbox::SecretBuffer> Get(std::string_view p) override {
    if (!Gate().ok()) return Gate();
    auto v = inner_->Get(p);
    const size_t pad = pad_values_to;
    if (!v.ok() || pad <= v->size()) return v;
    auto big = sandbox::SecretBuffer::Create(pad);
    if (!big.ok()) return big.status();
    std::memcpy(big->RevealMutable().data(), v->Reveal().data(), v->size());
    return big;
  }
  absl::StatusOr<uint64_t> Version(std::string_view p) override {
    if (!Gate().ok()) return Gate();
    return inner_->Version(p);
  }
  absl::StatusOr<std::vector<std::string>> List(std::string_view p) override {
    if (!Gate().ok()) return Gate();
    return inner_->List(p);
  }

 private:
  absl::Status Gate() const {
    return unavailable ? absl::UnavailableError("test: backend down") : absl::OkStatus();
  }
  std::unique_ptr<server::SecretBackend> inner_;
};

struct EnvoyCreds {
  std::string name;
  std::filesystem::path dir;  // ca.pem, cert.pem, key.pem
  std::string ca_pem, cert_pem, key_pem;
  server::tls::CertInfo info;
};

// A real agent's apply root and state dir, below a temp dir of its own.
struct AgentDirs {
  TempDir work;
  std::filesystem::path root = work.path() / "root";
  std::filesystem::path state = work.path() / "state";
  AgentDirs() {
    std::filesystem::create_directories(root);
    std::filesystem::create_directories(state);
  }
};

// argv of `vigo run --once` (mode "once") or `vigo daemon --interval=10`
// for `creds` against `target`, in `dirs`.
inline std::vector<std::string> AgentArgv(const std::string& mode, const std::string& target,
                                          const EnvoyCreds& creds, const AgentDirs& dirs,
                                          const std::string& log_level = "trace") {
  std::vector<std::string> a = {BinPath("vigo").string()};
  if (mode == "once") {
    a.insert(a.end(), {"run", "--once"});
  } else {
    a.insert(a.end(), {"daemon", "--interval=10"});
  }
  a.insert(a.end(),
           {"--server=" + target, "--ca-file=" + (creds.dir / "ca.pem").string(),
            "--cert-file=" + (creds.dir / "cert.pem").string(),
            "--key-file=" + (creds.dir / "key.pem").string(), "--state-dir=" + dirs.state.string(),
            "--apply-root=" + dirs.root.string(), "--log-level=" + log_level, "--retry-for=20"});
  return a;
}

struct ServerFixtureOptions {
  std::map<std::string, std::string> stacks;   // relative path under stacks/ → text
  std::map<std::string, std::string> secrets;  // vault path → value (test canaries)
  server::service::ServerOptions server_options;
  std::string require_hardening = "none";  // checkin.require_hardening
  // Applied to the loaded server.yaml before the server is created.
  std::function<void(server::ServerConfig&)> edit_config;
  bool start = true;
};

class ServerFixture {
 public:
  explicit ServerFixture(const ServerFixtureOptions& o) {
    namespace fs = std::filesystem;
    root_ = tmp_.path() / "root";
    absl::Status st = server::InitRoot(root_, "localhost", nullptr);
    if (!st.ok()) {
      Fail("init", st);
      return;
    }
    if (!o.stacks.empty()) {
      fs::remove_all(root_ / "stacks");
      fs::create_directories(root_ / "stacks");
      for (const auto& [rel, text] : o.stacks) {
        fs::create_directories((root_ / "stacks" / rel).parent_path());
        WriteFileOrDie(root_ / "stacks" / rel, text, 0640);
      }
    }
    auto cfg = server::LoadServerConfig(root_);
    if (!cfg.ok()) {
      Fail("config", cfg.status());
      return;
    }
    cfg_ = *cfg;
    cfg_.require_hardening = o.require_hardening;
    if (o.edit_config) o.edit_config(cfg_);
    st = server::vault::CreateMasterKey(cfg_.SecretsDir());
    if (!st.ok()) {
      Fail("master key", st);
      return;
    }
    auto writer = server::LocalBackend::Open(cfg_.SecretsDir());
    if (!writer.ok()) {
      Fail("vault", writer.status());
      return;
    }
    writer_ = std::move(*writer);
    for (const auto& [path, value] : o.secrets) SetSecret(path, value);
    if (!error_.empty()) return;
    auto reader = server::LocalBackend::Open(cfg_.SecretsDir());
    if (!reader.ok()) {
      Fail("vault", reader.status());
      return;
    }
    auto flaky = std::make_unique<FlakyBackend>(std::move(*reader));
    backend_ = flaky.get();
    auto srv = server::service::VigoServer::Create(cfg_, std::move(flaky), o.server_options);
    if (!srv.ok()) {
      Fail("create", srv.status());
      return;
    }
    server_ = std::move(*srv);
    if (o.start) {
      st = server_->Start("127.0.0.1:0");
      if (!st.ok()) {
      Fail("start", st);
      return;
    }
    }
    auto db = server::Database::Create(cfg_.DatabasePath());
    if (!db.ok()) {
      Fail("db", db.status());
      return;
    }
    db_ = std::move(*db);
    store_ = std::make_unique<server::service::ServerStore>(db_.get());
  }

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  const std::filesystem::path& root() const { return root_; }
  const std::filesystem::path& tmp() const { return tmp_.path(); }
  const server::ServerConfig& cfg() const { return cfg_; }
  server::service::VigoServer& server() { return *server_; }
  FlakyBackend& backend() { return *backend_; }
  std::string target() const { return StrCat("127.0.0.1:", server_->port()); }

  void SetSecret(const std::string& path, std::string_view value) {
    auto v = writer_->Set(path, TestBuf(value));
    if (!v.ok()) Fail(StrCat("set ", path), v.status());
  }

  // Like `vigocli envoy issue NAME --out DIR`: cert signed by the CA, recorded.
  EnvoyCreds IssueEnvoy(const std::string& name, bool record = true) {
    EnvoyCreds c;
    c.name = name;
    c.dir = tmp_.path() / "envoys" / StrCat(name, "-", ++issued_);
    std::filesystem::create_directories(c.dir);
    server::tls::CaFiles ca{cfg_.TlsDir() / "ca.pem", cfg_.TlsDir() / "ca.key"};
    auto info = server::tls::IssueClientCert(ca, c.dir / "cert.pem", c.dir / "key.pem", name,
                                             std::chrono::hours(24));
    if (!info.ok()) {
      Fail("issue", info.status());
      return c;
    }
    c.info = *info;
    std::filesystem::copy_file(ca.cert, c.dir / "ca.pem");
    if (record) {
      absl::Status st = store_->RecordEnvoyCert(name, *info);
      if (!st.ok()) Fail("record", st);
    }
    c.ca_pem = ReadAllFile(c.dir / "ca.pem");
    c.cert_pem = ReadAllFile(c.dir / "cert.pem");
    c.key_pem = ReadAllFile(c.dir / "key.pem");
    return c;
  }

  static std::shared_ptr<grpc::ChannelCredentials> Creds(const EnvoyCreds& c) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = c.ca_pem;
    o.pem_cert_chain = c.cert_pem;
    o.pem_private_key = c.key_pem;
    return grpc::SslCredentials(o);
  }

  std::shared_ptr<grpc::Channel> Channel(
      const EnvoyCreds& c,
      std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
          interceptors = {}) {
    grpc::ChannelArguments args;
    args.SetInt("grpc.use_local_subchannel_pool", 1);  // a fresh connection per channel
    if (interceptors.empty()) return grpc::CreateCustomChannel(target(), Creds(c), args);
    return grpc::experimental::CreateCustomChannelWithInterceptors(target(), Creds(c), args,
                                                                   std::move(interceptors));
  }

  std::unique_ptr<v1::VigoAgent::Stub> Stub(const EnvoyCreds& c) {
    return v1::VigoAgent::NewStub(Channel(c));
  }

  server::service::ServerStore& store() { return *store_; }

  std::vector<server::AuditRecord> AuditRecords() {
    server::AuditLog log(db_.get());
    auto r = log.List();
    return r.ok() ? *r : std::vector<server::AuditRecord>{};
  }
  int CountAudit(const std::string& event) {
    int n = 0;
    for (const auto& r : AuditRecords()) n += r.event.event == event;
    return n;
  }

 private:
  void Fail(const std::string& what, const absl::Status& st) {
    if (error_.empty()) error_ = StrCat(what, ": ", std::string(st.message()));
  }

  TempDir tmp_;
  std::filesystem::path root_;
  server::ServerConfig cfg_;
  std::unique_ptr<server::LocalBackend> writer_;
  FlakyBackend* backend_ = nullptr;
  std::unique_ptr<server::service::VigoServer> server_;
  std::unique_ptr<server::Database> db_;
  std::unique_ptr<server::service::ServerStore> store_;
  std::string error_;
  int issued_ = 0;
};

// A two-envoy stack: web-a gets a/db (file content) and a/token (exec
// stdin); web-b gets b/key. Neither can see the other's.
inline std::map<std::string, std::string> TwoEnvoyStacks() {
  return {
      {"envoys.vgo",
       "envoys:\n"
       "  - match: \"web-a\"\n"
       "    environment: prod\n"
       "    roles: [app]\n"
       "  - match: \"web-b\"\n"
       "    environment: stage\n"
       "    roles: [other]\n"},
      {"roles.vgo",
       "roles:\n"
       "  app:\n"
       "    configcrates: [app]\n"
       "  other:\n"
       "    configcrates: [other]\n"},
      {"environments.vgo",
       "env:\n"
       "  prod:\n"
       "    vars:\n"
       "      db_password: \"secret:a/db\"\n"
       "  stage:\n"
       "    vars:\n"
       "      key: \"secret:b/key\"\n"},
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
       "    stdin: \"secret:a/token\"\n"},
      {"configcrates/other.vgo",
       "configcrate: other\n"
       "resources:\n"
       "  - name: other-config\n"
       "    type: file\n"
       "    target_path: /etc/other.conf\n"
       "    mode: \"0600\"\n"
       "    content: \"key = {{ .Vars.key }}\\n\"\n"},
  };
}

// The real binary: `vigosrv --root ROOT --grpc-listen 127.0.0.1:0`, stdout and
// stderr to files in `log_dir`. Returns once it printed "vigosrv: listening on
// H:P" (address filled in), or an error with its stderr. The ChildProcess
// SIGKILLs it on destruction; send SIGTERM for a clean stop.
struct VigosrvProcess {
  sandbox::ChildProcess child;
  std::string address;  // "127.0.0.1:PORT"
  std::filesystem::path out_file, err_file;
};

inline absl::StatusOr<VigosrvProcess> StartVigosrv(const std::filesystem::path& root,
                                                   const std::filesystem::path& log_dir,
                                                   const std::string& listen = "127.0.0.1:0") {
  VigosrvProcess p;
  std::filesystem::create_directories(log_dir);
  p.out_file = log_dir / "vigosrv.out";
  p.err_file = log_dir / "vigosrv.err";
  sandbox::UniqueFd out(::open(p.out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  sandbox::UniqueFd err(::open(p.err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out || !err) return absl::InternalError("cannot create vigosrv log files");
  sandbox::SpawnOptions o;
  o.argv = {BinPath("vigosrv").string(), "--root", root.string(), "--grpc-listen", listen};
  o.env = {"PATH=/usr/bin:/bin"};
  o.fd_map = {{1, out.get()}, {2, err.get()}};
  auto child = sandbox::ChildProcess::Spawn(o);
  if (!child.ok()) return child.status();
  p.child = std::move(*child);
  for (int i = 0; i < 300; ++i) {
    std::string text = ReadAllFile(p.out_file);
    size_t at = text.find("listening on ");
    if (at != std::string::npos) {
      size_t end = text.find('\n', at);
      if (end != std::string::npos) {
        p.address = text.substr(at + 13, end - at - 13);
        return p;
      }
    }
    // Exited already? (WNOWAIT: leave the zombie for ChildProcess to reap.)
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(p.child.pid()), &info, WEXITED | WNOHANG | WNOWAIT) ==
            0 &&
        info.si_pid != 0) {
      return absl::FailedPreconditionError(
          StrCat("vigosrv exited early: ", ReadAllFile(p.err_file)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return absl::DeadlineExceededError(StrCat("vigosrv did not start: ", ReadAllFile(p.err_file)));
}

}  // namespace vigo::testing

#endif  // VIGO_TESTS_INTEGRATION_SERVER_FIXTURE_H_
