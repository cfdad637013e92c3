// One linear lockdown function per process.
//
// Broker (agent-broker), once the worker is started and BEFORE any thread
// (gRPC creates threads: create channels after this call):
//
//   BrokerLockdownSpec spec;
//   spec.keep_fds = {0, 1, 2, worker_socket.get(), ca_fd.get()};
//   spec.worker_pid = worker.pid();         // the only pid kill() may target
//   VIGO_ASSIGN_OR_RETURN(LockdownResult r, LockDownBroker(spec));
//   for (const std::string& s : r.skipped_steps) Log(kWarning, "insecure: skipped", {{"step", s}});
//   VIGO_ASSIGN_OR_RETURN(AttestationReport report, CollectAttestation());  // attestation.h
//
// Worker (agent-worker), first thing in main after reading its flags:
//
//   WorkerLockdownSpec spec;
//   spec.keep_fds = {0, 1, 2, kBrokerSocketFd};
//   spec.hidden_paths = {credential_dir, broker_state_dir};
//   spec.run_as = UserSwitch{...};           // optional: --worker-user
//   VIGO_ASSIGN_OR_RETURN(LockdownResult r, LockDownWorker(spec));
//
// Running a command from the worker (fork → exec):
//
//   VIGO_ASSIGN_OR_RETURN(ExecChildSeal seal, PrepareExecChildSeal());  // before fork
//   pid_t pid = fork();
//   if (pid == 0) {
//     // ... dup2 the stdio pipes ...
//     if (LockDownExecChildAsyncSignalSafe(seal) != 0) _exit(127);
//     execve(...);
//   }
//
// The order, fixed here and nowhere else:
//   1. close_fds        everything not in keep_fds (nothing inherited leaks in)
//   2. mount_namespace  worker: own mount ns, a minimal /dev (no block or tty
//                       device), credential/state dirs covered (needs
//                       CAP_SYS_ADMIN, so before the capability drop)
//  2b. pid_namespace    worker: must be PID 1 of its own PID namespace (the
//                       broker spawns it with CLONE_NEWPID); mounts its own
//                       procfs, so host processes do not exist for it
//   3. rlimits          RLIMIT_CORE = 0 (no core file with secrets)
//   4. dumpable         PR_SET_DUMPABLE 0 (no ptrace/proc-mem by same uid)
//   5. arena            InitArena(): lock the secret arena while CAP_IPC_LOCK
//                       and root's memlock limit still apply
//   6. capabilities     optional uid switch (keep-caps), then drop to the keep
//                       set (broker: none; worker: kWorkerFileCapabilities),
//                       bounding and ambient included; dumpable re-asserted
//                       (a uid change resets it)
//   7. no_new_privs     execve can never gain privileges again
//   8. seccomp          last: every step above needs syscalls the filters kill
//   9. landlock         worker: per bundle, in the applier (agent-worker/
//                       applier.h); here only the kernel's ABI is probed and
//                       an opt-out recorded
//
// Failure: every step is checked (most read the state back); the first
// failure returns an error naming the step, and the caller must exit. The
// process is then in a partial state and must not continue.
//
// Opt-out: `insecure_skip` names steps (the names above) to skip on hosts
// that lack a feature. Each skip is written to stderr immediately, returned
// in LockdownResult::skipped_steps for the caller to log and audit, and
// recorded for CollectAttestation(), which reports it; CheckStrict() fails.
// Unknown step names are INVALID_ARGUMENT (a typo must not silently weaken).
// Skipping "arena" still creates the arena during lockdown but no longer
// requires it to be locked: pair it with ArenaOptions::insecure_allow_unlocked
// (--insecure-allow-unlocked-memory). The arena must exist before seccomp:
// memfd_secret and mlock are not in the broker or worker tables.
//
// Thread safety: must run while the process has exactly one thread
// (capabilities and no_new_privs are per-thread); returns FAILED_PRECONDITION
// otherwise. Lockdown may run once per process.
#ifndef VIGO_SANDBOX_LOCKDOWN_H_
#define VIGO_SANDBOX_LOCKDOWN_H_

#include <sys/types.h>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "sandbox/capabilities.h"
#include "sandbox/seccomp_policy.h"

