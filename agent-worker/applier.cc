#include "agent-worker/applier.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "agent-worker/fs_ops.h"
#include "common/ipc/agent_ipc.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/attestation.h"
#include "sandbox/capabilities.h"
#include "sandbox/landlock.h"
#include "sandbox/lockdown.h"
#include "sandbox/secret_buffer.h"

// Defined only by test binaries (tests/helpers/worker_hooks_main.cc): runs in
// the applier right after it restricted itself, to attempt what a buggy
// applier might. The production vigo-worker has no definition, so the weak
// reference is null and nothing runs.
// Hidden: resolved at static link time only, never exported in .dynsym, so
// no preloaded library can supply it to the production binary.
extern "C" void VigoApplierHookForTest(const vigo::v1::PolicyBundle& bundle, int worker_socket)
    __attribute__((weak, visibility("hidden")));

namespace vigo::worker {
namespace {

using sandbox::UniqueFd;

// Messages on the applier socketpair (SOCK_SEQPACKET: one send, one message).
enum : char {
  kRunExec = 'E',     // applier -> worker: uint32 resource index
  kExecResult = 'R',  // worker -> applier: ResourceResult
  kResult = 'r',      // applier -> worker: ResourceResult, in resource order
  kSummary = 'D',     // applier -> worker: ApplierSummary; the last message
};

// Far above any result (messages are capped well below), below the default
// socket buffer.
constexpr size_t kMaxMessageBytes = 160 * 1024;

bool SendMsg(int fd, char type, const std::string& payload) {
  std::string m(1, type);
  m += payload;
  if (m.size() > kMaxMessageBytes) return false;
  return ::send(fd, m.data(), m.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(m.size());
}

// type 0: the peer is gone or the message is malformed.
std::pair<char, std::string> RecvMsg(int fd) {
  std::string buf(kMaxMessageBytes + 1, '\0');
  for (;;) {
    ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_TRUNC);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || static_cast<size_t>(n) > kMaxMessageBytes) return {0, ""};
    buf.resize(static_cast<size_t>(n));
    return {buf[0], buf.substr(1)};
  }
}

v1::ResourceResult FailedResult(const v1::Resource& r, std::string message) {
  v1::ResourceResult out;
  out.set_name(r.name());
  out.set_type(r.type());
  out.set_status("failed");
  out.set_action("none");
  out.set_message(std::move(message));
  return out;
}

// The applier cannot fetch values: everything was resolved before the fork
// and is read in place. Never frees (the buffers belong to the worker).
class ResolvedOnly : public ValueSource {
 public:
  explicit ResolvedOnly(ValueSource& inner) : inner_(inner) {}
  absl::StatusOr<const sandbox::SecretBuffer*> Get(std::string_view path) override {
    return inner_.Get(path);  // a cache hit (RunApplier resolved all); never I/O
  }
  std::vector<const sandbox::SecretBuffer*> Resolved() const override { return inner_.Resolved(); }
  void Clear() override {}

