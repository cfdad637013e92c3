// The server is SIGKILLed under a running `vigo daemon` (real vigosrv, vigo and
// vigo-worker binaries) and comes back on the same root and port:
//  - mid-apply (while an exec step runs, after the values were resolved): the
//    agent neither exits nor hangs, says it is waiting for the server, and
//    once the server is back the run is reported and the target is right;
//  - between CheckIn and ResolveSecrets (the bundle is saved, no value was
//    released yet): the agent retries, checks in again with the restarted
//    server (new epoch) and converges.
// Either way: the secret file has its content and mode, a run is recorded on
// the server, no temp or partial file is left in the apply root, and no value
// is in any log.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "sandbox/child_process.h"
#include "tests/integration/e2e_fixture.h"
#include "tests/integration/server_fixture.h"

namespace vigo::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr char kCanary[] = "KILLCANARY-3e9a51c07d2b48f6";

bool Running(const sandbox::ChildProcess& child) {
  siginfo_t info{};
  // WNOWAIT: leave the child for ChildProcess to reap.
  return ::waitid(P_PID, static_cast<id_t>(child.pid()), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
         info.si_pid == 0;
}

template <typename Pred>
bool WaitUntil(Pred pred, std::chrono::milliseconds timeout,
               std::chrono::milliseconds step = 50ms) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (pred()) return true;
    std::this_thread::sleep_for(step);
  }
  return pred();
}

// Every path under `dir`, relative, directories included.
std::set<std::string> Tree(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    out.insert(fs::relative(it->path(), dir).string());
  }
  return out;
}

class AgentServerKillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fleet_.Init()) << fleet_.last_error();
    ASSERT_TRUE(fleet_.SetSecret("app/db", kCanary)) << fleet_.last_error();
    out_ = fleet_.dir() / "out";
    fs::create_directories(out_);
    const std::string apply_root = fleet_.ApplyRoot("web-1").string();
    // The exec step runs first and takes 3 s; the secret-bearing file depends
    // on it. `creates` makes the step run once.
    fleet_.WriteStacks({{"envoys.vgo", "envoys:\n  - match: \"web-*\"\n    configcrates: [app]\n"},
                        {"configcrates/app.vgo",
                         "configcrate: app\n"
                         "resources:\n"
                         "  - name: slow-step\n"
                         "    type: exec\n"
                         "    command: [\"/bin/sh\", \"-c\", \"touch " +
                             out_.string() + "/started; sleep 3; touch " + apply_root +
                             "/slow-done\"]\n"
                             "    creates: /slow-done\n"
                             "  - name: app-config\n"
                             "    type: file\n"
                             "    target_path: /app.conf\n"
                             "    mode: \"0640\"\n"
                             "    content: \"password=secret:app/db\\n\"\n"
                             "    depends_on: [slow-step]\n"}});
    ASSERT_TRUE(fleet_.StartServer()) << fleet_.last_error();
    ASSERT_TRUE(fleet_.IssueEnvoy("web-1")) << fleet_.last_error();
  }

  void StartDaemon() {
    std::vector<std::string> argv = {BinPath("vigo").string(), "daemon", "--interval=10",
                                     "--retry-for=60"};
    for (const auto& f : fleet_.AgentFlags("web-1")) argv.push_back(f);
    sandbox::UniqueFd log(
        ::open(fleet_.AgentLog("web-1").c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
    ASSERT_TRUE(log);
    sandbox::SpawnOptions o;
    o.argv = argv;
    o.env = {"PATH=/usr/bin:/bin"};
    o.fd_map = {{2, log.get()}};
    auto child = sandbox::ChildProcess::Spawn(o);
    ASSERT_TRUE(child.ok()) << child.status();
    daemon_ = std::move(*child);
  }

  // SIGKILL, no clean shutdown. The fleet reaps the zombie when it is destroyed.
  void KillServer() { ASSERT_EQ(::kill(fleet_.server_pid(), SIGKILL), 0); }

  void RestartServer() {
    auto srv =
        StartVigosrv(fleet_.root(), fleet_.dir() / "srv2", StrCat("127.0.0.1:", fleet_.port()));
    ASSERT_TRUE(srv.ok()) << srv.status();
    server2_ = std::move(*srv);
  }

  std::string AgentLog() const { return ReadFileOrEmpty(fleet_.AgentLog("web-1")); }
  std::string Diag() const {
    return StrCat("\n--- agent log ---\n", AgentLog(), "\n--- server log (before kill) ---\n",
                  ReadFileOrEmpty(fleet_.ServerLog()), "\n--- server log (after restart) ---\n",
                  server2_ ? ReadFileOrEmpty(server2_->err_file) : std::string("(not started)"));
  }

  // The runs the server recorded for web-1 (`vigocli runs list --json`).
  std::string Runs() { return fleet_.Cli({"--json", "runs", "list", "--envoy", "web-1"}).out; }

  void ExpectConverged() {
    const fs::path conf = fleet_.ApplyRoot("web-1") / "app.conf";
    const std::string want = StrCat("password=", kCanary, "\n");
    ASSERT_TRUE(WaitUntil([&] { return ReadFileOrEmpty(conf) == want; }, 60s)) << Diag();
    struct stat st {};
    ASSERT_EQ(::stat(conf.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    // A successful run reaches the server (the report is retried until it does).
    EXPECT_TRUE(WaitUntil(
        [&] {
          std::string runs = Runs();
          return runs.find("\"outcome\":\"changed\"") != std::string::npos ||
                 runs.find("\"outcome\":\"ok\"") != std::string::npos;
        },
        60s, 200ms))
        << Runs() << Diag();
    // Exactly the resources' files: no temp file, no partial file.
    EXPECT_EQ(Tree(fleet_.ApplyRoot("web-1")), (std::set<std::string>{"app.conf", "slow-done"}))
        << Diag();
    // The daemon is still there (it did not exit on the dead server), and
    // stops cleanly.
    ASSERT_TRUE(Running(daemon_)) << Diag();
    daemon_.Kill(SIGTERM);
    auto exit = daemon_.WaitFor(15s);
    ASSERT_TRUE(exit.ok());
    EXPECT_TRUE(exit->exited && exit->exit_code == 0) << Diag();
    // No value in any log, the state dir or anything else under the fleet.
    EXPECT_EQ(FindCanariesIn(AgentLog(), "agent log", {kCanary}), std::vector<std::string>{});
    EXPECT_EQ(FindCanaries(fleet_.StateDir("web-1"), {kCanary}), std::vector<std::string>{});
    EXPECT_EQ(FindCanaries(fleet_.dir() / "srv2", {kCanary}), std::vector<std::string>{});
    EXPECT_EQ(FindCanariesIn(ReadFileOrEmpty(fleet_.ServerLog()), "server log", {kCanary}),
              std::vector<std::string>{});
  }

  E2eFleet fleet_;
  fs::path out_;
  sandbox::ChildProcess daemon_;
  std::optional<VigosrvProcess> server2_;
};

// Killed while the worker runs the exec step: the values are already
// resolved; the file is written from them, and the report waits for the
// server to come back.
TEST_F(AgentServerKillTest, KillMidApplyTheAgentWaitsAndConvergesWhenTheServerReturns) {
  StartDaemon();
  const fs::path started = out_ / "started";
  ASSERT_TRUE(WaitUntil([&] { return fs::exists(started); }, 60s, 20ms)) << Diag();
  KillServer();
  // The server stays down well past the exec step (3 s) and the agent's
  // first wait for it (a failed call on the dead connection, a backoff of at
  // most 0.5 s, then a 2 s probe before it says it is waiting).
  std::this_thread::sleep_for(8s);
  ASSERT_TRUE(Running(daemon_)) << "the agent exited on a dead server" << Diag();
  // Before the kill no run was reported: the report is still pending.
  EXPECT_EQ(ReadFileOrEmpty(fleet_.ServerLog()).find(" report "), std::string::npos) << Diag();
  // It says so, naming the call it cannot make.
  EXPECT_NE(AgentLog().find("server unreachable; waiting for it rpc=ReportResult"),
            std::string::npos)
      << Diag();
  RestartServer();
  ExpectConverged();
}

// Killed right after the agent saved the bundle from CheckIn and before the
// server released any value.
TEST_F(AgentServerKillTest, KillBetweenCheckInAndResolveTheAgentRetriesAndConverges) {
  const fs::path state = fleet_.StateDir("web-1");
  sandbox::UniqueFd ino(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  ASSERT_TRUE(ino);
  ASSERT_GE(::inotify_add_watch(ino.get(), state.c_str(), IN_MODIFY | IN_MOVED_TO | IN_CLOSE_WRITE),
            0);
  StartDaemon();
  // bundle.json is written (in place through a fd opened before lockdown, or
  // tmp + rename) after the CheckIn answer arrived and right before
  // ResolveSecrets.
  bool saved = false;
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (!saved && std::chrono::steady_clock::now() < until) {
    struct pollfd p = {ino.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    alignas(struct inotify_event) char buf[4096];
    ssize_t n = ::read(ino.get(), buf, sizeof(buf));
    for (ssize_t at = 0; n > 0 && at < n;) {
      auto* ev = reinterpret_cast<struct inotify_event*>(buf + at);
      if (ev->len > 0 && std::string(ev->name) == "bundle.json") saved = true;
      at += static_cast<ssize_t>(sizeof(struct inotify_event) + ev->len);
    }
  }
  ASSERT_TRUE(saved) << Diag();
  KillServer();
  std::this_thread::sleep_for(300ms);  // let the log writes of the dead server settle
  const std::string before = ReadFileOrEmpty(fleet_.ServerLog());
  ASSERT_NE(before.find(" checkin "), std::string::npos) << Diag();
  // The kill landed before any value was released (the server logs
  // "resolve" only after the audit record is committed).
  ASSERT_EQ(before.find(" resolve "), std::string::npos) << Diag();
  ASSERT_FALSE(fs::exists(out_ / "started")) << Diag();
  std::this_thread::sleep_for(5s);
  ASSERT_TRUE(Running(daemon_)) << "the agent exited on a dead server" << Diag();
  EXPECT_NE(AgentLog().find("server unreachable; waiting for it rpc=ResolveSecrets"),
            std::string::npos)
      << Diag();
  RestartServer();
  ExpectConverged();
  // The restarted server is a new epoch: the agent checked in again.
  EXPECT_NE(AgentLog().find("secrets epoch moved; checking in again"), std::string::npos) << Diag();
}

}  // namespace
}  // namespace vigo::testing
