// vigosrv: `init` creates a data root; without a command it serves.
#include "server/server_main.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "common/args.h"
#include "common/exit_codes.h"
#include "common/log.h"
#include "common/strings.h"
#include "sandbox/lockdown.h"
#include "server/init.h"
#include "server/server_config.h"
#include "server/service/vigo_server.h"

namespace vigo::server {
namespace {

// Pinned for the agent port: TLS 1.3 suites, and for TLS 1.2 only ECDHE
// (forward secret) with AEAD ciphers. This is gRPC 1.51's own default minus
// the RSA suites (our keys are ECDSA); gRPC 1.51's C++ API cannot raise the
// minimum protocol version to 1.3 (see docs/operator/server.md).
constexpr const char* kCipherSuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:"
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384";

int Fail(const std::string& line) {
  std::fprintf(stderr, "vigosrv: %s\n", line.c_str());
  return kExitError;
}

int RunInit(const ParsedArgs& a) {
  std::filesystem::path root = ResolveRoot(a.Get("root").value_or(""));
  std::string hostname = a.Get("hostname").value_or("localhost");
  InitReport report;
  absl::Status st = InitRoot(root, hostname, &report);
  if (!st.ok()) return Fail(StrCat("init ", root.string(), ": ", std::string(st.message())));
  for (const std::string& p : report.created) std::printf("created %s\n", p.c_str());
  for (const std::string& p : report.kept) std::printf("kept    %s\n", p.c_str());
  std::printf("vigosrv: data root ready at %s\n", root.string().c_str());
  return kExitOk;
}

// A connection costs a descriptor: the soft limit (often 1024) goes to the
// hard limit so a flood meets the connection gate's caps, not EMFILE.
void RaiseNofileLimit() {
  struct rlimit r {};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0 || r.rlim_cur >= r.rlim_max) return;
  const rlim_t was = r.rlim_cur;
  r.rlim_cur = r.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &r) != 0) return;
  Log(LogLevel::kInfo, "raised the open-files limit",
      {{"soft_was", static_cast<uint64_t>(was)}, {"soft", static_cast<uint64_t>(r.rlim_cur)}});
}

