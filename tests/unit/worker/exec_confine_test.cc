// The worker side of `confine:` (#14.3): what PrepareExecConfine builds and
// refuses, and a command run by the apply engine inside its Landlock domain
// and no-network layer (tests/helpers/exec_attacker_main.cc reports what it
// could do). The same run through the real agent, under the worker's jail,
// is tests/sandbox/exec_confine_test.cc.
#include "agent-worker/exec_confine.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <string>

#include "agent-worker/apply.h"
#include "common/secret_ref.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sandbox/landlock.h"
#include "sandbox/unique_fd.h"
#include "tests/support/test_env.h"

namespace vigo::worker {
namespace {

namespace fs = std::filesystem;
using vigo::testing::ReadFileOrEmpty;
using vigo::testing::ReadReport;
using vigo::testing::TempDir;
using vigo::testing::TestBinPath;
using vigo::testing::WriteFileOrDie;

v1::ExecConfine Writable(std::initializer_list<std::string> paths) {
  v1::ExecConfine c;
  c.set_restrict_writes(true);
  for (const std::string& p : paths) c.add_writable(p);
  return c;
}

class ExecConfineTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(root_.path() / "var/lib/app");
    root_fd_ = sandbox::UniqueFd(::open(root_.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(root_fd_);
  }
  absl::StatusOr<ExecConfineSetup> Prepare(const v1::ExecConfine& c, int abi) {
    return PrepareExecConfine(c, root_fd_.get(), root_.path().string(), abi);
  }

  TempDir root_;
  sandbox::UniqueFd root_fd_;
};

// The fail-closed branch: a kernel without Landlock and a resource with
// `writable` never yields a setup (so the command never runs unconfined).
TEST_F(ExecConfineTest, WritableWithoutLandlockFailsClosed) {
  auto c = Prepare(Writable({"/var/lib/app"}), /*landlock_abi=*/0);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(c.status().message(), ::testing::HasSubstr("needs Landlock"));
  EXPECT_THAT(c.status().message(), ::testing::HasSubstr("not run unconfined"));
  // An empty list is still a domain (no writes at all): refused the same way.
  EXPECT_FALSE(Prepare(Writable({}), 0).ok());
}

TEST_F(ExecConfineTest, NetworkAloneNeedsNoLandlock) {
  v1::ExecConfine c;
  c.set_deny_network(true);
  auto s = Prepare(c, /*landlock_abi=*/0);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->deny_network);
  EXPECT_FALSE(s->writes.has_value());
}

TEST_F(ExecConfineTest, RulesetListsThePathsBelowTheRootAndTheSinkDevices) {
  if (sandbox::LandlockAbi() < 1) GTEST_SKIP() << "kernel without Landlock";
  WriteFileOrDie(root_.path() / "etc.conf", "x");
  auto s = Prepare(Writable({"/var/lib/app", "/etc.conf", "/"}), sandbox::LandlockAbi());
  ASSERT_TRUE(s.ok()) << s.status();
  ASSERT_TRUE(s->writes.has_value());
  EXPECT_GE(s->writes->fd(), 0);
  EXPECT_THAT(s->writes->allowed(), ::testing::IsSupersetOf({"confine.writable /var/lib/app",
                                                             "confine.writable /etc.conf",
                                                             "confine.writable /", "/dev/null"}));
}

TEST_F(ExecConfineTest, MissingOrSymlinkedPathsAreRefused) {
  if (sandbox::LandlockAbi() < 1) GTEST_SKIP() << "kernel without Landlock";
  const int abi = sandbox::LandlockAbi();
  auto missing = Prepare(Writable({"/var/lib/nope"}), abi);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.status().message(), ::testing::HasSubstr("'/var/lib/nope' does not exist"));
  auto missing_parent = Prepare(Writable({"/nope/app"}), abi);
  ASSERT_FALSE(missing_parent.ok());
  EXPECT_THAT(missing_parent.status().message(), ::testing::HasSubstr("does not exist"));

  // A link planted at the path, or on its way, would widen the domain to
  // wherever it points: refused, naming the link.
  fs::create_symlink("/", root_.path() / "var/lib/link");
  auto link = Prepare(Writable({"/var/lib/link"}), abi);
  ASSERT_FALSE(link.ok());
  EXPECT_THAT(link.status().message(), ::testing::HasSubstr("/var/lib/link is a symbolic link"));
  fs::create_symlink("/etc", root_.path() / "up");
  auto via = Prepare(Writable({"/up/ssl"}), abi);
  ASSERT_FALSE(via.ok());
  EXPECT_THAT(via.status().message(), ::testing::HasSubstr("/up is a symbolic link"));

  // Neither a directory nor a regular file.
  ASSERT_EQ(::mkfifo((root_.path() / "fifo").c_str(), 0600), 0);
  auto fifo = Prepare(Writable({"/fifo"}), abi);
  ASSERT_FALSE(fifo.ok());
  EXPECT_THAT(fifo.status().message(), ::testing::HasSubstr("neither a directory"));
}

