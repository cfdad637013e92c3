// Server load and overhead harness (not Google Benchmark: it measures a real
// vigosrv process and prints ratios against a baseline from the same run).
//
//   server_load_bench [--envoys 100,1000] [--rounds 3] [--ratio-iters 300]
//
// 1. Load: the real vigosrv binary (<build>/bin/vigosrv) on 127.0.0.1:0; N
//    envoys, each with its own certificate and its own mTLS connection, all
//    concurrent; each does `rounds` × (CheckIn + ResolveSecrets of 10 refs,
//    unsealed + ReportResult). Reports errors, p50/p99 per call, and the
//    server's VmRSS / VmHWM from /proc.
// 2. Overhead: in this process, a VigoServer and a bare mTLS gRPC server whose
//    ResolveSecrets returns a canned response of the same size (no auth
//    lookup, no backend, no sealing, no audit). The same client sends the
//    same request to both, interleaved; prints p50s and the ratio (target
//    <= 1.5x).
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "common/seal.h"
#include "common/strings.h"
#include "sandbox/child_process.h"
#include "sandbox/unique_fd.h"
#include "server/db.h"
#include "server/init.h"
#include "server/server_config.h"
#include "server/service/store.h"
#include "server/service/vigo_server.h"
#include "server/tls/pki.h"
#include "server/vault/local_backend.h"
#include "vigo/v1/agent.grpc.pb.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace vigo;

