#include "sandbox/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sandbox/syscall_status.h"
#include "sandbox/unique_fd.h"

namespace vigo::sandbox {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

struct Pipe {
  UniqueFd read;
  UniqueFd write;
};

Pipe MakePipe() {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

bool ProcessExists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

// Runs `script` with /bin/sh, stdout captured; returns (exit, stdout).
std::pair<ExitInfo, std::string> RunSh(const std::string& script, std::vector<std::string> env = {},
                                       std::vector<std::pair<int, int>> extra_fds = {}) {
  Pipe out = MakePipe();
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", script};
  o.env = std::move(env);
  o.fd_map = std::move(extra_fds);
  o.fd_map.push_back({1, out.write.get()});
  absl::StatusOr<ChildProcess> c = ChildProcess::Spawn(o);
  EXPECT_TRUE(c.ok()) << c.status();
  if (!c.ok()) return {};
  out.write.reset();
  std::string text = ReadAll(out.read.get());
  absl::StatusOr<ExitInfo> e = c->Wait();
  EXPECT_TRUE(e.ok()) << e.status();
  return {e.ok() ? *e : ExitInfo{}, text};
}

TEST(ChildProcessTest, TrueExitsZero) {
  SpawnOptions o;
  o.argv = {"/bin/true"};
  absl::StatusOr<ChildProcess> c = ChildProcess::Spawn(o);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->running());
  absl::StatusOr<ExitInfo> e = c->Wait();
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->exited);
  EXPECT_EQ(e->exit_code, 0);
  EXPECT_FALSE(e->signaled);
  EXPECT_FALSE(c->running());
  EXPECT_EQ(c->Wait().status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ChildProcessTest, ExitCodesAreReported) {
  EXPECT_EQ(RunSh("exit 3").first.exit_code, 3);
  EXPECT_EQ(RunSh("exit 0").first.exit_code, 0);
  ExitInfo e = RunSh("kill -TERM $$").first;
  EXPECT_TRUE(e.signaled);
  EXPECT_EQ(e.signal, SIGTERM);
  EXPECT_FALSE(e.exited);
}

TEST(ChildProcessTest, MissingExecutableIsNotFound) {
  SpawnOptions o;
  o.argv = {"/nonexistent/vigo-no-such-binary"};
  absl::StatusOr<ChildProcess> c = ChildProcess::Spawn(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("execve"));
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("/nonexistent/vigo-no-such-binary"));
}

TEST(ChildProcessTest, BadCwdNamesTheDirectory) {
  SpawnOptions o;
  o.argv = {"/bin/true"};
  o.cwd = "/nonexistent-dir-for-vigo";
  absl::StatusOr<ChildProcess> c = ChildProcess::Spawn(o);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("chdir"));
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("/nonexistent-dir-for-vigo"));
}