TEST_F(ExecConfineTest, PathsTheServerWouldRefuseAreRefusedAgain) {
  const int abi = 7;  // checked before Landlock is touched
  EXPECT_EQ(Prepare(Writable({"var/lib/app"}), abi).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Prepare(Writable({"/var/../etc"}), abi).status().code(),
            absl::StatusCode::kInvalidArgument);
  auto marker = Prepare(Writable({"/srv/" + MarkerFor("app/pw")}), abi);
  EXPECT_EQ(marker.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(marker.status().message(), ::testing::HasSubstr("secret marker"));
  v1::ExecConfine many;
  many.set_restrict_writes(true);
  for (int i = 0; i < 65; ++i) many.add_writable("/var/lib/app");
  EXPECT_EQ(Prepare(many, abi).status().code(), absl::StatusCode::kInvalidArgument);
  v1::ExecConfine inconsistent;
  inconsistent.add_writable("/var/lib/app");  // restrict_writes false
  EXPECT_EQ(Prepare(inconsistent, abi).status().code(), absl::StatusCode::kInvalidArgument);
}

// --- A command in its domain (the apply engine, no worker lockdown) ---------

v1::PolicyBundle OneExec(std::vector<std::string> argv, const v1::ExecConfine* confine) {
  v1::PolicyBundle b;
  v1::Resource* r = b.add_resources();
  r->set_name("attack");
  r->set_type("exec");
  for (auto& a : argv) r->add_command(a);
  if (confine) *r->mutable_confine() = *confine;
  return b;
}

class ConfinedCommandTest : public ::testing::TestWithParam<bool> {};

TEST_P(ConfinedCommandTest, WritesOnlyBeneathTheWritablePath) {
  if (sandbox::LandlockAbi() < 1) GTEST_SKIP() << "kernel without Landlock";
  const bool confined = GetParam();  // false: the control, same command unconfined
  TempDir root;
  const fs::path inside = root.path() / "data";
  const fs::path victim = root.path() / "etc/victim.conf";
  fs::create_directories(inside);
  fs::create_directories(victim.parent_path());
  WriteFileOrDie(victim, "original", 0644);
  const fs::path report = inside / "report";
  ApplyOptions opts;
  opts.apply_root = root.path().string();
  ApplyEngine engine(opts);
  MapValueSource values;
  v1::ExecConfine c = Writable({"/data"});
  auto results = engine.Apply(OneExec({TestBinPath("exec_attacker").string(), "confine",
                                       report.string(), inside.string(), victim.string()},
                                      confined ? &c : nullptr),
                              values);
  ASSERT_EQ(results.size(), 1u);
  ASSERT_EQ(results[0].status(), "changed") << results[0].message();
  auto m = ReadReport(report);
  ASSERT_EQ(m["done"], "1") << ReadFileOrEmpty(report);
  for (const char* k : {"write_inside", "mkdir_inside", "rename_inside", "unlink_inside",
                        "read_victim", "write_devnull"}) {
    EXPECT_EQ(m[k], "ok") << k;
  }
  for (const char* k : {"write_victim", "truncate_victim", "create_beside", "mkdir_beside",
                        "symlink_beside", "rename_victim", "unlink_victim"}) {
    if (confined) {
      EXPECT_EQ(m[k], "errno 13") << k;  // EACCES from Landlock
    } else {
      EXPECT_EQ(m[k], "ok") << "control: " << k;
    }
  }
  if (confined) {
    EXPECT_EQ(ReadFileOrEmpty(victim), "original");
    EXPECT_FALSE(fs::exists(victim.parent_path() / "created-by-exec"));
  }
}

TEST_P(ConfinedCommandTest, NoSocketButAfUnix) {
  const bool confined = GetParam();
  TempDir root;
  const fs::path report = root.path() / "report";
  ApplyOptions opts;
  opts.apply_root = root.path().string();
  ApplyEngine engine(opts);
  MapValueSource values;
  v1::ExecConfine c;
  c.set_deny_network(true);
  auto results =
      engine.Apply(OneExec({TestBinPath("exec_attacker").string(), "network", report.string()},
                           confined ? &c : nullptr),
                   values);
  ASSERT_EQ(results.size(), 1u);
  ASSERT_EQ(results[0].status(), "changed") << results[0].message();
  auto m = ReadReport(report);
  ASSERT_EQ(m["done"], "1") << ReadFileOrEmpty(report);
  EXPECT_EQ(m["unix"], "ok");
  EXPECT_EQ(m["unix_pair"], "ok");
  for (const char* k : {"inet", "inet6", "netlink", "inet_upper_bits"}) {
    EXPECT_EQ(m[k], confined ? "errno 13" : "ok") << k;
  }
}

INSTANTIATE_TEST_SUITE_P(Confine, ConfinedCommandTest, ::testing::Bool(),
                         [](const auto& param_info) {
                           return param_info.param ? "Confined" : "Control";
                         });

TEST(ConfinedCommandFailClosedTest, MissingWritablePathFailsTheResourceWithoutRunningIt) {
  if (sandbox::LandlockAbi() < 1) GTEST_SKIP() << "kernel without Landlock";
  TempDir root;
  const fs::path marker = root.path() / "ran";
  ApplyOptions opts;
  opts.apply_root = root.path().string();
  ApplyEngine engine(opts);
  MapValueSource values;
  v1::ExecConfine c = Writable({"/missing"});
  auto results = engine.Apply(OneExec({"/usr/bin/touch", marker.string()}, &c), values);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status(), "failed");
  EXPECT_THAT(results[0].message(), ::testing::HasSubstr("'/missing' does not exist"));
  EXPECT_FALSE(fs::exists(marker)) << "the command ran without its confinement";
}

}  // namespace
}  // namespace vigo::worker
