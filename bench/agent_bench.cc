// Agent benchmarks. Prints figures and ratios against baselines measured in
// the same run (docs/BENCHMARKS.md "## Agent").
//
//  1. Worker → broker cache-hit resolve over the socketpair (the real codec,
//     phase table and ServeRun) vs a raw SOCK_SEQPACKET ping-pong of the same
//     bytes (path out, value back). Target: p50 ratio ≤ 2.
//  2. One apply of N secret-bearing files (default 1000), each with its own
//     secret: cold (empty apply root, empty cache, fresh agent) and converged
//     (second run), real `vigo` + `vigo-worker` binaries against an in-process
//     VigoServer on 127.0.0.1 with a local vault; durable writes (fsync).
//     Wall time and peak RSS (VmHWM) of broker and worker, and where the
//     wall time went (from the agent's info-level log lines): start-up +
//     check-in + ResolveSecrets/unsealing | the worker's apply | the report
//     (ReportResult round trip, server side included) + exit.
//
// usage: agent_bench [--files N] [--iterations N]
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "agent-broker/secret_cache.h"
#include "agent-broker/worker_link.h"
#include "common/ipc/agent_ipc.h"
#include "common/strings.h"
#include "sandbox/secret_buffer.h"
#include "server/init.h"
#include "server/server_config.h"
#include "server/service/store.h"
#include "server/service/vigo_server.h"
#include "server/tls/pki.h"
#include "server/vault/local_backend.h"

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

using vigo::StrAppend;
using vigo::StrCat;

double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
}

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// ---------------------------------------------------------------- 1. IPC

constexpr char kRef[] = "bench/app/db_password";
constexpr size_t kValueLen = 32;

std::vector<double> ProtocolResolve(int iterations) {
  auto sp = vigo::ipc::CreateSocketPair();
  vigo::ipc::Channel broker(std::move(sp->broker));
  vigo::ipc::Channel worker(std::move(sp->worker));
  vigo::v1::PolicyBundle bundle;
  bundle.set_secrets_epoch(1);
  bundle.add_secret_refs(kRef);
  vigo::broker::SecretCache cache;
  cache.Reset(1);
  std::string value(kValueLen, 'v');
  cache.Put(1, kRef, *vigo::sandbox::SecretBuffer::CopyFrom(Bytes(value)));
  vigo::ipc::PhaseTable bphases;
  (void)bphases.Observe(vigo::ipc::Direction::kToBroker, vigo::ipc::MsgType::kHello);
  std::thread server([&] { (void)vigo::broker::ServeRun(broker, bphases, bundle, cache); });

  vigo::ipc::PhaseTable wphases;
  (void)wphases.Observe(vigo::ipc::Direction::kToBroker, vigo::ipc::MsgType::kHello);
  auto b = worker.Receive(vigo::ipc::Direction::kToWorker);
  (void)wphases.Observe(vigo::ipc::Direction::kToWorker, b->type);
  std::vector<double> ns;
  ns.reserve(static_cast<size_t>(iterations));
  const std::string request = *vigo::ipc::EncodeResolveBatch({kRef});
  for (int i = 0; i < iterations; ++i) {
    auto t0 = Clock::now();
    (void)wphases.Observe(vigo::ipc::Direction::kToBroker, vigo::ipc::MsgType::kResolveBatch);
    (void)worker.Send(vigo::ipc::MsgType::kResolveBatch, std::string_view(request));
    auto v = worker.Receive(vigo::ipc::Direction::kToWorker);
    (void)wphases.Observe(vigo::ipc::Direction::kToWorker, v->type);
    ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
    if (!v.ok()) std::abort();
    auto values = vigo::ipc::DecodeValues(v->value, 1);
    if (!values.ok() || values->size() != 1 || (*values)[0].size() != kValueLen) std::abort();
  }
  vigo::v1::ReportResultRequest r;
  r.set_outcome("ok");
  (void)wphases.Observe(vigo::ipc::Direction::kToBroker, vigo::ipc::MsgType::kReport);
  (void)worker.Send(vigo::ipc::MsgType::kReport, r.SerializeAsString());
  (void)worker.Receive(vigo::ipc::Direction::kToWorker);
  server.join();
  return ns;
}

