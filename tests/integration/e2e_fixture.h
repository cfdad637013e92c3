// Header-only fixture for end-to-end tests that drive the real binaries the
// way an operator does: `vigosrv init`, `vigocli secrets ...`, `vigosrv` on
// 127.0.0.1:0, `vigocli envoy issue`, `vigo run --once`.
//
//   E2eFleet fleet;                                   // temp dir, nothing started
//   ASSERT_TRUE(fleet.Init()) << fleet.last_error();  // init root + vault (unlocked)
//   fleet.SetSecret("a/b", "canary");                 // via stdin, never argv
//   fleet.WriteStacks({{"envoys.vgo", "..."}});
//   ASSERT_TRUE(fleet.StartServer()) << fleet.last_error();
//   auto creds = fleet.IssueEnvoy("web-1");
//   RunResult r = fleet.RunAgent("web-1");            // apply root: fleet.ApplyRoot("web-1")
//
// Everything lives under one TempDir, so a test can scan it all for canaries.
// Server and agent log at trace level to files in the temp dir.
#ifndef VIGO_TESTS_INTEGRATION_E2E_FIXTURE_H_
#define VIGO_TESTS_INTEGRATION_E2E_FIXTURE_H_

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_env.h"

namespace vigo::testing {

class E2eFleet {
 public:
  E2eFleet() : root_(dir_.path() / "srv") {}
  ~E2eFleet() { StopServer(); }

  const std::filesystem::path& dir() const { return dir_.path(); }
  const std::filesystem::path& root() const { return root_; }
  const std::string& last_error() const { return last_error_; }
  int port() const { return port_; }
  pid_t server_pid() const { return server_pid_; }
  std::filesystem::path ServerLog() const { return dir_.path() / "server.log"; }
  std::filesystem::path ApplyRoot(const std::string& envoy) const {
    return dir_.path() / "envoys" / envoy / "root";
  }
  std::filesystem::path StateDir(const std::string& envoy) const {
    return dir_.path() / "envoys" / envoy / "state";
  }
  std::filesystem::path CredsDir(const std::string& envoy) const {
    return dir_.path() / "envoys" / envoy / "creds";
  }
  std::filesystem::path AgentLog(const std::string& envoy) const {
    return dir_.path() / "envoys" / envoy / "agent.log";
  }

  // vigosrv init, log level trace, vault init + unlock.
  bool Init() {
    RunResult r = Run({BinPath("vigosrv").string(), "init", "--root", root_.string(),
                       "--hostname", "localhost"});
    if (r.exit_code != 0) return Fail("vigosrv init", r);
    // Most verbose logging for leak hunting.
    std::string yaml = ReadFileOrEmpty(root_ / "server.yaml");
    size_t at = yaml.find("level: info");
    if (at != std::string::npos) yaml.replace(at, 11, "level: trace");
    WriteFileOrDie(root_ / "server.yaml", yaml, 0600);
    WriteFileOrDie(dir_.path() / "passphrase", "correct horse battery staple\n", 0600);
    r = Cli({"secrets", "init", "--passphrase-file", (dir_.path() / "passphrase").string()});
    if (r.exit_code != 0) return Fail("secrets init", r);
    r = Cli({"secrets", "unlock", "--passphrase-file", (dir_.path() / "passphrase").string()});
    if (r.exit_code != 0) return Fail("secrets unlock", r);
    return true;
  }

