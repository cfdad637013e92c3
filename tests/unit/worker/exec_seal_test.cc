// Every exec resource runs under the exec-child seccomp layer
// (sandbox/lockdown.h: PrepareExecChildSeal + LockDownExecChildAsyncSignalSafe
// in the pre-exec hook), and a seal that cannot load fails the resource
// without running the command.
//
// The exec-child table is the hard-denial floor, which the worker table also
// carries, so under the worker filter no syscall tells the two apart. The
// proofs are therefore: (1) the child's Seccomp_filters count is one more
// than its parent's, (2) in this unfiltered-by-us test process, a
// hard-denied syscall (keyctl) is killed with SIGSYS in a command but not in
// the same command spawned without the layer, (3) under the real worker
// lockdown (a re-exec of this binary) the command sees worker + 1 filters.
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>

#include "agent-worker/apply.h"
#include "agent-worker/exec_runner.h"
#include "common/strings.h"
#include "gtest/gtest.h"
#include "sandbox/child_process.h"
#include "sandbox/lockdown.h"
#include "tests/support/test_env.h"

namespace vigo::worker {
namespace {

namespace fs = std::filesystem;
using vigo::testing::TempDir;

constexpr char kChildEnv[] = "VIGO_EXEC_SEAL_TEST_CHILD";

// "Seccomp_filters:\tN" of this process, or -1.
int OwnSeccompFilters() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Seccomp_filters:", 0) == 0) return std::atoi(line.c_str() + 16);
  }
  return -1;
}

v1::Resource* AddExec(v1::PolicyBundle* b, std::string name, std::vector<std::string> argv) {
  v1::Resource* r = b->add_resources();
  r->set_name(std::move(name));
  r->set_type("exec");
  for (auto& a : argv) r->add_command(a);
  return r;
}

const char kStatusCmd[] = "grep -E '^(Seccomp_filters|NoNewPrivs):' /proc/self/status";

TEST(ExecSealTest, CommandRunsUnderOneMoreFilterWithNoNewPrivs) {
  const int own = OwnSeccompFilters();
  ASSERT_GE(own, 0) << "kernel without Seccomp_filters in /proc/self/status";
  MapValueSource values;
  TempDir root;
  ApplyOptions opts;
  opts.apply_root = root.path().string();
  ApplyEngine engine(opts);  // no seal given: compiled at the first exec
  v1::PolicyBundle b;
  AddExec(&b, "status", {"/bin/sh", "-c", kStatusCmd});
  AddExec(&b, "status-again", {"/bin/sh", "-c", kStatusCmd});
  auto results = engine.Apply(b, values);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& r : results) {
    EXPECT_EQ(r.status(), "changed") << r.message();
    EXPECT_NE(r.message().find(StrCat("Seccomp_filters:\t", own + 1)), std::string::npos)
        << "own filters " << own << "; " << r.message();
    EXPECT_NE(r.message().find("NoNewPrivs:\t1"), std::string::npos) << r.message();
  }
}

TEST(ExecSealTest, HardDeniedSyscallIsKilledOnlyWithTheLayer) {
  if (::access("/usr/bin/perl", X_OK) != 0) GTEST_SKIP() << "needs /usr/bin/perl";
  const std::string script = StrCat("syscall(", SYS_keyctl, ", 0, 0, 0, 0, 0); exit 0");

  // Control: the same command spawned without the layer is not killed (the
  // test process may carry a container filter that errnos keyctl; that is
  // fine, it must just not be SIGSYS).
  sandbox::SpawnOptions so;
  so.argv = {"/usr/bin/perl", "-e", script};
  auto plain = sandbox::ChildProcess::Spawn(so);
  ASSERT_TRUE(plain.ok()) << plain.status();
  auto plain_exit = plain->Wait();
  ASSERT_TRUE(plain_exit.ok()) << plain_exit.status();
  ASSERT_TRUE(plain_exit->exited && plain_exit->exit_code == 0)
      << "control run was not clean; signal " << plain_exit->signal;

  MapValueSource values;
  TempDir root;
  ApplyOptions opts;
  opts.apply_root = root.path().string();
  ApplyEngine engine(opts);
  v1::PolicyBundle b;
  AddExec(&b, "keyctl", {"/usr/bin/perl", "-e", script});
  auto results = engine.Apply(b, values);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status(), "failed");
  EXPECT_NE(results[0].message().find(StrCat("killed by signal ", SIGSYS)), std::string::npos)
      << results[0].message();
}

