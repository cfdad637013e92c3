#include "agent-broker/broker_main.h"

#include <fcntl.h>
#include <grpc/grpc.h>
#include <grpc/support/log.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_join.h"
#include "agent-broker/agent.h"
#include "agent-broker/agent_client.h"
#include "agent-broker/broker_lockdown.h"
#include "agent-broker/hidden_paths.h"
#include "agent-broker/state_dir.h"
#include "agent-broker/tls_check.h"
#include "agent-broker/worker_link.h"
#include "common/args.h"
#include "common/exit_codes.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/secret_buffer.h"

namespace vigo::broker {
namespace {

constexpr const char* kDefaultStateDir = "/var/lib/vigo";
// CONTRACT §8: `vigo daemon --interval` minimum 10 s.
constexpr std::chrono::seconds kMinInterval{10};
std::atomic<bool> g_stop{false};

void OnStopSignal(int) { g_stop.store(true); }

absl::StatusOr<std::string> ReadSmallFile(const std::string& path, const char* flag) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    return absl::NotFoundError(StrCat("--", flag, " ", path, ": ", std::strerror(errno)));
  }
  // Also used for the client key: reserve once (no reallocation leaves a
  // stray copy behind) and wipe the stack buffer before returning.
  std::string out;
  struct stat st;
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    out.reserve(std::min<size_t>(static_cast<size_t>(st.st_size), size_t{1} << 20) + 1);
  }
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (1 << 20)) break;
  }
  sandbox::SecureZero(buf, sizeof(buf));
  ::close(fd);
  return out;
}

// gRPC's own log lines ("E1203 ... ssl_transport_security.cc:1420] Handshake
// failed ...") are not for the operator: the agent says what went wrong in its
// own words. They go to our logger at debug level, and gRPC only formats the
// severities that level can show.
void RouteGrpcLog(gpr_log_func_args* args) {
  Log(LogLevel::kDebug, "grpc",
      {{"severity", gpr_log_severity_string(args->severity)},
       {"file", args->file != nullptr ? args->file : ""},
       {"line", args->line},
       {"message", args->message != nullptr ? args->message : ""}});
}

void RouteGrpcLogs() {
  gpr_set_log_function(RouteGrpcLog);
  const LogLevel level = GetLogLevel();
  gpr_set_log_verbosity(level <= LogLevel::kTrace   ? GPR_LOG_SEVERITY_DEBUG
                        : level <= LogLevel::kDebug ? GPR_LOG_SEVERITY_INFO
                                                    : GPR_LOG_SEVERITY_ERROR);
}

ArgSpec Spec() {
  return ArgSpec{
      "vigo run --once|daemon|status [flags]",
      "The Vigo agent (broker): checks in with vigosrv over mTLS, resolves the secrets its\n"
      "bundle needs into locked memory and lets vigo-worker apply the bundle.",
      {{"once", false, "run: one check-in/apply/report cycle, then exit"},
       {"server", true, "HOST:PORT of vigosrv"},
       {"ca-file", true, "CA certificate (PEM) that signed the server certificate"},
       {"cert-file", true, "this envoy's client certificate (PEM)"},
       {"key-file", true, "this envoy's private key (PEM)"},
       {"server-name", true, "TLS name of the server when it differs from HOST"},
       {"state-dir", true, "state directory (default /var/lib/vigo)"},
       {"apply-root", true, "prefix for every target_path, creates and cwd"},
       {"worker-user", true, "user vigo-worker applies as"},
       {"hide", true,
        "PATH the worker and its commands cannot see (repeatable; must exist).\n"
        "                               Always hidden: the key file, the state dir, and\n"
        "                               /srv/vigo and /var/lib/vigo when they exist"},
       {"interval", true, "daemon: seconds between check-ins (default 300, minimum 10)"},
       {"retry-for", true, "seconds to keep retrying an unreachable server (default 60)"},
       {"log-level", true, "trace|debug|info|warn|error (default info)"},
       {"log-json", false, "log JSON lines"},
       {"insecure-skip-lockdown", true,
        "comma-separated lockdown steps to skip on hosts without the feature (reported)"},
       {"insecure-allow-unlocked-memory", false,
        "run even when secret memory cannot be locked (reported in attestation)"},
       {"version", false, "print the version"}},
      0,
      1};
}

