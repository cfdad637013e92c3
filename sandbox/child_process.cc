#include "sandbox/child_process.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/strings.h"
#include "sandbox/syscall_status.h"

namespace vigo::sandbox {
namespace {

// What the child reports through the error pipe when it cannot exec.
enum class Stage : int {
  kPdeathsig = 1,
  kParentGone,
  kSetpgid,
  kSetsid,
  kSignals,
  kDupHigh,
  kDup2,
  kCloseFds,
  kChdir,
  kPreExec,
  kExecve,
};

struct ChildError {
  int stage = 0;
  int err = 0;
};

const char* StageName(Stage s) {
  switch (s) {
    case Stage::kPdeathsig:
      return "prctl(PR_SET_PDEATHSIG)";
    case Stage::kParentGone:
      return "parent exited before exec";
    case Stage::kSetpgid:
      return "setpgid";
    case Stage::kSetsid:
      return "setsid";
    case Stage::kSignals:
      return "reset signals";
    case Stage::kDupHigh:
      return "fcntl(F_DUPFD_CLOEXEC)";
    case Stage::kDup2:
      return "dup2";
    case Stage::kCloseFds:
      return "close_range";
    case Stage::kChdir:
      return "chdir";
    case Stage::kPreExec:
      return "pre-exec hook";
    case Stage::kExecve:
      return "execve";
  }
  return "spawn";
}

bool HasNul(const std::string& s) { return s.find('\0') != std::string::npos; }

// Only async-signal-safe calls from here until exec or _exit.
[[noreturn]] void ChildFail(int err_fd, Stage stage, int err) {
  ChildError e{static_cast<int>(stage), err};
  ssize_t unused = ::write(err_fd, &e, sizeof(e));
  (void)unused;
  ::_exit(127);
}

ExitInfo DecodeStatus(int status) {
  ExitInfo info;
  if (WIFEXITED(status)) {
    info.exited = true;
    info.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    info.signaled = true;
    info.signal = WTERMSIG(status);
  }
  return info;
}

}  // namespace

absl::StatusOr<ChildProcess> ChildProcess::Spawn(const SpawnOptions& options) {
  if (options.argv.empty() || options.argv[0].empty()) {
    return absl::InvalidArgumentError("spawn: argv is empty");
  }
  for (const std::string& a : options.argv) {
    if (HasNul(a)) {
      return absl::InvalidArgumentError(
          StrCat("spawn ", options.argv[0], ": an argument contains a NUL byte"));
    }
  }
  for (const std::string& e : options.env) {
    if (HasNul(e) || e.find('=') == std::string::npos || e.front() == '=') {
      return absl::InvalidArgumentError(
          StrCat("spawn ", options.argv[0], ": environment entries must be NAME=VALUE"));
    }
  }
  if (options.cwd && HasNul(*options.cwd)) {
    return absl::InvalidArgumentError("spawn: cwd contains a NUL byte");
  }
  std::set<int> child_fds;
  int highest = 2;
  for (const auto& [child_fd, parent_fd] : options.fd_map) {
    if (child_fd < 0 || parent_fd < 0) {
      return absl::InvalidArgumentError("spawn: fd_map has a negative fd");
    }
    if (!child_fds.insert(child_fd).second) {
      return absl::InvalidArgumentError(
          StrCat("spawn: fd_map maps child fd ", child_fd, " more than once"));
    }
    if (::fcntl(parent_fd, F_GETFD) < 0) {
      return ErrnoStatus(errno, "spawn: fd_map parent fd", std::to_string(parent_fd));
    }
    highest = std::max({highest, child_fd, parent_fd});
  }

  // Everything the child needs is built before fork: after fork the child may
  // not allocate (another thread may have held the malloc lock).
  std::vector<char*> argv;
  argv.reserve(options.argv.size() + 1);
  for (const std::string& a : options.argv) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  envp.reserve(options.env.size() + 1);
  for (const std::string& e : options.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  const char* cwd = options.cwd ? options.cwd->c_str() : nullptr;

  struct Move {
    int child_fd;
    int parent_fd;
    int high_fd;
  };
  std::vector<Move> moves;
  for (const auto& [child_fd, parent_fd] : options.fd_map)
    moves.push_back({child_fd, parent_fd, -1});
  // Keep-open set for the close step, sorted; stdio is always kept (it is
  // either mapped or /dev/null).
  std::vector<int> keep(child_fds.begin(), child_fds.end());
  const int min_high = highest + 1;

  UniqueFd dev_null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!dev_null) return ErrnoStatus(errno, "open", "/dev/null");
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  UniqueFd err_read(pipe_fds[0]);
  UniqueFd err_write(pipe_fds[1]);
  const pid_t parent_pid = ::getpid();
  const bool die_with_parent = options.die_with_parent;
  const bool new_group = options.new_process_group;
  const bool new_session = options.new_session;
  int (*const pre_exec)(void*) = options.pre_exec;
  void* const pre_exec_arg = options.pre_exec_arg;

  // clone without CLONE_VM is fork (glibc caches no pid since 2.25).
  const pid_t pid = options.new_pid_namespace
                        ? static_cast<pid_t>(::syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0))
                        : ::fork();
  if (pid < 0) {
    return ErrnoStatus(errno, options.new_pid_namespace ? "clone(CLONE_NEWPID)" : "fork");
  }
  const bool own_pid_ns = options.new_pid_namespace;
  if (pid == 0) {
    int err_fd = err_write.get();
    if (die_with_parent) {
      if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) ChildFail(err_fd, Stage::kPdeathsig, errno);
      // In a new PID namespace the parent is outside it: getppid() is 0.
      if (!own_pid_ns && ::getppid() != parent_pid) ChildFail(err_fd, Stage::kParentGone, ESRCH);
    }
    if (new_session) {
      if (::setsid() < 0) ChildFail(err_fd, Stage::kSetsid, errno);
    } else if (new_group && ::setpgid(0, 0) != 0) {
      ChildFail(err_fd, Stage::kSetpgid, errno);
    }
    // Handlers reset on exec, but ignored signals and the mask are inherited.
    sigset_t all;
    sigfillset(&all);
    if (::sigprocmask(SIG_UNBLOCK, &all, nullptr) != 0) ChildFail(err_fd, Stage::kSignals, errno);
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sig == SIGKILL || sig == SIGSTOP) continue;
      ::signal(sig, SIG_DFL);  // fails harmlessly for the RT signals glibc reserves
    }
    // Move the error pipe and every source fd above all target fds first, so
    // no dup2 below overwrites a source that is still needed.
    int e = ::fcntl(err_fd, F_DUPFD_CLOEXEC, min_high);
    if (e < 0) ChildFail(err_fd, Stage::kDupHigh, errno);
    err_fd = e;
    const int null_high = ::fcntl(dev_null.get(), F_DUPFD_CLOEXEC, min_high);
    if (null_high < 0) ChildFail(err_fd, Stage::kDupHigh, errno);
    for (Move& m : moves) {
      m.high_fd = ::fcntl(m.parent_fd, F_DUPFD_CLOEXEC, min_high);
      if (m.high_fd < 0) ChildFail(err_fd, Stage::kDupHigh, errno);
    }
    for (const Move& m : moves) {
      if (::dup2(m.high_fd, m.child_fd) < 0) ChildFail(err_fd, Stage::kDup2, errno);
    }
    for (int fd = 0; fd <= 2; ++fd) {
      if (!std::binary_search(keep.begin(), keep.end(), fd) && ::dup2(null_high, fd) < 0) {
        ChildFail(err_fd, Stage::kDup2, errno);
      }
    }
    // Everything else is closed at exec: mark it close-on-exec (the error
    // pipe must stay usable until then, and already is CLOEXEC).
    unsigned lo = 3;
    bool ok = true;
    for (int k : keep) {
      if (k < 3) continue;
      if (static_cast<unsigned>(k) > lo &&
          ::syscall(SYS_close_range, lo, static_cast<unsigned>(k) - 1, CLOSE_RANGE_CLOEXEC) != 0) {
        ok = false;
        break;
      }
      lo = static_cast<unsigned>(k) + 1;
    }
    if (ok && ::syscall(SYS_close_range, lo, ~0U, CLOSE_RANGE_CLOEXEC) != 0) ok = false;
    if (!ok) {
      // Kernel without close_range(CLOEXEC): mark fds one by one.
      const long max_fd = ::sysconf(_SC_OPEN_MAX);
      for (long fd = 3; fd < (max_fd > 0 ? max_fd : 65536); ++fd) {
        if (std::binary_search(keep.begin(), keep.end(), static_cast<int>(fd))) continue;
        int flags = ::fcntl(static_cast<int>(fd), F_GETFD);
        if (flags >= 0) ::fcntl(static_cast<int>(fd), F_SETFD, flags | FD_CLOEXEC);
      }
    }
    if (cwd != nullptr && ::chdir(cwd) != 0) ChildFail(err_fd, Stage::kChdir, errno);
    if (pre_exec != nullptr) {
      errno = 0;
      if (pre_exec(pre_exec_arg) != 0)
        ChildFail(err_fd, Stage::kPreExec, errno != 0 ? errno : EPERM);
    }
    ::execve(argv[0], argv.data(), envp.data());
    ChildFail(err_fd, Stage::kExecve, errno);
  }

  // Parent. Set the group from this side too so Kill() works even if we run
  // before the child's setpgid (EACCES after exec is harmless). Not for a new
  // session: a group leader cannot setsid, and Spawn returns only after the
  // exec (the error pipe closes), by when the child's setsid has run.
  if (new_group && !new_session) ::setpgid(pid, pid);
  ChildProcess child(pid, new_group);
  err_write.reset();
  ChildError ce;
  ssize_t n;
  do {
    n = ::read(err_read.get(), &ce, sizeof(ce));
  } while (n < 0 && errno == EINTR);
  if (n == static_cast<ssize_t>(sizeof(ce))) {
    (void)child.Wait();  // reap the failed child
    const Stage stage = static_cast<Stage>(ce.stage);
    std::string subject = options.argv[0];
    if (stage == Stage::kChdir) subject = *options.cwd;
    return ErrnoStatus(ce.err, StrCat("spawn: ", StageName(stage)), subject);
  }
  if (n < 0) {
    const int err = errno;
    return ErrnoStatus(err, "spawn: read error pipe", options.argv[0]);
  }
  return child;  // n == 0: exec succeeded (the pipe closed on exec)
}

