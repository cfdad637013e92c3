// Seccomp policies as data, and the one compiler that turns them into BPF.
//
//   // 1. A policy is a table (see sandbox/policies/*_policy.cc):
//   const Policy& policy = BrokerPolicy();
//   // 2. Compile it (libseccomp). Rules that name a runtime pid are resolved
//   //    from `options`; the default and bad-architecture actions are KILL_PROCESS.
//   CompileOptions options{.self_pid = getpid(), .peer_pid = worker_pid};
//   VIGO_ASSIGN_OR_RETURN(CompiledFilter filter, CompilePolicy(policy, options));
//   // 3a. Load it into the calling process (all threads: TSYNC) ...
//   VIGO_RETURN_IF_ERROR(filter.Load());
//   // 3b. ... or export raw BPF before fork() and load it in the child with
//   //     LoadBpfAsyncSignalSafe(), which is safe between fork and execve.
//   VIGO_ASSIGN_OR_RETURN(BpfProgram bpf, filter.ExportBpf());
//
// Life cycle of a filter: Policy (constexpr table) → CompilePolicy → Load or
// ExportBpf/LoadBpfAsyncSignalSafe. Goldens: ExportPfc() gives libseccomp's
// readable pseudo filter code; tests/unit/sandbox/seccomp_golden_test.cc
// compares it with sandbox/policies/golden/<process>.x86_64.pfc.
//
// Architecture: only native x86-64 is allowed. Syscalls entering through the
// i386 entry point (int $0x80) or with the x32 bit set reach the
// bad-architecture action, which is KILL_PROCESS.
//
// SECURITY: argument rules compare the full 64-bit register. Only equality
// (kEq / kIn) and masked equality (kMaskedEq, kMaskedZero) exist on purpose:
// a "not equal" rule on a 32-bit kernel argument can be bypassed by setting
// the upper half of the register (the kernel truncates, the filter does not).
//
// Thread safety: all functions are thread-compatible; Policy tables are
// immutable after static initialization.
#ifndef VIGO_SANDBOX_SECCOMP_POLICY_H_
#define VIGO_SANDBOX_SECCOMP_POLICY_H_

