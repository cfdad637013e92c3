// Capabilities for real (as root): the drop reaches every set, and the
// worker's keep-caps uid switch keeps exactly the file-management caps.
#include "sandbox/capabilities.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"
#include "tests/sandbox/sandbox_test_util.h"
#include "tests/support/test_env.h"

namespace vigo::sandbox {
namespace {

using testing::ChildResult;
using testing::kExitBodyReturned;
using testing::RunChild;

TEST(CapabilitiesTest, DropReachesEverySet) {
  ChildResult r = RunChild([](int) {
    if (!DropCapabilitiesExcept(kWorkerFileCapabilities).ok()) return 3;
    auto s = ReadCapabilityState();
    if (!s.ok()) return 4;
    const uint64_t want = CapabilityMask(kWorkerFileCapabilities);
    if (s->effective != want || s->permitted != want || s->bounding != want ||
        s->inheritable != 0 || s->ambient != 0) {
      return 5;
    }
    // CAP_SYS_ADMIN is gone: a new mount namespace is refused.
    if (::unshare(CLONE_NEWNS) == 0 || errno != EPERM) return 6;
    return kExitBodyReturned;
  });
  EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
}

TEST(CapabilitiesTest, DropEverythingLeavesNothing) {
  ChildResult r = RunChild([](int) {
    if (!DropCapabilitiesExcept({}).ok()) return 3;
    auto s = ReadCapabilityState();
    if (!s.ok()) return 4;
    return s->effective == 0 && s->permitted == 0 && s->bounding == 0 ? kExitBodyReturned : 5;
  });
  EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
}

TEST(CapabilitiesTest, SwitchToNobodyKeepsFileCapabilities) {
  vigo::testing::TempDir tmp;
  const std::string secret = (tmp.path() / "root-only").string();
  vigo::testing::WriteFileOrDie(secret, "x", 0600);
  ASSERT_EQ(::chmod(tmp.path().c_str(), 0755), 0);
  ChildResult r = RunChild([&](int) {
    if (!SwitchUserKeepingCapabilities({65534, 65534, {}}, kWorkerFileCapabilities).ok()) return 3;
    if (!DropCapabilitiesExcept(kWorkerFileCapabilities).ok()) return 4;
    if (::getuid() != 65534 || ::geteuid() != 65534 || ::getgid() != 65534) return 5;
    // CAP_DAC_OVERRIDE: read a root 0600 file.
    int fd = ::open(secret.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 6;
    ::close(fd);
    // CAP_CHOWN: give it away.
    if (::chown(secret.c_str(), 1, 1) != 0) return 7;
    // Root is not regained.
    if (::setuid(0) == 0) return 8;
    auto s = ReadCapabilityState();
    if (!s.ok() || s->effective != CapabilityMask(kWorkerFileCapabilities)) return 9;
    return kExitBodyReturned;
  });
  EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
  struct stat st;
  ASSERT_EQ(::stat(secret.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1u);
}

TEST(CapabilitiesTest, NoNewPrivsReadsBack) {
  ChildResult r = RunChild([](int) { return SetNoNewPrivs().ok() ? kExitBodyReturned : 1; });
  EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
}

}  // namespace
}  // namespace vigo::sandbox
