// Self-attestation: after lockdown, read the process's real state back from
// the kernel and report it (the broker sends it with CheckIn; the server may
// require `require_hardening: strict`).
//
//   VIGO_ASSIGN_OR_RETURN(LockdownResult r, LockDownBroker(spec));
//   VIGO_ASSIGN_OR_RETURN(AttestationReport report, CollectAttestation());
//   absl::Status strict = CheckStrict(report);   // lists every failing requirement
//   // agent-broker converts `report` to vigo.v1.AttestationReport (same fields).
//
// Sources: /proc/self/status (Seccomp, Seccomp_filters, NoNewPrivs, CapEff,
// CapBnd, VmLck), prctl(PR_GET_DUMPABLE), /proc/self/smaps VmFlags of the
// mapping holding the secret arena ("lo" locked, "dd" don't-dump), the
// arena's backing from GetArenaInfo(), and the skipped steps recorded by
// lockdown. Nothing is taken from the spec: a step that silently failed to
// apply shows up here.
//
// Works under the broker and worker filters (read-only openat). Thread-safe.
#ifndef VIGO_SANDBOX_ATTESTATION_H_
#define VIGO_SANDBOX_ATTESTATION_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vigo::sandbox {

// Mirrors vigo.v1.AttestationReport (proto/vigo/v1/bundle.proto) field by
// field; sandbox/ does not link protobuf, the broker converts.
struct AttestationReport {
  std::string process;        // "broker" | "worker" ("" when no lockdown ran)
  int32_t seccomp_mode = -1;  // 0 off, 1 strict, 2 filter
  int32_t seccomp_filters = -1;
  bool no_new_privs = false;
  std::string cap_eff;  // 16 hex digits, as in /proc/self/status
  std::string cap_bnd;
  bool dumpable = true;
  uint64_t vm_lck_kb = 0;
  bool arena_locked = false;    // smaps VmFlags "lo" on the arena mapping
  bool arena_dontdump = false;  // smaps VmFlags "dd"
  std::string arena_backing;    // "memfd_secret" | "mlock" | "unlocked" | ""
  std::vector<std::string> skipped_steps;
  // Landlock: the kernel's ABI (0: none), and for the worker whether each
  // bundle's applier confines its writes with it (agent-worker/applier.h).
  int32_t landlock_abi = 0;
  bool applier_landlock = false;
};

// Reads the live state. `process` defaults to the last lockdown's process.
absl::StatusOr<AttestationReport> CollectAttestation();

// Capabilities a process may keep and still pass CheckStrict: none for the
// broker, kWorkerFileCapabilities for the worker. INVALID_ARGUMENT for an
// unknown process name.
absl::StatusOr<uint64_t> AllowedCapabilityMask(std::string_view process);

// OK when the report meets `require_hardening: strict`: seccomp_mode 2 with
// at least one filter, no_new_privs, not dumpable, arena locked and excluded
// from dumps on a locking backing, no skipped steps, CapEff within the
// process's allowed set; for the worker also landlock_abi >= 1 and
// applier_landlock (a kernel without Landlock cannot run a strict agent). Otherwise
// FAILED_PRECONDITION whose message lists every failing requirement ("seccomp_mode=0 (want 2);
// no_new_privs=false; ...").
absl::Status CheckStrict(const AttestationReport& report);

}  // namespace vigo::sandbox

#endif  // VIGO_SANDBOX_ATTESTATION_H_