ChildProcess& ChildProcess::operator=(ChildProcess&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0) {
      Kill(SIGKILL);
      (void)Wait();
    }
    pid_ = std::exchange(o.pid_, -1);
    own_group_ = std::exchange(o.own_group_, false);
  }
  return *this;
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    Kill(SIGKILL);
    (void)Wait();
  }
}

absl::StatusOr<ExitInfo> ChildProcess::Wait() {
  if (pid_ <= 0) return absl::FailedPreconditionError("wait: no child process");
  int status = 0;
  pid_t r;
  do {
    r = ::waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  const pid_t pid = std::exchange(pid_, -1);
  if (r < 0) return ErrnoStatus(errno, "waitpid", std::to_string(pid));
  return DecodeStatus(status);
}

absl::StatusOr<ExitInfo> ChildProcess::WaitFor(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("wait: no child process");
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + timeout;
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return DecodeStatus(status);
    }
    if (r < 0 && errno != EINTR) {
      const int err = errno;
      const pid_t pid = std::exchange(pid_, -1);
      return ErrnoStatus(err, "waitpid", std::to_string(pid));
    }
    const Clock::time_point now = Clock::now();
    if (now >= deadline) break;
    // Round up, so the loop never gives up before the deadline.
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    if (pidfd) {
      struct pollfd p = {pidfd.get(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1 << 30)));
    } else {
      // No pidfd (old kernel or seccomp): poll with a short sleep.
      std::this_thread::sleep_for(std::min(left, std::chrono::milliseconds(5)));
    }
  }
  Kill(SIGKILL);
  absl::StatusOr<ExitInfo> info = Wait();
  if (!info.ok()) return info;
  info->timed_out = true;
  return info;
}

absl::StatusOr<ExitInfo> ChildProcess::WaitPolling(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("wait: no child process");
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return DecodeStatus(status);
    }
    if (r < 0 && errno != EINTR) {
      const int err = errno;
      const pid_t pid = std::exchange(pid_, -1);
      return ErrnoStatus(err, "waitpid", std::to_string(pid));
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  Kill(SIGKILL);
  absl::StatusOr<ExitInfo> info = Wait();
  if (!info.ok()) return info;
  info->timed_out = true;
  return info;
}

void ChildProcess::Kill(int sig) {
  if (pid_ <= 0) return;
  if (own_group_ && ::kill(-pid_, sig) == 0) return;
  ::kill(pid_, sig);
}

ChildProcess ChildProcess::AdoptForTest(pid_t pid) { return ChildProcess(pid, false); }

}  // namespace vigo::sandbox
