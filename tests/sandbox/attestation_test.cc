// Self-attestation after the REAL lockdown: the report reads the kernel's
// state back, and a deliberately skipped step shows and fails CheckStrict.
#include "sandbox/attestation.h"

#include <sys/prctl.h>
#include <unistd.h>

#include <map>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "sandbox/capabilities.h"
#include "sandbox/landlock.h"
#include "sandbox/lockdown.h"
#include "tests/sandbox/sandbox_test_util.h"

namespace vigo::sandbox {
namespace {

using testing::ChildResult;
using testing::RunWorkerChild;
using testing::kExitBodyReturned;
using testing::RunChild;
using testing::WriteAll;

std::string Serialize(const AttestationReport& r, const absl::Status& strict) {
  std::string s;
  s += "process=" + r.process + "\n";
  s += "seccomp_mode=" + std::to_string(r.seccomp_mode) + "\n";
  s += "seccomp_filters=" + std::to_string(r.seccomp_filters) + "\n";
  s += "no_new_privs=" + std::to_string(r.no_new_privs) + "\n";
  s += "cap_eff=" + r.cap_eff + "\n";
  s += "cap_bnd=" + r.cap_bnd + "\n";
  s += "dumpable=" + std::to_string(r.dumpable) + "\n";
  s += "vm_lck_kb=" + std::to_string(r.vm_lck_kb) + "\n";
  s += "arena_locked=" + std::to_string(r.arena_locked) + "\n";
  s += "arena_dontdump=" + std::to_string(r.arena_dontdump) + "\n";
  s += "arena_backing=" + r.arena_backing + "\n";
  s += "landlock_abi=" + std::to_string(r.landlock_abi) + "\n";
  s += "applier_landlock=" + std::to_string(r.applier_landlock) + "\n";
  std::string skipped;
  for (const auto& k : r.skipped_steps) skipped += k + ",";
  s += "skipped=" + skipped + "\n";
  s += "strict=" + (strict.ok() ? std::string("OK") : std::string(strict.message())) + "\n";
  return s;
}

std::map<std::string, std::string> Parse(const std::string& out) {
  std::map<std::string, std::string> m;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq != std::string::npos) m[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return m;
}

// Runs `lock` in a child, then attests from inside the locked process.
std::map<std::string, std::string> AttestIn(
    const std::function<absl::StatusOr<LockdownResult>(int out)>& lock) {
  ChildResult r = RunWorkerChild([&](int out) {
    auto locked = lock(out);
    if (!locked.ok()) {
      WriteAll(out, "lockdown_error=" + std::string(locked.status().message()) + "\n");
      return 3;
    }
    auto report = CollectAttestation();
    if (!report.ok()) return 4;
    WriteAll(out, Serialize(*report, CheckStrict(*report)));
    return kExitBodyReturned;
  });
  EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
  return Parse(r.out);
}

TEST(AttestationTest, BrokerAfterRealLockdownIsStrict) {
  auto m = AttestIn([](int out) {
    BrokerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2, out};
    return LockDownBroker(spec);
  });
  EXPECT_EQ(m["process"], "broker");
  EXPECT_EQ(m["seccomp_mode"], "2");
  EXPECT_EQ(m["seccomp_filters"], "1");
  EXPECT_EQ(m["no_new_privs"], "1");
  EXPECT_EQ(m["cap_eff"], "0000000000000000");
  EXPECT_EQ(m["cap_bnd"], "0000000000000000");
  EXPECT_EQ(m["dumpable"], "0");
  EXPECT_EQ(m["arena_locked"], "1");
  EXPECT_EQ(m["arena_dontdump"], "1");
  EXPECT_TRUE(m["arena_backing"] == "memfd_secret" || m["arena_backing"] == "mlock")
      << m["arena_backing"];
  if (m["arena_backing"] == "mlock") {
    EXPECT_NE(m["vm_lck_kb"], "0");
  }
  EXPECT_EQ(m["skipped"], "");
  EXPECT_EQ(m["strict"], "OK");
}

TEST(AttestationTest, WorkerAfterRealLockdownKeepsOnlyFileCapabilities) {
  auto m = AttestIn([](int out) {
    WorkerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2, out};
    return LockDownWorker(spec);
  });
  char want[32];
  std::snprintf(want, sizeof(want), "%016llx",
                static_cast<unsigned long long>(CapabilityMask(kWorkerFileCapabilities)));
  EXPECT_EQ(m["process"], "worker");
  EXPECT_EQ(m["seccomp_mode"], "2");
  EXPECT_EQ(m["no_new_privs"], "1");
  EXPECT_EQ(m["cap_eff"], want);
  EXPECT_EQ(m["cap_bnd"], want);
  EXPECT_EQ(m["dumpable"], "0");
  EXPECT_EQ(m["strict"], "OK");
}

TEST(AttestationTest, WorkerAsNonRootUserKeepsFileCapabilitiesAndStaysUndumpable) {
  auto m = AttestIn([](int out) {
    WorkerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2, out};
    spec.run_as = UserSwitch{65534, 65534, {}};
    return LockDownWorker(spec);
  });
  EXPECT_EQ(m["cap_eff"], "000000000000001b");
  EXPECT_EQ(m["dumpable"], "0");  // re-asserted after the uid change
  EXPECT_EQ(m["strict"], "OK");
}

TEST(AttestationTest, SkippedSeccompIsReportedAndFailsStrict) {
  auto m = AttestIn([](int out) {
    BrokerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2, out};
    spec.insecure_skip = {kStepSeccomp};
    return LockDownBroker(spec);
  });
  EXPECT_EQ(m["skipped"], "seccomp,");
  EXPECT_EQ(m["seccomp_mode"], "0");  // read back, not assumed
  EXPECT_NE(m["strict"].find("skipped step seccomp"), std::string::npos) << m["strict"];
  EXPECT_NE(m["strict"].find("seccomp_mode=0"), std::string::npos) << m["strict"];
}