constexpr int kRefs = 10;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "server_load_bench: %s\n", what.c_str());
  std::exit(1);
}
void Check(const absl::Status& st, const std::string& what) {
  if (!st.ok()) Die(StrCat(what, ": ", std::string(st.message())));
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Creds {
  std::string name, ca, cert, key;
};

std::shared_ptr<grpc::ChannelCredentials> ChannelCreds(const Creds& c) {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = c.ca;
  o.pem_cert_chain = c.cert;
  o.pem_private_key = c.key;
  return grpc::SslCredentials(o);
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& target, const Creds& c) {
  grpc::ChannelArguments args;
  args.SetInt("grpc.use_local_subchannel_pool", 1);  // one connection per envoy
  return grpc::CreateCustomChannel(target, ChannelCreds(c), args);
}

// A data root with 10 secrets referenced by every "load-*" envoy.
struct Root {
  fs::path dir;
  server::ServerConfig cfg;
};

Root MakeRoot() {
  char tmpl[] = "/tmp/vigo-bench-XXXXXX";
  if (!::mkdtemp(tmpl)) Die("mkdtemp");
  Root r;
  r.dir = fs::path(tmpl) / "root";
  Check(server::InitRoot(r.dir, "localhost", nullptr), "init");
  fs::remove_all(r.dir / "stacks");
  fs::create_directories(r.dir / "stacks" / "configcrates");
  std::string env = "env:\n  prod:\n    vars:\n";
  std::string content;
  for (int i = 0; i < kRefs; ++i) {
    StrAppend(&env, "      s", i, ": \"secret:load/s", i, "\"\n");
    StrAppend(&content, "      s", i, " = {{ .Vars.s", i, " }}\n");
  }
  std::ofstream(r.dir / "stacks" / "envoys.vgo")
      << "envoys:\n  - match: \"load-*\"\n    environment: prod\n    roles: [app]\n";
  std::ofstream(r.dir / "stacks" / "roles.vgo") << "roles:\n  app:\n    configcrates: [app]\n";
  std::ofstream(r.dir / "stacks" / "environments.vgo") << env;
  std::ofstream(r.dir / "stacks" / "configcrates" / "app.vgo")
      << "configcrate: app\nresources:\n  - name: app\n    type: file\n"
         "    target_path: /etc/app.conf\n    mode: \"0600\"\n    content: |\n"
      << content;
  auto cfg = server::LoadServerConfig(r.dir);
  if (!cfg.ok()) Die(std::string(cfg.status().message()));
  r.cfg = *cfg;
  Check(server::vault::CreateMasterKey(r.cfg.SecretsDir()), "master key");
  auto vault = server::LocalBackend::Open(r.cfg.SecretsDir());
  if (!vault.ok()) Die("vault");
  for (int i = 0; i < kRefs; ++i) {
    auto v = sandbox::SecretBuffer::Create(64);
    if (!v.ok()) Die("arena");
    for (auto& b : v->RevealMutable()) b = static_cast<uint8_t>('a' + (std::rand() % 26));
    if (!(*vault)->Set(StrCat("load/s", i), *v).ok()) Die("vault set");
  }
  return r;
}

std::vector<Creds> IssueEnvoys(const Root& r, int n) {
  auto db = server::Database::Create(r.cfg.DatabasePath());
  if (!db.ok()) Die("db");
  server::service::ServerStore store(db->get());
  Check(store.Init(), "store");
  server::tls::CaFiles ca{r.cfg.TlsDir() / "ca.pem", r.cfg.TlsDir() / "ca.key"};
  const std::string ca_pem = ReadAll(ca.cert);
  fs::path dir = r.dir.parent_path() / "envoys";
  fs::create_directories(dir);
  std::vector<Creds> out;
  for (int i = 0; i < n; ++i) {
    std::string name = StrCat("load-", i);
    auto info = server::tls::IssueClientCert(ca, dir / (name + ".pem"), dir / (name + ".key"),
                                             name, std::chrono::hours(24));
    if (!info.ok()) Die("issue");
    Check(store.RecordEnvoyCert(name, *info), "record");
    out.push_back({name, ca_pem, ReadAll(dir / (name + ".pem")), ReadAll(dir / (name + ".key"))});
  }
  return out;
}

double Pct(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(p * static_cast<double>(v.size() - 1));
  return v[i];
}

int64_t ProcKb(pid_t pid, const char* key) {
  std::ifstream in(StrCat("/proc/", static_cast<int64_t>(pid), "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::atoll(line.c_str() + std::strlen(key));
  }
  return -1;
}

struct Ops {
  std::vector<double> checkin, resolve, report;
  int errors = 0;
  std::string first_error;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

void EnvoyLoop(const std::string& target, const Creds& c, int rounds, Ops* ops) {
  auto stub = v1::VigoAgent::NewStub(NewChannel(target, c));
  auto fail = [&](const std::string& what) {
    if (ops->errors++ == 0) ops->first_error = what;
  };
  std::string digest;
  uint64_t epoch = 0;
  std::vector<std::string> refs;
  for (int r = 0; r < rounds; ++r) {
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
      v1::CheckInRequest req;
      req.set_known_digest(digest);
      v1::CheckInResponse resp;
      auto t0 = Clock::now();
      grpc::Status st = stub->CheckIn(&ctx, req, &resp);
      ops->checkin.push_back(Ms(Clock::now() - t0));
      if (!st.ok()) {
        fail(StrCat("checkin: ", st.error_message()));
        continue;
      }
      if (resp.has_bundle()) {
        digest = resp.bundle().digest();
        epoch = resp.bundle().secrets_epoch();
        refs.assign(resp.bundle().secret_refs().begin(), resp.bundle().secret_refs().end());
      }
    }
    auto key = RecipientKey::Generate();
    if (!key.ok()) Die("keygen");
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
      v1::ResolveSecretsRequest req;
      for (const auto& ref : refs) req.add_refs(ref);
      req.set_secrets_epoch(epoch);
      req.set_recipient_key(key->public_key());
      v1::ResolveSecretsResponse resp;
      auto t0 = Clock::now();
      grpc::Status st = stub->ResolveSecrets(&ctx, req, &resp);
      ops->resolve.push_back(Ms(Clock::now() - t0));
      if (!st.ok() || resp.values_size() != kRefs) {
        fail(StrCat("resolve: ", st.error_message()));
        continue;
      }
      for (const auto& v : resp.values()) {
        SealContext sc{c.name, resp.secrets_epoch(), v.ref(), resp.call_id()};
        if (!key->Open(resp.server_key(), sc, SealedBox{v.nonce(), v.ciphertext()}).ok()) {
          fail("unseal");
        }
      }
    }
    {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
      v1::ReportResultRequest req;
      req.set_run_id(StrCat(c.name, "-", r));
      req.set_bundle_digest(digest);
      req.set_secrets_epoch(epoch);
      req.set_outcome("ok");
      auto* res = req.add_results();
      res->set_name("app");
      res->set_type("file");
      res->set_status("ok");
      res->set_action("none");
      res->set_message("unchanged");
      v1::ReportResultResponse resp;
      auto t0 = Clock::now();
      grpc::Status st = stub->ReportResult(&ctx, req, &resp);
      ops->report.push_back(Ms(Clock::now() - t0));
      if (!st.ok()) fail(StrCat("report: ", st.error_message()));
    }
  }
}

// The vigosrv binary beside this bench, serving `root` on a free port;
// stdout (the "listening on" line) and stderr go to files in the root's parent.
struct Served {
  std::unique_ptr<sandbox::ChildProcess> child;
  std::string target;
  fs::path err_file;
};

Served SpawnServer(const Root& root) {
  fs::path self = fs::read_symlink("/proc/self/exe");
  fs::path vigosrv = self.parent_path().parent_path() / "bin" / "vigosrv";
  fs::path out_file = root.dir.parent_path() / "vigosrv.out";
  Served s;
  s.err_file = root.dir.parent_path() / "vigosrv.err";
  sandbox::UniqueFd out(::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  sandbox::UniqueFd err(::open(s.err_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  sandbox::SpawnOptions so;
  so.argv = {vigosrv.string(), "--root", root.dir.string(), "--grpc-listen", "127.0.0.1:0"};
  so.env = {"PATH=/usr/bin:/bin"};
  so.fd_map = {{1, out.get()}, {2, err.get()}};
  auto child = sandbox::ChildProcess::Spawn(so);
  if (!child.ok()) Die(StrCat("spawn ", vigosrv.string()));
  s.child = std::make_unique<sandbox::ChildProcess>(std::move(*child));
  for (int i = 0; i < 1200 && s.target.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::string text = ReadAll(out_file);
    size_t at = text.find("listening on ");
    size_t end = text.find('\n', at == std::string::npos ? 0 : at);
    if (at != std::string::npos && end != std::string::npos)
      s.target = text.substr(at + 13, end - at - 13);
  }
  if (s.target.empty()) Die("vigosrv did not start: " + ReadAll(s.err_file));
  return s;
}

// #13.8: RSS of vigosrv serving a stack of `resources` file resources, then
// after a SIGHUP reload to the small stack (memory must be given back).
void ReloadRssRun(int resources) {
  Root root = MakeRoot();
  std::string big = "configcrate: big\nresources:\n";
  for (int i = 0; i < resources; ++i) {
    StrAppend(&big, "  - name: big-", i, "\n    type: file\n    target_path: /srv/big/f", i,
              "\n    mode: \"0644\"\n    content: \"line of content for file number ", i, "\"\n");
  }
  std::ofstream(root.dir / "stacks" / "configcrates" / "big.vgo") << big;
  std::ofstream(root.dir / "stacks" / "roles.vgo")
      << "roles:\n  app:\n    configcrates: [app, big]\n";
  const double stack_mb = static_cast<double>(big.size()) / (1024.0 * 1024.0);
  Served s = SpawnServer(root);
  const int64_t rss_big = ProcKb(s.child->pid(), "VmRSS:");
  fs::remove(root.dir / "stacks" / "configcrates" / "big.vgo");
  std::ofstream(root.dir / "stacks" / "roles.vgo") << "roles:\n  app:\n    configcrates: [app]\n";
  ::kill(s.child->pid(), SIGHUP);
  bool reloaded = false;
  for (int i = 0; i < 600 && !reloaded; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    reloaded = ReadAll(s.err_file).find("reloaded") != std::string::npos;
  }
  if (!reloaded) Die("vigosrv did not reload: " + ReadAll(s.err_file));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  const int64_t rss_small = ProcKb(s.child->pid(), "VmRSS:");
  const int64_t hwm = ProcKb(s.child->pid(), "VmHWM:");
  s.child->Kill(SIGTERM);
  (void)s.child->WaitFor(std::chrono::seconds(10));
  std::printf("| %d | %.1f | %.0f | %.0f | %.0f | %.2f |\n", resources, stack_mb, rss_big / 1024.0,
              hwm / 1024.0, rss_small / 1024.0,
              rss_big > 0 ? static_cast<double>(rss_small) / static_cast<double>(rss_big) : 0.0);
  std::error_code ec;
  fs::remove_all(root.dir.parent_path(), ec);
}

void LoadRun(int n, int rounds) {
  Root root = MakeRoot();
  std::vector<Creds> envoys = IssueEnvoys(root, n);
  Served served = SpawnServer(root);
  const std::string& target = served.target;
  auto& child = served.child;
  const int64_t rss_idle = ProcKb(child->pid(), "VmRSS:");

  std::vector<Ops> ops(static_cast<size_t>(n));
  std::vector<std::thread> threads;
  auto t0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    threads.emplace_back(EnvoyLoop, target, envoys[static_cast<size_t>(i)], rounds,
                         &ops[static_cast<size_t>(i)]);
  }
  for (auto& t : threads) t.join();
  const double wall = Ms(Clock::now() - t0);
  Ops all;
  for (auto& o : ops) {
    all.checkin.insert(all.checkin.end(), o.checkin.begin(), o.checkin.end());
    all.resolve.insert(all.resolve.end(), o.resolve.begin(), o.resolve.end());
    all.report.insert(all.report.end(), o.report.begin(), o.report.end());
    all.errors += o.errors;
    if (all.first_error.empty()) all.first_error = o.first_error;
  }
  const int64_t rss = ProcKb(child->pid(), "VmRSS:");
  const int64_t hwm = ProcKb(child->pid(), "VmHWM:");
  child->Kill(SIGTERM);
  (void)child->WaitFor(std::chrono::seconds(10));
  const size_t calls = all.checkin.size() + all.resolve.size() + all.report.size();
  std::printf(
      "| %d | %d | %zu | %d | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.0f | %.1f / %.1f / %.1f |\n",
      n, rounds, calls, all.errors, Pct(all.checkin, 0.5), Pct(all.checkin, 0.99),
      Pct(all.resolve, 0.5), Pct(all.resolve, 0.99), Pct(all.report, 0.5),
      Pct(all.report, 0.99), static_cast<double>(calls) / (wall / 1000.0),
      static_cast<double>(rss_idle) / 1024.0, static_cast<double>(rss) / 1024.0,
      static_cast<double>(hwm) / 1024.0);
  if (all.errors) std::printf("  first error: %s\n", all.first_error.c_str());
  std::fflush(stdout);
  std::error_code ec;
  fs::remove_all(root.dir.parent_path(), ec);
}

// The baseline: same TLS, same request and response sizes, no work.
class BareService final : public v1::VigoAgent::Service {
 public:
  explicit BareService(v1::ResolveSecretsResponse canned) : canned_(std::move(canned)) {}
  grpc::Status ResolveSecrets(grpc::ServerContext*, const v1::ResolveSecretsRequest*,
                              v1::ResolveSecretsResponse* resp) override {
    *resp = canned_;
    return grpc::Status::OK;
  }

 private:
  v1::ResolveSecretsResponse canned_;
};

void RatioRun(int iters, const std::string& synchronous) {
  Root root = MakeRoot();
  root.cfg.database_synchronous = synchronous;
  std::vector<Creds> envoys = IssueEnvoys(root, 1);
  server::service::ServerOptions so;
  so.enable_watcher = false;
  so.enable_admin = false;
  auto srv = server::service::VigoServer::Create(root.cfg, nullptr, so);
  if (!srv.ok()) Die(std::string(srv.status().message()));
  Check((*srv)->Start("127.0.0.1:0"), "start");
  auto stub = v1::VigoAgent::NewStub(NewChannel((*srv)->listen_address(), envoys[0]));

  grpc::ClientContext cctx;
  v1::CheckInRequest creq;
  v1::CheckInResponse cresp;
  if (!stub->CheckIn(&cctx, creq, &cresp).ok()) Die("checkin");
  auto key = RecipientKey::Generate();
  v1::ResolveSecretsRequest req;
  for (const auto& r : cresp.bundle().secret_refs()) req.add_refs(r);
  req.set_secrets_epoch(cresp.bundle().secrets_epoch());
  req.set_recipient_key(key->public_key());
  v1::ResolveSecretsResponse canned;
  {
    grpc::ClientContext ctx;
    if (!stub->ResolveSecrets(&ctx, req, &canned).ok()) Die("resolve");
  }

  BareService bare(canned);
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = ReadAll(root.cfg.TlsDir() / "ca.pem");
  ssl.pem_key_cert_pairs.push_back(
      {ReadAll(root.cfg.TlsDir() / "server.key"), ReadAll(root.cfg.TlsDir() / "server.pem")});
  int port = 0;
  grpc::ServerBuilder b;
  b.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(ssl), &port);
  b.RegisterService(&bare);
  auto bare_server = b.BuildAndStart();
  auto bare_stub = v1::VigoAgent::NewStub(NewChannel(StrCat("127.0.0.1:", port), envoys[0]));

  std::vector<double> real_ms, bare_ms;
  for (int i = 0; i < iters + 20; ++i) {
    for (int which = 0; which < 2; ++which) {
      grpc::ClientContext ctx;
      v1::ResolveSecretsResponse resp;
      auto t0 = Clock::now();
      grpc::Status st = (which == 0 ? stub : bare_stub)->ResolveSecrets(&ctx, req, &resp);
      double ms = Ms(Clock::now() - t0);
      if (!st.ok()) Die(StrCat("ratio resolve: ", st.error_message()));
      if (i >= 20) (which == 0 ? real_ms : bare_ms).push_back(ms);  // 20 warm-up rounds
    }
  }
  const double rp50 = Pct(real_ms, 0.5), bp50 = Pct(bare_ms, 0.5);
  std::printf("| ResolveSecrets, %d refs (%zu B request, %zu B response), database.synchronous=%s | %.3f | %.3f | %.3f | %.3f | %.2fx |\n",
              kRefs, req.ByteSizeLong(), canned.ByteSizeLong(), synchronous.c_str(), rp50, Pct(real_ms, 0.99), bp50,
              Pct(bare_ms, 0.99), rp50 / bp50);
  std::fflush(stdout);
  bare_server->Shutdown();
  (*srv)->Shutdown();
  std::error_code ec;
  fs::remove_all(root.dir.parent_path(), ec);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes = {100, 1000};
  int rounds = 3;
  int ratio_iters = 300;
  std::vector<int> reload_sizes = {100000};
  constexpr char kUsage[] =
      "usage: server_load_bench [--envoys N[,N...]] [--rounds N] [--ratio-iters N]\n"
      "                         [--reload-resources N[,N...]]\n"
      "  Starts a real vigosrv in a temp root and measures ResolveSecrets against a bare\n"
      "  mTLS call, then check-in load per fleet size; prints Markdown for docs/BENCHMARKS.md.\n"
      "  --envoys       fleet sizes (default 100,1000)\n"
      "  --rounds       rounds per fleet size (default 3)\n"
      "  --ratio-iters  calls per ratio measurement (default 300)\n"
      "  --reload-resources  stack sizes for the reload-RSS run (default 100000)\n";
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--help" || std::string(argv[i]) == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  if ((argc - 1) % 2 != 0) {
    std::fprintf(stderr, "server_load_bench: flag %s needs a value\n%s", argv[argc - 1], kUsage);
    return 2;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string f = argv[i], v = argv[i + 1];
    if (f == "--envoys") {
      sizes.clear();
      std::stringstream ss(v);
      std::string item;
      while (std::getline(ss, item, ',')) sizes.push_back(std::atoi(item.c_str()));
    } else if (f == "--rounds") {
      rounds = std::atoi(v.c_str());
    } else if (f == "--ratio-iters") {
      ratio_iters = std::atoi(v.c_str());
    } else if (f == "--reload-resources") {
      reload_sizes.clear();
      std::stringstream ss(v);
      std::string item;
      while (std::getline(ss, item, ',')) reload_sizes.push_back(std::atoi(item.c_str()));
    } else {
      Die(StrCat("unknown flag ", f));
    }
  }
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  rl.rlim_cur = rl.rlim_max;
  setrlimit(RLIMIT_NOFILE, &rl);
  vigo::SetLogLevel(vigo::LogLevel::kWarn);

  std::printf("### ResolveSecrets vs a bare mTLS unary call (same run, same bytes; ms)\n\n");
  std::printf("| call | vigosrv p50 | vigosrv p99 | bare p50 | bare p99 | p50 ratio |\n");
  std::printf("| --- | --- | --- | --- | --- | --- |\n");
  RatioRun(ratio_iters, "full");
  RatioRun(ratio_iters, "normal");
  std::printf("\n### Concurrent envoys against the vigosrv binary (latency ms p50 / p99)\n\n");
  std::printf("| envoys | rounds | calls | errors | CheckIn | ResolveSecrets (10 refs) | "
              "ReportResult | calls/s | server RSS MiB idle / after / peak |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  for (int n : sizes) LoadRun(n, rounds);
  std::printf("\n### Server memory after a reload from a large to a small stack (MiB)\n\n");
  std::printf(
      "| resources | stack MiB | RSS serving it | peak | RSS after reload to small | "
      "after / before |\n");
  std::printf("| --- | --- | --- | --- | --- | --- |\n");
  for (int n : reload_sizes) ReloadRssRun(n);
  return 0;
}
