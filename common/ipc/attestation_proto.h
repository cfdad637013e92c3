// sandbox::AttestationReport (no protobuf in sandbox/) → vigo.v1.AttestationReport.
// Used by the worker (hello) and the broker (CheckIn).
#ifndef VIGO_COMMON_IPC_ATTESTATION_PROTO_H_
#define VIGO_COMMON_IPC_ATTESTATION_PROTO_H_

#include "sandbox/attestation.h"
#include "vigo/v1/bundle.pb.h"

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

}  // namespace vigo::ipc

#endif  // VIGO_COMMON_IPC_ATTESTATION_PROTO_H_