std::vector<double> RawPingPong(int iterations) {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  const size_t req_len = vigo::ipc::kHeaderSize + std::strlen(kRef);
  const size_t resp_len = vigo::ipc::kHeaderSize + kValueLen;
  std::thread server([&] {
    std::vector<uint8_t> in(4096), out(resp_len, 'v');
    for (int i = 0; i < iterations; ++i) {
      if (::recv(fds[0], in.data(), in.size(), 0) <= 0) return;
      if (::send(fds[0], out.data(), out.size(), 0) < 0) return;
    }
  });
  std::vector<uint8_t> req(req_len, 'r'), resp(4096);
  std::vector<double> ns;
  for (int i = 0; i < iterations; ++i) {
    auto t0 = Clock::now();
    ::send(fds[1], req.data(), req.size(), 0);
    ::recv(fds[1], resp.data(), resp.size(), 0);
    ns.push_back(std::chrono::duration<double, std::nano>(Clock::now() - t0).count());
  }
  server.join();
  ::close(fds[0]);
  ::close(fds[1]);
  return ns;
}

// ---------------------------------------------------------------- 2. apply

struct Proc {
  pid_t pid = -1;
  uint64_t broker_hwm_kb = 0;
  uint64_t worker_hwm_kb = 0;
};

uint64_t HwmKb(pid_t pid) {
  std::ifstream in(StrCat("/proc/", static_cast<int64_t>(pid), "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6));
  }
  return 0;
}

pid_t ChildOf(pid_t parent) {
  std::ifstream in(StrCat("/proc/", static_cast<int64_t>(parent), "/task/",
                          static_cast<int64_t>(parent), "/children"));
  pid_t p = -1;
  in >> p;
  return p;
}

struct RunFigures {
  double seconds = 0;
  int exit_code = -1;
  uint64_t broker_kb = 0, worker_kb = 0;
  double start_unix_s = 0;  // wall clock at fork, to place the log lines
};

// Seconds since the epoch of a log line "2026-11-28T13:48:45.322Z <level> <msg> ..."
// whose message starts with `msg`; -1 when there is none.
double LogTime(const fs::path& log, std::string_view msg) {
  std::ifstream in(log);
  std::string line;
  while (std::getline(in, line)) {
    size_t sp = line.find(' ');
    if (sp == std::string::npos || line.size() < 24 || line[23] != 'Z') continue;
    size_t sp2 = line.find(' ', sp + 1);
    if (sp2 == std::string::npos || line.compare(sp2 + 1, msg.size(), msg) != 0) continue;
    struct tm tm = {};
    if (::strptime(line.substr(0, 19).c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) continue;
    return static_cast<double>(::timegm(&tm)) + std::atoi(line.substr(20, 3).c_str()) / 1000.0;
  }
  return -1;
}

// The integer value of `key=` on the first log line whose message starts with
// `msg`; -1 when there is none.
int64_t LogField(const fs::path& log, std::string_view msg, std::string_view key) {
  std::ifstream in(log);
  std::string line;
  const std::string needle = StrCat(" ", key, "=");
  while (std::getline(in, line)) {
    size_t at = line.find(StrCat(" ", msg));
    if (at == std::string::npos || at > 40) continue;
    size_t k = line.find(needle, at);
    if (k == std::string::npos) continue;
    return std::atoll(line.c_str() + k + needle.size());
  }
  return -1;
}

// Where the wall time of one `vigo run --once` went, from the info-level
// lines of broker and worker (millisecond resolution): start-up + check-in +
// ResolveSecrets + bundle to the worker | the worker's apply | report
// (ReportResult round trip, server side included) + shutdown.
void PrintBreakdown(const char* label, const RunFigures& f, const fs::path& log) {
  double start = LogTime(log, "apply start"), done = LogTime(log, "apply done");
  if (start < 0 || done < 0) return;
  const int64_t resolve_ms = LogField(log, "values resolved", "ms");
  std::printf("    %s: until apply %.3f s (ResolveSecrets + unsealing %lld ms) | worker apply %.3f s | "
              "report + exit %.3f s\n",
              label, start - f.start_unix_s, static_cast<long long>(resolve_ms), done - start,
              f.start_unix_s + f.seconds - done);
  // The applier's set-up (fork to Landlock-restricted: domain, rules,
  // capabilities) inside the worker apply.
  const int64_t setup_us = LogField(log, "applier", "setup_us");
  if (setup_us >= 0) {
    std::printf("      of which applier set-up (domain, rules, capabilities) %lld us\n",
                static_cast<long long>(setup_us));
  }
}

RunFigures RunAgent(const std::vector<std::string>& argv, const fs::path& log) {
  RunFigures f;
  f.start_unix_s = std::chrono::duration<double>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  auto t0 = Clock::now();
  pid_t pid = ::fork();
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_WRONLY);
    int logfd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ::dup2(devnull, 1);
    ::dup2(logfd, 2);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    char* envp[] = {nullptr};
    ::execve(a[0], a.data(), envp);
    ::_exit(127);
  }
  pid_t worker = -1;
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    f.broker_kb = std::max(f.broker_kb, HwmKb(pid));
    if (worker <= 0) worker = ChildOf(pid);
    if (worker > 0) f.worker_kb = std::max(f.worker_kb, HwmKb(worker));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  f.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  f.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return f;
}

