// #14 item 2: the applier's writes are confined by Landlock to the bundle's
// targets, from the position of a buggy applier (the test hook in
// tests/helpers/worker_hooks_main.cc, compiled into that test binary only),
// with the real agent and server. Exec resources, started by the worker,
// are not bound by the applier's domain.
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sandbox/landlock.h"
#include "tests/integration/e2e_fixture.h"
#include "tests/support/test_env.h"

namespace vigo::testing {
namespace {

namespace fs = std::filesystem;

class ApplierLandlockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "sandbox tests run as root (CI does)";
    ASSERT_GE(sandbox::LandlockAbi(), 1) << "CI kernels have Landlock (ABI 7)";
    ASSERT_TRUE(fleet_.Init()) << fleet_.last_error();
    root_ = fleet_.ApplyRoot("web-1");
    outside_ = fleet_.dir() / "outside";
    fs::create_directories(outside_);
    WriteFileOrDie(outside_ / "victim", "keep", 0644);
    // A bin dir whose vigo-worker is the hooked one (vigo starts the
    // vigo-worker next to its own executable).
    bin_ = fleet_.dir() / "bin";
    fs::create_directories(bin_);
    fs::copy_file(BinPath("vigo"), bin_ / "vigo");
    fs::copy_file(TestBinPath("worker_hooks"), bin_ / "vigo-worker");
  }

  // The stacks: one file in <root>/etc/webapp (which exists, so it is the
  // domain), the hook's file next to it, and an exec that writes outside.
  void Start() {
    const std::string ops = "create " + (outside_ / "new").string() + "\\n" +       //
                            "truncate " + (outside_ / "victim").string() + "\\n" +  //
                            "mkdir " + (outside_ / "dir").string() + "\\n" +        //
                            "unlink " + (outside_ / "victim").string() + "\\n" +    //
                            "symlink " + (outside_ / "link").string() + "\\n" +     //
                            "create " + (root_ / "etc/other/new").string() + "\\n" + "truncate " +
                            (root_ / "etc/other/victim").string() + "\\n" + "create " +
                            (root_ / "etc/webapp/inside").string() + "\\n" + "fork -\\n" +
                            "exec /bin/true\\n";
    fs::create_directories(root_ / "etc/webapp");
    fs::create_directories(root_ / "etc/other");
    WriteFileOrDie(root_ / "etc/other/victim", "keep", 0644);
    fleet_.WriteStacks(
        {{"envoys.vgo", "envoys:\n  - match: web-1\n    configcrates: [app]\n"},
         {"configcrates/app.vgo",
          "configcrate: app\nresources:\n"
          "  - name: app\n    type: file\n    target_path: /etc/webapp/app.conf\n"
          "    content: \"v=1\\n\"\n"
          "  - name: hook-escape\n    type: file\n    target_path: /etc/webapp/hook.txt\n"
          "    content: \"" +
              ops +
              "\"\n"
              "  - name: writer\n    type: exec\n    command: [\"/bin/sh\", \"-c\", \"echo x > " +
              (outside_ / "by-exec").string() + "\"]\n"}});
    ASSERT_TRUE(fleet_.StartServer()) << fleet_.last_error();
    ASSERT_TRUE(fleet_.IssueEnvoy("web-1")) << fleet_.last_error();
  }

  RunResult RunHookedAgent(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {(bin_ / "vigo").string(), "run", "--once"};
    for (const auto& f : fleet_.AgentFlags("web-1")) argv.push_back(f);
    argv.insert(argv.end(), extra.begin(), extra.end());
    return vigo::testing::Run(argv);
  }

  static bool Has(const std::string& err, const std::string& line) {
    return err.find(line) != std::string::npos;
  }

  E2eFleet fleet_;
  fs::path root_, outside_, bin_;
};

