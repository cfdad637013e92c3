// sandbox::AttestationReport (no protobuf in sandbox/) ⇄ vigo.v1.AttestationReport.
// ToProto: the worker (hello) and the broker (CheckIn). FromProto: the server
// (`require_hardening: strict` runs sandbox::CheckStrict on what the agent
// sent: one check for both sides).
//
//   v1::AttestationReport wire = ipc::ToProto(sandbox::CollectAttestation().value());
//   sandbox::AttestationReport back = ipc::FromProto(wire, [](const std::string& s) {
//     return "<text, " + std::to_string(s.size()) + " bytes>";
//   });
//   absl::Status strict = sandbox::CheckStrict(back);
#ifndef VIGO_COMMON_IPC_ATTESTATION_PROTO_H_
#define VIGO_COMMON_IPC_ATTESTATION_PROTO_H_

#include <functional>
#include <string>

#include "sandbox/attestation.h"
#include "sandbox/lockdown.h"
#include "vigo/v1/bundle.pb.h"
#include "vocab/hex.h"

namespace vigo::ipc {

inline v1::AttestationReport ToProto(const sandbox::AttestationReport& a) {
  v1::AttestationReport p;
  p.set_process(a.process);
  p.set_seccomp_mode(a.seccomp_mode);
  p.set_seccomp_filters(a.seccomp_filters);
  p.set_no_new_privs(a.no_new_privs);
  p.set_cap_eff(a.cap_eff);
  p.set_cap_bnd(a.cap_bnd);
  p.set_dumpable(a.dumpable);
  p.set_vm_lck_kb(a.vm_lck_kb);
  p.set_arena_locked(a.arena_locked);
  p.set_arena_dontdump(a.arena_dontdump);
  p.set_arena_backing(a.arena_backing);
  for (const auto& s : a.skipped_steps) p.add_skipped_steps(s);
  p.set_landlock_abi(a.landlock_abi);
  p.set_applier_landlock(a.applier_landlock);
  return p;
}

// `p` as a sandbox report, each string field kept only when it is one of the
// closed set of names CheckStrict accepts or reports (process, arena backing,
// lockdown step names, a capability mask of 1 to 16 hex digits); any other
// text becomes `recorded(text)` (the server passes its length+fingerprint
// form, recordable_text.h). CheckStrict refuses a replaced name exactly as it
// would the original (not a known name, not hex), so the verdict is the same
// and its message holds no text the sender chose.
inline sandbox::AttestationReport FromProto(
    const v1::AttestationReport& p,
    const std::function<std::string(const std::string&)>& recorded) {
  static constexpr std::string_view kSteps[] = {
      sandbox::kStepCloseFds,     sandbox::kStepMountNamespace, sandbox::kStepPidNamespace,
      sandbox::kStepRlimits,      sandbox::kStepDumpable,       sandbox::kStepArena,
      sandbox::kStepCapabilities, sandbox::kStepNoNewPrivs,     sandbox::kStepSeccomp,
      sandbox::kStepLandlock};
  auto one_of = [](const std::string& s, std::initializer_list<std::string_view> names) {
    for (std::string_view n : names) {
      if (s == n) return true;
    }
    return false;
  };
  auto mask = [&](const std::string& m) {
    bool hex = m.size() <= 16 && vocab::IsHex(m);
    return hex ? m : recorded(m);
  };
  sandbox::AttestationReport a;
  a.process = one_of(p.process(), {"broker", "worker"}) ? p.process() : recorded(p.process());
  a.seccomp_mode = p.seccomp_mode();
  a.seccomp_filters = p.seccomp_filters();
  a.no_new_privs = p.no_new_privs();
  a.cap_eff = mask(p.cap_eff());
  a.cap_bnd = mask(p.cap_bnd());
  a.dumpable = p.dumpable();
  a.vm_lck_kb = p.vm_lck_kb();
  a.arena_locked = p.arena_locked();
  a.arena_dontdump = p.arena_dontdump();
  a.arena_backing = one_of(p.arena_backing(), {"memfd_secret", "mlock"})
                        ? p.arena_backing()
                        : recorded(p.arena_backing());
  for (const std::string& step : p.skipped_steps()) {
    bool known = false;
    for (std::string_view k : kSteps) known = known || step == k;
    a.skipped_steps.push_back(known ? step : recorded(step));
  }
  a.landlock_abi = p.landlock_abi();
  a.applier_landlock = p.applier_landlock();
  return a;
}

}  // namespace vigo::ipc

#endif  // VIGO_COMMON_IPC_ATTESTATION_PROTO_H_