int ApplyBench(int files) {
  namespace srv = vigo::server;
  fs::path tmp = fs::temp_directory_path() / StrCat("vigo-agent-bench-", static_cast<int64_t>(::getpid()));
  fs::remove_all(tmp);
  fs::path root = tmp / "srv";
  if (!srv::InitRoot(root, "localhost", nullptr).ok()) return 1;
  fs::remove_all(root / "stacks");
  fs::create_directories(root / "stacks/configcrates");
  {
    std::ofstream(root / "stacks/envoys.vgo") << "envoys:\n  - match: \"bench-*\"\n    environment: prod\n    roles: [app]\n";
    std::ofstream(root / "stacks/roles.vgo") << "roles:\n  app:\n    configcrates: [files]\n";
    std::ofstream env(root / "stacks/environments.vgo");
    env << "env:\n  prod:\n    vars:\n";
    for (int i = 0; i < files; ++i) env << "      s" << i << ": \"secret:bench/s" << i << "\"\n";
    std::ofstream crate(root / "stacks/configcrates/files.vgo");
    crate << "configcrate: files\nresources:\n";
    for (int i = 0; i < files; ++i) {
      crate << "  - name: f" << i << "\n    type: file\n    target_path: /etc/bench/f" << i
            << ".conf\n    mode: \"0640\"\n    content: \"password = {{ .Vars.s" << i << " }}\\n\"\n";
    }
  }
  auto cfg = srv::LoadServerConfig(root);
  if (!cfg.ok()) {
    std::fprintf(stderr, "config: %s\n", std::string(cfg.status().message()).c_str());
    return 1;
  }
  if (!srv::vault::CreateMasterKey(cfg->SecretsDir()).ok()) return 1;
  {
    auto w = srv::LocalBackend::Open(cfg->SecretsDir());
    if (!w.ok()) return 1;
    for (int i = 0; i < files; ++i) {
      std::string v = StrCat("value-", i, "-0123456789abcdef");
      (void)(*w)->Set(StrCat("bench/s", i), *vigo::sandbox::SecretBuffer::CopyFrom(Bytes(v)));
    }
  }
  auto backend = srv::LocalBackend::Open(cfg->SecretsDir());
  srv::service::ServerOptions so;
  so.enable_watcher = false;
  auto server = srv::service::VigoServer::Create(*cfg, std::move(*backend), so);
  if (!server.ok()) {
    std::fprintf(stderr, "server: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  if (!(*server)->Start("127.0.0.1:0").ok()) return 1;
  fs::path envoy = tmp / "envoy";
  fs::create_directories(envoy);
  srv::tls::CaFiles ca{cfg->TlsDir() / "ca.pem", cfg->TlsDir() / "ca.key"};
  auto info = srv::tls::IssueClientCert(ca, envoy / "cert.pem", envoy / "key.pem", "bench-1",
                                        std::chrono::hours(1));
  if (!info.ok()) return 1;
  fs::copy_file(ca.cert, envoy / "ca.pem");
  (void)(*server)->store().RecordEnvoyCert("bench-1", *info);

  char self[4096];
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
  self[n > 0 ? n : 0] = 0;
  fs::path bin = fs::path(self).parent_path().parent_path() / "bin";
  std::vector<std::string> argv = {
      (bin / "vigo").string(), "run", "--once",
      StrCat("--server=127.0.0.1:", (*server)->port()),
      "--ca-file=" + (envoy / "ca.pem").string(), "--cert-file=" + (envoy / "cert.pem").string(),
      "--key-file=" + (envoy / "key.pem").string(), "--state-dir=" + (tmp / "state").string(),
      "--apply-root=" + (tmp / "apply").string(), "--log-level=info"};
  fs::create_directories(tmp / "apply");
  ::sync();
  RunFigures cold = RunAgent(argv, tmp / "cold.log");
  RunFigures warm = RunAgent(argv, tmp / "warm.log");
  for (const char* l : {"cold.log", "warm.log"}) {
    std::ifstream in(tmp / l);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    // Anything at warn or above (the info lines are for the breakdown).
    std::istringstream lines(text);
    std::string line, shown;
    while (std::getline(lines, line)) {
      if (line.find(" info ") == std::string::npos) StrAppend(&shown, line, "\n");
    }
    if (!shown.empty()) std::printf("--- %s\n%s", l, shown.substr(shown.size() > 2000 ? shown.size() - 2000 : 0).c_str());
  }
  std::printf("apply of %d secret-bearing files (server on loopback, durable writes)\n", files);
  std::printf("  cold:      %.3f s  exit=%d  broker peak RSS %llu KiB  worker peak RSS %llu KiB\n",
              cold.seconds, cold.exit_code, static_cast<unsigned long long>(cold.broker_kb),
              static_cast<unsigned long long>(cold.worker_kb));
  std::printf("  converged: %.3f s  exit=%d  broker peak RSS %llu KiB  worker peak RSS %llu KiB\n",
              warm.seconds, warm.exit_code, static_cast<unsigned long long>(warm.broker_kb),
              static_cast<unsigned long long>(warm.worker_kb));
  size_t written = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(tmp / "apply/etc/bench", ec)) written += e.is_regular_file();
  std::printf("  files present: %zu\n", written);
  PrintBreakdown("cold", cold, tmp / "cold.log");
  PrintBreakdown("converged", warm, tmp / "warm.log");
  // CFEngine's cf-agent converging the same files with the same contents and
  // modes (Debian cfengine3), when installed: the fastest peer.
  if (::access("/usr/bin/cf-agent", X_OK) == 0) {
    fs::path cf = tmp / "cf";
    fs::create_directories(cf / "apply");
    {
      std::ofstream pol(cf / "bench.cf");
      pol << "body common control { bundlesequence => { \"main\" }; }\n"
             "body perms p640 { mode => \"640\"; rxdirs => \"false\"; }\n"
             "bundle agent main {\n files:\n";
      for (int i = 0; i < files; ++i) {
        pol << "  \"" << (cf / "apply/etc/bench").string() << "/f" << i
            << ".conf\" create => \"true\", perms => p640, content => \"password = value-" << i
            << "-0123456789abcdef$(const.n)\";\n";
      }
      pol << "}\n";
    }
    fs::permissions(cf / "bench.cf", fs::perms::owner_read | fs::perms::owner_write);
    std::vector<std::string> cfargv = {"/usr/bin/cf-agent", "-K", "-f", (cf / "bench.cf").string()};
    ::sync();
    RunFigures cf_cold = RunAgent(cfargv, cf / "cold.log");
    RunFigures cf_warm = RunAgent(cfargv, cf / "warm.log");
    std::printf("cf-agent (CFEngine, same %d files, same contents and modes; no fsync)\n", files);
    std::printf("  cold:      %.3f s  exit=%d  peak RSS %llu KiB\n", cf_cold.seconds,
                cf_cold.exit_code, static_cast<unsigned long long>(cf_cold.broker_kb));
    std::printf("  converged: %.3f s  exit=%d  peak RSS %llu KiB\n", cf_warm.seconds,
                cf_warm.exit_code, static_cast<unsigned long long>(cf_warm.broker_kb));
    std::printf("  vigo/cf-agent wall: cold %.2fx, converged %.2fx\n", cold.seconds / cf_cold.seconds,
                warm.seconds / cf_warm.seconds);
  } else {
    std::printf("cf-agent not installed (apt-get install cfengine3): comparison skipped\n");
  }
  (*server)->Shutdown();
  fs::remove_all(tmp);
  return cold.exit_code == 0 && warm.exit_code == 0 && written == static_cast<size_t>(files) ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  int files = 1000;
  int iterations = 20000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--files") files = std::atoi(argv[i + 1]);
    if (std::string(argv[i]) == "--iterations") iterations = std::atoi(argv[i + 1]);
  }
  ::signal(SIGPIPE, SIG_IGN);
  // Warm up both paths, then measure.
  RawPingPong(1000);
  ProtocolResolve(1000);
  std::vector<double> raw = RawPingPong(iterations);
  std::vector<double> proto = ProtocolResolve(iterations);
  double raw50 = Percentile(raw, 0.5), proto50 = Percentile(proto, 0.5);
  std::printf("cache-hit resolve over the socketpair (%d iterations, %zu-byte value)\n", iterations, kValueLen);
  std::printf("  raw ping-pong  p50 %.1f us  p99 %.1f us\n", raw50 / 1000, Percentile(raw, 0.99) / 1000);
  std::printf("  protocol       p50 %.1f us  p99 %.1f us\n", proto50 / 1000, Percentile(proto, 0.99) / 1000);
  std::printf("  ratio p50      %.2fx (target <= 2x)\n", proto50 / raw50);
  std::fflush(stdout);
  return ApplyBench(files);
}
