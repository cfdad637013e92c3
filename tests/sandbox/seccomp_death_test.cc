// Death tests for the seccomp policies: for every syscall a policy forbids, a
// forked child installs the REAL policy, makes that raw syscall and must die
// by SIGSYS; for every call it allows, a child makes it and survives
// (Chromium BPF_DEATH_TEST_C / BPF_TEST_C, Sandbox2 violation tests).
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <linux/prctl.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/personality.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "sandbox/seccomp_policy.h"
#include "tests/sandbox/sandbox_test_util.h"

namespace vigo::sandbox {
namespace {

using testing::ChildResult;
using testing::InstallPolicyOrExit;
using testing::kExitBodyReturned;
using testing::RunChild;

constexpr int kMaxSyscallNr = 600;  // above every x86-64 syscall (~460 today)

// What a zero-argument probe could change about a shared device node: the
// probes below call fchmod/fchown/... on fd 0, which must be the child's own
// scratch file and never a host node (see RunChild).
std::string HostNodeState(const char* path) {
  struct stat st {};
  if (::stat(path, &st) != 0) return std::string(path) + ": " + std::strerror(errno);
  return std::string(path) + " mode " + std::to_string(st.st_mode) + " uid " +
         std::to_string(st.st_uid) + " gid " + std::to_string(st.st_gid) + " rdev " +
         std::to_string(st.st_rdev);
}

std::string SharedNodesState() {
  std::string out;
  for (const char* p : {"/dev/null", "/dev/zero", "/dev/full", "/dev/urandom", "/dev/tty"}) {
    out += HostNodeState(p) + "\n";
  }
  return out;
}

TEST(SeccompProbeHarnessTest, ChildStdinIsAPrivateScratchFileNotAHostNode) {
  ChildResult r = RunChild([](int) {
    struct stat st {};
    if (::fstat(0, &st) != 0) return 1;
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return 2;  // a device node: shared
    if (::fchmod(0, 0) != 0) return 3;                          // harmless on our own file
    return kExitBodyReturned;
  });
  EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
}

const SyscallRule* FindRow(const Policy& p, const std::string& name) {
  for (const SyscallRule& r : p.rules) {
    if (name == r.name) return &r;
  }
  return nullptr;
}

// Syscalls (by number) whose every invocation the policy kills: not in the
// table under a kill default, or a row with the kill action.
std::vector<int> ForbiddenSyscalls(const Policy& p) {
  std::vector<int> out;
  for (int nr = 0; nr < kMaxSyscallNr; ++nr) {
    std::string name = SyscallName(nr);
    if (name.empty()) continue;
    const SyscallRule* row = FindRow(p, name);
    // Rows with an argument rule kill only some calls: SeccompArgRuleDeathTest.
    if (row != nullptr && !row->args.empty()) continue;
    Action a = row == nullptr ? p.default_action : row->action;
    if (a == KillProcess()) out.push_back(nr);
  }
  return out;
}

// Rows allowed whatever the arguments.
std::vector<std::string> UnconditionallyAllowed(const Policy& p) {
  std::vector<std::string> out;
  for (const SyscallRule& r : p.rules) {
    if (r.action == Allow() && r.args.empty()) out.push_back(r.name);
  }
  return out;
}

// Runs `nr` with all-zero arguments under `policy` in a child.
ChildResult RawCallUnderPolicy(const Policy& policy, long nr, CompileOptions options = {}) {
  return RunChild([&](int) {
    InstallPolicyOrExit(policy, options);
    ::syscall(nr, 0, 0, 0, 0, 0, 0);
    return kExitBodyReturned;
  });
}

class SeccompDeathTest : public ::testing::TestWithParam<const Policy*> {};

TEST_P(SeccompDeathTest, EveryForbiddenSyscallKillsWithSigsys) {
  const Policy& policy = *GetParam();
  std::vector<int> forbidden = ForbiddenSyscalls(policy);
  // Every table kills something, except a layer made only of errno rows
  // (exec_child_no_network), which ErrnoRowsReturnTheirErrno and
  // NoNetworkLayerRefusesEveryFamilyButUnix cover.
  bool errno_only = !policy.rules.empty();
  for (const SyscallRule& row : policy.rules) errno_only &= row.action.kind == ActionKind::kErrno;
  ASSERT_TRUE(!forbidden.empty() || errno_only) << policy.process;
  for (int nr : forbidden) {
    ChildResult r = RawCallUnderPolicy(policy, nr);
    ASSERT_NE(r.code, testing::kExitCompileFailed) << "policy did not compile";
    ASSERT_NE(r.code, testing::kExitLoadFailed) << "policy did not load";
    EXPECT_TRUE(r.KilledBySigsys())
        << policy.process << ": " << SyscallName(nr) << " (" << nr << ") " << r.Describe();
  }
  std::printf("[ INFO ] %s: %zu forbidden syscalls each killed a child with SIGSYS\n",
              policy.process, forbidden.size());
}

TEST_P(SeccompDeathTest, UnknownSyscallNumberFollowsTheDefault) {
  ChildResult r = RawCallUnderPolicy(*GetParam(), 1000);
  if (GetParam()->default_action == KillProcess()) {
    EXPECT_TRUE(r.KilledBySigsys()) << r.Describe();
  } else {  // the exec-child layer allows by default: the kernel says ENOSYS
    EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
  }
}

// i386 entry point from a 64-bit process: AUDIT_ARCH_I386 is not in the
// filter, so the bad-arch action (kill) applies, even for default-allow.
// A kernel built or booted without IA32 emulation has no such entry point:
// `int $0x80` faults (SIGSEGV) before any filter runs. The control child (no
// filter) tells which kernel this is, so the route is shown closed either
// way and the filter is still checked wherever the route exists.
TEST_P(SeccompDeathTest, I386IntEighty) {
  auto int80 = [](const Policy* policy) {
    return RunChild([policy](int) {
      if (policy != nullptr) InstallPolicyOrExit(*policy);
      long ret;
      // getpid on i386 is 20.
      asm volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
      (void)ret;
      return kExitBodyReturned;
    });
  };
  const ChildResult control = int80(nullptr);
  const ChildResult r = int80(GetParam());
  if (control.signaled && control.sig == SIGSEGV) {
    std::printf("note: this kernel has no IA32 entry point (int $0x80 faults unfiltered)\n");
    EXPECT_TRUE(r.KilledBySigsys() || (r.signaled && r.sig == SIGSEGV)) << r.Describe();
  } else {
    ASSERT_TRUE(control.exited && control.code == kExitBodyReturned) << control.Describe();
    EXPECT_TRUE(r.KilledBySigsys()) << r.Describe();
  }
}

// x32 ABI: the syscall number carries __X32_SYSCALL_BIT.
TEST_P(SeccompDeathTest, X32Syscall) {
  constexpr long kX32Bit = 0x40000000;
  ChildResult r = RawCallUnderPolicy(*GetParam(), kX32Bit | SYS_getpid);
  EXPECT_TRUE(r.KilledBySigsys()) << r.Describe();
}

TEST_P(SeccompDeathTest, ErrnoRowsReturnTheirErrno) {
  const Policy& policy = *GetParam();
  const std::string host_before = SharedNodesState();
  for (const SyscallRule& row : policy.rules) {
    if (row.action.kind != ActionKind::kErrno) continue;
    const int nr = SyscallNumber(row.name);
    const int want = row.action.errno_value;
    // Arguments that match the row's first clause (literal comparisons;
    // zero elsewhere), so an argument-conditioned row is reached too.
    uint64_t a[6] = {0, 0, 0, 0, 0, 0};
    if (!row.args.empty()) {
      const ArgClause& c = row.args.any_of[0];
      for (int i = 0; i < c.size; ++i) {
        if (c.cmps[i].source == ValueSource::kLiteral) a[c.cmps[i].arg] = c.cmps[i].value;
      }
    }
    ChildResult r = RunChild([&](int) {
      InstallPolicyOrExit(policy);
      long rc = ::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
      return rc == -1 && errno == want ? 0 : 1;
    });
    EXPECT_TRUE(r.exited && r.code == 0)
        << policy.process << " " << row.name << ": " << r.Describe();
  }
  EXPECT_EQ(SharedNodesState(), host_before) << "a zero-argument probe changed a host device node";
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, SeccompDeathTest, ::testing::ValuesIn(AllPolicies()),
                         [](const auto& param_info) {
                           return std::string(param_info.param->process);
                         });

// --- Allowed calls survive -------------------------------------------------

void NoopHandler(int) {}

// Calls whose zero-argument form would block, fork the test, or crash.
// Returns false when `name` has no custom form.
bool CustomCall(const std::string& name) {
  if (name == "clone" || name == "fork") {
    long pid = name == "clone" ? ::syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0) : ::syscall(SYS_fork);
    if (pid == 0) ::_exit(0);
    if (pid > 0) ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
    return true;
  }
  if (name == "vfork") {
    pid_t pid = ::vfork();
    if (pid == 0) ::_exit(0);
    if (pid > 0) ::waitpid(pid, nullptr, 0);
    return true;
  }
  if (name == "pause" || name == "rt_sigsuspend") {
    struct sigaction sa {};
    sa.sa_handler = NoopHandler;
    ::sigaction(SIGALRM, &sa, nullptr);
    struct itimerval it {};
    it.it_value.tv_usec = 20000;
    ::setitimer(ITIMER_REAL, &it, nullptr);
    if (name == "pause") {
      ::syscall(SYS_pause);
    } else {
      sigset_t empty;
      sigemptyset(&empty);
      ::syscall(SYS_rt_sigsuspend, &empty, 8);
    }
    return true;
  }
  if (name == "select") {
    struct timeval tv {};
    ::syscall(SYS_select, 0, nullptr, nullptr, nullptr, &tv);
    return true;
  }
  if (name == "pselect6" || name == "ppoll") {
    struct timespec ts {};
    if (name == "ppoll")
      ::syscall(SYS_ppoll, nullptr, 0, &ts, nullptr, 8);
    else
      ::syscall(SYS_pselect6, 0, nullptr, nullptr, nullptr, &ts, nullptr);
    return true;
  }
  if (name == "seccomp") {
    uint32_t action = SECCOMP_RET_ALLOW;
    ::syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action);
    return true;
  }
  if (name == "rt_sigreturn") return true;  // no valid frame to return to; not exercised
  if (name == "sync") {                     // flushes the whole machine; sync the null fs instead
    ::syncfs(0);
    return true;
  }
  return false;
}