 private:
  ValueSource& inner_;
};

bool HasFileResources(const v1::PolicyBundle& bundle) {
  for (const v1::Resource& r : bundle.resources()) {
    if (r.type() == "file" || r.type() == "directory") return true;
  }
  return false;
}

int64_t MonotonicMicros() {
  struct timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

// The first of `r`'s dependencies among `results` (the resources ahead of
// it) that did not converge (failed, blocked included); "" when none.
std::string FailedDependency(const v1::Resource& r,
                             const std::vector<v1::ResourceResult>& results) {
  for (const std::string& dep : r.depends_on()) {
    for (const v1::ResourceResult& res : results) {
      if (res.name() == dep && res.status() == "failed") return dep;
    }
  }
  return "";
}

[[noreturn]] void ApplierMain(int sock, const v1::PolicyBundle& bundle, ValueSource& values,
                              const ApplierSpec& spec, int64_t forked_at_us) {
  // No new process and no program from here on: before anything else, so
  // nothing below (nor a hook, nor a bug) can start one that would carry the
  // applier's capabilities or its view of the values. Judged after
  // fail_all exists: an applier without this layer applies nothing.
  const int no_new_process_err =
      spec.no_new_process == nullptr
          ? EINVAL
          : sandbox::LoadApplierFilterAsyncSignalSafe(*spec.no_new_process);
  if (!sandbox::BecomeChildArena().ok()) ::_exit(120);
  // Only the worker talks to the broker: its socket number now names
  // /dev/null, so no stale reference (the value cache's channel) can reach
  // a file the applier opens later under the same number.
  {
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null_fd < 0 || ::dup3(null_fd, ipc::kWorkerSocketFd, O_CLOEXEC) < 0) ::_exit(124);
    ::close(null_fd);
  }
  v1::ApplierSummary summary;
  auto fail_all = [&](const std::string& why) {
    for (const v1::Resource& r : bundle.resources()) {
      std::string bytes;
      FailedResult(r, StrCat("not applied: ", why)).SerializeToString(&bytes);
      SendMsg(sock, kResult, bytes);
    }
    std::string bytes;
    summary.SerializeToString(&bytes);
    SendMsg(sock, kSummary, bytes);
    ::_exit(0);
  };

  // The worker dies: so does the applier.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != spec.worker_pid) ::_exit(123);
  if (no_new_process_err != 0) {
    fail_all(StrCat("the applier cannot load its seccomp layer (",
                    std::strerror(no_new_process_err), ")"));
  }
  summary.set_no_new_process(true);
  const int abi = spec.landlock ? sandbox::LandlockAbi() : 0;
  summary.set_landlock_abi(abi);
  std::optional<sandbox::LandlockRuleset> ruleset;
  if (abi >= 1) {
    auto rs = sandbox::LandlockRuleset::ForWrites();
    if (!rs.ok())
      fail_all(StrCat("the applier cannot confine itself (", rs.status().ToString(), ")"));
    ruleset.emplace(std::move(*rs));
    // A bundle without file or directory resources writes nothing: no rule.
    if (HasFileResources(bundle)) {
      const std::string root = spec.apply.apply_root.empty() ? "/" : spec.apply.apply_root;
      UniqueFd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!root_fd) fail_all(StrCat("apply root ", root, " cannot be opened"));
      std::vector<UniqueFd> fds;
      auto domain = LandlockDomain(root_fd.get(), spec.apply.apply_root, bundle, &fds);
      if (!domain.ok()) {
        fail_all(StrCat("the applier cannot confine itself (", domain.status().ToString(), ")"));
      }
      for (size_t i = 0; i < fds.size(); ++i) {
        if (absl::Status s = ruleset->AllowWritesBeneath(fds[i].get(), (*domain)[i]); !s.ok()) {
          fail_all(StrCat("the applier cannot confine itself (", s.ToString(), ")"));
        }
        summary.add_landlock_domain((*domain)[i]);
      }
    }
    summary.set_landlock_access(sandbox::LandlockAccessNames(ruleset->handled()));
  }
  if (absl::Status s = sandbox::ReduceCapabilitiesTo(ApplierCapabilities(bundle)); !s.ok()) {
    fail_all(StrCat("the applier cannot drop capabilities (", s.ToString(), ")"));
  }
  if (ruleset.has_value()) {
    if (absl::Status s = ruleset->RestrictSelf(); !s.ok()) {
      fail_all(StrCat("the applier cannot confine itself (", s.ToString(), ")"));
    }
    ruleset.reset();
    summary.set_landlock_enforced(true);
  }
  if (auto caps = sandbox::ReadCapabilitySets(); caps.ok()) {
    summary.set_cap_eff(sandbox::HexCapabilityMask(caps->effective));
  }
  summary.set_setup_us(MonotonicMicros() - forked_at_us);
  if (VigoApplierHookForTest != nullptr) VigoApplierHookForTest(bundle, sock);