int Serve(const ParsedArgs& a) {
  // Values, the master key and TLS keys pass through ordinary heap (OpenSSL,
  // libcurl): no core file, no same-uid ptrace.
  if (absl::Status h = sandbox::HardenUnsandboxedProcess(); !h.ok()) {
    return Fail(StrCat("cannot harden the process: ", std::string(h.message())));
  }
  ::setenv("GRPC_SSL_CIPHER_SUITES", kCipherSuites, 1);
  std::filesystem::path root = ResolveRoot(a.Get("root").value_or(""));
  auto cfg = LoadServerConfig(root);
  if (!cfg.ok()) return Fail(std::string(cfg.status().message()));
  auto level = ParseLogLevel(cfg->log_level);
  if (!level.ok()) {
    return Fail(StrCat((root / "server.yaml").string(), ": 'log.level': ",
                       std::string(level.status().message())));
  }
  SetLogLevel(*level);
  SetLogJson(cfg->log_json);

  // Signals are taken by one thread with sigwait; block them everywhere
  // before gRPC starts its threads.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);

  RaiseNofileLimit();

  service::ServerOptions options;
  // The liveness probe gave up on the agent port: shut down as SIGTERM would
  // and exit 1, so the service manager restarts us. If the orderly shutdown
  // itself hangs (a wedged gRPC), exit anyway after 30 s.
  options.on_agent_port_dead = [] {
    ::kill(::getpid(), SIGTERM);
    std::thread([] {
      std::this_thread::sleep_for(std::chrono::seconds(30));
      std::fprintf(stderr, "vigosrv: shutdown after a dead agent port did not finish; exiting\n");
      std::_Exit(kExitError);
    }).detach();
  };
  if (cfg->secrets_backend == "isopass") {
    // isopass has no file watch: the version poll (secrets.poll_interval) is
    // how a rotation is seen.
    options.poll_interval =
        std::chrono::duration_cast<std::chrono::milliseconds>(cfg->isopass_poll_interval);
  }
  // A bad --grpc-listen is a usage problem: say so before anything loads.
  if (auto flag = a.Get("grpc-listen"); flag.has_value()) {
    std::string host;
    int port = 0;
    absl::Status parsed =
        ParseListenAddress(*flag, "--grpc-listen", /*allow_port_zero=*/true, &host, &port);
    if (!parsed.ok()) return Fail(std::string(parsed.message()));
  }
  auto server = service::VigoServer::Create(*cfg, nullptr, options);
  if (!server.ok()) return Fail(std::string(server.status().message()));
  absl::Status st = (*server)->Start(a.Get("grpc-listen").value_or(""));
  if (!st.ok()) return Fail(std::string(st.message()));
  std::printf("vigosrv: listening on %s\n", (*server)->listen_address().c_str());
  std::fflush(stdout);

  service::VigoServer* srv = server->get();
  std::atomic<bool> by_signal{false};
  std::thread signals([srv, set, &by_signal] {
    while (true) {
      int sig = 0;
      if (sigwait(&set, &sig) != 0) continue;
      if (sig == SIGHUP) {
        Log(LogLevel::kInfo, "SIGHUP: reloading");
        (void)srv->Reload("SIGHUP");
        continue;
      }
      Log(LogLevel::kInfo, "signal: shutting down", {{"signal", sig}});
      by_signal = true;
      srv->Shutdown();
      return;
    }
  });
  srv->Wait();
  // Shutdown may have come from elsewhere; wake the signal thread so it exits.
  if (!by_signal) pthread_kill(signals.native_handle(), SIGTERM);
  signals.join();
  if (srv->agent_port_dead()) {
    std::fprintf(stderr, "vigosrv: the agent port stopped completing TLS handshakes; exiting 1\n");
    return kExitError;
  }
  return kExitOk;
}

}  // namespace

int ServerMain(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  ArgSpec spec{"vigosrv [init] --root DIR [--hostname NAME] [--grpc-listen HOST:PORT]",
               "The Vigo server. 'vigosrv init' creates a data root; without a command it "
               "serves (TLS on --grpc-listen or server.grpc_listen; prints 'vigosrv: listening "
               "on HOST:PORT'; SIGHUP reloads).",
               {{"root", true, "server data root (default $VIGO_ROOT or /srv/vigo)"},
                {"hostname", true, "init: the server certificate's hostname (default localhost)"},
                {"grpc-listen", true, "override server.grpc_listen (port 0 picks a free port)"},
                {"version", false, "print the version"}},
               0, 1};
  auto parsed = ParseArgs(spec, args);
  if (!parsed.ok()) {
    std::fprintf(stderr, "vigosrv: %s\n", std::string(parsed.status().message()).c_str());
    return kExitUsage;
  }
  if (parsed->help()) {
    std::fputs(HelpText(spec).c_str(), stdout);
    return kExitOk;
  }
  if (parsed->Has("version")) {
    std::printf("vigosrv %s\n", kVigoVersion);
    return kExitOk;
  }
  if (!parsed->positional().empty()) {
    if (parsed->positional()[0] != "init") {
      std::fprintf(stderr, "vigosrv: unknown command '%s' (see vigosrv --help)\n",
                   parsed->positional()[0].c_str());
      return kExitUsage;
    }
    if (parsed->Has("grpc-listen")) {
      std::fprintf(stderr, "vigosrv: --grpc-listen is not an init flag\n");
      return kExitUsage;
    }
    return RunInit(*parsed);
  }
  if (parsed->Has("hostname")) {
    std::fprintf(stderr, "vigosrv: --hostname is only for 'vigosrv init'\n");
    return kExitUsage;
  }
  return Serve(*parsed);
}

}  // namespace vigo::server