  RunResult Cli(std::vector<std::string> args, std::string_view stdin_data = {}) {
    std::vector<std::string> argv = {BinPath("vigocli").string(), "--root", root_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return Run(argv, stdin_data);
  }

  bool SetSecret(const std::string& path, const std::string& value) {
    // stdin drops one trailing newline; send value + "\n" so values ending
    // in a newline survive intact.
    RunResult r = Cli({"secrets", "set", path}, value + "\n");
    if (r.exit_code != 0) return Fail("secrets set " + path, r);
    return true;
  }

  void WriteStacks(const std::map<std::string, std::string>& files) {
    std::filesystem::remove_all(root_ / "stacks");
    for (const auto& [rel, text] : files) WriteFileOrDie(root_ / "stacks" / rel, text, 0644);
  }

  // The soft RLIMIT_NOFILE the next StartServer() gives vigosrv (0: inherit).
  void SetServerSoftNofile(rlim_t soft) { server_soft_nofile_ = soft; }

  bool StartServer() {
    StopServer();
    std::filesystem::path out = dir_.path() / "server.out";
    std::filesystem::remove(out);
    server_pid_ = ::fork();
    if (server_pid_ == 0) {
      int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      int e = ::open(ServerLog().c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      ::dup2(o, 1);
      ::dup2(e, 2);
      if (server_soft_nofile_ > 0) {
        struct rlimit lim {};
        ::getrlimit(RLIMIT_NOFILE, &lim);
        lim.rlim_cur = server_soft_nofile_;
        if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) ::_exit(126);
      }
      std::string bin = BinPath("vigosrv").string(), r = root_.string();
      ::execl(bin.c_str(), bin.c_str(), "--root", r.c_str(), "--grpc-listen", "127.0.0.1:0",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    static const std::regex kListen(R"(listening on [0-9.]+:([0-9]+))");
    for (int i = 0; i < 300; ++i) {
      std::smatch m;
      std::string text = ReadFileOrEmpty(out);
      if (std::regex_search(text, m, kListen)) {
        port_ = std::stoi(m[1]);
        return true;
      }
      int status = 0;
      if (::waitpid(server_pid_, &status, WNOHANG) == server_pid_) {
        server_pid_ = -1;
        last_error_ = "vigosrv exited: " + ReadFileOrEmpty(ServerLog());
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    last_error_ = "vigosrv did not report its port";
    return false;
  }

  void StopServer() {
    if (server_pid_ > 0) {
      ::kill(server_pid_, SIGTERM);
      int status = 0;
      for (int i = 0; i < 100; ++i) {
        if (::waitpid(server_pid_, &status, WNOHANG) == server_pid_) {
          server_pid_ = -1;
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      ::kill(server_pid_, SIGKILL);
      ::waitpid(server_pid_, &status, 0);
      server_pid_ = -1;
    }
  }

  bool IssueEnvoy(const std::string& name) {
    // `envoy issue` creates only the last component of --out.
    std::filesystem::create_directories(CredsDir(name).parent_path());
    RunResult r = Cli({"envoy", "issue", name, "--out", CredsDir(name).string()});
    if (r.exit_code != 0) return Fail("envoy issue " + name, r);
    std::filesystem::create_directories(ApplyRoot(name));
    std::filesystem::create_directories(StateDir(name));
    return true;
  }

  std::vector<std::string> AgentFlags(const std::string& name) const {
    return {"--server", "127.0.0.1:" + std::to_string(port_),
            "--ca-file", (CredsDir(name) / "ca.pem").string(),
            "--cert-file", (CredsDir(name) / "cert.pem").string(),
            "--key-file", (CredsDir(name) / "key.pem").string(),
            "--state-dir", StateDir(name).string(),
            "--apply-root", ApplyRoot(name).string(),
            "--log-level", "trace"};
  }

  RunResult RunAgent(const std::string& name, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv = {BinPath("vigo").string(), "run", "--once"};
    for (const auto& f : AgentFlags(name)) argv.push_back(f);
    argv.insert(argv.end(), extra.begin(), extra.end());
    RunResult r = Run(argv);
    // Keep the agent's stderr (its log) for the leak scan.
    std::string prior = ReadFileOrEmpty(AgentLog(name));
    WriteFileOrDie(AgentLog(name), prior + r.err, 0600);
    return r;
  }

  // The hostile client: ResolveSecrets for arbitrary refs with `name`'s cert.
  RunResult Probe(const std::string& name, const std::vector<std::string>& refs,
                  long long epoch = -1) {
    std::vector<std::string> argv = {TestBinPath("resolve_probe").string(),
                                     "--server", "127.0.0.1:" + std::to_string(port_),
                                     "--ca-file", (CredsDir(name) / "ca.pem").string(),
                                     "--cert-file", (CredsDir(name) / "cert.pem").string(),
                                     "--key-file", (CredsDir(name) / "key.pem").string()};
    for (const auto& r : refs) {
      argv.push_back("--ref");
      argv.push_back(r);
    }
    if (epoch >= 0) {
      argv.push_back("--epoch");
      argv.push_back(std::to_string(epoch));
    }
    return Run(argv);
  }

  // Number of audit records with this event name (from `audit list --json`).
  int CountAudit(const std::string& event) {
    RunResult r = Cli({"audit", "list", "--json"});
    int n = 0;
    std::string needle = "\"event\":\"" + event + "\"";
    for (size_t at = r.out.find(needle); at != std::string::npos;
         at = r.out.find(needle, at + 1)) {
      ++n;
    }
    return n;
  }

 private:
  bool Fail(const std::string& what, const RunResult& r) {
    last_error_ = what + " exited " + std::to_string(r.exit_code) + ": " + r.err + r.out;
    return false;
  }

  TempDir dir_;
  std::filesystem::path root_;
  pid_t server_pid_ = -1;
  rlim_t server_soft_nofile_ = 0;
  int port_ = 0;
  std::string last_error_;
};

}  // namespace vigo::testing

#endif  // VIGO_TESTS_INTEGRATION_E2E_FIXTURE_H_