  // Results go to the worker in resource order, each as soon as it is final:
  // every result ahead of a command before the command is asked for.
  size_t sent = 0;
  auto send_results = [&](const std::vector<v1::ResourceResult>& results) {
    for (; sent < results.size(); ++sent) {
      std::string bytes;
      results[sent].SerializeToString(&bytes);
      if (!SendMsg(sock, kResult, bytes)) ::_exit(122);
    }
  };
  ApplyOptions opts = spec.apply;
  opts.exec_delegate = [&](const v1::Resource& r,
                           const std::vector<v1::ResourceResult>& before) -> v1::ResourceResult {
    int index = -1;
    for (int i = 0; i < bundle.resources_size(); ++i) {
      if (&bundle.resources(i) == &r) index = i;
    }
    send_results(before);
    uint32_t idx = static_cast<uint32_t>(index);
    if (index < 0 || !SendMsg(sock, kRunExec, std::string(reinterpret_cast<char*>(&idx), 4))) {
      return FailedResult(r, "the worker did not take the command");
    }
    auto [type, payload] = RecvMsg(sock);
    v1::ResourceResult out;
    if (type != kExecResult || !out.ParseFromString(payload)) {
      ::_exit(121);  // the worker is gone or broke the protocol
    }
    return out;
  };
  ResolvedOnly view(values);
  ApplyEngine engine(std::move(opts));
  send_results(engine.Apply(bundle, view));
  std::string bytes;
  summary.SerializeToString(&bytes);
  SendMsg(sock, kSummary, bytes);
  ::_exit(0);
}

}  // namespace

std::vector<int> ApplierCapabilities(const v1::PolicyBundle& bundle) {
  bool files = false;
  bool set_id = false;
  for (const v1::Resource& r : bundle.resources()) {
    if (r.type() != "file" && r.type() != "directory") continue;
    files = true;
    if (!r.mode().empty()) {
      auto m = ParseMode(r.mode());
      if (!m.ok() || (*m & (S_ISUID | S_ISGID)) != 0) set_id = true;  // unparsable: fails later
    }
    // A directory below a set-group-ID parent inherits the bit.
    if (r.type() == "directory") set_id = true;
  }
  std::vector<int> caps;
  if (!files) return caps;
  caps = {CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FOWNER};
  if (set_id) caps.push_back(CAP_FSETID);
  return caps;
}

absl::StatusOr<std::vector<std::string>> LandlockDomain(int root_fd, const std::string& apply_root,
                                                        const v1::PolicyBundle& bundle,
                                                        std::vector<UniqueFd>* fds) {
  std::vector<std::string> shown;
  std::set<std::string> seen;
  std::set<std::string> created_in;
  for (const v1::Resource& r : bundle.resources()) {
    if (r.type() != "file" && r.type() != "directory") continue;
    auto t = ParseTargetPath(root_fd, apply_root, r.target_path(), "target_path");
    if (!t.ok()) continue;  // the resource fails with this error when applied
    // The target's own parent, never an ancestor: a missing parent is made
    // now (as the engine would make it when it writes: 0755, a root
    // writer's owner), before the restriction, because a rule can only be
    // put on a directory that exists, and a rule on the nearest existing
    // ancestor would let the applier write beneath it (/etc for a new
    // /etc/newapp/app.conf: /etc/ld.so.preload). A resource to be removed
    // creates nothing and needs a rule only where its parent exists. The
    // walk never follows a link; one that meets a link or a non-directory
    // adds no rule (the resource fails when applied, naming it).
    const bool absent = r.state() == "absent";
    auto dir = OpenParentDir(*t, /*create=*/!absent, &created_in);
    if (!dir.ok()) continue;
    const size_t depth = t->dirs.size();
    std::string name = depth == 0 ? (apply_root.empty() ? "/" : apply_root)
                                  : StrCat(apply_root, t->ShownPrefix(depth));
    if (!seen.insert(name).second) continue;
    shown.push_back(name);
    fds->push_back(std::move(*dir));
  }
  std::set<std::string> failed;
  VIGO_RETURN_IF_ERROR(SyncDirs(&created_in, &failed));
  return shown;
}