int Status(const ParsedArgs& args) {
  StateDir state(args.Get("state-dir").value_or(kDefaultStateDir));
  auto bundle = state.LoadBundle();
  auto last = state.LoadLastRunJson();
  auto att = state.LoadAttestationJson();
  if (!bundle.ok() && !last.ok()) {
    std::fprintf(stderr, "vigo: no agent state in %s\n", state.path().c_str());
    return kExitNotFound;
  }
  std::printf("state dir: %s\n", state.path().c_str());
  if (bundle.ok()) {
    std::printf("bundle: envoy=%s digest=%s secrets_epoch=%llu policy_version=%llu\n",
                bundle->envoy_name().c_str(), bundle->digest().c_str(),
                static_cast<unsigned long long>(bundle->secrets_epoch()),
                static_cast<unsigned long long>(bundle->policy_version()));
    for (const auto& r : bundle->resources()) {
      std::string where = r.type() == "exec" ? (r.command().empty() ? "" : r.command(0)) : r.target_path();
      std::printf("  resource %s (%s) %s\n", r.name().c_str(), r.type().c_str(), where.c_str());
    }
    for (const auto& ref : bundle->secret_refs()) std::printf("  secret %s\n", ref.c_str());
    std::printf("bundle (markers only): %s\n", ToJson(*bundle).c_str());
  } else {
    std::printf("bundle: none\n");
  }
  std::printf("last run: %s", last.ok() ? last->c_str() : "none\n");
  std::printf("attestation:\n%s", att.ok() ? att->c_str() : "none\n");
  return kExitOk;
}

// The "Threads:" count of /proc/self/status (a read-only open, allowed after
// lockdown), or -1.
int64_t ThreadCount() {
  int fd = ::open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof(buf) - 1);
  ::close(fd);
  if (n <= 0) return -1;
  buf[n] = '\0';
  const char* at = std::strstr(buf, "\nThreads:");
  return at == nullptr ? -1 : std::strtoll(at + 9, nullptr, 10);
}

// The gRPC part of a run; every gRPC object it creates is gone when it returns.
int Serve(const AgentOptions& ao, ClientOptions co, WorkerLink worker, const StateDir& state,
          const v1::AttestationReport& broker_att, bool daemon) {
  auto client = AgentClient::Create(std::move(co));
  if (!client.ok()) {
    Log(LogLevel::kError, "cannot create the gRPC client", {{"error", client.status()}});
    return kExitError;
  }
  Agent agent(ao, std::move(*client), std::move(worker), state, broker_att);
  if (daemon) {
    struct sigaction sa = {};
    sa.sa_handler = OnStopSignal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    int rc = agent.Daemon(g_stop);
    agent.WipeCache();
    return rc;
  }
  auto outcome = agent.RunOnce();
  agent.WipeCache();
  if (!outcome.ok()) {
    return ExitCodeFor(outcome.status()) == kExitOk ? kExitError : ExitCodeFor(outcome.status());
  }
  return *outcome == "failed" ? kExitError : kExitOk;
}