TEST_F(ApplierLandlockTest, ABuggyApplierCannotWriteOutsideTheBundlesTargets) {
  Start();
  RunResult r = RunHookedAgent();
  // The hook ran, after the restriction, and may write where the bundle's
  // files go.
  ASSERT_TRUE(Has(r.err, "hook-escape create " + (root_ / "etc/webapp/inside").string() + " ok"))
      << r.err;
  // Everything else is refused (EACCES = 13) and nothing changed.
  for (const std::string& op :
       {"create " + (outside_ / "new").string(), "truncate " + (outside_ / "victim").string(),
        "mkdir " + (outside_ / "dir").string(), "unlink " + (outside_ / "victim").string(),
        "symlink " + (outside_ / "link").string(), "create " + (root_ / "etc/other/new").string(),
        "truncate " + (root_ / "etc/other/victim").string()}) {
    EXPECT_TRUE(Has(r.err, "hook-escape " + op + " errno 13")) << op << "\n" << r.err;
  }
  EXPECT_EQ(ReadFileOrEmpty(outside_ / "victim"), "keep");
  EXPECT_EQ(ReadFileOrEmpty(root_ / "etc/other/victim"), "keep");
  EXPECT_FALSE(fs::exists(outside_ / "new"));
  EXPECT_FALSE(fs::exists(outside_ / "dir"));
  EXPECT_FALSE(fs::exists(fs::symlink_status(outside_ / "link")));
  EXPECT_FALSE(fs::exists(root_ / "etc/other/new"));
  // No process and no program (EPERM = 1): the applier's seccomp layer.
  EXPECT_TRUE(Has(r.err, "hook-escape fork - errno 1")) << r.err;
  EXPECT_TRUE(Has(r.err, "hook-escape exec /bin/true errno 1")) << r.err;
  // The bundle itself converged: the files, and the exec (run by the
  // worker, outside the applier's domain) wrote where it wanted.
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFileOrEmpty(root_ / "etc/webapp/app.conf"), "v=1\n");
  EXPECT_EQ(ReadFileOrEmpty(outside_ / "by-exec"), "x\n");
  EXPECT_TRUE(Has(r.err, "landlock=enforced")) << r.err;
  EXPECT_TRUE(Has(r.err, "writable_hierarchies=1")) << r.err;
}

// #14 review: a target whose parent does not exist yet used to put the rule
// on the nearest existing ancestor, so a subverted applier creating
// /etc/newapp/app.conf could write /etc/ld.so.preload (code in every later
// process on the host). The worker makes the parent first; the rule is on it.
TEST_F(ApplierLandlockTest, ANewParentDirectoryDoesNotOpenItsAncestorToTheApplier) {
  fs::create_directories(root_ / "etc");
  ASSERT_FALSE(fs::exists(root_ / "etc/newapp"));
  const std::string ops = "create " + (root_ / "etc/ld.so.preload").string() + "\\n" + "create " +
                          (root_ / "etc/newapp/inside").string() + "\\n";
  fleet_.WriteStacks({{"envoys.vgo", "envoys:\n  - match: web-1\n    configcrates: [app]\n"},
                      {"configcrates/app.vgo",
                       "configcrate: app\nresources:\n"
                       "  - name: app\n    type: file\n    target_path: /etc/newapp/app.conf\n"
                       "    content: \"v=1\\n\"\n"
                       "  - name: hook-escape\n    type: file\n    target_path: "
                       "/etc/newapp/hook.txt\n    content: \"" +
                           ops + "\"\n"}});
  ASSERT_TRUE(fleet_.StartServer()) << fleet_.last_error();
  ASSERT_TRUE(fleet_.IssueEnvoy("web-1")) << fleet_.last_error();
  RunResult r = RunHookedAgent();
  EXPECT_TRUE(Has(r.err, "hook-escape create " + (root_ / "etc/newapp/inside").string() + " ok"))
      << r.err;
  EXPECT_TRUE(
      Has(r.err, "hook-escape create " + (root_ / "etc/ld.so.preload").string() + " errno 13"))
      << r.err;
  EXPECT_FALSE(fs::exists(root_ / "etc/ld.so.preload"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFileOrEmpty(root_ / "etc/newapp/app.conf"), "v=1\n");
  EXPECT_FALSE(Has(r.err, "applier domain is the whole apply root")) << r.err;
}

// #14 review: while a command runs, the applier is stopped, so it cannot
// write into the command's memory (/proc/<pid>/mem needs no ptrace call, and
// without Landlock nothing else stops it). The command sees the applier (a
// vigo-worker other than PID 1) in state T, and the run still converges
// (the applier is continued and reports the command's result).
TEST_F(ApplierLandlockTest, TheApplierIsStoppedWhileACommandRuns) {
  const fs::path seen = outside_ / "seen";
  const std::string script =
      "for f in /proc/[0-9]*/status; do "
      "if grep -q '^Name:.vigo-worker' $f && grep -q '^State:.T' $f; then echo stopped >> " +
      seen.string() + "; fi; done; true";
  fleet_.WriteStacks({{"envoys.vgo", "envoys:\n  - match: web-1\n    configcrates: [app]\n"},
                      {"configcrates/app.vgo",
                       "configcrate: app\nresources:\n"
                       "  - name: look\n    type: exec\n    command: [\"/bin/sh\", \"-c\", \"" +
                           script +
                           "\"]\n"
                           "  - name: after\n    type: file\n    target_path: /etc/after.conf\n"
                           "    content: \"ok\\n\"\n"}});
  ASSERT_TRUE(fleet_.StartServer()) << fleet_.last_error();
  ASSERT_TRUE(fleet_.IssueEnvoy("web-1")) << fleet_.last_error();
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{},
        std::vector<std::string>{"--insecure-skip-lockdown", "landlock"}}) {
    fs::remove(seen);
    RunResult r = RunHookedAgent(extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(ReadFileOrEmpty(seen), "stopped\n") << (extra.empty() ? "landlock" : "no landlock");
    EXPECT_EQ(ReadFileOrEmpty(root_ / "etc/after.conf"), "ok\n");
  }
}

