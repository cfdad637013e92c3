// Capabilities (libcap) and no_new_privs.
//
//   // Worker applying as a non-root user, keeping the file-management caps:
//   VIGO_RETURN_IF_ERROR(SwitchUserKeepingCapabilities({.uid = 998, .gid = 998},
//                                                      kWorkerFileCapabilities));
//   VIGO_RETURN_IF_ERROR(DropCapabilitiesExcept(kWorkerFileCapabilities));
//   VIGO_RETURN_IF_ERROR(SetNoNewPrivs());
//
// Normally called only by sandbox/lockdown.cc, in that order.
//
// Thread safety: capabilities and no_new_privs are per-thread kernel state;
// call these while the process has a single thread (lockdown checks).
#ifndef VIGO_SANDBOX_CAPABILITIES_H_
#define VIGO_SANDBOX_CAPABILITIES_H_

#include <linux/capability.h>
#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vigo::sandbox {

// What the worker keeps to manage files it does not own: chown, write
// anywhere, chmod/utime others' files, keep setgid bits on chown.
inline constexpr int kWorkerFileCapabilities[] = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER,
                                                  CAP_FSETID};

// Bit mask (as in /proc/self/status CapEff) of `caps`.
uint64_t CapabilityMask(std::span<const int> caps);

// Drops every capability not in `keep` from the bounding set (needs
// CAP_SETPCAP, so call it before losing that), clears the ambient and
// inheritable sets, and sets effective = permitted = keep ∩ current permitted.
// Reads the state back and fails (INTERNAL, naming the set) when the kernel
// kept more than asked. SECURITY: irreversible by design.
absl::Status DropCapabilitiesExcept(std::span<const int> keep);

// After lockdown (no CAP_SETPCAP left, so the bounding set stays as it is):
// effective = permitted = keep ∩ current permitted, inheritable cleared, read
// back (INTERNAL when the kernel kept more). Only ever narrows; used by the
// worker's per-bundle applier (agent-worker/applier.h).
absl::Status ReduceCapabilitiesTo(std::span<const int> keep);

// "%016llx", as in /proc/self/status.
std::string HexCapabilityMask(uint64_t mask);

struct UserSwitch {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> supplementary_groups;  // empty: none
};

// setgroups + setresgid + setresuid to `target` while keeping `keep` in the
// permitted set (PR_SET_KEEPCAPS across the uid change), then raises `keep`
// into the effective set again. Verifies getresuid/getresgid afterwards and
// that uid 0 cannot be regained. Needs CAP_SETUID/CAP_SETGID (run before
// DropCapabilitiesExcept).
absl::Status SwitchUserKeepingCapabilities(const UserSwitch& target, std::span<const int> keep);

// prctl(PR_SET_NO_NEW_PRIVS, 1) and read back.
absl::Status SetNoNewPrivs();

// Current effective/permitted/bounding sets as masks.
struct CapabilityState {
  uint64_t effective = 0;
  uint64_t permitted = 0;
  uint64_t inheritable = 0;
  uint64_t bounding = 0;
  uint64_t ambient = 0;
};
absl::StatusOr<CapabilityState> ReadCapabilityState();
// Effective, permitted and inheritable sets only (capget; works under the
// worker's filter, unlike ReadCapabilityState, whose ambient read-back is a
// prctl the filter kills).
absl::StatusOr<CapabilityState> ReadCapabilitySets();

}  // namespace vigo::sandbox

#endif  // VIGO_SANDBOX_CAPABILITIES_H_