int Run(const ParsedArgs& args, bool daemon) {
  for (const char* f : {"server", "ca-file", "cert-file", "key-file"}) {
    if (!args.Has(f)) {
      std::fprintf(stderr, "vigo: --%s is required\n", f);
      return kExitUsage;
    }
  }
  AgentOptions ao;
  for (auto [flag, target] : {std::pair{"interval", &ao.interval}, std::pair{"retry-for", &ao.retry_for}}) {
    if (auto v = args.Get(flag)) {
      char* end = nullptr;
      long n = std::strtol(v->c_str(), &end, 10);
      if (v->empty() || *end != '\0' || n < 0 || n > 86400 * 7) {
        std::fprintf(stderr, "vigo: --%s: '%s' is not a number of seconds\n", flag, v->c_str());
        return kExitUsage;
      }
      *target = std::chrono::seconds(n);
    }
  }
  // A daemon that checks in many times a second is a flood, not a schedule
  // (issue 13.4: `--interval 0` made ~120 runs/s): below the minimum is a
  // usage error, never silently raised.
  if (args.Has("interval") && ao.interval < kMinInterval) {
    std::fprintf(stderr, "vigo: --interval: must be at least %lld seconds\n",
                 static_cast<long long>(kMinInterval.count()));
    return kExitUsage;
  }
  // The worker's covers (--hide, the defaults): a bad path is a usage error
  // before anything is created or started. Computed again below once the
  // state dir exists (its canonical path).
  HiddenPathsRequest hide_request;
  hide_request.key_file = *args.Get("key-file");
  hide_request.state_dir = args.Get("state-dir").value_or(kDefaultStateDir);
  hide_request.hide = args.GetAll("hide");
  hide_request.apply_root = args.Get("apply-root").value_or("");
  if (auto hidden = ComputeHiddenPaths(hide_request, ResolveOnHost); !hidden.ok()) {
    std::fprintf(stderr, "vigo: %s\n", std::string(hidden.status().message()).c_str());
    return kExitUsage;
  }
  if (daemon && !args.Has("retry-for")) ao.retry_for = std::max(ao.interval, std::chrono::seconds(60));

  const bool insecure_mem = args.Has("insecure-allow-unlocked-memory");
  sandbox::ArenaOptions arena;
  arena.insecure_allow_unlocked = insecure_mem;
  if (absl::Status s = sandbox::ConfigureArena(arena); !s.ok()) {
    Log(LogLevel::kError, "arena", {{"error", s}});
    return kExitError;
  }

  // Certificates are public; the key is only checked for readability until
  // the worker has been started.
  ClientOptions co;
  const TlsFiles tls_files{*args.Get("ca-file"), *args.Get("cert-file"), *args.Get("key-file")};
  co.server = *args.Get("server");
  co.server_name_override = args.Get("server-name").value_or("");
  {
    auto ca = ReadSmallFile(*args.Get("ca-file"), "ca-file");
    auto cert = ReadSmallFile(*args.Get("cert-file"), "cert-file");
    for (const auto* r : {&ca, &cert}) {
      if (!r->ok()) {
        std::fprintf(stderr, "vigo: %s\n", std::string(r->status().message()).c_str());
        return kExitError;
      }
    }
    co.ca_pem = std::move(*ca);
    co.cert_pem = std::move(*cert);
    // Permanent misconfiguration fails now, in one line, not after
    // --retry-for of "server unreachable".
    if (absl::Status s = CheckClientCertificate(tls_files, co.ca_pem, co.cert_pem); !s.ok()) {
      std::fprintf(stderr, "vigo: %s\n", std::string(s.message()).c_str());
      return kExitError;
    }
    if (::access(args.Get("key-file")->c_str(), R_OK) != 0) {
      std::fprintf(stderr, "vigo: --key-file %s: %s\n", args.Get("key-file")->c_str(),
                   std::strerror(errno));
      return kExitError;
    }
  }
  std::set<std::string> skip;
  if (auto k = args.Get("insecure-skip-lockdown")) {
    size_t start = 0;
    while (start <= k->size()) {
      size_t end = k->find(',', start);
      if (end == std::string::npos) end = k->size();
      if (end > start) skip.insert(k->substr(start, end - start));
      start = end + 1;
    }
  }
  StateDir state(args.Get("state-dir").value_or(kDefaultStateDir));
  absl::Status state_ok = state.Ensure();
  if (state_ok.ok()) state_ok = state.Lock();
  if (state_ok.ok()) state_ok = state.OpenForWriting();
  if (!state_ok.ok()) {
    std::fprintf(stderr, "vigo: --state-dir: %s\n", std::string(state_ok.message()).c_str());
    return kExitError;
  }

  // Name resolution for the TLS probe happens now: after lockdown glibc's
  // resolver could need a socket the broker's filter forbids.
  auto probe = std::make_shared<ServerProbe>(ServerProbe::Resolve(co.server, co.server_name_override));

  // 1. The worker starts before any secret (key or value) is in this process.
  WorkerStartOptions wo;
  wo.apply_root = args.Get("apply-root").value_or("");
  wo.worker_user = args.Get("worker-user").value_or("");
  wo.log_level = args.Get("log-level").value_or("");
  wo.insecure_allow_unlocked_memory = insecure_mem;
  wo.insecure_skip_lockdown = args.Get("insecure-skip-lockdown").value_or("");
  // The worker's mount namespace covers the private key, the state dir,
  // every --hide path and the defaults present on this host.
  hide_request.state_dir = state.path();
  auto hidden = ComputeHiddenPaths(hide_request, ResolveOnHost);
  if (!hidden.ok()) {
    std::fprintf(stderr, "vigo: %s\n", std::string(hidden.status().message()).c_str());
    return kExitUsage;
  }
  wo.hidden_paths = std::move(*hidden);
  Log(LogLevel::kDebug, "hidden from the worker", {{"paths", absl::StrJoin(wo.hidden_paths, ":")}});
  auto worker = WorkerLink::Start(wo);
  if (!worker.ok()) {
    Log(LogLevel::kError, "cannot start vigo-worker", {{"error", worker.status()}});
    return kExitError;
  }
  // 2. Lock down the broker.
  BrokerLockdownOptions lo;
  lo.worker_pid = worker->pid();
  lo.keep_fds = state.fds();
  lo.keep_fds.push_back(worker->fd());
  lo.insecure_skip = skip;
  auto broker_att = LockDownBrokerProcess(lo);
  if (!broker_att.ok()) {
    Log(LogLevel::kError, "broker lockdown failed", {{"error", broker_att.status()}});
    return kExitError;
  }
  // 3. The worker locks itself down, then says hello.
  if (absl::Status s = worker->AwaitHello(); !s.ok()) {
    Log(LogLevel::kError, "vigo-worker did not start", {{"error", s}});
    return kExitError;
  }
  if (absl::Status s = state.SaveAttestation({*broker_att, worker->attestation()}); !s.ok()) {
    Log(LogLevel::kWarn, "cannot save attestation", {{"error", s}});
  }
  // 4. Credentials → mTLS channel; the key's bytes are wiped by Create.
  auto key = ReadSmallFile(*args.Get("key-file"), "key-file");
  if (!key.ok()) {
    std::fprintf(stderr, "vigo: %s\n", std::string(key.status().message()).c_str());
    return kExitError;
  }
  co.key_pem = std::move(*key);  // moved, not copied; AgentClient::Create wipes it
  absl::Status tls = CheckKeyMatchesCertificate(tls_files, co.cert_pem, co.key_pem);
  if (tls.ok()) {
    // One handshake of our own: a server certificate that is not for the
    // expected name or not from --ca-file never heals; gRPC would only say
    // "unavailable" until --retry-for runs out. Bounded by 2 s: a server
    // that does not answer is left to the retries.
    tls = probe->Prepare(tls_files, co.ca_pem, co.cert_pem, co.key_pem);
    if (tls.ok()) {
      tls = probe->Handshake(
          std::min<std::chrono::milliseconds>(std::chrono::seconds(2), ao.retry_for));
    }
    if (absl::IsUnavailable(tls)) {
      Log(LogLevel::kDebug, "TLS probe inconclusive; leaving it to the retries", {{"error", tls}});
      tls = absl::OkStatus();
    }
  }
  if (!tls.ok()) {
    sandbox::SecureZero(co.key_pem.data(), co.key_pem.size());
    std::fprintf(stderr, "vigo: %s\n", std::string(tls.message()).c_str());
    return kExitError;
  }
  // gRPC is shut down in order before the process exits: the channel and its
  // stub (inside the agent) first, then the library, waiting for its threads.
  // exit() with live gRPC threads (a handshake that never completed keeps
  // event_engine work pending) crashed the broker now and then (issue 13.7).
  co.probe = probe;  // asked again when the server later seems unreachable
  grpc_init();
  const int rc = Serve(ao, std::move(co), std::move(*worker), state, *broker_att, daemon);
  grpc_shutdown_blocking();
  // Its threads end with it (measured: 1 thread left, this one); should one
  // linger (gRPC 1.51 keeps some global state, such as its default
  // EventEngine, past grpc_shutdown), wait up to 1 s and say how many remain.
  int64_t threads = ThreadCount();
  for (int i = 0; i < 100 && threads > 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    threads = ThreadCount();
  }
  Log(LogLevel::kDebug, "gRPC shut down", {{"threads", threads}});
  return rc;
}