// Control: the same hook with the step opted out gets through, so the test
// above fails if the applier stops restricting itself.
TEST_F(ApplierLandlockTest, ControlWithLandlockOptedOutTheHookWritesOutside) {
  Start();
  RunResult r = RunHookedAgent({"--insecure-skip-lockdown", "landlock"});
  EXPECT_TRUE(Has(r.err, "hook-escape create " + (outside_ / "new").string() + " ok")) << r.err;
  EXPECT_TRUE(fs::exists(outside_ / "new"));
  EXPECT_TRUE(Has(r.err, "landlock=off")) << r.err;
}

// #14 item 3: a subverted applier (the hook, on the applier's socket) asks
// the worker to run exec 'b' after reporting its dependency 'a' as failed:
// the worker refuses, kills the applier and fails the run, and 'b' never
// runs; likewise for a command asked for before the results ahead of it.
// Control: asking for 'a' (no dependency) the same way runs it.
TEST_F(ApplierLandlockTest, TheWorkerRunsNoCommandWhoseDependencyDidNotConverge) {
  struct Case {
    std::string hook;
    std::string want_error;  // "" for the control
  };
  const std::vector<Case> cases = {
      {"result 0 ok\\nresult 1 failed\\nrunexec 2\\n",
       "the applier asked to run exec 'b', whose dependency 'a' did not converge"},
      {"runexec 2\\n", "the applier asked to run exec 'b' before reporting 2 resource(s)"},
      {"result 0 ok\\nrunexec 1\\n", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.hook);
    fs::remove(outside_ / "a");
    fs::remove(outside_ / "b");
    fleet_.WriteStacks(
        {{"envoys.vgo", "envoys:\n  - match: web-1\n    configcrates: [app]\n"},
         {"configcrates/app.vgo",
          "configcrate: app\nresources:\n"
          "  - name: hook-runexec\n    type: file\n    target_path: /etc/webapp/hook.txt\n"
          "    content: \"" +
              c.hook +
              "\"\n"
              "  - name: a\n    type: exec\n    command: [\"/bin/sh\", \"-c\", \"echo a > " +
              (outside_ / "a").string() +
              "\"]\n"
              "  - name: b\n    type: exec\n    depends_on: [a]\n"
              "    command: [\"/bin/sh\", \"-c\", \"echo b > " +
              (outside_ / "b").string() + "\"]\n"}});
    ASSERT_TRUE(fleet_.StartServer()) << fleet_.last_error();  // loads the stacks
    if (&c == &cases[0]) {
      ASSERT_TRUE(fleet_.IssueEnvoy("web-1")) << fleet_.last_error();
    }
    RunResult r = RunHookedAgent();
    EXPECT_FALSE(fs::exists(outside_ / "b")) << r.err;
    if (c.want_error.empty()) {
      EXPECT_TRUE(Has(r.err, "hook-runexec 1 reply R")) << r.err;
      EXPECT_EQ(ReadFileOrEmpty(outside_ / "a"), "a\n") << r.err;
    } else {
      EXPECT_TRUE(Has(r.err, c.want_error)) << r.err;
      EXPECT_FALSE(Has(r.err, "hook-runexec 2 reply R")) << r.err;
      EXPECT_FALSE(fs::exists(outside_ / "a")) << r.err;
      EXPECT_NE(r.exit_code, 0);
    }
  }
}