TEST(SeccompAllowTest, UnconditionalAllowsSurvive) {
  const std::string host_before = SharedNodesState();
  for (const Policy* policy : {&BrokerPolicy(), &WorkerPolicy()}) {
    std::vector<std::string> names = UnconditionallyAllowed(*policy);
    ASSERT_GT(names.size(), 10u);
    for (const std::string& name : names) {
      const int nr = SyscallNumber(name.c_str());
      CompileOptions options;
      ChildResult r = RunChild([&](int) {
        InstallPolicyOrExit(*policy, options);
        if (!CustomCall(name)) ::syscall(nr, 0, 0, 0, 0, 0, 0);
        return kExitBodyReturned;
      });
      // exit/exit_group end the child with status 0 themselves.
      EXPECT_TRUE(r.exited && (r.code == kExitBodyReturned || r.code == 0))
          << policy->process << ": allowed " << name << " did not survive: " << r.Describe();
    }
    std::printf("[ INFO ] %s: %zu unconditionally allowed syscalls survived\n", policy->process,
                names.size());
  }
  EXPECT_EQ(SharedNodesState(), host_before) << "a zero-argument probe changed a host device node";
}

// --- Argument rules: both sides of every conditional row -------------------

struct ArgCase {
  const char* name;
  std::array<long, 6> args;
  bool allowed;
  const char* what;
};

