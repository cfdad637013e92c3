// `confine:` tried from the exec-child position (#14.3): a real vigosrv and a
// real `vigo run --once` apply a stack whose exec resources run a hostile
// program (tests/helpers/exec_attacker_main.cc) that tries to write outside
// its writable path and to open network sockets, and reports what it could
// do. Each test runs the same stack without `confine:` as the control, so a
// pass means a wall, not a broken probe.
#include <unistd.h>

#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/e2e_fixture.h"
#include "tests/support/test_env.h"

namespace vigo::testing {
namespace {

namespace fs = std::filesystem;

std::string ExecResource(const std::string& name, const std::vector<std::string>& command,
                         const std::string& confine) {
  std::string r = "  - name: " + name + "\n    type: exec\n    command: " + Argv(command) +
                  "\n    timeout: 60\n";
  if (!confine.empty()) r += "    confine: " + confine + "\n";
  return r;
}

// The parameter: true = confined, false = the control (no confine:).
class ExecConfineTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "jail tests run as root (CI does)";
    ASSERT_TRUE(fleet_.Init()) << fleet_.last_error();
  }

  void Start(const std::string& resources) {
    fleet_.WriteStacks(
        {{"envoys.vgo", "envoys:\n  - match: web-1\n    configcrates: [probe]\n"},
         {"configcrates/probe.vgo", "configcrate: probe\nresources:\n" + resources}});
    ASSERT_TRUE(fleet_.StartServer()) << fleet_.last_error();
    ASSERT_TRUE(fleet_.IssueEnvoy("web-1")) << fleet_.last_error();
  }

  std::string Attacker() const { return TestBinPath("exec_attacker").string(); }

  E2eFleet fleet_;
};

TEST_P(ExecConfineTest, ExecWritesOnlyBeneathItsWritablePath) {
  const bool confined = GetParam();
  const fs::path root = fleet_.ApplyRoot("web-1");
  const fs::path data = root / "data";  // writable: [/data]
  // Two victims the test created: one outside the apply root, one inside it
  // but outside /data.
  const fs::path outside = fleet_.dir() / "outside" / "victim.conf";
  const fs::path in_root = root / "etc" / "victim.conf";
  const std::string confine = confined ? "{writable: [/data]}" : "";
  // Each command works in its own directory beneath /data.
  Start(ExecResource("outside",
                     {Attacker(), "confine", (data / "report-outside").string(),
                      (data / "a").string(), outside.string()},
                     confine) +
        ExecResource("in-root",
                     {Attacker(), "confine", (data / "report-root").string(), (data / "b").string(),
                      in_root.string()},
                     confine));
  fs::create_directories(data / "a");
  fs::create_directories(data / "b");
  for (const fs::path& v : {outside, in_root}) {
    fs::create_directories(v.parent_path());
    WriteFileOrDie(v, "original", 0644);
  }
  RunResult r = fleet_.RunAgent("web-1");
  for (const char* which : {"report-outside", "report-root"}) {
    SCOPED_TRACE(which);
    auto m = ReadReport(data / which);
    ASSERT_EQ(m["done"], "1") << "the attacker did not run: " << r.err;
    // Beneath /data everything works; reads elsewhere still work.
    for (const char* k : {"write_inside", "mkdir_inside", "rename_inside", "unlink_inside",
                          "read_victim", "write_devnull"}) {
      EXPECT_EQ(m[k], "ok") << k;
    }
    // Elsewhere nothing can be created, changed or removed (EACCES, 13).
    for (const char* k : {"write_victim", "truncate_victim", "create_beside", "mkdir_beside",
                          "symlink_beside", "rename_victim", "unlink_victim"}) {
      EXPECT_EQ(m[k], confined ? "errno 13" : "ok") << k;
    }
  }
  if (confined) {
    EXPECT_EQ(r.exit_code, 0) << r.err;
    for (const fs::path& v : {outside, in_root}) {
      EXPECT_EQ(ReadFileOrEmpty(v), "original") << v;
      for (const char* made : {"created-by-exec", "dir-by-exec", "link-by-exec"}) {
        EXPECT_FALSE(fs::exists(fs::symlink_status(v.parent_path() / made))) << made;
      }
    }
  }
}

TEST_P(ExecConfineTest, ExecWithoutNetworkHasOnlyUnixSockets) {
  const bool confined = GetParam();
  const fs::path report = fleet_.dir() / "network.report";
  Start(ExecResource("net", {Attacker(), "network", report.string()},
                     confined ? "{network: false}" : ""));
  RunResult r = fleet_.RunAgent("web-1");
  auto m = ReadReport(report);
  ASSERT_EQ(m["done"], "1") << "the attacker did not run: " << r.err;
  EXPECT_EQ(m["unix"], "ok");
  EXPECT_EQ(m["unix_pair"], "ok");
  // The worker filter allows these families; with network: false each is
  // EACCES (13), an error the program can print, not a kill.
  for (const char* k : {"inet", "inet6", "netlink"}) {
    EXPECT_EQ(m[k], confined ? "errno 13" : "ok") << k;
  }
  // A family with the register's upper half set is no family the worker
  // filter allows: killed with SIGSYS (31) either way.
  EXPECT_EQ(m["inet_upper_bits"], "killed 31");
}

INSTANTIATE_TEST_SUITE_P(Confine, ExecConfineTest, ::testing::Bool(), [](const auto& param_info) {
  return param_info.param ? "Confined" : "Control";
});

// Fail closed on the node: a writable path that does not exist cannot become
// a Landlock rule, so the resource fails and its command never runs.
TEST(ExecConfineFailClosedTest, MissingWritablePathFailsTheResourceWithoutRunningIt) {
  ASSERT_EQ(::geteuid(), 0u) << "jail tests run as root (CI does)";
  E2eFleet fleet;
  ASSERT_TRUE(fleet.Init()) << fleet.last_error();
  const fs::path ran = fleet.dir() / "ran";
  fleet.WriteStacks(
      {{"envoys.vgo", "envoys:\n  - match: web-1\n    configcrates: [probe]\n"},
       {"configcrates/probe.vgo",
        "configcrate: probe\nresources:\n" +
            ExecResource("m", {"/usr/bin/touch", ran.string()}, "{writable: [/no/such/dir]}")}});
  ASSERT_TRUE(fleet.StartServer()) << fleet.last_error();
  ASSERT_TRUE(fleet.IssueEnvoy("web-1")) << fleet.last_error();
  RunResult r = fleet.RunAgent("web-1");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE((r.out + r.err).find("'/no/such/dir' does not exist"), std::string::npos)
      << r.out << r.err;
  EXPECT_FALSE(fs::exists(ran)) << "the command ran without its confinement";
}

}  // namespace
}  // namespace vigo::testing
