// LockDownBroker / LockDownWorker as whole functions: no fd leaks, single
// thread required, opt-outs validated, failures fatal rather than silent.
#include "sandbox/lockdown.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "sandbox/namespaces.h"
#include "tests/sandbox/sandbox_test_util.h"

namespace vigo::sandbox {
namespace {

using testing::ChildResult;
using testing::RunWorkerChild;
using testing::kExitBodyReturned;
using testing::RunChild;
using testing::WriteAll;

// Opens a handful of fds that are NOT close-on-exec, like a sloppy parent.
void OpenLeakyFds() {
  ::open("/dev/null", O_RDONLY);
  ::open("/etc/hostname", O_RDONLY);
  int sv[2];
  ::socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
  ::eventfd(0, 0);
  int p[2];
  ::pipe(p);
  ::dup2(p[0], 200);
}

std::vector<int> ParseInts(const std::string& s) {
  std::vector<int> v;
  std::istringstream in(s);
  int x;
  while (in >> x) v.push_back(x);
  return v;
}

TEST(LockdownTest, WorkerLeavesOnlyTheKeptFds) {
  ChildResult r = RunWorkerChild([](int out) {
    OpenLeakyFds();
    WorkerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2, out};
    if (!LockDownWorker(spec).ok()) return 3;
    auto fds = ListOpenFds();  // under the worker filter
    if (!fds.ok()) return 4;
    std::string s;
    for (int fd : *fds) s += std::to_string(fd) + " ";
    WriteAll(out, s);
    return kExitBodyReturned;
  });
  ASSERT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
  std::vector<int> fds = ParseInts(r.out);
  // The out fd number is whatever the pipe got in the child; everything else
  // must be stdio.
  ASSERT_EQ(fds.size(), 4u) << r.out;
  EXPECT_EQ(fds[0], 0);
  EXPECT_EQ(fds[1], 1);
  EXPECT_EQ(fds[2], 2);
}

TEST(LockdownTest, BrokerLeavesOnlyTheKeptFds) {
  ChildResult r = RunWorkerChild([](int out) {
    OpenLeakyFds();
    BrokerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2, out};
    if (!LockDownBroker(spec).ok()) return 3;
    // The broker filter has no getdents64: probe every fd with fcntl.
    std::string s;
    for (int fd = 0; fd < 4096; ++fd) {
      if (::fcntl(fd, F_GETFD) >= 0) s += std::to_string(fd) + " ";
    }
    WriteAll(out, s);
    return kExitBodyReturned;
  });
  ASSERT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
  std::vector<int> fds = ParseInts(r.out);
  ASSERT_EQ(fds.size(), 4u) << r.out;
  EXPECT_EQ(fds[0], 0);
  EXPECT_EQ(fds[1], 1);
  EXPECT_EQ(fds[2], 2);
}

TEST(LockdownTest, RefusesToRunWithTwoThreads) {
  ChildResult r = RunWorkerChild([](int) {
    std::thread t([] { ::pause(); });
    t.detach();
    auto result = LockDownBroker({});
    return !result.ok() && result.status().code() == absl::StatusCode::kFailedPrecondition
               ? kExitBodyReturned
               : 1;
  });
  EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
}

TEST(LockdownTest, UnknownSkipNameIsRejected) {
  ChildResult r = RunWorkerChild([](int) {
    BrokerLockdownSpec spec;
    spec.insecure_skip = {"seccmop"};
    auto result = LockDownBroker(spec);
    return !result.ok() && result.status().code() == absl::StatusCode::kInvalidArgument
               ? kExitBodyReturned
               : 1;
  });
  EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
}

TEST(LockdownTest, BrokerHasNoMountNamespaceStep) {
  ChildResult r = RunWorkerChild([](int) {
    BrokerLockdownSpec spec;
    spec.insecure_skip = {kStepMountNamespace};
    return LockDownBroker(spec).ok() ? 1 : kExitBodyReturned;
  });
  EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
}

// Skipping no_new_privs alone must not leave a silently unfiltered broker:
// without NNP and without CAP_SYS_ADMIN the filter cannot load, and lockdown
// fails at the seccomp step.
TEST(LockdownTest, SkippingNoNewPrivsAloneFailsAtSeccomp) {
  ChildResult r = RunWorkerChild([](int out) {
    BrokerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2, out};
    spec.insecure_skip = {kStepNoNewPrivs};
    auto result = LockDownBroker(spec);
    if (result.ok()) return 1;
    WriteAll(out, std::string(result.status().message()));
    return kExitBodyReturned;
  });
  ASSERT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
  EXPECT_NE(r.out.find("step seccomp"), std::string::npos) << r.out;
}

TEST(LockdownTest, RunsOnlyOnce) {
  ChildResult r = RunWorkerChild([](int out) {
    WorkerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2, out};
    if (!LockDownWorker(spec).ok()) return 3;
    auto again = LockDownWorker(spec);
    return !again.ok() && again.status().code() == absl::StatusCode::kFailedPrecondition
               ? kExitBodyReturned
               : 1;
  });
  EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
}

