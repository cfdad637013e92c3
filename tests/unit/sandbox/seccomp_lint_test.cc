// Lint of the seccomp tables (minijail's seccomp_policy_lint): structure that
// reviewers rely on, checked on every build.
#include <cstring>
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "sandbox/policies/policy_util.h"
#include "sandbox/seccomp_policy.h"

namespace vigo::sandbox {
namespace {

const SyscallRule* Find(const Policy& p, const char* name) {
  for (const SyscallRule& r : p.rules) {
    if (std::strcmp(r.name, name) == 0) return &r;
  }
  return nullptr;
}

bool Allows(const Policy& p, const char* name) {
  const SyscallRule* r = Find(p, name);
  if (r == nullptr) return p.default_action == Allow();
  return r->action == Allow();
}

class SeccompLintTest : public ::testing::TestWithParam<const Policy*> {};

TEST_P(SeccompLintTest, NoDuplicateSyscalls) {
  std::set<std::string> seen;
  for (const SyscallRule& r : GetParam()->rules) {
    EXPECT_TRUE(seen.insert(r.name).second) << GetParam()->process << ": duplicate row for "
                                            << r.name << " (merge the argument rules with AnyOf)";
  }
}

TEST_P(SeccompLintTest, EveryNameIsAnX86_64Syscall) {
  for (const SyscallRule& r : GetParam()->rules) {
    EXPECT_GE(SyscallNumber(r.name), 0) << GetParam()->process << ": unknown syscall " << r.name;
  }
}

TEST_P(SeccompLintTest, EveryRowSaysWhy) {
  for (const SyscallRule& r : GetParam()->rules) {
    ASSERT_NE(r.why, nullptr);
    EXPECT_GT(std::strlen(r.why), 0u) << GetParam()->process << ": " << r.name << " has no why";
  }
}

TEST_P(SeccompLintTest, DangerousAllowsHaveArgumentRuleOrJustification) {
  for (const SyscallRule& r : GetParam()->rules) {
    if (r.action != Allow() || !IsDangerousSyscall(r.name)) continue;
    if (!r.args.empty()) continue;
    // No argument rule: the justification must be a real sentence.
    EXPECT_GE(std::strlen(r.why), 20u)
        << GetParam()->process << ": dangerous syscall " << r.name
        << " is allowed without an argument rule and without a justification";
  }
}

TEST_P(SeccompLintTest, Compiles) {
  auto f = CompilePolicy(*GetParam());
  EXPECT_TRUE(f.ok()) << f.status();
}

INSTANTIATE_TEST_SUITE_P(AllPolicies, SeccompLintTest, ::testing::ValuesIn(AllPolicies()),
                         [](const auto& param_info) {
                           return std::string(param_info.param->process);
                         });

TEST(SeccompLintTest, AllowlistsKillByDefault) {
  EXPECT_EQ(BrokerPolicy().default_action, KillProcess());
  EXPECT_EQ(WorkerPolicy().default_action, KillProcess());
}

TEST(SeccompLintTest, BrokerHasNoProcessCreationOrForeignMemoryAccess) {
  const Policy& b = BrokerPolicy();
  for (const char* name : {"execve", "execveat", "fork", "vfork", "ptrace", "process_vm_readv",
                           "process_vm_writev", "bpf", "mount", "setns", "unshare", "seccomp",
                           "memfd_create", "open", "creat", "unlink", "rename"}) {
    EXPECT_FALSE(Allows(b, name)) << "broker allows " << name;
  }
  const SyscallRule* clone = Find(b, "clone");
  ASSERT_NE(clone, nullptr);
  EXPECT_FALSE(clone->args.empty()) << "broker clone must require CLONE_THREAD";
  for (const char* name :
       {"openat", "socket", "mmap", "mprotect", "prctl", "ioctl", "kill", "tgkill"}) {
    const SyscallRule* r = Find(b, name);
    ASSERT_NE(r, nullptr) << name;
    EXPECT_FALSE(r->args.empty()) << "broker " << name << " must have an argument rule";
  }
}

TEST(SeccompLintTest, HardDenialsKillInWorkerAndExecChild) {
  for (const Policy* p : {&WorkerPolicy(), &ExecChildPolicy()}) {
    for (const SyscallRule& d : policies::kHardDenials) {
      const SyscallRule* r = Find(*p, d.name);
      ASSERT_NE(r, nullptr) << p->process << " lacks hard denial " << d.name;
      EXPECT_EQ(r->action, KillProcess()) << p->process << " " << d.name;
    }
  }
  for (const SyscallRule& d : policies::kHardDenials) {
    EXPECT_FALSE(Allows(BrokerPolicy(), d.name)) << "broker allows " << d.name;
  }
}

TEST(SeccompLintTest, DescribeIsReadable) {
  EXPECT_EQ(DescribeArgRule(ArgIn(0, {1, 2, 10})), "arg0 in {1, 2, 10}");
  EXPECT_EQ(DescribeArgRule(ArgHasAll(0, 0x10000)), "(arg0 & 0x10000) == 0x10000");
  EXPECT_EQ(DescribeArgRule({}), "any");
  EXPECT_EQ(DescribeAction(Errno(38)), "errno ENOSYS");
}

TEST(SeccompLintTest, MalformedRowsAreRejected) {
  static constexpr SyscallRule kUnknown[] = {{"no_such_syscall", {}, Allow(), "test"}};
  Policy p{"test", KillProcess(), kUnknown, ""};
  auto f = CompilePolicy(p);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(std::string(f.status().message()).find("no_such_syscall"), std::string::npos);

  static constexpr SyscallRule kSameArgTwice[] = {
      {"socket", AllOf(ArgEq(0, 1), ArgEq(0, 2)), Allow(), "test"}};
  Policy q{"test", KillProcess(), kSameArgTwice, ""};
  EXPECT_FALSE(CompilePolicy(q).ok());
}

}  // namespace
}  // namespace vigo::sandbox