// After gRPC ran, the process ends without running static destructors:
// exit() would tear down globals (absl, gRPC, iostreams) under any thread
// gRPC still keeps, which is how a give-up crashed with SIGSEGV in an
// event_engine thread. Every resource of ours is already released (agent,
// worker, channel, library); stdio is flushed; the kernel frees the rest
// (the locked arena included) at once.
[[noreturn]] void EndProcess(int rc) {
  std::fflush(nullptr);
  ::_exit(rc);
}

}  // namespace

int BrokerMain(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  ArgSpec spec = Spec();
  auto parsed = ParseArgs(spec, args);
  if (!parsed.ok()) {
    std::fprintf(stderr, "vigo: %s\n", std::string(parsed.status().message()).c_str());
    return kExitUsage;
  }
  if (parsed->help()) {
    std::fputs(HelpText(spec).c_str(), stdout);
    return kExitOk;
  }
  if (parsed->Has("version")) {
    std::printf("vigo %s\n", kVigoVersion);
    return kExitOk;
  }
  if (auto lvl = parsed->Get("log-level")) {
    auto level = ParseLogLevel(*lvl);
    if (!level.ok()) {
      std::fprintf(stderr, "vigo: --log-level: %s\n", std::string(level.status().message()).c_str());
      return kExitUsage;
    }
    SetLogLevel(*level);
  }
  if (parsed->Has("log-json")) SetLogJson(true);
  RouteGrpcLogs();  // before anything can start gRPC
  if (parsed->positional().empty()) {
    std::fprintf(stderr, "vigo: missing command; usage: %s\n", spec.usage.c_str());
    return kExitUsage;
  }
  const std::string& cmd = parsed->positional()[0];
  if (cmd == "status") return Status(*parsed);
  if (cmd == "run") {
    if (!parsed->Has("once")) {
      std::fprintf(stderr, "vigo: run needs --once (use `vigo daemon` to keep running)\n");
      return kExitUsage;
    }
    EndProcess(Run(*parsed, /*daemon=*/false));
  }
  if (cmd == "daemon") EndProcess(Run(*parsed, /*daemon=*/true));
  std::fprintf(stderr, "vigo: unknown command '%s'; usage: %s\n", cmd.c_str(), spec.usage.c_str());
  return kExitUsage;
}

}  // namespace vigo::broker
