// The no-echo passphrase prompt on a real pseudo-terminal: echo is off while
// it reads, and a signal (Ctrl-C, kill) restores the terminal before the
// process ends with that signal.
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/support/test_env.h"

namespace vigo {
namespace {

using vigo::testing::BinPath;
using vigo::testing::RunResult;
using vigo::testing::TempDir;
using vigo::testing::WriteFileOrDie;

constexpr char kPass[] = "Zq7#Kw9!mP2$vL5@xT";

class CliPromptTest : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFileOrDie(in_.path() / "pass.txt", std::string(kPass) + "\n");
    // The database vigocli audits to (only `vigosrv init` creates one).
    ASSERT_EQ(
        vigo::testing::Run({BinPath("vigosrv").string(), "init", "--root", root_.path().string()})
            .exit_code,
        0);
    RunResult r =
        vigo::testing::Run({BinPath("vigocli").string(), "--root", root_.path().string(), "secrets",
                            "init", "--passphrase-file", (in_.path() / "pass.txt").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  void TearDown() override {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) ::close(master_);
  }
  // Starts `vigocli secrets unlock` on a new pty (its controlling terminal)
  // and waits for the prompt.
  void StartPrompt() {
    pid_ = ::forkpty(&master_, nullptr, nullptr, nullptr);
    ASSERT_GE(pid_, 0);
    if (pid_ == 0) {
      std::string bin = BinPath("vigocli").string();
      std::string root = root_.path().string();
      ::execl(bin.c_str(), bin.c_str(), "--root", root.c_str(), "secrets", "unlock",
              static_cast<char*>(nullptr));
      ::_exit(127);
    }
    std::string seen;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (seen.find("assphrase") == std::string::npos &&
           std::chrono::steady_clock::now() < deadline) {
      pollfd p{master_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[256];
      ssize_t n = ::read(master_, buf, sizeof(buf));
      if (n <= 0) break;
      seen.append(buf, static_cast<size_t>(n));
    }
    ASSERT_NE(seen.find("assphrase"), std::string::npos) << "no prompt; saw: " << seen;
    // The prompt is written after echo is turned off.
    EXPECT_FALSE(Echo()) << "echo still on while the passphrase is read";
  }
  bool Echo() {
    termios t{};
    EXPECT_EQ(::tcgetattr(master_, &t), 0);
    return (t.c_lflag & ECHO) != 0;
  }
  int WaitSignal() {
    int status = 0;
    EXPECT_EQ(::waitpid(pid_, &status, 0), pid_);
    pid_ = -1;
    return WIFSIGNALED(status) ? WTERMSIG(status) : -WEXITSTATUS(status);
  }
  TempDir root_;
  TempDir in_;
  int master_ = -1;
  pid_t pid_ = -1;
};

TEST_F(CliPromptTest, CtrlCRestoresEchoAndEndsWithSigint) {
  StartPrompt();
  ASSERT_EQ(::write(master_, "abc", 3), 3);   // a partly typed passphrase
  ASSERT_EQ(::write(master_, "\x03", 1), 1);  // Ctrl-C through the line discipline
  EXPECT_EQ(WaitSignal(), SIGINT);
  EXPECT_TRUE(Echo()) << "terminal left with echo off";
}

TEST_F(CliPromptTest, KillRestoresEchoAndEndsWithSigterm) {
  StartPrompt();
  ASSERT_EQ(::kill(pid_, SIGTERM), 0);
  EXPECT_EQ(WaitSignal(), SIGTERM);
  EXPECT_TRUE(Echo()) << "terminal left with echo off";
}

TEST_F(CliPromptTest, ALineIsReadWithEchoOffAndRestoredAfter) {
  StartPrompt();
  const std::string line = std::string(kPass) + "\n";
  ASSERT_EQ(::write(master_, line.data(), line.size()), static_cast<ssize_t>(line.size()));
  EXPECT_EQ(WaitSignal(), 0);  // exit 0: unlocked
  EXPECT_TRUE(Echo());
}

}  // namespace
}  // namespace vigo