// The clean-up after a timed-out command kills every other process of the
// worker's namespace (a setsid grandchild too) but the applier waiting for
// the result: the files after the command are still applied.
TEST_F(ApplierLandlockTest, ATimedOutCommandsCleanUpSparesTheApplier) {
  fleet_.WriteStacks({{"envoys.vgo", "envoys:\n  - match: web-1\n    configcrates: [app]\n"},
                      {"configcrates/app.vgo",
                       "configcrate: app\nresources:\n"
                       "  - name: before\n    type: file\n    target_path: /etc/a/before.conf\n"
                       "    content: \"1\"\n"
                       "  - name: hang\n    type: exec\n    timeout: 1\n"
                       "    command: [\"/bin/sh\", \"-c\", \"setsid sleep 60 & sleep 60\"]\n"
                       "  - name: after\n    type: file\n    target_path: /etc/b/after.conf\n"
                       "    content: \"2\"\n"}});
  ASSERT_TRUE(fleet_.StartServer()) << fleet_.last_error();
  ASSERT_TRUE(fleet_.IssueEnvoy("web-1")) << fleet_.last_error();
  RunResult r = fleet_.RunAgent("web-1");
  EXPECT_EQ(ReadFileOrEmpty(root_ / "etc/a/before.conf"), "1") << r.err;
  EXPECT_EQ(ReadFileOrEmpty(root_ / "etc/b/after.conf"), "2") << r.err;
  EXPECT_TRUE(Has(r.err, "timed out")) << r.err;
  EXPECT_FALSE(Has(r.err, "applier failed")) << r.err;
}

// A command can stop the applier (same uid, same namespace). The worker
// stops it itself while a command runs and continues it afterwards, so a
// command's stop is undone and the run converges.
TEST_F(ApplierLandlockTest, ACommandThatStopsTheApplierDoesNotHangTheRun) {
  // By name (comm): the applier is the vigo-worker that is not PID 1.
  const std::string stop =
      "for p in /proc/[0-9]*; do n=${p#/proc/}; c=$(cat $p/comm 2>/dev/null); "
      "if [ $n != 1 ] && [ x$c = xvigo-worker ]; then kill -STOP $n; fi; done";
  fleet_.WriteStacks({{"envoys.vgo", "envoys:\n  - match: web-1\n    configcrates: [app]\n"},
                      {"configcrates/app.vgo",
                       "configcrate: app\nresources:\n"
                       "  - name: stopper\n    type: exec\n    command: [\"/bin/sh\", \"-c\", \"" +
                           stop +
                           "\"]\n"
                           "  - name: after\n    type: file\n    target_path: /etc/b/after.conf\n"
                           "    content: \"2\"\n"}});
  ASSERT_TRUE(fleet_.StartServer()) << fleet_.last_error();
  ASSERT_TRUE(fleet_.IssueEnvoy("web-1")) << fleet_.last_error();
  RunResult r = fleet_.RunAgent("web-1");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ReadFileOrEmpty(root_ / "etc/b/after.conf"), "2") << r.err;
}

// An applier stopped at any other time (here by itself, through the hook)
// is noticed: the worker kills it and fails the rest of the bundle instead
// of waiting for ever.
TEST_F(ApplierLandlockTest, AStoppedApplierFailsTheRunInsteadOfHangingIt) {
  fleet_.WriteStacks({{"envoys.vgo", "envoys:\n  - match: web-1\n    configcrates: [app]\n"},
                      {"configcrates/app.vgo",
                       "configcrate: app\nresources:\n"
                       "  - name: hook-escape\n    type: file\n    target_path: /etc/b/hook.txt\n"
                       "    content: \"stop -\\n\"\n"
                       "  - name: after\n    type: file\n    target_path: /etc/b/after.conf\n"
                       "    content: \"2\"\n"}});
  ASSERT_TRUE(fleet_.StartServer()) << fleet_.last_error();
  ASSERT_TRUE(fleet_.IssueEnvoy("web-1")) << fleet_.last_error();
  RunResult r = RunHookedAgent();
  EXPECT_TRUE(Has(r.err, "the applier was stopped by signal 19")) << r.err;
  EXPECT_FALSE(fs::exists(root_ / "etc/b/after.conf"));
  EXPECT_NE(r.exit_code, 0);
}

}  // namespace
}  // namespace vigo::testing