namespace {

// Stops the applier `pid` (SIGSTOP) and waits until it is stopped; "" when
// it is, else why not (it ended, or cannot be waited for).
std::string StopApplier(pid_t pid) {
  if (::kill(pid, SIGSTOP) != 0) {
    return StrCat("cannot stop the applier for a command (kill: ", std::strerror(errno), ")");
  }
  for (;;) {
    siginfo_t si = {};
    if (::waitid(P_PID, static_cast<id_t>(pid), &si, WSTOPPED | WEXITED | WNOWAIT) != 0) {
      if (errno == EINTR) continue;
      return StrCat("cannot wait for the applier to stop (waitid: ", std::strerror(errno), ")");
    }
    if (si.si_code == CLD_STOPPED) {
      // Consume the stop report, so nothing later mistakes it for a stop
      // by someone else.
      siginfo_t done = {};
      ::waitid(P_PID, static_cast<id_t>(pid), &done, WSTOPPED | WNOHANG);
      return "";
    }
    return "the applier ended while asking for a command";
  }
}

}  // namespace

ApplierRun RunApplier(
    const v1::PolicyBundle& bundle, ValueSource& values, const ApplierSpec& spec,
    const std::function<v1::ResourceResult(const v1::Resource&, pid_t)>& run_exec) {
  ApplierRun run;
  auto fail_rest = [&](const std::string& why) {
    for (int i = static_cast<int>(run.results.size()); i < bundle.resources_size(); ++i) {
      run.results.push_back(FailedResult(bundle.resources(i), why));
    }
  };
  // Every value now: the applier cannot ask the broker.
  for (const std::string& ref : bundle.secret_refs()) {
    if (auto v = values.Get(ref); !v.ok()) {
      fail_rest(StrCat("secret ", ref, " could not be resolved: ", v.status().message()));
      return run;
    }
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    fail_rest(StrCat("cannot start the applier (socketpair: ", std::strerror(errno), ")"));
    return run;
  }
  UniqueFd mine(sv[0]), theirs(sv[1]);
  ApplierSpec child_spec = spec;
  if (child_spec.no_new_process == nullptr) {
    auto filter = sandbox::PrepareApplierFilter();
    if (!filter.ok()) {
      fail_rest(
          StrCat("cannot start the applier (its seccomp layer: ", filter.status().ToString(), ")"));
      return run;
    }
    child_spec.no_new_process = std::make_shared<const sandbox::BpfProgram>(std::move(*filter));
  }
  if (absl::Status s = sandbox::SetArenaInheritedByFork(true); !s.ok()) {
    // Part of the range may have changed: restore before any command forks.
    if (!sandbox::SetArenaInheritedByFork(false).ok()) std::_Exit(1);
    fail_rest(StrCat("cannot start the applier (", s.ToString(), ")"));
    return run;
  }
  std::fflush(nullptr);
  const pid_t worker_pid = ::getpid();
  const int64_t fork_at = MonotonicMicros();
  pid_t pid = ::fork();
  if (pid == 0) {
    mine.reset();
    child_spec.worker_pid = worker_pid;
    ApplierMain(theirs.get(), bundle, values, child_spec, fork_at);
  }
  const int fork_err = errno;
  // No later fork (exec commands) inherits the arena.
  if (absl::Status s = sandbox::SetArenaInheritedByFork(false); !s.ok()) {
    Log(LogLevel::kError, "secret arena stays inheritable; worker exits", {{"error", s}});
    std::_Exit(1);
  }
  theirs.reset();
  if (pid < 0) {
    fail_rest(StrCat("cannot start the applier (fork: ", std::strerror(fork_err), ")"));
    return run;
  }

  std::map<int, v1::ResourceResult> execs_run;  // what this process ran, by index
  int last_exec = -1;
  bool done = false;
  std::string broken;
  while (!done && broken.empty()) {
    // A process of the namespace (a command, or one it left behind) can
    // stop the applier (same uid): never wait on it without looking. A
    // stopped applier is killed and the bundle fails.
    struct pollfd pfd = {mine.get(), POLLIN, 0};
    int ready = ::poll(&pfd, 1, 1000);
    if (ready < 0 && errno != EINTR) {
      broken = StrCat("cannot wait for the applier (poll: ", std::strerror(errno), ")");
      break;
    }
    if (ready <= 0) {
      siginfo_t si = {};
      if (::waitid(P_PID, static_cast<id_t>(pid), &si, WSTOPPED | WNOHANG | WNOWAIT) == 0 &&
          si.si_pid == pid && si.si_code == CLD_STOPPED) {
        broken = StrCat("the applier was stopped by signal ", si.si_status);
      }
      continue;
    }
    auto [type, payload] = RecvMsg(mine.get());
    switch (type) {
      case kRunExec: {
        uint32_t idx = 0;
        if (payload.size() != 4) {
          broken = "the applier sent a malformed request";
          break;
        }
        std::memcpy(&idx, payload.data(), 4);
        // Only this bundle's exec resources, each once, in bundle order.
        if (idx >= static_cast<uint32_t>(bundle.resources_size()) ||
            bundle.resources(static_cast<int>(idx)).type() != "exec" ||
            static_cast<int>(idx) <= last_exec) {
          broken = StrCat("the applier asked for resource #", idx, ", which it may not run");
          break;
        }
        // ... after the result of every resource ahead of it, and never one
        // whose dependency did not converge: the worker runs a command only
        // when the applier's own engine would have (a buggy applier cannot
        // start the migration whose config write failed; a subverted one
        // could report the write as converged: file outcomes are its word).
        const v1::Resource& exec = bundle.resources(static_cast<int>(idx));
        if (run.results.size() != idx) {
          broken = StrCat("the applier asked to run exec '", exec.name(), "' before reporting ",
                          idx - run.results.size(), " resource(s) ahead of it");
          break;
        }
        if (std::string dep = FailedDependency(exec, run.results); !dep.empty()) {
          broken = StrCat("the applier asked to run exec '", exec.name(), "', whose dependency '",
                          dep, "' did not converge");
          break;
        }
        last_exec = static_cast<int>(idx);
        // The applier is stopped while the command runs: with the same uid
        // and (without Landlock) the same view of /proc, it could otherwise
        // write into the command's memory (/proc/<pid>/mem) and run code as
        // a process that holds the worker's capabilities.
        if (std::string why = StopApplier(pid); !why.empty()) {
          broken = why;
          break;
        }
        v1::ResourceResult res = run_exec(bundle.resources(last_exec), pid);
        ::kill(pid, SIGCONT);
        execs_run[last_exec] = res;
        std::string bytes;
        res.SerializeToString(&bytes);
        if (!SendMsg(mine.get(), kExecResult, bytes)) broken = "the applier stopped listening";
        break;
      }
      case kResult: {
        v1::ResourceResult res;
        if (!res.ParseFromString(payload) ||
            static_cast<int>(run.results.size()) >= bundle.resources_size() ||
            res.name() != bundle.resources(static_cast<int>(run.results.size())).name()) {
          broken = "the applier sent a result out of order";
          break;
        }
        // An exec's result is this process's own (the applier only relays
        // it); an exec the applier reports without having asked for it can
        // only be "failed" (blocked by a dependency).
        const int at = static_cast<int>(run.results.size());
        if (bundle.resources(at).type() == "exec") {
          if (auto it = execs_run.find(at); it != execs_run.end()) {
            res = it->second;
          } else if (res.status() != "failed") {
            broken = StrCat("the applier reported exec '", res.name(), "' without running it");
            break;
          }
        }
        run.results.push_back(std::move(res));
        break;
      }
      case kSummary:
        if (!run.summary.ParseFromString(payload)) broken = "the applier sent a malformed summary";
        done = true;
        break;
      default:
        broken = "the applier ended before finishing";
        break;
    }
  }
  mine.reset();
  if (!done || !broken.empty()) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  // What the applier may have left in its arena part, judged by this
  // process (resident pages), never by the applier's word.
  sandbox::WipeChildArena();
  if (!done || !broken.empty() || static_cast<int>(run.results.size()) != bundle.resources_size()) {
    std::string why = broken.empty() ? "the applier ended before finishing" : broken;
    if (WIFSIGNALED(status)) StrAppend(&why, " (signal ", WTERMSIG(status), ")");
    if (WIFEXITED(status) && WEXITSTATUS(status) != 0) {
      StrAppend(&why, " (exit ", WEXITSTATUS(status), ")");
    }
    Log(LogLevel::kError, "applier failed", {{"error", why}});
    fail_rest(StrCat("not applied: ", why));
  }
  return run;
}

}  // namespace vigo::worker