long SelfPid() { return ::getpid(); }

// Cases evaluated in the child (pids are the child's own).
std::vector<ArgCase> BrokerCases() {
  static char path[] = "/etc/hostname";
  const long p = reinterpret_cast<long>(path);
  return {
      {"socket", {AF_UNIX, SOCK_STREAM, 0}, true, "AF_UNIX"},
      {"socket", {AF_INET, SOCK_STREAM, 0}, true, "AF_INET"},
      {"socket", {AF_INET6, SOCK_STREAM, 0}, true, "AF_INET6"},
      {"socket", {AF_PACKET, SOCK_RAW, 0}, false, "AF_PACKET"},
      {"socket", {AF_NETLINK, SOCK_RAW, 0}, false, "AF_NETLINK"},
      {"socket", {(1L << 32) | AF_PACKET, SOCK_RAW, 0}, false, "AF_PACKET with high bits set"},
      {"openat", {AT_FDCWD, p, O_RDONLY | O_CLOEXEC}, true, "O_RDONLY"},
      {"openat", {AT_FDCWD, p, O_WRONLY}, false, "O_WRONLY"},
      {"openat", {AT_FDCWD, p, O_RDWR}, false, "O_RDWR"},
      {"openat", {AT_FDCWD, p, O_RDONLY | O_CREAT, 0600}, false, "O_CREAT"},
      {"openat", {AT_FDCWD, p, O_RDONLY | O_TRUNC}, false, "O_TRUNC"},
      {"openat", {AT_FDCWD, p, O_TMPFILE | O_RDWR, 0600}, false, "O_TMPFILE"},
      {"mmap", {0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0}, true, "rw"},
      {"mmap", {0, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0}, false, "exec"},
      {"mprotect", {0, 0, PROT_READ}, true, "read"},
      {"mprotect", {0, 0, PROT_READ | PROT_EXEC}, false, "exec"},
      {"madvise", {0, 0, MADV_DONTNEED}, true, "DONTNEED"},
      {"madvise", {0, 0, MADV_DODUMP}, false, "DODUMP would undo the arena's DONTDUMP"},
      {"madvise", {0, 0, MADV_DOFORK}, false, "DOFORK"},
      {"ioctl", {0, FIONREAD, 0}, true, "FIONREAD"},
      {"ioctl", {0, TIOCSTI, 0}, false, "TIOCSTI"},
      {"prctl", {PR_GET_DUMPABLE}, true, "PR_GET_DUMPABLE"},
      {"prctl", {PR_SET_DUMPABLE, 1}, false, "PR_SET_DUMPABLE"},
      {"prctl", {PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 0}, false, "PR_CAP_AMBIENT"},
      {"prctl", {PR_SET_SECCOMP, 0}, false, "PR_SET_SECCOMP"},
      {"prlimit64", {0, RLIMIT_NOFILE, 0, 0}, true, "read"},
      {"prlimit64", {0, RLIMIT_NOFILE, p, 0}, false, "write"},
      {"tgkill", {SelfPid(), SelfPid(), 0}, true, "own tgid"},
      {"tgkill", {1, 1, 0}, false, "another process"},
      {"kill", {0, 0}, false, "own process group"},
      {"kill", {-1, 0}, false, "every process"},
      {"kill", {1, 0}, false, "init"},
      {"clone", {SIGCHLD, 0, 0, 0, 0}, false, "fork-style clone"},
      {"clone", {CLONE_VM | CLONE_VFORK | SIGCHLD, 0, 0, 0, 0}, false, "vfork-style clone"},
  };
}

