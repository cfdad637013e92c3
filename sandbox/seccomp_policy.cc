#include "sandbox/seccomp_policy.h"

#include <errno.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "common/strings.h"
#include "sandbox/syscall_status.h"
#include "sandbox/unique_fd.h"

namespace vigo::sandbox {
namespace {

scmp_filter_ctx Ctx(void* p) { return static_cast<scmp_filter_ctx>(p); }

uint32_t ToScmpAction(const Action& a) {
  switch (a.kind) {
    case ActionKind::kAllow:
      return SCMP_ACT_ALLOW;
    case ActionKind::kErrno:
      return SCMP_ACT_ERRNO(static_cast<uint32_t>(a.errno_value));
    case ActionKind::kKillProcess:
      return SCMP_ACT_KILL_PROCESS;
  }
  return SCMP_ACT_KILL_PROCESS;
}

absl::Status LibseccompError(int rc, std::string_view what, std::string_view subject) {
  return ErrnoStatus(rc < 0 ? -rc : rc, StrCat("seccomp: ", what), subject);
}

// Reads everything libseccomp writes to an fd (export functions only take fds).
absl::StatusOr<std::string> ExportToString(void* ctx, bool bpf, const char* process) {
  UniqueFd fd(static_cast<int>(::syscall(SYS_memfd_create, "vigo-seccomp-export", MFD_CLOEXEC)));
  if (!fd) return ErrnoStatus(errno, "memfd_create for seccomp export", process);
  int rc = bpf ? seccomp_export_bpf(Ctx(ctx), fd.get()) : seccomp_export_pfc(Ctx(ctx), fd.get());
  if (rc != 0) return LibseccompError(rc, bpf ? "export bpf" : "export pfc", process);
  if (::lseek(fd.get(), 0, SEEK_SET) != 0)
    return ErrnoStatus(errno, "lseek seccomp export", process);
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, "read seccomp export", process);
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

bool IsValidRule(const ArgRule& r) {
  if (r.size < 0 || r.size > kMaxClauses) return false;
  for (int i = 0; i < r.size; ++i) {
    const ArgClause& c = r.any_of[i];
    if (c.size <= 0 || c.size > 3) return false;
    for (int j = 0; j < c.size; ++j) {
      if (c.cmps[j].arg > 5 || c.cmps[j].op == CmpOp::kNone) return false;
      for (int k = 0; k < j; ++k) {
        if (c.cmps[k].arg == c.cmps[j].arg) return false;
      }
    }
  }
  return true;
}

std::string Num(uint64_t v) {
  if (v < 4096) return std::to_string(v);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string Hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

std::string DescribeCmp(const ArgCmp& c) {
  std::string a = StrCat("arg", static_cast<int>(c.arg));
  std::string v = c.source == ValueSource::kSelfPid   ? std::string("self_pid")
                  : c.source == ValueSource::kPeerPid ? std::string("peer_pid")
                                                      : Num(c.value);
  if (c.op == CmpOp::kMaskedEq) return StrCat("(", a, " & ", Hex(c.mask), ") == ", v);
  return StrCat(a, " == ", v);
}

}  // namespace

// --- Descriptions ------------------------------------------------------------

std::string DescribeArgRule(const ArgRule& rule) {
  if (rule.empty()) return "any";
  // Collapse "argN == a OR argN == b ..." into "argN in {a, b}".
  bool simple_in = rule.size > 1;
  for (int i = 0; i < rule.size && simple_in; ++i) {
    const ArgClause& c = rule.any_of[i];
    simple_in = c.size == 1 && c.cmps[0].op == CmpOp::kEq &&
                c.cmps[0].source == ValueSource::kLiteral &&
                c.cmps[0].arg == rule.any_of[0].cmps[0].arg;
  }
  if (simple_in) {
    std::string out = StrCat("arg", static_cast<int>(rule.any_of[0].cmps[0].arg), " in {");
    for (int i = 0; i < rule.size; ++i) {
      if (i) out += ", ";
      out += Num(rule.any_of[i].cmps[0].value);
    }
    return out + "}";
  }
  std::string out;
  for (int i = 0; i < rule.size; ++i) {
    if (i) out += " or ";
    const ArgClause& c = rule.any_of[i];
    if (c.size > 1 && rule.size > 1) out += "(";
    for (int j = 0; j < c.size; ++j) {
      if (j) out += " and ";
      out += DescribeCmp(c.cmps[j]);
    }
    if (c.size > 1 && rule.size > 1) out += ")";
  }
  return out;
}

std::string DescribeAction(const Action& action) {
  switch (action.kind) {
    case ActionKind::kAllow:
      return "allow";
    case ActionKind::kErrno: {
      const char* name = strerrorname_np(action.errno_value);
      return StrCat("errno ", name ? name : std::to_string(action.errno_value).c_str());
    }
    case ActionKind::kKillProcess:
      return "kill";
  }
  return "kill";
}

std::string PolicyMarkdown(const Policy& p) {
  auto escape = [](const std::string& in) {
    std::string out;
    for (char c : in) {
      if (c == '|')
        out += "\\|";
      else
        out += c;
    }
    return out;
  };
  std::string out = StrCat("### ", p.process, "\n\n", p.summary, ". Default action: **",
                           DescribeAction(p.default_action),
                           "**; other architectures (i386 `int $0x80`, x32): **kill**.\n\n",
                           "| syscall | rule | action | why |\n| --- | --- | --- | --- |\n");
  for (const SyscallRule& r : p.rules) {
    StrAppend(&out, "| `", r.name, "` | ", escape(DescribeArgRule(r.args)), " | ",
              DescribeAction(r.action), " | ", escape(r.why), " |\n");
  }
  return out;
}

// --- Names -------------------------------------------------------------------

int SyscallNumber(const char* name) {
  int nr = seccomp_syscall_resolve_name_arch(SCMP_ARCH_X86_64, name);
  return nr == __NR_SCMP_ERROR || nr < 0 ? -1 : nr;
}

std::string SyscallName(int nr) {
  char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_X86_64, nr);
  if (name == nullptr) return "";
  std::string out(name);
  std::free(name);
  return out;
}

bool IsDangerousSyscall(const char* name) {
  static constexpr const char* kDangerous[] = {
      "clone",
      "clone3",
      "execve",
      "execveat",
      "ptrace",
      "mount",
      "setns",
      "unshare",
      "bpf",
      "ioctl",
      "prctl",
      "mprotect",
      "mmap",
      "socket",
      "openat",
      "open",
      "kill",
      "tgkill",
      "seccomp",
      "fork",
      "vfork",
      "process_vm_readv",
      "process_vm_writev",
      "madvise",
  };
  for (const char* d : kDangerous) {
    if (std::strcmp(d, name) == 0) return true;
  }
  return false;
}

std::vector<const Policy*> AllPolicies() {
  return {&BrokerPolicy(), &WorkerPolicy(), &ApplierPolicy(), &ExecChildPolicy(),
          &ExecNoNetworkPolicy()};
}

// --- Compiler ----------------------------------------------------------------

CompiledFilter::CompiledFilter(CompiledFilter&& o) noexcept
    : ctx_(std::exchange(o.ctx_, nullptr)), process_(o.process_) {}

CompiledFilter& CompiledFilter::operator=(CompiledFilter&& o) noexcept {
  if (this != &o) {
    if (ctx_ != nullptr) seccomp_release(Ctx(ctx_));
    ctx_ = std::exchange(o.ctx_, nullptr);
    process_ = o.process_;
  }
  return *this;
}

CompiledFilter::~CompiledFilter() {
  if (ctx_ != nullptr) seccomp_release(Ctx(ctx_));
}

absl::Status CompiledFilter::Load() const {
  if (ctx_ == nullptr) return absl::FailedPreconditionError("seccomp: load of a moved-from filter");
  int rc = seccomp_load(Ctx(ctx_));
  if (rc != 0) return LibseccompError(rc, "load filter", process_);
  return absl::OkStatus();
}

absl::StatusOr<std::string> CompiledFilter::ExportPfc() const {
  if (ctx_ == nullptr)
    return absl::FailedPreconditionError("seccomp: export of a moved-from filter");
  return ExportToString(ctx_, /*bpf=*/false, process_);
}

absl::StatusOr<BpfProgram> CompiledFilter::ExportBpf() const {
  if (ctx_ == nullptr)
    return absl::FailedPreconditionError("seccomp: export of a moved-from filter");
  auto raw = ExportToString(ctx_, /*bpf=*/true, process_);
  if (!raw.ok()) return raw.status();
  if (raw->size() % sizeof(sock_filter) != 0 || raw->empty()) {
    return absl::InternalError(StrCat("seccomp: bpf export of ", process_, " has odd size"));
  }
  BpfProgram prog;
  prog.instructions.resize(raw->size() / sizeof(sock_filter));
  std::memcpy(prog.instructions.data(), raw->data(), raw->size());
  return prog;
}

absl::StatusOr<CompiledFilter> CompilePolicy(const Policy& policy, const CompileOptions& options) {
  scmp_filter_ctx raw = seccomp_init(ToScmpAction(policy.default_action));
  if (raw == nullptr)
    return absl::InternalError(StrCat("seccomp: init failed for ", policy.process));
  CompiledFilter filter(raw, policy.process);  // owns ctx from here on

  // Only native x86-64: seccomp_init added exactly the native arch; anything
  // else (i386 int $0x80, x32) hits the bad-arch action.
  if (seccomp_arch_native() != SCMP_ARCH_X86_64) {
    return absl::FailedPreconditionError("seccomp: policies are written for x86-64 only");
  }
  int rc = seccomp_attr_set(raw, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
  if (rc != 0) return LibseccompError(rc, "set bad-arch action", policy.process);
  // no_new_privs is its own lockdown step; libseccomp must not set it behind
  // our back (attestation would then lie about a skipped step).
  rc = seccomp_attr_set(raw, SCMP_FLTATR_CTL_NNP, 0);
  if (rc != 0) return LibseccompError(rc, "clear ctl_nnp", policy.process);
  rc = seccomp_attr_set(raw, SCMP_FLTATR_CTL_TSYNC, options.tsync ? 1 : 0);
  if (rc != 0) return LibseccompError(rc, "set tsync", policy.process);

  const pid_t self_pid = options.self_pid != 0 ? options.self_pid : ::getpid();
  const uint32_t default_action = ToScmpAction(policy.default_action);

  for (size_t i = 0; i < policy.rules.size(); ++i) {
    const SyscallRule& row = policy.rules[i];
    std::string where = StrCat(policy.process, " row ", static_cast<int>(i), " (",
                               row.name ? row.name : "<null>", ")");
    if (row.name == nullptr || row.why == nullptr) {
      return absl::InvalidArgumentError(StrCat("seccomp: missing name or why in ", where));
    }
    int nr = SyscallNumber(row.name);
    if (nr < 0) return absl::InvalidArgumentError(StrCat("seccomp: unknown syscall in ", where));
    if (!IsValidRule(row.args)) {
      return absl::InvalidArgumentError(StrCat("seccomp: malformed argument rule in ", where));
    }
    const uint32_t action = ToScmpAction(row.action);
    // A row that restates the default documents intent; libseccomp refuses it.
    if (action == default_action) continue;

    if (row.args.empty()) {
      rc = seccomp_rule_add_exact_array(raw, action, nr, 0, nullptr);
      if (rc != 0) return LibseccompError(rc, "add rule", where);
      continue;
    }
    for (int c = 0; c < row.args.size; ++c) {
      const ArgClause& clause = row.args.any_of[c];
      scmp_arg_cmp cmps[3];
      bool skip = false;
      for (int j = 0; j < clause.size; ++j) {
        const ArgCmp& in = clause.cmps[j];
        uint64_t value = in.value;
        if (in.source == ValueSource::kSelfPid) value = static_cast<uint64_t>(self_pid);
        if (in.source == ValueSource::kPeerPid) {
          if (options.peer_pid <= 0) skip = true;
          value = static_cast<uint64_t>(options.peer_pid);
        }
        cmps[j].arg = in.arg;
        if (in.op == CmpOp::kMaskedEq) {
          cmps[j].op = SCMP_CMP_MASKED_EQ;
          cmps[j].datum_a = in.mask;
          cmps[j].datum_b = value;
        } else {
          cmps[j].op = SCMP_CMP_EQ;
          cmps[j].datum_a = value;
          cmps[j].datum_b = 0;
        }
      }
      if (skip) continue;
      rc = seccomp_rule_add_exact_array(raw, action, nr, static_cast<unsigned>(clause.size), cmps);
      if (rc != 0) return LibseccompError(rc, StrCat("add rule clause ", c), where);
    }
  }
  return filter;
}

int LoadBpfAsyncSignalSafe(const BpfProgram& program) {
  sock_fprog prog;
  prog.len = static_cast<unsigned short>(program.instructions.size());
  prog.filter = const_cast<sock_filter*>(program.instructions.data());
  if (program.instructions.empty() || program.instructions.size() > BPF_MAXINSNS) return EINVAL;
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0) return 0;
  int err = errno;
  if (err != ENOSYS) return err;
  if (::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0) return 0;
  return errno;
}

}  // namespace vigo::sandbox
