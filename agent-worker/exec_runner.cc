#include "agent-worker/exec_runner.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/child_process.h"
#include "sandbox/syscall_status.h"
#include "sandbox/unique_fd.h"

namespace vigo::worker {
namespace {

using sandbox::ErrnoStatus;
using sandbox::SecretBuffer;
using sandbox::UniqueFd;

absl::StatusOr<std::string> FindExecutable(const std::string& name) {
  if (name.empty()) return absl::InvalidArgumentError("exec command is empty");
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) != 0) return ErrnoStatus(errno, "exec", name);
    return name;
  }
  for (const char* dir : {"/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
    std::string p = StrCat(dir, "/", name);
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return absl::NotFoundError(StrCat("command '", name, "' not found in PATH"));
}

absl::Status MakePipe(UniqueFd* read_end, UniqueFd* write_end) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe2");
  *read_end = UniqueFd(fds[0]);
  *write_end = UniqueFd(fds[1]);
  return absl::OkStatus();
}

// write() to a pipe whose reader is gone raises SIGPIPE; block it for the
// call and swallow a pending one, so the disposition children inherit stays
// the default.
ssize_t WriteNoSigpipe(int fd, const uint8_t* data, size_t len) {
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  ssize_t n = ::write(fd, data, len);
  int err = errno;
  if (n < 0 && err == EPIPE) {
    struct timespec zero = {0, 0};
    sigtimedwait(&pipe_set, nullptr, &zero);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = err;
  return n;
}

// On a timeout the process group is not enough: a command that called setsid
// (or setpgid) left it and would outlive the run, still holding the output
// pipe. The worker is PID 1 of its own PID namespace (lockdown step
// pid_namespace), and commands run one at a time, so every other process in
// the namespace is this command's or an orphan of an earlier one — except
// the bundle's applier (agent-worker/applier.h), which waits for this
// command's result. Without an applier kill(-1) from PID 1 reaches exactly
// the others; with one, its own procfs is swept instead: every process but
// PID 1 and the applier is killed, and zombies reparented to PID 1 are
// reaped by pid (never waitpid(-1), which could take the applier's status),
// until none is left. Without the namespace (opted out) only the group is
// killed.
std::vector<pid_t> OtherProcesses(pid_t spare) {
  std::vector<pid_t> out;
  DIR* d = ::opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = ::readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || pid <= 1 || pid == spare) continue;
    out.push_back(static_cast<pid_t>(pid));
  }
  ::closedir(d);
  return out;
}

void KillEveryDescendant(pid_t spare) {
  if (::getpid() != 1) return;
  if (spare <= 0) {
    ::kill(-1, SIGKILL);
    while (true) {
      pid_t r = ::waitpid(-1, nullptr, 0);
      if (r > 0) continue;
      if (r < 0 && errno == EINTR) continue;
      break;  // ECHILD: nothing left
    }
    return;
  }
  // Bounded: each round kills everything visible; SIGKILL cannot be caught,
  // so a forking command loses the race within a few rounds.
  for (int round = 0; round < 1000; ++round) {
    std::vector<pid_t> others = OtherProcesses(spare);
    for (pid_t pid : others) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, WNOHANG);  // ours (reparented or direct): reaped
    }
    if (others.empty()) return;
    // Killed processes take a moment to exit, and their children are
    // reparented to PID 1 only then.
    struct timespec ts = {0, 1000000};
    ::nanosleep(&ts, nullptr);
  }
}

// Orphans that exited on their own are reparented to the worker (PID 1):
// reap them so they do not pile up as zombies (by pid when an applier must
// keep its exit status for the worker).
void ReapOrphans(pid_t spare) {
  if (::getpid() != 1) return;
  if (spare <= 0) {
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
    return;
  }
  for (pid_t pid : OtherProcesses(spare)) ::waitpid(pid, nullptr, WNOHANG);
}

// The pre-exec hook: runs in the child between fork and execve, so only
// async-signal-safe code (LockDownExecChildAsyncSignalSafe is raw syscalls).
// ChildProcess reports errno, so the returned error number is put there.
struct ChildLayers {
  const sandbox::ExecChildSeal* seal;
  sandbox::ExecChildConfinement confine;
};

int LoadExecChildSeal(void* arg) {
  const auto* layers = static_cast<const ChildLayers*>(arg);
  int err = sandbox::LockDownExecChildAsyncSignalSafe(*layers->seal, layers->confine);
  if (err == 0) return 0;
  errno = err;
  return -1;
}

}  // namespace