std::vector<ArgCase> WorkerCases() {
  return {
      {"socket", {AF_INET, SOCK_STREAM, 0}, true, "AF_INET"},
      {"socket", {AF_NETLINK, SOCK_RAW, NETLINK_ROUTE}, true, "NETLINK_ROUTE"},
      {"socket", {AF_NETLINK, SOCK_RAW, NETLINK_AUDIT}, false, "NETLINK_AUDIT"},
      {"socket", {AF_PACKET, SOCK_RAW, 0}, false, "AF_PACKET"},
      {"socketpair", {AF_UNIX, SOCK_STREAM, 0, 0}, true, "AF_UNIX"},
      {"socketpair", {AF_INET, SOCK_STREAM, 0, 0}, false, "AF_INET"},
      {"prctl", {PR_SET_NAME, 0}, true, "PR_SET_NAME"},
      {"prctl", {PR_SET_DUMPABLE, 1}, false, "PR_SET_DUMPABLE would re-expose the worker"},
      {"prctl", {PR_SET_KEEPCAPS, 1}, false, "PR_SET_KEEPCAPS"},
      {"prctl", {PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 0}, false, "PR_CAP_AMBIENT"},
      {"personality", {0xffffffffL}, true, "query"},
      {"personality", {ADDR_NO_RANDOMIZE}, false, "disable ASLR"},
  };
}