TEST(ExecSealTest, SealThatCannotLoadFailsTheResourceWithoutRunningIt) {
  MapValueSource values;
  TempDir root;
  ApplyOptions opts;
  opts.apply_root = root.path().string();
  // An empty program: the kernel (and the loader) refuse it with EINVAL.
  opts.exec_child_seal = std::make_shared<const sandbox::ExecChildSeal>();
  ApplyEngine engine(opts);
  const fs::path marker = root.path() / "ran";
  v1::PolicyBundle b;
  AddExec(&b, "touch", {"/usr/bin/touch", marker.string()});
  auto results = engine.Apply(b, values);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status(), "failed");
  EXPECT_NE(results[0].message().find("exec-child seccomp layer could not be loaded"),
            std::string::npos)
      << results[0].message();
  EXPECT_NE(results[0].message().find("pre-exec hook"), std::string::npos)
      << results[0].message();
  EXPECT_FALSE(fs::exists(marker)) << "the command ran without its filter";
}

TEST(ExecSealTest, RunCommandRefusesWithoutASeal) {
  TempDir root;
  const fs::path marker = root.path() / "ran";
  ExecSpec spec;
  spec.argv = {"/usr/bin/touch", marker.string()};
  spec.env = {kExecPath};
  auto out = RunCommand(spec, nullptr);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition) << out.status();
  EXPECT_FALSE(fs::exists(marker));

  // And with a seal it runs (the refusal above is about the seal only).
  auto seal = sandbox::PrepareExecChildSeal();
  ASSERT_TRUE(seal.ok()) << seal.status();
  spec.exec_child_seal = &*seal;
  out = RunCommand(spec, nullptr);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(out->exited && out->exit_code == 0);
  EXPECT_TRUE(fs::exists(marker));
}

// The worker's real order: seal compiled, then LockDownWorker, then exec
// resources. Runs in a fresh process (this binary re-executed with
// kChildEnv set): lockdown needs a single thread and must not leak into the
// other tests, and the secret arena is not inherited across a plain fork.
TEST(ExecSealTest, UnderWorkerLockdownCommandSeesWorkerFilterPlusOne) {
  if (std::getenv(kChildEnv) != nullptr) {
    auto seal = sandbox::PrepareExecChildSeal();
    ASSERT_TRUE(seal.ok()) << seal.status();
    sandbox::WorkerLockdownSpec spec;
    // This re-executed test binary is not PID 1 of a PID namespace (the
    // broker starts the real worker that way); the filters are what is tested.
    spec.insecure_skip = {sandbox::kStepPidNamespace};
    auto locked = sandbox::LockDownWorker(spec);
    ASSERT_TRUE(locked.ok()) << locked.status();
    const int worker = OwnSeccompFilters();
    ASSERT_GE(worker, 1);
    MapValueSource values;
    ApplyOptions opts;
    opts.exec_child_seal = std::make_shared<const sandbox::ExecChildSeal>(std::move(*seal));
    ApplyEngine engine(opts);
    v1::PolicyBundle b;
    AddExec(&b, "status", {"/bin/sh", "-c", kStatusCmd});
    auto results = engine.Apply(b, values);
    ASSERT_EQ(results.size(), 1u);
    EXPECT_EQ(results[0].status(), "changed") << results[0].message();
    EXPECT_NE(results[0].message().find(StrCat("Seccomp_filters:\t", worker + 1)),
              std::string::npos)
        << "worker filters " << worker << "; " << results[0].message();
    std::printf("EXEC-SEAL-CHILD-DONE worker=%d\n", worker);
    return;
  }
  if (::geteuid() != 0) GTEST_SKIP() << "worker lockdown needs root (mount namespace)";
  const fs::path self = fs::read_symlink("/proc/self/exe");
  auto r = vigo::testing::Run(
      {self.string(),
       "--gtest_filter=ExecSealTest.UnderWorkerLockdownCommandSeesWorkerFilterPlusOne"},
      {}, {StrCat(kChildEnv, "=1")});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("EXEC-SEAL-CHILD-DONE"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[  PASSED  ] 1 test"), std::string::npos) << r.out;
}

}  // namespace
}  // namespace vigo::worker
