#include "sandbox/capabilities.h"

#include <errno.h>
#include <grp.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <memory>

#include "common/strings.h"
#include "sandbox/syscall_status.h"

namespace vigo::sandbox {
namespace {

struct CapFree {
  void operator()(cap_t c) const { cap_free(c); }
};
using CapPtr = std::unique_ptr<std::remove_pointer_t<cap_t>, CapFree>;

int LastCap() {
  int n = static_cast<int>(cap_max_bits());
  return n > 0 ? n - 1 : CAP_LAST_CAP;
}

bool Contains(std::span<const int> caps, int c) {
  for (int k : caps) {
    if (k == c) return true;
  }
  return false;
}

std::string HexMask(uint64_t m) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(m));
  return buf;
}

// Sets effective, permitted (and clears inheritable) to exactly `mask`.
absl::Status SetProcCaps(uint64_t permitted, uint64_t effective) {
  CapPtr caps(cap_init());
  if (!caps) return ErrnoStatus(errno, "cap_init");
  for (int c = 0; c <= LastCap(); ++c) {
    cap_value_t v = c;
    if (permitted & (uint64_t{1} << c)) {
      if (cap_set_flag(caps.get(), CAP_PERMITTED, 1, &v, CAP_SET) != 0) {
        return ErrnoStatus(errno, "cap_set_flag permitted");
      }
    }
    if (effective & (uint64_t{1} << c)) {
      if (cap_set_flag(caps.get(), CAP_EFFECTIVE, 1, &v, CAP_SET) != 0) {
        return ErrnoStatus(errno, "cap_set_flag effective");
      }
    }
  }
  if (cap_set_proc(caps.get()) != 0) return ErrnoStatus(errno, "cap_set_proc");
  return absl::OkStatus();
}

}  // namespace

uint64_t CapabilityMask(std::span<const int> caps) {
  uint64_t m = 0;
  for (int c : caps) {
    if (c >= 0 && c < 64) m |= uint64_t{1} << c;
  }
  return m;
}

absl::StatusOr<CapabilityState> ReadCapabilityState() {
  CapabilityState s;
  CapPtr caps(cap_get_proc());
  if (!caps) return ErrnoStatus(errno, "cap_get_proc");
  for (int c = 0; c <= LastCap(); ++c) {
    cap_flag_value_t v;
    uint64_t bit = uint64_t{1} << c;
    if (cap_get_flag(caps.get(), c, CAP_EFFECTIVE, &v) == 0 && v == CAP_SET) s.effective |= bit;
    if (cap_get_flag(caps.get(), c, CAP_PERMITTED, &v) == 0 && v == CAP_SET) s.permitted |= bit;
    if (cap_get_flag(caps.get(), c, CAP_INHERITABLE, &v) == 0 && v == CAP_SET) s.inheritable |= bit;
    int b = cap_get_bound(c);
    if (b > 0) s.bounding |= bit;
    int a = cap_get_ambient(c);
    if (a > 0) s.ambient |= bit;
  }
  return s;
}

absl::Status DropCapabilitiesExcept(std::span<const int> keep) {
  const uint64_t keep_mask = CapabilityMask(keep);
  // Dropping from the bounding set needs CAP_SETPCAP in the effective set; a
  // keep-caps uid switch may have left it only in permitted.
  {
    auto now = ReadCapabilityState();
    if (!now.ok()) return now.status();
    const uint64_t setpcap = uint64_t{1} << CAP_SETPCAP;
    if ((now->permitted & setpcap) != 0 && (now->effective & setpcap) == 0) {
      if (auto st = SetProcCaps(now->permitted, now->effective | setpcap); !st.ok()) return st;
    }
  }
  // Bounding set first: dropping from it needs CAP_SETPCAP, which goes next.
  for (int c = 0; c <= LastCap(); ++c) {
    if (Contains(keep, c)) continue;
    int in_bound = cap_get_bound(c);
    if (in_bound < 0) return ErrnoStatus(errno, "cap_get_bound", StrCat("cap ", c));
    if (in_bound == 0) continue;
    if (cap_drop_bound(c) != 0) return ErrnoStatus(errno, "cap_drop_bound", StrCat("cap ", c));
  }
  if (cap_reset_ambient() != 0) return ErrnoStatus(errno, "cap_reset_ambient");
  auto before = ReadCapabilityState();
  if (!before.ok()) return before.status();
  const uint64_t target = keep_mask & before->permitted;
  if (auto st = SetProcCaps(target, target); !st.ok()) return st;

  auto after = ReadCapabilityState();
  if (!after.ok()) return after.status();
  if (after->effective != target || after->permitted != target || after->inheritable != 0 ||
      after->ambient != 0 || (after->bounding & ~keep_mask) != 0) {
    return absl::InternalError(StrCat(
        "capabilities: kernel state after drop differs: eff=", HexMask(after->effective),
        " prm=", HexMask(after->permitted), " inh=", HexMask(after->inheritable), " amb=",
        HexMask(after->ambient), " bnd=", HexMask(after->bounding), " wanted=", HexMask(target)));
  }
  return absl::OkStatus();
}