TEST(ChildProcessTest, InvalidOptionsAreRejected) {
  SpawnOptions o;
  EXPECT_EQ(ChildProcess::Spawn(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.argv = {"/bin/true", std::string("a\0b", 3)};
  EXPECT_EQ(ChildProcess::Spawn(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.argv = {"/bin/true"};
  o.env = {"NOEQUALS"};
  EXPECT_EQ(ChildProcess::Spawn(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.env = {};
  o.fd_map = {{3, 1}, {3, 2}};
  EXPECT_EQ(ChildProcess::Spawn(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ChildProcessTest, EnvironmentIsExactlyWhatWasGiven) {
  ::setenv("VIGO_PARENT_ONLY", "leak", 1);
  auto [e, out] = RunSh("/usr/bin/env", {"A=1", "B=two words"});
  EXPECT_EQ(e.exit_code, 0);
  // /bin/sh may add PWD (dash does); nothing from the parent may appear.
  EXPECT_THAT(out, HasSubstr("A=1\n"));
  EXPECT_THAT(out, HasSubstr("B=two words\n"));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("VIGO_PARENT_ONLY")));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("PATH=")));

  // Without a shell in between: env(1) prints exactly the environment.
  Pipe p = MakePipe();
  SpawnOptions o;
  o.argv = {"/usr/bin/env"};
  o.env = {"ONLY=this"};
  o.fd_map = {{1, p.write.get()}};
  absl::StatusOr<ChildProcess> c = ChildProcess::Spawn(o);
  ASSERT_TRUE(c.ok());
  p.write.reset();
  EXPECT_EQ(ReadAll(p.read.get()), "ONLY=this\n");
  ASSERT_TRUE(c->Wait().ok());

  o.env = {};
  p = MakePipe();
  o.fd_map = {{1, p.write.get()}};
  c = ChildProcess::Spawn(o);
  ASSERT_TRUE(c.ok());
  p.write.reset();
  EXPECT_EQ(ReadAll(p.read.get()), "");
  ASSERT_TRUE(c->Wait().ok());
  ::unsetenv("VIGO_PARENT_ONLY");
}

TEST(ChildProcessTest, FdMapPassesOnlyMappedFds) {
  Pipe extra = MakePipe();
  // An inheritable fd in the parent that is not mapped must not reach the child.
  UniqueFd null_fd(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  int leaky = ::fcntl(null_fd.get(), F_DUPFD, 50);  // deliberately without O_CLOEXEC
  ASSERT_GE(leaky, 50);
  const std::string script = "echo mapped >&5; if [ -e /proc/self/fd/" + std::to_string(leaky) +
                             " ]; then echo leaked; fi; ls /proc/self/fd | sort -n | tr '\\n' ' '";
  auto [e, out] = RunSh(script, {}, {{5, extra.write.get()}});
  ::close(leaky);
  extra.write.reset();
  EXPECT_EQ(e.exit_code, 0);
  EXPECT_EQ(ReadAll(extra.read.get()), "mapped\n");
  EXPECT_THAT(out, ::testing::Not(HasSubstr("leaked")));
  // 0,1,2, the mapped 5, and the fd ls itself opens for /proc/self/fd.
  EXPECT_THAT(out, ::testing::StartsWith("0 1 2 "));
  EXPECT_THAT(out, HasSubstr(" 5 "));
}

TEST(ChildProcessTest, FdMapHandlesSwaps) {
  // child 1 <- parent fd A, child 2 <- parent fd B where A and B are the
  // other's target number after a dup: exercise the collision-safe path.
  Pipe a = MakePipe();
  Pipe b = MakePipe();
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", "echo to-a; echo to-b >&2"};
  o.fd_map = {{1, a.write.get()}, {2, b.write.get()}, {a.write.get(), b.write.get()}};
  absl::StatusOr<ChildProcess> c = ChildProcess::Spawn(o);
  ASSERT_TRUE(c.ok()) << c.status();
  a.write.reset();
  b.write.reset();
  EXPECT_EQ(ReadAll(a.read.get()), "to-a\n");
  EXPECT_EQ(ReadAll(b.read.get()), "to-b\n");
  EXPECT_EQ(c->Wait()->exit_code, 0);
}

TEST(ChildProcessTest, StdioDefaultsToDevNull) {
  auto [e, out] = RunSh("readlink /proc/self/fd/0; readlink /proc/self/fd/2");
  EXPECT_EQ(out, "/dev/null\n/dev/null\n");
}

TEST(ChildProcessTest, CwdIsApplied) {
  SpawnOptions o;
  auto [e, out] = [&] {
    Pipe p = MakePipe();
    o.argv = {"/bin/pwd"};
    o.cwd = "/tmp";
    o.fd_map = {{1, p.write.get()}};
    absl::StatusOr<ChildProcess> c = ChildProcess::Spawn(o);
    EXPECT_TRUE(c.ok());
    p.write.reset();
    std::string text = ReadAll(p.read.get());
    return std::make_pair(*c->Wait(), text);
  }();
  EXPECT_EQ(out, "/tmp\n");
}

TEST(ChildProcessTest, WaitForReturnsEarlyWhenChildExits) {
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", "exit 7"};
  absl::StatusOr<ChildProcess> c = ChildProcess::Spawn(o);
  ASSERT_TRUE(c.ok());
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<ExitInfo> e = c->WaitFor(10s);
  ASSERT_TRUE(e.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(e->exit_code, 7);
  EXPECT_FALSE(e->timed_out);
}

TEST(ChildProcessTest, WaitPollingReapsAnExitAndKillsAChildThatLingers) {
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", "exit 5"};
  absl::StatusOr<ChildProcess> quick = ChildProcess::Spawn(o);
  ASSERT_TRUE(quick.ok());
  absl::StatusOr<ExitInfo> e = quick->WaitPolling(10s);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->exit_code, 5);
  EXPECT_FALSE(e->timed_out);
  o.argv = {"/bin/sleep", "60"};
  absl::StatusOr<ChildProcess> slow = ChildProcess::Spawn(o);
  ASSERT_TRUE(slow.ok());
  e = slow->WaitPolling(100ms);
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->timed_out);
  EXPECT_EQ(e->signal, SIGKILL);
  EXPECT_FALSE(slow->running());
}

TEST(ChildProcessTest, WaitForTimeoutKillsTheProcessGroup) {
  // The shell starts a grandchild in the same group; the timeout must kill both.
  Pipe p = MakePipe();
  SpawnOptions o;
  o.argv = {"/bin/sh", "-c", "sleep 60 & echo $!; wait"};
  o.fd_map = {{1, p.write.get()}};
  absl::StatusOr<ChildProcess> c = ChildProcess::Spawn(o);
  ASSERT_TRUE(c.ok());
  p.write.reset();
  char buf[32] = {0};
  ssize_t n = ::read(p.read.get(), buf, sizeof(buf) - 1);
  ASSERT_GT(n, 0);
  const pid_t grandchild = static_cast<pid_t>(std::stol(buf));
  EXPECT_EQ(::getpgid(grandchild), c->pid());
  auto start = std::chrono::steady_clock::now();
  absl::StatusOr<ExitInfo> e = c->WaitFor(200ms);
  ASSERT_TRUE(e.ok());
  EXPECT_TRUE(e->timed_out);
  EXPECT_TRUE(e->signaled);
  EXPECT_EQ(e->signal, SIGKILL);
  EXPECT_GE(std::chrono::steady_clock::now() - start, 200ms);
  EXPECT_FALSE(c->running());
  // The grandchild (reparented to init or a subreaper) dies promptly.
  for (int i = 0; i < 200 && ProcessExists(grandchild); ++i) {
    // It may linger as a zombie of another reaper; accept that state.
    std::string stat;
    if (FILE* f = std::fopen(("/proc/" + std::to_string(grandchild) + "/stat").c_str(), "r")) {
      char s[256] = {0};
      size_t len = std::fread(s, 1, sizeof(s) - 1, f);
      std::fclose(f);
      stat.assign(s, len);
    }
    if (stat.find(") Z") != std::string::npos) break;
    std::this_thread::sleep_for(10ms);
  }
  std::string state;
  if (FILE* f = std::fopen(("/proc/" + std::to_string(grandchild) + "/stat").c_str(), "r")) {
    char s[256] = {0};
    size_t len = std::fread(s, 1, sizeof(s) - 1, f);
    std::fclose(f);
    state.assign(s, len);
  }
  EXPECT_TRUE(state.empty() || state.find(") Z") != std::string::npos)
      << "grandchild still running: " << state;
}

TEST(ChildProcessTest, DestructorKillsAndReaps) {
  pid_t pid = -1;
  {
    SpawnOptions o;
    o.argv = {"/bin/sleep", "60"};
    absl::StatusOr<ChildProcess> c = ChildProcess::Spawn(o);
    ASSERT_TRUE(c.ok());
    pid = c->pid();
    ASSERT_TRUE(ProcessExists(pid));
  }
  // Reaped: not even a zombie is left, and waitpid has nothing to collect.
  EXPECT_EQ(::kill(pid, 0), -1);
  EXPECT_EQ(errno, ESRCH);
  EXPECT_EQ(::waitpid(pid, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST(ChildProcessTest, MoveTransfersOwnership) {
  SpawnOptions o;
  o.argv = {"/bin/sleep", "60"};
  absl::StatusOr<ChildProcess> c = ChildProcess::Spawn(o);
  ASSERT_TRUE(c.ok());
  const pid_t pid = c->pid();
  ChildProcess moved = std::move(*c);
  EXPECT_FALSE(c->running());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(moved.pid(), pid);
  ChildProcess other;
  other = std::move(moved);
  EXPECT_EQ(other.pid(), pid);
  other.Kill(SIGTERM);
  absl::StatusOr<ExitInfo> e = other.Wait();
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->signal, SIGTERM);
}

TEST(ChildProcessTest, AdoptForTestReapsAForkedChild) {
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) std::_Exit(42);
  ChildProcess c = ChildProcess::AdoptForTest(pid);
  absl::StatusOr<ExitInfo> e = c.Wait();
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->exit_code, 42);
}

TEST(ChildProcessTest, DieWithParentKillsChildWhenSpawningThreadExits) {
  for (bool die : {true, false}) {
    ChildProcess child;
    std::thread t([&] {
      SpawnOptions o;
      o.argv = {"/bin/sleep", "60"};
      o.die_with_parent = die;
      absl::StatusOr<ChildProcess> c = ChildProcess::Spawn(o);
      ASSERT_TRUE(c.ok());
      child = std::move(*c);
    });
    t.join();
    ASSERT_TRUE(child.running());
    absl::StatusOr<ExitInfo> e = child.WaitFor(die ? 5s : 300ms);
    ASSERT_TRUE(e.ok());
    EXPECT_TRUE(e->signaled);
    EXPECT_EQ(e->signal, SIGKILL);
    // With die_with_parent the kernel killed it; without, only our timeout did.
    EXPECT_EQ(e->timed_out, !die) << "die_with_parent=" << die;
  }
}

int SetNoNewPrivs(void*) { return ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); }
int FailWithEacces(void*) {
  errno = EACCES;
  return -1;
}

TEST(ChildProcessTest, PreExecHookRunsInTheChildBeforeExec) {
  Pipe p = MakePipe();
  SpawnOptions o;
  o.argv = {"/bin/grep", "NoNewPrivs", "/proc/self/status"};
  o.fd_map = {{1, p.write.get()}};
  o.pre_exec = &SetNoNewPrivs;
  absl::StatusOr<ChildProcess> c = ChildProcess::Spawn(o);
  ASSERT_TRUE(c.ok()) << c.status();
  p.write.reset();
  EXPECT_EQ(ReadAll(p.read.get()), "NoNewPrivs:\t1\n");
  ASSERT_TRUE(c->Wait().ok());

  o.fd_map = {};
  o.pre_exec = &FailWithEacces;
  c = ChildProcess::Spawn(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("pre-exec hook"));
}

TEST(ChildProcessTest, SignalMaskAndIgnoredSignalsAreReset) {
  // A parent that ignores SIGPIPE must not hand that to the child.
  struct sigaction old;
  struct sigaction ign = {};
  ign.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ign, &old), 0);
  auto [e, out] = RunSh("grep -E '^Sig(Ign|Blk)' /proc/self/status");
  ::sigaction(SIGPIPE, &old, nullptr);
  EXPECT_THAT(out, HasSubstr("SigBlk:\t0000000000000000"));
  EXPECT_THAT(out, HasSubstr("SigIgn:\t0000000000000000"));
}

bool FdOpen(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }

TEST(UniqueFdTest, ClosesOnDestructionResetAndMoveAssign) {
  int raw = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(raw, 0);
  {
    UniqueFd fd(raw);
    EXPECT_TRUE(fd);
    EXPECT_EQ(fd.get(), raw);
  }
  EXPECT_FALSE(FdOpen(raw));

  UniqueFd a(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  const int a_raw = a.get();
  UniqueFd b(std::move(a));
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(b.get(), a_raw);
  EXPECT_TRUE(FdOpen(a_raw));

  UniqueFd c(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  const int c_raw = c.get();
  c = std::move(b);  // closes c's old fd
  EXPECT_FALSE(FdOpen(c_raw));
  EXPECT_EQ(c.get(), a_raw);

  const int released = c.release();
  EXPECT_FALSE(c);
  EXPECT_TRUE(FdOpen(released));  // release does not close
  c.reset(released);
  c.reset();
  EXPECT_FALSE(FdOpen(released));
}

TEST(ErrnoStatusTest, MapsCodesAndNamesTheSubject) {
  absl::Status st = ErrnoStatus(ENOENT, "open", "/etc/vigo.yaml");
  EXPECT_EQ(st.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(std::string(st.message()), "open /etc/vigo.yaml: No such file or directory");
  EXPECT_EQ(ErrnoStatus(EACCES, "x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoStatus(EPERM, "x").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(ErrnoStatus(ENOSPC, "x").code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(ErrnoStatus(EEXIST, "x").code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(ErrnoStatus(EIO, "x").code(), absl::StatusCode::kInternal);
  EXPECT_EQ(std::string(ErrnoStatus(EIO, "fsync").message()), "fsync: Input/output error");
}

}  // namespace
}  // namespace vigo::sandbox