absl::StatusOr<ExecOutcome> RunCommand(const ExecSpec& spec, const SecretBuffer* stdin_data) {
  if (spec.argv.empty()) return absl::InvalidArgumentError("exec command is empty");
  if (spec.exec_child_seal == nullptr) {
    return absl::FailedPreconditionError(
        "exec-child seccomp layer not prepared; command not run");
  }
  VIGO_ASSIGN_OR_RETURN(std::string exe, FindExecutable(spec.argv[0]));

  UniqueFd in_r, in_w, out_r, out_w;
  VIGO_RETURN_IF_ERROR(MakePipe(&in_r, &in_w));
  VIGO_RETURN_IF_ERROR(MakePipe(&out_r, &out_w));

  sandbox::SpawnOptions so;
  so.argv = spec.argv;
  so.argv[0] = exe;
  so.env = spec.env;
  so.cwd = spec.cwd;
  so.fd_map = {{0, in_r.get()}, {1, out_w.get()}, {2, out_w.get()}};
  so.die_with_parent = true;
  so.new_process_group = true;
  // No controlling terminal: a command cannot TIOCSTI into a shell's input.
  so.new_session = true;
  so.pre_exec = &LoadExecChildSeal;
  // Spawn only reads the layers (the hook takes void*); they are never written.
  ChildLayers layers{spec.exec_child_seal, spec.confine};
  so.pre_exec_arg = &layers;
  absl::StatusOr<sandbox::ChildProcess> spawned = sandbox::ChildProcess::Spawn(so);
  if (!spawned.ok()) {
    if (spawned.status().message().find("pre-exec hook") != absl::string_view::npos) {
      const bool confined = spec.confine.landlock_ruleset_fd >= 0 || spec.confine.deny_network;
      return absl::Status(
          spawned.status().code(),
          StrCat(confined ? "exec-child seccomp layer or confinement" : "exec-child seccomp layer",
                 " could not be loaded, command not run (", std::string(spawned.status().message()),
                 ")"));
    }
    return spawned.status();
  }
  sandbox::ChildProcess child = std::move(*spawned);
  in_r.reset();
  out_w.reset();

  ExecOutcome outcome;
  // Output tail: read straight into locked memory; keep the last max bytes.
  const size_t cap = std::max<size_t>(spec.max_output_bytes, 1);
  VIGO_ASSIGN_OR_RETURN(SecretBuffer buf, SecretBuffer::Create(cap * 2));
  size_t used = 0;

  std::span<const uint8_t> in_bytes;
  if (stdin_data != nullptr) in_bytes = stdin_data->Reveal();
  size_t in_off = 0;
  if (in_bytes.empty()) in_w.reset();
  if (in_w) ::fcntl(in_w.get(), F_SETFL, O_NONBLOCK);

  const auto deadline = std::chrono::steady_clock::now() + spec.timeout;
  bool out_open = true;
  while (out_open) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      outcome.timed_out = true;
      break;
    }
    int wait_ms = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count()) + 1;
    struct pollfd pfd[2];
    int n = 0;
    pfd[n++] = {out_r.get(), POLLIN, 0};
    if (in_w) pfd[n++] = {in_w.get(), POLLOUT, 0};
    int rc = ::poll(pfd, static_cast<nfds_t>(n), wait_ms);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "poll");
    }
    if (n == 2 && (pfd[1].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
      ssize_t w = WriteNoSigpipe(in_w.get(), in_bytes.data() + in_off, in_bytes.size() - in_off);
      if (w > 0) in_off += static_cast<size_t>(w);
      if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == in_bytes.size()) {
        in_w.reset();  // EOF for the child (or it stopped reading)
      }
    }
    if ((pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      std::span<uint8_t> b = buf.RevealMutable();
      if (used == b.size()) {
        std::memmove(b.data(), b.data() + cap, cap);
        sandbox::SecureZero(b.data() + cap, cap);
        used = cap;
      }
      ssize_t r = ::read(out_r.get(), b.data() + used, b.size() - used);
      if (r > 0) {
        used += static_cast<size_t>(r);
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        out_open = false;
      }
    }
  }
  in_w.reset();
  out_r.reset();

  absl::StatusOr<sandbox::ExitInfo> exit;
  if (outcome.timed_out) {
    child.Kill(SIGKILL);
    exit = child.Wait();
    KillEveryDescendant(spec.spare_pid);
  } else {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    exit = child.WaitFor(std::max(left, std::chrono::milliseconds(1)));
  }
  ReapOrphans(spec.spare_pid);
  if (!exit.ok()) return exit.status();
  outcome.exited = exit->exited;
  outcome.exit_code = exit->exit_code;
  outcome.signal = exit->signal;
  outcome.timed_out = outcome.timed_out || exit->timed_out;

  // Linearize the tail into a right-sized buffer.
  size_t keep = std::min(used, cap);
  VIGO_ASSIGN_OR_RETURN(outcome.output, SecretBuffer::Create(keep));
  std::span<const uint8_t> b = buf.Reveal();
  if (keep > 0) std::memcpy(outcome.output.RevealMutable().data(), b.data() + used - keep, keep);
  return outcome;
}

}  // namespace vigo::worker