// The exec-child layer allows by default; its conditional rows kill.
std::vector<ArgCase> ExecChildCases() {
  constexpr long kHigh = 1L << 32;
  return {
      {"ioctl", {0, TIOCSTI, 0}, false, "TIOCSTI"},
      {"ioctl", {0, kHigh | TIOCSTI, 0}, false, "TIOCSTI with the register's upper half set"},
      {"ioctl", {0, TIOCLINUX, 0}, false, "TIOCLINUX"},
      {"ioctl", {0, kHigh | TIOCLINUX, 0}, false, "TIOCLINUX with the upper half set"},
      {"ioctl", {0, TCGETS, 0}, true, "TCGETS (isatty)"},
      {"ioctl", {0, FIONREAD, 0}, true, "FIONREAD"},
      {"ioctl", {0, TIOCGWINSZ, 0}, true, "TIOCGWINSZ"},
  };
}

// Every conditional row that kills must be exercised on both sides too.
void ExpectKillRowCoverage(const Policy& policy, const std::vector<ArgCase>& cases) {
  for (const SyscallRule& row : policy.rules) {
    if (row.action != KillProcess() || row.args.empty()) continue;
    bool pos = false, neg = false;
    for (const ArgCase& c : cases) {
      if (std::string(c.name) != row.name) continue;
      (c.allowed ? pos : neg) = true;
    }
    EXPECT_TRUE(pos && neg) << policy.process << ": conditional kill row " << row.name
                            << " needs an allowed and a killed case in this test";
  }
}

// Every conditional allow row must be exercised on both sides.
void ExpectCoverage(const Policy& policy, const std::vector<ArgCase>& cases,
                    const std::set<std::string>& allowed_elsewhere) {
  for (const SyscallRule& row : policy.rules) {
    if (row.action != Allow() || row.args.empty()) continue;
    bool pos = allowed_elsewhere.count(row.name) != 0, neg = false;
    for (const ArgCase& c : cases) {
      if (std::string(c.name) != row.name) continue;
      (c.allowed ? pos : neg) = true;
    }
    EXPECT_TRUE(pos && neg) << policy.process << ": conditional row " << row.name
                            << " needs an allowed and a denied case in this test";
  }
}

void RunArgCases(const Policy& policy, const std::vector<ArgCase>& cases, pid_t peer) {
  for (const ArgCase& c : cases) {
    const int nr = SyscallNumber(c.name);
    ASSERT_GE(nr, 0) << c.name;
    CompileOptions options;
    options.peer_pid = peer;
    ChildResult r = RunChild([&](int) {
      // Pids in the cases are recomputed in the child.
      std::array<long, 6> a = c.args;
      if (std::string(c.name) == "tgkill" && c.allowed) a = {SelfPid(), SelfPid(), 0};
      InstallPolicyOrExit(policy, options);
      ::syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
      return kExitBodyReturned;
    });
    if (c.allowed) {
      EXPECT_TRUE(r.exited && r.code == kExitBodyReturned)
          << policy.process << " " << c.name << " (" << c.what
          << ") should be allowed: " << r.Describe();
    } else {
      EXPECT_TRUE(r.KilledBySigsys())
          << policy.process << " " << c.name << " (" << c.what << ") should kill: " << r.Describe();
    }
  }
}

TEST(SeccompArgRuleDeathTest, Broker) {
  std::vector<ArgCase> cases = BrokerCases();
  // clone with CLONE_THREAD: BrokerThreadsWork; kill(worker): BrokerMayKillOnlyItsWorker.
  ExpectCoverage(BrokerPolicy(), cases, {"clone", "kill"});
  RunArgCases(BrokerPolicy(), cases, /*peer=*/0);
}

TEST(SeccompArgRuleDeathTest, ExecChildTerminalInjectionIoctlsKill) {
  std::vector<ArgCase> cases = ExecChildCases();
  ExpectKillRowCoverage(ExecChildPolicy(), cases);
  RunArgCases(ExecChildPolicy(), cases, 0);
}

