// ipc::FromProto is ToProto's inverse for every report a real agent sends,
// and replaces every other string with the caller's recorded form, so
// sandbox::CheckStrict (the one strict check, shared by agent and server)
// gives the same verdict without envoy text in its message.
#include "common/ipc/attestation_proto.h"

#include <string>

#include "gtest/gtest.h"
#include "sandbox/attestation.h"

namespace vigo::ipc {
namespace {

sandbox::AttestationReport Good(const char* process) {
  sandbox::AttestationReport r;
  r.process = process;
  r.seccomp_mode = 2;
  r.seccomp_filters = 2;
  r.no_new_privs = true;
  r.cap_eff = "0000000000000000";
  r.cap_bnd = "0000000000000000";
  r.dumpable = false;
  r.vm_lck_kb = 64;
  r.arena_locked = true;
  r.arena_dontdump = true;
  r.arena_backing = "memfd_secret";
  r.landlock_abi = 7;
  r.applier_landlock = true;
  return r;
}

std::string Recorded(const std::string& s) {
  return "<text, " + std::to_string(s.size()) + " bytes>";
}

TEST(AttestationProtoTest, FromProtoInvertsToProtoForARealReport) {
  sandbox::AttestationReport r = Good("worker");
  r.skipped_steps = {sandbox::kStepLandlock, sandbox::kStepSeccomp};
  sandbox::AttestationReport back = FromProto(ToProto(r), Recorded);
  EXPECT_EQ(back.process, r.process);
  EXPECT_EQ(back.seccomp_mode, r.seccomp_mode);
  EXPECT_EQ(back.seccomp_filters, r.seccomp_filters);
  EXPECT_EQ(back.no_new_privs, r.no_new_privs);
  EXPECT_EQ(back.cap_eff, r.cap_eff);
  EXPECT_EQ(back.cap_bnd, r.cap_bnd);
  EXPECT_EQ(back.dumpable, r.dumpable);
  EXPECT_EQ(back.vm_lck_kb, r.vm_lck_kb);
  EXPECT_EQ(back.arena_locked, r.arena_locked);
  EXPECT_EQ(back.arena_dontdump, r.arena_dontdump);
  EXPECT_EQ(back.arena_backing, r.arena_backing);
  EXPECT_EQ(back.skipped_steps, r.skipped_steps);
  EXPECT_EQ(back.landlock_abi, r.landlock_abi);
  EXPECT_EQ(back.applier_landlock, r.applier_landlock);
  EXPECT_TRUE(sandbox::CheckStrict(FromProto(ToProto(Good("broker")), Recorded)).ok());
}

TEST(AttestationProtoTest, TextOutsideTheClosedSetsIsReplacedAndStillRefused) {
  const std::string pasted = "hunter2-secret-value";
  sandbox::AttestationReport r = Good("worker");
  r.process = pasted;
  r.arena_backing = pasted;
  r.cap_eff = pasted;
  r.skipped_steps = {pasted};
  sandbox::AttestationReport back = FromProto(ToProto(r), Recorded);
  EXPECT_EQ(back.process, Recorded(pasted));
  EXPECT_EQ(back.arena_backing, Recorded(pasted));
  EXPECT_EQ(back.cap_eff, Recorded(pasted));
  ASSERT_EQ(back.skipped_steps.size(), 1u);
  EXPECT_EQ(back.skipped_steps[0], Recorded(pasted));
  absl::Status strict = sandbox::CheckStrict(back);
  EXPECT_FALSE(strict.ok());
  EXPECT_EQ(std::string(strict.message()).find(pasted), std::string::npos) << strict;
}

}  // namespace
}  // namespace vigo::ipc
