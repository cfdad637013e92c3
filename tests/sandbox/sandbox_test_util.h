// Shared helpers for the sandbox tests: run a function in a forked child
// (optionally under a real policy) and observe how it ends.
#ifndef VIGO_TESTS_SANDBOX_SANDBOX_TEST_UTIL_H_
#define VIGO_TESTS_SANDBOX_SANDBOX_TEST_UTIL_H_

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <string>

#include "sandbox/seccomp_policy.h"

namespace vigo::sandbox::testing {

// Exit codes a child uses to say "the harness itself failed".
inline constexpr int kExitCompileFailed = 90;
inline constexpr int kExitLoadFailed = 91;
inline constexpr int kExitBodyReturned = 42;

struct ChildResult {
  bool exited = false;
  int code = -1;
  bool signaled = false;
  int sig = 0;
  std::string out;  // what the child wrote to its out fd

  bool KilledBySigsys() const { return signaled && sig == SIGSYS; }
  std::string Describe() const {
    if (exited) return "exited " + std::to_string(code) + (out.empty() ? "" : " out=" + out);
    if (signaled) return std::string("killed by ") + strsignal(sig);
    return "unknown";
  }
};

inline constexpr int kExitNoScratchStdin = 92;

// Forks. The child gets an empty anonymous file of its own on stdin, no core
// dumps (not dumpable), a watchdog alarm, and runs body(out_fd); its return
// value is the exit code.
//
// Why not /dev/null: the probes call syscalls with all-zero arguments, and
// fd 0 is then the target: fchmod(0, 0) on an inherited /dev/null set the
// HOST's /dev/null to mode 0000 and broke every unprivileged process on the
// machine. A memfd is owned by this child alone, reads as EOF and swallows
// writes like /dev/null, and whatever a probe does to it dies with the child.
//
// With `own_pid_namespace` the child is PID 1 of a new PID namespace, as the
// broker starts the real worker (LockDownWorker's pid_namespace step needs it).
inline ChildResult RunChild(const std::function<int(int out_fd)>& body, int timeout_s = 20,
                            bool own_pid_namespace = false) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return {};
  pid_t pid = own_pid_namespace
                  ? static_cast<pid_t>(::syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0))
                  : ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    int scratch = ::memfd_create("vigo-test-stdin", 0);
    if (scratch < 0 || ::dup2(scratch, 0) != 0) ::_exit(kExitNoScratchStdin);
    if (scratch > 0) ::close(scratch);
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // a SIGSYS death must not write a core
    ::alarm(static_cast<unsigned>(timeout_s));
    ::_exit(body(fds[1]));
  }
  ::close(fds[1]);
  ChildResult r;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    r.out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.exited = WIFEXITED(status);
  r.code = r.exited ? WEXITSTATUS(status) : -1;
  r.signaled = WIFSIGNALED(status);
  r.sig = r.signaled ? WTERMSIG(status) : 0;
  return r;
}

// RunChild for code that runs LockDownWorker: PID 1 of its own namespace.
inline ChildResult RunWorkerChild(const std::function<int(int out_fd)>& body, int timeout_s = 20) {
  return RunChild(body, timeout_s, /*own_pid_namespace=*/true);
}

// In a child: no_new_privs, then compile and load the real policy.
inline void InstallPolicyOrExit(const Policy& policy, const CompileOptions& options = {}) {
  ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  auto filter = CompilePolicy(policy, options);
  if (!filter.ok()) ::_exit(kExitCompileFailed);
  if (!filter->Load().ok()) ::_exit(kExitLoadFailed);
}

inline void WriteAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    ssize_t n = ::write(fd, s.data() + off, s.size() - off);
    if (n <= 0) return;
    off += static_cast<size_t>(n);
  }
}

}  // namespace vigo::sandbox::testing

#endif  // VIGO_TESTS_SANDBOX_SANDBOX_TEST_UTIL_H_