// confine network: false. Alone (no worker filter under it), so the kernel
// itself would create any of these sockets: every family from 0 to 4095 but
// AF_UNIX is EACCES, also with the register's upper half set (the kernel
// reads an int), and AF_UNIX sockets and pairs still work.
TEST(SeccompArgRuleDeathTest, NoNetworkLayerRefusesEveryFamilyButUnix) {
  ChildResult r = RunChild([](int) {
    InstallPolicyOrExit(ExecNoNetworkPolicy());
    for (long family = 0; family < 4096; ++family) {
      if (family == AF_UNIX) continue;
      for (long upper : {0L, 1L << 32, -1L << 32}) {
        errno = 0;
        long fd = ::syscall(SYS_socket, upper | family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 || errno != EACCES) return 10;
        int sv[2];
        errno = 0;
        if (::syscall(SYS_socketpair, upper | family, SOCK_STREAM, 0, sv) == 0 || errno != EACCES) {
          return 11;
        }
      }
    }
    long fd = ::syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 12;
    ::close(static_cast<int>(fd));
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 13;
    return kExitBodyReturned;
  });
  EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
  // Control: without the layer the kernel makes an IP socket, also from a
  // register whose upper half is set.
  ChildResult control = RunChild([](int) {
    long fd = ::syscall(SYS_socket, (1L << 32) | AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    return fd >= 0 ? kExitBodyReturned : 1;
  });
  EXPECT_TRUE(control.exited && control.code == kExitBodyReturned) << control.Describe();
}

// The applier layer, through the library calls a bug or an attacker in the
// applier would use: fork (glibc: clone), posix_spawn (clone3, then clone),
// a thread (clone3, then clone), and execve of a real program each fail with
// the layer's errno, and the process goes on. Control: without the layer
// each of them works.
int TryToStartSomething(bool expect_refused) {
  errno = 0;
  pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  if (expect_refused != (pid < 0 && errno == EPERM)) return 20;
  if (pid > 0) ::waitpid(pid, nullptr, 0);
  char arg0[] = "true";
  char* argv[] = {arg0, nullptr};
  char* envp[] = {nullptr};
  pid_t spawned = -1;
  int rc = ::posix_spawn(&spawned, "/bin/true", nullptr, nullptr, argv, envp);
  if (expect_refused != (rc != 0)) return 21;
  if (rc == 0) ::waitpid(spawned, nullptr, 0);
  pthread_t t;
  rc = ::pthread_create(
      &t, nullptr, [](void*) -> void* { return nullptr; }, nullptr);
  if (expect_refused != (rc != 0)) return 22;
  if (rc == 0) ::pthread_join(t, nullptr);
  if (expect_refused) {
    errno = 0;
    ::execve("/bin/true", argv, envp);
    if (errno != EPERM) return 23;
    errno = 0;
    ::syscall(SYS_execveat, AT_FDCWD, "/bin/true", argv, envp, 0);
    if (errno != EPERM) return 24;
  }
  return kExitBodyReturned;
}

TEST(SeccompArgRuleDeathTest, ApplierLayerStartsNoProcessNoThreadNoProgram) {
  ChildResult r = RunChild([](int) {
    InstallPolicyOrExit(ApplierPolicy());
    return TryToStartSomething(true);
  });
  EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
  ChildResult control = RunChild([](int) { return TryToStartSomething(false); });
  EXPECT_TRUE(control.exited && control.code == kExitBodyReturned) << control.Describe();
}

// #14 review: the applier layer also keeps the shared arena's pages locked
// (no MADV_REMOVE/COLD/PAGEOUT), never makes memory writable again (the
// worker's half is read-only in the applier), and opens no IP or netlink
// socket (Unix sockets stay for NSS). The same calls succeed without it.
int TryToUnlockRemapOrConnect(bool expect_refused) {
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  void* m = ::mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) return 30;
  auto refused = [&](long rc) { return expect_refused ? (rc == -1 && errno == EPERM) : rc == 0; };
  for (int advice : {MADV_REMOVE, MADV_COLD, MADV_PAGEOUT}) {
    errno = 0;
    if (!refused(::madvise(m, page, advice))) return 31;
  }
  if (::madvise(m, page, MADV_DONTNEED) != 0) return 32;  // malloc's own advice stays
  if (::mprotect(m, page, PROT_READ) != 0) return 33;
  errno = 0;
  if (!refused(::mprotect(m, page, PROT_READ | PROT_WRITE))) return 34;
  errno = 0;
  if (!refused(::syscall(SYS_pkey_mprotect, m, page, PROT_READ | PROT_WRITE, -1))) return 35;
  for (int family : {AF_INET, AF_INET6, AF_NETLINK}) {
    errno = 0;
    const int fd = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (expect_refused ? !(fd < 0 && errno == EPERM) : fd < 0) return 36;
    if (fd >= 0) ::close(fd);
  }
  const int unix_fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (unix_fd < 0) return 37;
  ::close(unix_fd);
  return kExitBodyReturned;
}

