// The per-bundle applier: the part of the worker that writes `file` and
// `directory` resources, in a child process confined by Landlock to the
// bundle's targets, while the worker itself (the launcher) runs the exec
// resources.
//
//   // in the worker, per bundle, values already resolved:
//   ApplierRun run = RunApplier(bundle, values, spec,
//                               [&](const v1::Resource& r, pid_t applier) { ... });
//
// Why a process per bundle: a Landlock domain is for life and only ever
// narrows, and each bundle has its own targets. Why exec runs in the parent:
// commands manage the host (they must be able to write where the bundle's
// files are not), so they are started by a process the applier's domain does
// not bind; they carry every other wall (namespaces, filters, no terminal).
//
// The applier:
//   1. is forked by the worker (PID 1 of the worker's namespace) with the
//      secret arena inherited for this one fork (sandbox/secret_buffer.h
//      ReserveChildArena): it reads the bundle's values in place and
//      allocates only in its own part of the arena, which the worker wipes
//      when it has exited; no exec command inherits the arena;
//   2. closes the broker socket (only the worker talks to the broker);
//   3. computes its Landlock domain (LandlockDomain): for each file and
//      directory target, the directory that holds it, below the apply root,
//      opened without following a link (so the rule can never land on a
//      link's destination) and made first when it is missing (so the rule
//      is never on an ancestor);
//   4. drops the capabilities the bundle does not need (ApplierCapabilities);
//   5. restricts itself (landlock_restrict_self; no_new_privs is already set
//      by the worker's lockdown), then applies the bundle; for an exec it
//      sends the resource's index to the worker and waits for its result;
//   6. sends each result and a summary (ABI, domain, capabilities), and
//      ends with _exit (no destructor touches the worker's buffers).
//
// Landlock absent from the kernel (ABI 0): the applier runs unconfined and
// says so (summary.landlock_abi = 0; the attestation reports it and
// `require_hardening: strict` refuses the agent). Landlock present but the
// ruleset cannot be built or applied: the whole bundle fails, nothing is
// applied (fail closed). `--insecure-skip-lockdown landlock`: unconfined,
// reported as a skipped step.
//
// Thread safety: the caller must be single-threaded (fork).
#ifndef VIGO_AGENT_WORKER_APPLIER_H_
#define VIGO_AGENT_WORKER_APPLIER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent-worker/apply.h"
#include "sandbox/seccomp_policy.h"
#include "vigo/v1/bundle.pb.h"
#include "vigo/v1/worker_ipc.pb.h"

namespace vigo::worker {

struct ApplierSpec {
  ApplyOptions apply;
  // false: --insecure-skip-lockdown landlock (the applier is not confined).
  bool landlock = true;
  // Set by RunApplier (the applier checks it is still this process's child).
  pid_t worker_pid = 0;
  // The applier's seccomp layer (sandbox ApplierPolicy: no fork, no exec),
  // compiled once by the worker before its own lockdown; RunApplier compiles
  // it before the fork when null. Loaded by the applier as its first act,
  // whatever --insecure-skip-lockdown says: an applier that cannot load it
  // applies nothing.
  std::shared_ptr<const sandbox::BpfProgram> no_new_process;
};

struct ApplierRun {
  std::vector<v1::ResourceResult> results;  // one per resource, in order
  v1::ApplierSummary summary;
};

// Capabilities (CAP_* numbers) the applier keeps for `bundle`: none without
// file or directory resources; CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER when
// there is one; CAP_FSETID only when a mode has a set-user/group-ID bit.
std::vector<int> ApplierCapabilities(const v1::PolicyBundle& bundle);

// The directories (as shown: root + path) whose hierarchies the applier may
// write for `bundle`: the parent of each file and directory target, opened
// below `root_fd` without following a link, deduplicated. Missing parents of
// targets to be present are made here (0755, a root writer's owner, fsynced;
// fs_ops.h OpenParentDir), so the rule is on the target's own parent, never
// on the nearest existing ancestor. A target whose walk meets a link or a
// non-directory, or one to be removed whose parent is missing, adds no rule
// (the resource fails or is already absent). `fds` receives a directory fd
// per entry, in the same order. Error: a new directory that cannot be
// fsynced.
absl::StatusOr<std::vector<std::string>> LandlockDomain(int root_fd, const std::string& apply_root,
                                                        const v1::PolicyBundle& bundle,
                                                        std::vector<sandbox::UniqueFd>* fds);

// Forks the applier for `bundle` and serves its exec requests with
// `run_exec(resource, applier_pid)` (a timed-out command's clean-up must
// spare that pid) until it is done. `values` must already hold every value of
// the bundle (the applier cannot fetch more). Never fails as a whole: an
// applier that dies or breaks the protocol fails the resources it did not
// report, naming why.
ApplierRun RunApplier(
    const v1::PolicyBundle& bundle, ValueSource& values, const ApplierSpec& spec,
    const std::function<v1::ResourceResult(const v1::Resource&, pid_t)>& run_exec);

}  // namespace vigo::worker

#endif  // VIGO_AGENT_WORKER_APPLIER_H_