#include <linux/filter.h>
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vigo::sandbox {

// What the filter does when a rule matches (or for the default).
enum class ActionKind : uint8_t { kAllow, kErrno, kKillProcess };

struct Action {
  ActionKind kind = ActionKind::kKillProcess;
  int errno_value = 0;  // only for kErrno

  friend constexpr bool operator==(const Action&, const Action&) = default;
};
constexpr Action Allow() { return {ActionKind::kAllow, 0}; }
constexpr Action Errno(int e) { return {ActionKind::kErrno, e}; }
constexpr Action KillProcess() { return {ActionKind::kKillProcess, 0}; }

// Where a comparison's operand comes from.
enum class ValueSource : uint8_t {
  kLiteral,  // `value` as written
  kSelfPid,  // CompileOptions::self_pid (the filtered process's own tgid)
  kPeerPid,  // CompileOptions::peer_pid (e.g. the broker's worker child)
};

enum class CmpOp : uint8_t {
  kNone,      // unused slot
  kEq,        // arg == value
  kMaskedEq,  // (arg & mask) == value
};

// One comparison on one syscall argument.
struct ArgCmp {
  uint8_t arg = 0;  // 0..5
  CmpOp op = CmpOp::kNone;
  uint64_t mask = 0;  // kMaskedEq only
  uint64_t value = 0;
  ValueSource source = ValueSource::kLiteral;
};

// AND of up to three comparisons, each on a different argument (libseccomp
// refuses two comparisons of the same argument in one rule).
struct ArgClause {
  std::array<ArgCmp, 3> cmps{};
  int size = 0;
};

// OR of clauses. Empty = the rule applies whatever the arguments.
inline constexpr int kMaxClauses = 12;
struct ArgRule {
  std::array<ArgClause, kMaxClauses> any_of{};
  int size = 0;

  constexpr bool empty() const { return size == 0; }
};

// --- Builders for readable tables -------------------------------------------

// arg == value.
constexpr ArgRule ArgEq(uint8_t arg, uint64_t value) {
  ArgRule r;
  r.any_of[0].cmps[0] = {arg, CmpOp::kEq, 0, value, ValueSource::kLiteral};
  r.any_of[0].size = 1;
  r.size = 1;
  return r;
}
// arg ∈ values (at most kMaxClauses values).
constexpr ArgRule ArgIn(uint8_t arg, std::initializer_list<uint64_t> values) {
  ArgRule r;
  for (uint64_t v : values) {
    r.any_of[r.size].cmps[0] = {arg, CmpOp::kEq, 0, v, ValueSource::kLiteral};
    r.any_of[r.size].size = 1;
    ++r.size;
  }
  return r;
}
// (arg & mask) == value.
constexpr ArgRule ArgMaskedEq(uint8_t arg, uint64_t mask, uint64_t value) {
  ArgRule r;
  r.any_of[0].cmps[0] = {arg, CmpOp::kMaskedEq, mask, value, ValueSource::kLiteral};
  r.any_of[0].size = 1;
  r.size = 1;
  return r;
}
// (arg & bits) == 0: none of `bits` set.
constexpr ArgRule ArgHasNone(uint8_t arg, uint64_t bits) { return ArgMaskedEq(arg, bits, 0); }
// (arg & bits) == bits: all of `bits` set.
constexpr ArgRule ArgHasAll(uint8_t arg, uint64_t bits) { return ArgMaskedEq(arg, bits, bits); }
// arg == the filtered process's own pid (resolved at compile time).
constexpr ArgRule ArgIsSelfPid(uint8_t arg) {
  ArgRule r;
  r.any_of[0].cmps[0] = {arg, CmpOp::kEq, 0, 0, ValueSource::kSelfPid};
  r.any_of[0].size = 1;
  r.size = 1;
  return r;
}
// arg == the peer pid (dropped from the filter when no peer is given).
constexpr ArgRule ArgIsPeerPid(uint8_t arg) {
  ArgRule r;
  r.any_of[0].cmps[0] = {arg, CmpOp::kEq, 0, 0, ValueSource::kPeerPid};
  r.any_of[0].size = 1;
  r.size = 1;
  return r;
}
// OR of two rules.
constexpr ArgRule AnyOf(const ArgRule& a, const ArgRule& b) {
  ArgRule r = a;
  for (int i = 0; i < b.size; ++i) r.any_of[r.size++] = b.any_of[i];
  return r;
}
// AND of two single-clause rules on different arguments.
constexpr ArgRule AllOf(const ArgRule& a, const ArgRule& b) {
  ArgRule r = a;
  for (int i = 0; i < b.any_of[0].size; ++i) {
    r.any_of[0].cmps[r.any_of[0].size++] = b.any_of[0].cmps[i];
  }
  return r;
}

// One row of a policy table.
struct SyscallRule {
  const char* name;  // libseccomp/kernel name, e.g. "openat"
  ArgRule args;      // empty: any arguments
  Action action;     // when the syscall (and args) match
  // Why the process needs this (for allows) or why it is denied. Printed in
  // docs/sandbox.md; required for dangerous syscalls (see IsDangerousSyscall).
  const char* why;
};

struct Policy {
  // "broker" | "worker" | "applier" | "exec_child" | "exec_child_no_network"
  const char* process;
  // Default action for syscalls not in `rules` (and for rows whose argument
  // rule does not match). KILL_PROCESS for allowlists.
  Action default_action = KillProcess();
  std::span<const SyscallRule> rules;
  // One sentence for docs: what this filter is for.
  const char* summary = "";
};

// The tables (sandbox/policies/*_policy.cc).
const Policy& BrokerPolicy();
const Policy& WorkerPolicy();
const Policy& ExecChildPolicy();
// Stacked on ExecChildPolicy for `confine: {network: false}` commands.
const Policy& ExecNoNetworkPolicy();
// Stacked on WorkerPolicy in the per-bundle applier: no fork, no exec.
const Policy& ApplierPolicy();
// All of them, for tools and tests.
std::vector<const Policy*> AllPolicies();

// Syscalls that must never appear in an allow row without an argument rule
// or a justification (minijail's lint list).
bool IsDangerousSyscall(const char* name);

struct CompileOptions {
  // Substituted for ValueSource::kSelfPid. 0 = getpid() at compile time.
  pid_t self_pid = 0;
  // Substituted for ValueSource::kPeerPid. 0 = no peer: clauses that name the
  // peer are left out (so the syscall falls to the default action).
  pid_t peer_pid = 0;
  // Apply the filter to every thread of the process when loading (TSYNC).
  bool tsync = true;
};

// Fixed options for golden exports (pids are otherwise runtime values).
inline CompileOptions GoldenCompileOptions() {
  return CompileOptions{.self_pid = 4242, .peer_pid = 4343, .tsync = true};
}

// A compiled raw BPF program, safe to load after fork() without allocating.
struct BpfProgram {
  std::vector<sock_filter> instructions;
};

// A libseccomp filter context compiled from a Policy. Move-only.
class CompiledFilter {
 public:
  CompiledFilter(CompiledFilter&&) noexcept;
  CompiledFilter& operator=(CompiledFilter&&) noexcept;
  ~CompiledFilter();

  // Installs the filter in the calling process. Requires no_new_privs or
  // CAP_SYS_ADMIN. Irreversible. Errors name the failing libseccomp call.
  absl::Status Load() const;
  // Readable pseudo filter code (libseccomp PFC), the golden format.
  absl::StatusOr<std::string> ExportPfc() const;
  // Raw BPF for LoadBpfAsyncSignalSafe.
  absl::StatusOr<BpfProgram> ExportBpf() const;

  const char* process() const { return process_; }

 private:
  friend absl::StatusOr<CompiledFilter> CompilePolicy(const Policy&, const CompileOptions&);
  CompiledFilter(void* ctx, const char* process) : ctx_(ctx), process_(process) {}
  void* ctx_ = nullptr;  // scmp_filter_ctx
  const char* process_ = "";
};

// Compiles `policy`. Fails (INVALID_ARGUMENT, naming the row) when a name is
// unknown to libseccomp for x86-64, a row is malformed, or libseccomp rejects
// a rule. Never returns a partially built filter.
absl::StatusOr<CompiledFilter> CompilePolicy(const Policy& policy,
                                             const CompileOptions& options = {});

// Loads `program` with seccomp(SECCOMP_SET_MODE_FILTER) (falls back to
// prctl(PR_SET_SECCOMP)). Async-signal-safe: no allocation, no locks; meant
// for the child between fork() and execve(). Returns 0 or an errno value.
// The caller must have set PR_SET_NO_NEW_PRIVS (or hold CAP_SYS_ADMIN).
int LoadBpfAsyncSignalSafe(const BpfProgram& program);

// Kernel syscall number on x86-64 for `name`, or -1.
int SyscallNumber(const char* name);
// Name for an x86-64 syscall number ("" when unknown).
std::string SyscallName(int nr);

// Human-readable argument rule ("arg0 in {1, 2, 10}", "(arg1 & 0x3) == 0").
std::string DescribeArgRule(const ArgRule& rule);
std::string DescribeAction(const Action& action);

// The policy as a markdown section (heading, summary, one table row per rule):
// what vigo-policy-table prints and docs/sandbox.md embeds.
std::string PolicyMarkdown(const Policy& policy);

}  // namespace vigo::sandbox

#endif  // VIGO_SANDBOX_SECCOMP_POLICY_H_
