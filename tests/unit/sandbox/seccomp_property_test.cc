// Property: the BPF that CompilePolicy emits decides every (syscall, args,
// arch) exactly as the policy table says. A small classic-BPF interpreter runs
// the exported program in user space against a reference reading of the
// table, for random inputs biased towards rule edges (values, masks, upper
// 32 bits set). This checks the compiler, not just the golden's text.
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "rapidcheck/gtest.h"
#include "sandbox/seccomp_policy.h"

namespace vigo::sandbox {
namespace {

constexpr uint32_t kX32Bit = 0x40000000;

// Runs a seccomp cBPF program over `data`; returns the SECCOMP_RET_* value.
uint32_t RunBpf(const std::vector<sock_filter>& prog, const seccomp_data& data) {
  uint32_t a = 0, x = 0;
  uint32_t mem[BPF_MEMWORDS] = {};
  const auto* bytes = reinterpret_cast<const uint8_t*>(&data);
  for (size_t pc = 0; pc < prog.size(); ++pc) {
    const sock_filter& in = prog[pc];
    switch (BPF_CLASS(in.code)) {
      case BPF_LD:
        if (BPF_MODE(in.code) == BPF_ABS && BPF_SIZE(in.code) == BPF_W) {
          if (in.k + 4 > sizeof(data)) return 0xdead0001;
          std::memcpy(&a, bytes + in.k, 4);
        } else if (BPF_MODE(in.code) == BPF_MEM) {
          a = mem[in.k];
        } else if (BPF_MODE(in.code) == BPF_IMM) {
          a = in.k;
        } else {
          return 0xdead0002;
        }
        break;
      case BPF_LDX:
        if (BPF_MODE(in.code) == BPF_MEM)
          x = mem[in.k];
        else if (BPF_MODE(in.code) == BPF_IMM)
          x = in.k;
        else
          return 0xdead0003;
        break;
      case BPF_ST:
        mem[in.k] = a;
        break;
      case BPF_STX:
        mem[in.k] = x;
        break;
      case BPF_ALU: {
        uint32_t src = BPF_SRC(in.code) == BPF_X ? x : in.k;
        switch (BPF_OP(in.code)) {
          case BPF_AND:
            a &= src;
            break;
          case BPF_OR:
            a |= src;
            break;
          case BPF_ADD:
            a += src;
            break;
          case BPF_SUB:
            a -= src;
            break;
          case BPF_RSH:
            a >>= src;
            break;
          case BPF_LSH:
            a <<= src;
            break;
          default:
            return 0xdead0004;
        }
        break;
      }
      case BPF_JMP: {
        if (BPF_OP(in.code) == BPF_JA) {
          pc += in.k;
          break;
        }
        uint32_t src = BPF_SRC(in.code) == BPF_X ? x : in.k;
        bool cond;
        switch (BPF_OP(in.code)) {
          case BPF_JEQ:
            cond = a == src;
            break;
          case BPF_JGT:
            cond = a > src;
            break;
          case BPF_JGE:
            cond = a >= src;
            break;
          case BPF_JSET:
            cond = (a & src) != 0;
            break;
          default:
            return 0xdead0005;
        }
        pc += cond ? in.jt : in.jf;
        break;
      }
      case BPF_RET:
        return BPF_RVAL(in.code) == BPF_A ? a : in.k;
      case BPF_MISC:
        if (BPF_MISCOP(in.code) == BPF_TAX)
          x = a;
        else
          a = x;
        break;
      default:
        return 0xdead0006;
    }
  }
  return 0xdead0007;  // fell off the end: invalid program
}

uint32_t ToRet(const Action& a) {
  switch (a.kind) {
    case ActionKind::kAllow:
      return SECCOMP_RET_ALLOW;
    case ActionKind::kErrno:
      return SECCOMP_RET_ERRNO | static_cast<uint32_t>(a.errno_value);
    case ActionKind::kKillProcess:
      return SECCOMP_RET_KILL_PROCESS;
  }
  return SECCOMP_RET_KILL_PROCESS;
}

// The table, read the way docs/sandbox.md states it.
uint32_t Reference(const Policy& p, const CompileOptions& o, const seccomp_data& d) {
  if (d.arch != AUDIT_ARCH_X86_64 || (d.nr & kX32Bit) != 0) return SECCOMP_RET_KILL_PROCESS;
  const std::string name = SyscallName(d.nr);
  for (const SyscallRule& r : p.rules) {
    if (name != r.name) continue;
    if (r.args.empty()) return ToRet(r.action);
    for (int c = 0; c < r.args.size; ++c) {
      const ArgClause& cl = r.args.any_of[c];
      bool match = true;
      for (int j = 0; j < cl.size && match; ++j) {
        const ArgCmp& cmp = cl.cmps[j];
        uint64_t v = cmp.value;
        if (cmp.source == ValueSource::kSelfPid) v = static_cast<uint64_t>(o.self_pid);
        if (cmp.source == ValueSource::kPeerPid) {
          if (o.peer_pid <= 0) match = false;
          v = static_cast<uint64_t>(o.peer_pid);
        }
        const uint64_t arg = d.args[cmp.arg];
        match = match && (cmp.op == CmpOp::kMaskedEq ? (arg & cmp.mask) == v : arg == v);
      }
      if (match) return ToRet(r.action);
    }
    return ToRet(p.default_action);
  }
  return ToRet(p.default_action);
}

// Interesting argument values: every literal and mask in the table, with and
// without upper bits, plus the pids and random words.
std::vector<uint64_t> InterestingValues(const Policy& p, const CompileOptions& o) {
  std::vector<uint64_t> v = {0,
                             1,
                             ~uint64_t{0},
                             uint64_t{1} << 32,
                             static_cast<uint64_t>(o.self_pid),
                             static_cast<uint64_t>(o.peer_pid)};
  for (const SyscallRule& r : p.rules) {
    for (int c = 0; c < r.args.size; ++c) {
      for (int j = 0; j < r.args.any_of[c].size; ++j) {
        const ArgCmp& cmp = r.args.any_of[c].cmps[j];
        for (uint64_t base : {cmp.value, cmp.mask, cmp.value | cmp.mask, cmp.mask & ~cmp.value}) {
          v.push_back(base);
          v.push_back(base | (uint64_t{1} << 32));
          v.push_back(base ^ 1);
        }
      }
    }
  }
  return v;
}

void CheckPolicy(const Policy& policy) {
  const CompileOptions options = GoldenCompileOptions();
  auto filter = CompilePolicy(policy, options);
  RC_ASSERT(filter.ok());
  auto bpf = filter->ExportBpf();
  RC_ASSERT(bpf.ok());
  const std::vector<uint64_t> interesting = InterestingValues(policy, options);
  std::vector<int> table_nrs;
  for (const SyscallRule& r : policy.rules) table_nrs.push_back(SyscallNumber(r.name));

  const auto gen_arg =
      rc::gen::oneOf(rc::gen::elementOf(interesting), rc::gen::arbitrary<uint64_t>());
  for (int i = 0; i < 50; ++i) {
    seccomp_data d{};
    d.nr = *rc::gen::oneOf(rc::gen::elementOf(table_nrs), rc::gen::inRange(0, 600),
                           rc::gen::map(rc::gen::elementOf(table_nrs),
                                        [](int n) { return static_cast<int>(n | kX32Bit); }));
    d.arch = *rc::gen::weightedElement<uint32_t>(
        {{20, AUDIT_ARCH_X86_64}, {1, AUDIT_ARCH_I386}, {1, AUDIT_ARCH_AARCH64}});
    for (auto& a : d.args) a = *gen_arg;
    const uint32_t got = RunBpf(bpf->instructions, d);
    const uint32_t want = Reference(policy, options, d);
    RC_ASSERT(got == want);
  }
}

RC_GTEST_PROP(SeccompCompilerProperty, BrokerBpfMatchesTable, ()) { CheckPolicy(BrokerPolicy()); }
RC_GTEST_PROP(SeccompCompilerProperty, WorkerBpfMatchesTable, ()) { CheckPolicy(WorkerPolicy()); }
RC_GTEST_PROP(SeccompCompilerProperty, ExecChildBpfMatchesTable, ()) {
  CheckPolicy(ExecChildPolicy());
}

// The interpreter is not vacuous: it tells allowed from killed on known cases.
TEST(SeccompCompilerProperty, InterpreterSeesKnownVerdicts) {
  auto filter = CompilePolicy(BrokerPolicy(), GoldenCompileOptions());
  ASSERT_TRUE(filter.ok());
  auto bpf = filter->ExportBpf();
  ASSERT_TRUE(bpf.ok());
  seccomp_data d{};
  d.arch = AUDIT_ARCH_X86_64;
  d.nr = static_cast<int>(SyscallNumber("read"));
  EXPECT_EQ(RunBpf(bpf->instructions, d), SECCOMP_RET_ALLOW);
  d.nr = SyscallNumber("execve");
  EXPECT_EQ(RunBpf(bpf->instructions, d), SECCOMP_RET_KILL_PROCESS);
  d.nr = SyscallNumber("clone3");
  EXPECT_EQ(RunBpf(bpf->instructions, d), SECCOMP_RET_ERRNO | 38u);
  d.nr = SyscallNumber("socket");
  d.args[0] = 2;  // AF_INET
  EXPECT_EQ(RunBpf(bpf->instructions, d), SECCOMP_RET_ALLOW);
  d.args[0] = 2 | (uint64_t{1} << 32);
  EXPECT_EQ(RunBpf(bpf->instructions, d), SECCOMP_RET_KILL_PROCESS);
  d.arch = AUDIT_ARCH_I386;
  d.nr = 3;
  EXPECT_EQ(RunBpf(bpf->instructions, d), SECCOMP_RET_KILL_PROCESS);
}

}  // namespace
}  // namespace vigo::sandbox