namespace vigo::sandbox {

// Step names, as used in insecure_skip, skipped_steps and attestation.
inline constexpr char kStepCloseFds[] = "close_fds";
inline constexpr char kStepMountNamespace[] = "mount_namespace";
inline constexpr char kStepPidNamespace[] = "pid_namespace";
inline constexpr char kStepRlimits[] = "rlimits";
inline constexpr char kStepDumpable[] = "dumpable";
inline constexpr char kStepArena[] = "arena";
inline constexpr char kStepCapabilities[] = "capabilities";
inline constexpr char kStepNoNewPrivs[] = "no_new_privs";
inline constexpr char kStepSeccomp[] = "seccomp";
inline constexpr char kStepLandlock[] = "landlock";

struct LockdownResult {
  std::string process;                     // "broker" | "worker"
  std::vector<std::string> skipped_steps;  // in lockdown order
};

struct BrokerLockdownSpec {
  std::vector<int> keep_fds = {0, 1, 2};
  pid_t worker_pid = 0;  // 0: kill() is not allowed at all
  // WARNING: each name weakens the broker; see "Opt-out" above.
  std::set<std::string> insecure_skip;
};

struct WorkerLockdownSpec {
  std::vector<int> keep_fds = {0, 1, 2};
  // Directories (or files) covered in the worker's mount namespace: the
  // agent's credential dir (client key, certs) and the broker's state dir.
  std::vector<std::string> hidden_paths;
  // Apply as this user, keeping kWorkerFileCapabilities. Unset: stay uid 0.
  std::optional<UserSwitch> run_as;
  // WARNING: each name weakens the worker.
  std::set<std::string> insecure_skip;
};

absl::StatusOr<LockdownResult> LockDownBroker(const BrokerLockdownSpec& spec);
absl::StatusOr<LockdownResult> LockDownWorker(const WorkerLockdownSpec& spec);

// Exec children: the filters are compiled before fork (allocation is not
// async-signal-safe), loaded in the child by the function below.
struct ExecChildSeal {
  BpfProgram bpf;         // ExecChildPolicy: every command
  BpfProgram no_network;  // ExecNoNetworkPolicy: commands with confine network: false
};
absl::StatusOr<ExecChildSeal> PrepareExecChildSeal();
// The applier layer (ApplierPolicy), compiled before the worker forks the
// applier, which loads it with LoadApplierFilterAsyncSignalSafe first thing.
absl::StatusOr<BpfProgram> PrepareApplierFilter();
// no_new_privs (already set by the worker's lockdown unless skipped; the
// kernel requires it of a process without CAP_SYS_ADMIN) and the applier
// layer. Returns 0 or the errno of the failing step.
int LoadApplierFilterAsyncSignalSafe(const BpfProgram& filter);
// What one command's `confine:` adds (agent-worker/exec_confine.h builds it
// before fork). Default: nothing.
struct ExecChildConfinement {
  // A Landlock ruleset (sandbox/landlock.h; borrowed, must stay open through
  // the spawn): the command may write only beneath its rules. -1: writes
  // are not confined.
  int landlock_ruleset_fd = -1;
  // Stack seal.no_network: no socket but AF_UNIX.
  bool deny_network = false;
};
// In the child between fork and execve: RLIMIT_CORE 0, no_new_privs, the
// Landlock domain (when confined), the no-network layer (when asked), and
// the exec-child filter stacked on the inherited worker filter, in that
// order (Landlock needs no_new_privs; seccomp last). Async-signal-safe (raw
// syscalls only). Returns 0 or the errno of the failing step; the child must
// _exit without exec on failure, so a confined command never runs without
// its confinement.
int LockDownExecChildAsyncSignalSafe(const ExecChildSeal& seal,
                                     const ExecChildConfinement& confine = {});

// What the last lockdown in this process did (for attestation). Empty
// `process` when no lockdown ran.
LockdownResult LastLockdown();

// For processes that hold secrets in ordinary heap but are not sandboxed
// (vigosrv, vigocli: libcurl and OpenSSL buffers, TLS keys): RLIMIT_CORE 0 and
// PR_SET_DUMPABLE 0, each read back. A crash then writes no core file, and
// processes of the same uid cannot ptrace or read /proc/<pid>/mem. Root with
// CAP_SYS_PTRACE still can (SECURITY.md: root on the server host is out of
// scope). Returns the first step that failed.
absl::Status HardenUnsandboxedProcess();

}  // namespace vigo::sandbox

#endif  // VIGO_SANDBOX_LOCKDOWN_H_