// capget directly: libcap's full read-back (ReadCapabilityState) also asks
// for the ambient set with a prctl the worker's filter kills.
absl::StatusOr<CapabilityState> ReadCapabilitySets() {
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  if (::syscall(SYS_capget, &hdr, data) != 0) return ErrnoStatus(errno, "capget");
  CapabilityState s;
  s.effective = data[0].effective | (uint64_t{data[1].effective} << 32);
  s.permitted = data[0].permitted | (uint64_t{data[1].permitted} << 32);
  s.inheritable = data[0].inheritable | (uint64_t{data[1].inheritable} << 32);
  return s;
}

absl::Status ReduceCapabilitiesTo(std::span<const int> keep) {
  auto before = ReadCapabilitySets();
  if (!before.ok()) return before.status();
  const uint64_t target = CapabilityMask(keep) & before->permitted;
  struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2] = {};
  data[0].effective = data[0].permitted = static_cast<uint32_t>(target);
  data[1].effective = data[1].permitted = static_cast<uint32_t>(target >> 32);
  if (::syscall(SYS_capset, &hdr, data) != 0) return ErrnoStatus(errno, "capset");
  auto after = ReadCapabilitySets();
  if (!after.ok()) return after.status();
  if (after->effective != target || after->permitted != target || after->inheritable != 0) {
    return absl::InternalError(
        StrCat("capabilities: kernel state after reduce differs: eff=", HexMask(after->effective),
               " prm=", HexMask(after->permitted), " wanted=", HexMask(target)));
  }
  return absl::OkStatus();
}

std::string HexCapabilityMask(uint64_t mask) { return HexMask(mask); }

absl::Status SwitchUserKeepingCapabilities(const UserSwitch& target, std::span<const int> keep) {
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0)
    return ErrnoStatus(errno, "prctl(PR_SET_KEEPCAPS)");
  if (::setgroups(target.supplementary_groups.size(), target.supplementary_groups.data()) != 0) {
    return ErrnoStatus(errno, "setgroups");
  }
  if (::setresgid(target.gid, target.gid, target.gid) != 0) {
    return ErrnoStatus(errno, "setresgid", StrCat("gid ", static_cast<int>(target.gid)));
  }
  if (::setresuid(target.uid, target.uid, target.uid) != 0) {
    return ErrnoStatus(errno, "setresuid", StrCat("uid ", static_cast<int>(target.uid)));
  }
  if (::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) != 0)
    return ErrnoStatus(errno, "prctl(PR_SET_KEEPCAPS, 0)");

  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (::getresuid(&ru, &eu, &su) != 0 || ::getresgid(&rg, &eg, &sg) != 0) {
    return ErrnoStatus(errno, "getresuid/getresgid");
  }
  if (ru != target.uid || eu != target.uid || su != target.uid || rg != target.gid ||
      eg != target.gid || sg != target.gid) {
    return absl::InternalError("capabilities: uid/gid switch did not take effect");
  }
  // A uid change away from 0 clears the effective set; raise the kept caps
  // again (they survived in permitted thanks to KEEPCAPS).
  auto state = ReadCapabilityState();
  if (!state.ok()) return state.status();
  const uint64_t want = CapabilityMask(keep) & state->permitted;
  if (want != CapabilityMask(keep)) {
    return absl::InternalError(
        StrCat("capabilities: kept capabilities lost across the uid change: have ",
               HexMask(state->permitted), " want ", HexMask(CapabilityMask(keep))));
  }
  if (auto st = SetProcCaps(state->permitted, want); !st.ok()) return st;
  if (target.uid != 0 && ::setresuid(0, 0, 0) == 0) {
    return absl::InternalError("capabilities: uid 0 could be regained after the switch");
  }
  return absl::OkStatus();
}

absl::Status SetNoNewPrivs() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return ErrnoStatus(errno, "prctl(PR_SET_NO_NEW_PRIVS)");
  if (::prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1) {
    return absl::InternalError("no_new_privs: read back is not 1");
  }
  return absl::OkStatus();
}

}  // namespace vigo::sandbox