TEST(SeccompArgRuleDeathTest, ApplierLayerKeepsTheArenaLockedAndReadOnlyAndOpensNoIpSocket) {
  ChildResult r = RunChild([](int) {
    InstallPolicyOrExit(ApplierPolicy());
    return TryToUnlockRemapOrConnect(true);
  });
  EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
  ChildResult control = RunChild([](int) { return TryToUnlockRemapOrConnect(false); });
  EXPECT_TRUE(control.exited && control.code == kExitBodyReturned) << control.Describe();
}

TEST(SeccompArgRuleDeathTest, Worker) {
  std::vector<ArgCase> cases = WorkerCases();
  ExpectCoverage(WorkerPolicy(), cases, {});
  RunArgCases(WorkerPolicy(), cases, 0);
}

// std::thread → pthread_create → clone3 (ENOSYS by policy) → clone with
// CLONE_THREAD: threads work, and the fallback path is exercised.
TEST(SeccompArgRuleDeathTest, BrokerThreadsWork) {
  ChildResult r = RunChild([](int) {
    InstallPolicyOrExit(BrokerPolicy());
    int value = 0;
    std::thread t([&value] { value = 7; });
    t.join();
    return value == 7 ? kExitBodyReturned : 1;
  });
  EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
}

TEST(SeccompArgRuleDeathTest, BrokerMayKillOnlyItsWorker) {
  // A stand-in worker the test owns.
  pid_t worker = ::fork();
  if (worker == 0) {
    ::pause();
    ::_exit(0);
  }
  ASSERT_GT(worker, 0);
  CompileOptions options;
  options.peer_pid = worker;
  ChildResult ok = RunChild([&](int) {
    InstallPolicyOrExit(BrokerPolicy(), options);
    return ::kill(worker, 0) == 0 ? kExitBodyReturned : 1;
  });
  EXPECT_TRUE(ok.exited && ok.code == kExitBodyReturned) << ok.Describe();
  ChildResult other = RunChild([&](int) {
    InstallPolicyOrExit(BrokerPolicy(), options);
    ::kill(::getppid(), 0);
    return kExitBodyReturned;
  });
  EXPECT_TRUE(other.KilledBySigsys()) << other.Describe();
  ::kill(worker, SIGKILL);
  ::waitpid(worker, nullptr, 0);
}

// googletest's own death-test machinery, threadsafe style, for the most
// important walls.
[[noreturn]] void BrokerExecve() {
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  InstallPolicyOrExit(BrokerPolicy());
  char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
  ::execve("/bin/true", argv, nullptr);
  ::_exit(0);
}

[[noreturn]] void WorkerPtrace() {
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  InstallPolicyOrExit(WorkerPolicy());
  ::syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, 1, 0, 0);
  ::_exit(0);
}

TEST(SeccompGtestDeathTest, BrokerExecveKillsWithSigsys) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(BrokerExecve(), ::testing::KilledBySignal(SIGSYS), "");
}

TEST(SeccompGtestDeathTest, WorkerPtraceKillsWithSigsys) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(WorkerPtrace(), ::testing::KilledBySignal(SIGSYS), "");
}

}  // namespace
}  // namespace vigo::sandbox