TEST(LockdownTest, SkippedStepIsAnnouncedOnStderrAndReturned) {
  ChildResult r = RunWorkerChild([](int out) {
    ::dup2(out, 2);  // capture the warning
    BrokerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2, out};
    spec.insecure_skip = {kStepSeccomp};
    auto result = LockDownBroker(spec);
    if (!result.ok()) return 3;
    return result->skipped_steps == std::vector<std::string>{"seccomp"} ? kExitBodyReturned : 1;
  });
  ASSERT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
  EXPECT_NE(r.out.find("WARNING: insecure"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("seccomp"), std::string::npos) << r.out;
}

// The exec-child seal: compiled before fork, loaded between fork and exec.
// Ordinary programs run; a hard-denied syscall kills; both layers stack.
TEST(LockdownTest, ExecChildSealRunsShellAndKillsDeniedSyscalls) {
  ChildResult r = RunWorkerChild([](int out) {
    WorkerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2, out};
    if (!LockDownWorker(spec).ok()) return 3;
    auto seal = PrepareExecChildSeal();
    if (!seal.ok()) return 4;
    pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(out, 1);
      if (LockDownExecChildAsyncSignalSafe(*seal) != 0) ::_exit(126);
      char* argv[] = {
          const_cast<char*>("/bin/sh"), const_cast<char*>("-c"),
          const_cast<char*>("cat /etc/hostname >/dev/null && "
                            "grep -E '^(Seccomp_filters|NoNewPrivs):' /proc/self/status"),
          nullptr};
      char* envp[] = {const_cast<char*>("PATH=/usr/bin:/bin"), nullptr};
      ::execve("/bin/sh", argv, envp);
      ::_exit(127);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? kExitBodyReturned : 5;
  });
  ASSERT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
  EXPECT_NE(r.out.find("Seccomp_filters:\t2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("NoNewPrivs:\t1"), std::string::npos) << r.out;
}

// Ordinary programs a config applier runs must work under worker filter +
// exec-child layer (the worker allowlist is their ceiling).
TEST(LockdownTest, EverydayProgramsRunUnderWorkerAndExecChildFilters) {
  const std::vector<std::string> commands = {
      "ls -la / /proc/self/ >/dev/null",
      "id >/dev/null && date >/dev/null && uname -a >/dev/null",
      "sort /etc/passwd | uniq | wc -l >/dev/null",
      "sha256sum /etc/hostname >/dev/null",
      "t=$(mktemp -d) && echo hi > $t/a && cp -a $t/a $t/b && mv $t/b $t/c && chmod 600 $t/c && "
      "ln -s $t/c $t/d && cat $t/d >/dev/null && tar -C $t -cf $t.tar . && rm -rf $t $t.tar",
      "sleep 0.01 & wait",
      "[ ! -x /usr/bin/python3 ] || /usr/bin/python3 -c \"import json, subprocess, socket, "
      "threading; subprocess.run(['true'], check=True); socket.getaddrinfo('localhost', 80); "
      "t = threading.Thread(target=print); t.start(); t.join()\" >/dev/null",
      "[ ! -x /usr/bin/perl ] || /usr/bin/perl -e 'open(my $f, \"<\", \"/etc/hostname\") or die; "
      "exit 0'",
  };
  for (const std::string& cmd : commands) {
    ChildResult r = RunWorkerChild([&](int out) {
      WorkerLockdownSpec spec;
      spec.keep_fds = {0, 1, 2, out};
      if (!LockDownWorker(spec).ok()) return 3;
      auto seal = PrepareExecChildSeal();
      if (!seal.ok()) return 4;
      pid_t pid = ::fork();
      if (pid == 0) {
        ::dup2(out, 2);
        if (LockDownExecChildAsyncSignalSafe(*seal) != 0) ::_exit(126);
        char* argv[] = {const_cast<char*>("/bin/sh"), const_cast<char*>("-c"),
                        const_cast<char*>(cmd.c_str()), nullptr};
        char* envp[] = {const_cast<char*>("PATH=/usr/bin:/bin"), const_cast<char*>("TMPDIR=/tmp"),
                        nullptr};
        ::execve("/bin/sh", argv, envp);
        ::_exit(127);
      }
      int status = 0;
      ::waitpid(pid, &status, 0);
      if (WIFSIGNALED(status)) {
        WriteAll(out, std::string("signal ") + strsignal(WTERMSIG(status)));
        return 6;
      }
      return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? kExitBodyReturned : 5;
    });
    EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << cmd << ": " << r.Describe();
  }
}

TEST(LockdownTest, ExecChildSealAloneKillsHardDenials) {
  for (const char* name : {"keyctl", "ptrace", "bpf", "mount", "setns", "process_vm_readv"}) {
    ChildResult r = RunWorkerChild([&](int) {
      auto seal = PrepareExecChildSeal();
      if (!seal.ok()) return 4;
      if (LockDownExecChildAsyncSignalSafe(*seal) != 0) return 5;
      ::syscall(SyscallNumber(name), 0, 0, 0, 0, 0, 0);
      return kExitBodyReturned;
    });
    EXPECT_TRUE(r.KilledBySigsys()) << name << ": " << r.Describe();
  }
}

}  // namespace
}  // namespace vigo::sandbox
