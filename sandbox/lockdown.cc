#include "sandbox/lockdown.h"

#include <dirent.h>
#include <errno.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>

#include "common/strings.h"
#include "sandbox/landlock.h"
#include "sandbox/namespaces.h"
#include "sandbox/secret_buffer.h"
#include "sandbox/syscall_status.h"

namespace vigo::sandbox {
namespace {

std::mutex g_mu;
LockdownResult g_last;  // guarded by g_mu
std::atomic<bool> g_ran{false};

absl::StatusOr<int> CountThreads() {
  DIR* dir = ::opendir("/proc/self/task");
  if (dir == nullptr) return ErrnoStatus(errno, "opendir", "/proc/self/task");
  int n = 0;
  while (struct dirent* e = ::readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(dir);
  return n;
}

void LoudStderr(const std::string& line) {
  std::string msg = StrCat("vigo-sandbox: WARNING: ", line, "\n");
  // Best effort: stderr may be closed; the caller also gets the list.
  ssize_t ignored = ::write(2, msg.data(), msg.size());
  (void)ignored;
}

// Runs the steps in order, honouring the opt-outs.
class StepRunner {
 public:
  StepRunner(const char* process, const std::set<std::string>& skip) : skip_(skip) {
    result_.process = process;
  }

  absl::Status ValidateSkips(std::initializer_list<const char*> known) const {
    for (const std::string& s : skip_) {
      bool ok = false;
      for (const char* k : known) ok = ok || s == k;
      if (!ok) {
        return absl::InvalidArgumentError(
            StrCat("lockdown ", result_.process, ": unknown step in insecure_skip: ", s));
      }
    }
    return absl::OkStatus();
  }

  absl::Status Run(const char* step, const std::function<absl::Status()>& fn) {
    if (skip_.count(step) != 0) {
      result_.skipped_steps.push_back(step);
      LoudStderr(StrCat("insecure: lockdown of ", result_.process, " skips step '", step,
                        "' (opted out)"));
      return absl::OkStatus();
    }
    absl::Status st = fn();
    if (!st.ok()) {
      return absl::Status(st.code(), StrCat("lockdown ", result_.process, " step ", step, ": ",
                                            std::string(st.message())));
    }
    return absl::OkStatus();
  }

  const LockdownResult& result() const { return result_; }

 private:
  const std::set<std::string>& skip_;
  LockdownResult result_;
};

absl::Status Begin(const char* process) {
  if (g_ran.exchange(true)) {
    return absl::FailedPreconditionError(
        StrCat("lockdown ", process, ": already ran in this process"));
  }
  auto threads = CountThreads();
  if (!threads.ok()) return threads.status();
  if (*threads != 1) {
    return absl::FailedPreconditionError(
        StrCat("lockdown ", process, ": must run single-threaded, found ", *threads,
               " threads (capabilities and no_new_privs are per thread)"));
  }
  // Probed (and cached) now: the broker's filter kills landlock_create_ruleset,
  // and the attestation reports the ABI.
  (void)LandlockAbi();
  return absl::OkStatus();
}

void Record(const LockdownResult& r) {
  std::lock_guard<std::mutex> lock(g_mu);
  g_last = r;
}

absl::Status SetCoreLimitZero() {
  struct rlimit zero = {0, 0};
  if (::setrlimit(RLIMIT_CORE, &zero) != 0) return ErrnoStatus(errno, "setrlimit(RLIMIT_CORE)");
  struct rlimit back;
  if (::getrlimit(RLIMIT_CORE, &back) != 0 || back.rlim_cur != 0 || back.rlim_max != 0) {
    return absl::InternalError("RLIMIT_CORE read back is not 0");
  }
  return absl::OkStatus();
}

absl::Status SetNotDumpable() {
  if (::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
    return ErrnoStatus(errno, "prctl(PR_SET_DUMPABLE)");
  if (::prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return absl::InternalError("PR_GET_DUMPABLE read back is not 0");
  }
  return absl::OkStatus();
}

// With "arena" opted out the arena is still created now (a lazy creation
// after seccomp would die: memfd_secret/mlock are not in the tables), but it
// may run on unlocked pages (ArenaOptions::insecure_allow_unlocked).
absl::Status InitArenaAllowingUnlocked(const std::set<std::string>& skip) {
  if (skip.count(kStepArena) == 0) return absl::OkStatus();
  return InitArena();
}

absl::Status InitLockedArena() {
  if (auto st = InitArena(); !st.ok()) return st;
  ArenaInfo info = GetArenaInfo();
  if (!info.initialized || !info.locked || !info.dontdump) {
    return absl::FailedPreconditionError(
        StrCat("secret arena is not locked and excluded from dumps (backing ", info.backing, ")"));
  }
  return absl::OkStatus();
}

absl::Status LoadPolicy(const Policy& policy, const CompileOptions& options) {
  auto filter = CompilePolicy(policy, options);
  if (!filter.ok()) return filter.status();
  return filter->Load();
}

}  // namespace

absl::StatusOr<LockdownResult> LockDownBroker(const BrokerLockdownSpec& spec) {
  StepRunner run("broker", spec.insecure_skip);
  if (auto st = run.ValidateSkips({kStepCloseFds, kStepRlimits, kStepDumpable, kStepArena,
                                   kStepCapabilities, kStepNoNewPrivs, kStepSeccomp});
      !st.ok()) {
    return st;
  }
  if (auto st = Begin("broker"); !st.ok()) return st;

  // 1. Nothing we did not mean to keep survives into the locked process.
  if (auto st = run.Run(kStepCloseFds, [&] { return CloseFdsExcept(spec.keep_fds); }); !st.ok()) {
    return st;
  }
  // 2. (no mount namespace: the broker needs its own credential dir.)
  // 3.-4. No core file, no ptrace or /proc/<pid>/mem by the same uid.
  if (auto st = run.Run(kStepRlimits, SetCoreLimitZero); !st.ok()) return st;
  if (auto st = run.Run(kStepDumpable, SetNotDumpable); !st.ok()) return st;
  // 5. Lock the arena while CAP_IPC_LOCK is still held.
  if (auto st = run.Run(kStepArena, InitLockedArena); !st.ok()) return st;
  if (auto st = InitArenaAllowingUnlocked(spec.insecure_skip); !st.ok()) return st;
  // 6. The broker keeps no capability at all.
  if (auto st =
          run.Run(kStepCapabilities, [] { return DropCapabilitiesExcept(std::span<const int>()); });
      !st.ok()) {
    return st;
  }
  // 7.
  if (auto st = run.Run(kStepNoNewPrivs, SetNoNewPrivs); !st.ok()) return st;
  // 8. Last: the filter forbids most of what the steps above needed.
  CompileOptions options;
  options.self_pid = ::getpid();
  options.peer_pid = spec.worker_pid;
  if (auto st = run.Run(kStepSeccomp, [&] { return LoadPolicy(BrokerPolicy(), options); });
      !st.ok()) {
    return st;
  }
  Record(run.result());
  return run.result();
}

absl::StatusOr<LockdownResult> LockDownWorker(const WorkerLockdownSpec& spec) {
  StepRunner run("worker", spec.insecure_skip);
  if (auto st = run.ValidateSkips({kStepCloseFds, kStepMountNamespace, kStepPidNamespace,
                                   kStepRlimits, kStepDumpable, kStepArena, kStepCapabilities,
                                   kStepNoNewPrivs, kStepSeccomp, kStepLandlock});
      !st.ok()) {
    return st;
  }
  if (auto st = Begin("worker"); !st.ok()) return st;

  // 1.
  if (auto st = run.Run(kStepCloseFds, [&] { return CloseFdsExcept(spec.keep_fds); }); !st.ok()) {
    return st;
  }
  // 2. Hide the key and the broker's state while CAP_SYS_ADMIN is held.
  if (auto st = run.Run(kStepMountNamespace,
                        [&]() -> absl::Status {
                          if (auto s = EnterPrivateMountNamespace(); !s.ok()) return s;
                          if (auto s = MountMinimalDev(); !s.ok()) return s;
                          return HidePaths(spec.hidden_paths);
                        });
      !st.ok()) {
    return st;
  }
  // 2b. PID 1 of its own PID namespace (the broker spawned it with
  //     CLONE_NEWPID) with its own procfs: host processes, and their
  //     /proc/<pid>/root, cwd and fd links, do not exist for the worker or
  //     anything it runs; when the worker dies every process it started dies.
  if (auto st = run.Run(kStepPidNamespace, MountOwnProc); !st.ok()) return st;
  // 3.-5.
  if (auto st = run.Run(kStepRlimits, SetCoreLimitZero); !st.ok()) return st;
  if (auto st = run.Run(kStepDumpable, SetNotDumpable); !st.ok()) return st;
  if (auto st = run.Run(kStepArena, InitLockedArena); !st.ok()) return st;
  if (auto st = InitArenaAllowingUnlocked(spec.insecure_skip); !st.ok()) return st;
  // 6. Optional uid switch, then only the file-management capabilities.
  //    A uid change resets the dumpable flag, so it is asserted again.
  if (auto st = run.Run(kStepCapabilities,
                        [&]() -> absl::Status {
                          if (spec.run_as.has_value()) {
                            if (auto s = SwitchUserKeepingCapabilities(*spec.run_as,
                                                                       kWorkerFileCapabilities);
                                !s.ok()) {
                              return s;
                            }
                          }
                          if (auto s = DropCapabilitiesExcept(kWorkerFileCapabilities); !s.ok()) {
                            return s;
                          }
                          if (spec.insecure_skip.count(kStepDumpable) == 0) return SetNotDumpable();
                          return absl::OkStatus();
                        });
      !st.ok()) {
    return st;
  }
  // 7.-8.
  if (auto st = run.Run(kStepNoNewPrivs, SetNoNewPrivs); !st.ok()) return st;
  CompileOptions options;
  options.self_pid = ::getpid();
  if (auto st = run.Run(kStepSeccomp, [&] { return LoadPolicy(WorkerPolicy(), options); });
      !st.ok()) {
    return st;
  }
  // 9. Applied per bundle by the applier; a kernel without Landlock is not
  //    an error here (the attestation reports landlock_abi 0, strict refuses).
  if (auto st = run.Run(kStepLandlock,
                        [] {
                          (void)LandlockAbi();
                          return absl::OkStatus();
                        });
      !st.ok()) {
    return st;
  }
  Record(run.result());
  return run.result();
}

absl::StatusOr<ExecChildSeal> PrepareExecChildSeal() {
  CompileOptions options;
  options.tsync = false;
  auto filter = CompilePolicy(ExecChildPolicy(), options);
  if (!filter.ok()) return filter.status();
  auto bpf = filter->ExportBpf();
  if (!bpf.ok()) return bpf.status();
  auto no_network_filter = CompilePolicy(ExecNoNetworkPolicy(), options);
  if (!no_network_filter.ok()) return no_network_filter.status();
  auto no_network = no_network_filter->ExportBpf();
  if (!no_network.ok()) return no_network.status();
  return ExecChildSeal{std::move(*bpf), std::move(*no_network)};
}

absl::StatusOr<BpfProgram> PrepareApplierFilter() {
  CompileOptions options;
  options.tsync = false;  // the applier is single-threaded
  auto filter = CompilePolicy(ApplierPolicy(), options);
  if (!filter.ok()) return filter.status();
  return filter->ExportBpf();
}

int LoadApplierFilterAsyncSignalSafe(const BpfProgram& filter) {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  return LoadBpfAsyncSignalSafe(filter);
}

int LockDownExecChildAsyncSignalSafe(const ExecChildSeal& seal,
                                     const ExecChildConfinement& confine) {
  struct rlimit zero = {0, 0};
  if (::setrlimit(RLIMIT_CORE, &zero) != 0) return errno;
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return errno;
  if (confine.landlock_ruleset_fd >= 0) {
    if (int err = LandlockRestrictSelfAsyncSignalSafe(confine.landlock_ruleset_fd); err != 0) {
      return err;
    }
  }
  if (confine.deny_network) {
    if (int err = LoadBpfAsyncSignalSafe(seal.no_network); err != 0) return err;
  }
  return LoadBpfAsyncSignalSafe(seal.bpf);
}

LockdownResult LastLockdown() {
  std::lock_guard<std::mutex> lock(g_mu);
  return g_last;
}

absl::Status HardenUnsandboxedProcess() {
  absl::Status st = SetCoreLimitZero();
  if (!st.ok()) return st;
  return SetNotDumpable();
}

}  // namespace vigo::sandbox