TEST(AttestationTest, SkippedNoNewPrivsAndSeccompAreBothReported) {
  auto m = AttestIn([](int out) {
    WorkerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2, out};
    spec.insecure_skip = {kStepNoNewPrivs, kStepSeccomp};
    return LockDownWorker(spec);
  });
  EXPECT_EQ(m["skipped"], "no_new_privs,seccomp,");
  EXPECT_EQ(m["no_new_privs"], "0");
  EXPECT_NE(m["strict"].find("no_new_privs=false"), std::string::npos) << m["strict"];
}

TEST(AttestationTest, SkippedDumpableIsVisibleInTheKernelState) {
  auto m = AttestIn([](int out) {
    BrokerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2, out};
    spec.insecure_skip = {kStepDumpable};
    ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);  // undo the test harness's own setting
    return LockDownBroker(spec);
  });
  EXPECT_EQ(m["dumpable"], "1");
  EXPECT_NE(m["strict"].find("dumpable=true"), std::string::npos) << m["strict"];
}

TEST(AttestationTest, SkippedArenaStillCreatesTheArenaButFailsStrict) {
  auto m = AttestIn([](int out) {
    BrokerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2, out};
    spec.insecure_skip = {kStepArena};
    return LockDownBroker(spec);
  });
  EXPECT_EQ(m["skipped"], "arena,");
  EXPECT_NE(m["arena_backing"], "");  // created before seccomp, not lazily after
  EXPECT_EQ(m["seccomp_mode"], "2");
  EXPECT_NE(m["strict"].find("skipped step arena"), std::string::npos) << m["strict"];
}

TEST(CheckStrictTest, ListsEveryFailingRequirement) {
  AttestationReport r;
  r.process = "worker";
  r.seccomp_mode = 0;
  r.seccomp_filters = 0;
  r.cap_eff = "000001ffffffffff";
  r.arena_backing = "unlocked";
  r.skipped_steps = {"capabilities"};
  absl::Status s = CheckStrict(r);
  ASSERT_FALSE(s.ok());
  const std::string msg(s.message());
  for (const char* want :
       {"seccomp_mode=0", "seccomp_filters=0", "no_new_privs=false", "dumpable=true",
        "arena_locked=false", "arena_dontdump=false", "arena_backing='unlocked'",
        "skipped step capabilities", "exceeds allowed"}) {
    EXPECT_NE(msg.find(want), std::string::npos) << want << " missing from: " << msg;
  }
}

// A report that meets strict for `process` (the broker: no Landlock asked).
AttestationReport StrictReport(const std::string& process) {
  AttestationReport r;
  r.process = process;
  r.seccomp_mode = 2;
  r.seccomp_filters = 1;
  r.no_new_privs = true;
  r.cap_eff = "0000000000000000";
  r.dumpable = false;
  r.arena_locked = r.arena_dontdump = true;
  r.arena_backing = "memfd_secret";
  return r;
}

TEST(CheckStrictTest, AcceptsAGoodReportAndRejectsUnknownProcess) {
  AttestationReport r = StrictReport("broker");
  EXPECT_TRUE(CheckStrict(r).ok());
  r.cap_eff = "0000000000000002";  // CAP_DAC_OVERRIDE: fine for a worker, not a broker
  EXPECT_FALSE(CheckStrict(r).ok());
  r.process = "worker";
  r.landlock_abi = 7;
  r.applier_landlock = true;
  EXPECT_TRUE(CheckStrict(r).ok());
  r.process = "mystery";
  EXPECT_FALSE(CheckStrict(r).ok());
}

// #14: a worker whose appliers do not confine their writes with Landlock is
// below strict, whether the kernel lacks it or it was opted out; the broker
// (which writes nothing) is not asked for it.
TEST(CheckStrictTest, AWorkerWithoutLandlockIsBelowStrict) {
  AttestationReport r = StrictReport("worker");
  r.landlock_abi = 0;
  absl::Status s = CheckStrict(r);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("landlock_abi=0"), std::string::npos) << s;
  EXPECT_NE(s.message().find("no Landlock"), std::string::npos) << s;
  r.landlock_abi = 3;
  r.applier_landlock = false;
  s = CheckStrict(r);
  EXPECT_NE(s.message().find("applier_landlock=false"), std::string::npos) << s;
  r.applier_landlock = true;
  EXPECT_TRUE(CheckStrict(r).ok());
  r.process = "broker";
  r.landlock_abi = 0;
  r.applier_landlock = false;
  EXPECT_TRUE(CheckStrict(r).ok());
}

// The worker's attestation after a real lockdown reports the kernel's ABI
// and that appliers confine themselves; the opt-out is reported and refused.
TEST(AttestationTest, WorkerReportsLandlockAndItsOptOut) {
  auto on = AttestIn([](int out) {
    WorkerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2, out};
    return LockDownWorker(spec);
  });
  EXPECT_EQ(on["landlock_abi"], std::to_string(LandlockAbi()));
  EXPECT_EQ(on["applier_landlock"], LandlockAbi() >= 1 ? "1" : "0");
  auto off = AttestIn([](int out) {
    WorkerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2, out};
    spec.insecure_skip = {kStepLandlock};
    return LockDownWorker(spec);
  });
  EXPECT_EQ(off["applier_landlock"], "0");
  EXPECT_NE(off["skipped"].find("landlock"), std::string::npos) << off["skipped"];
  EXPECT_NE(off["strict"].find("skipped step landlock"), std::string::npos) << off["strict"];
}

}  // namespace
}  // namespace vigo::sandbox
