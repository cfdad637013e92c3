#include "agent-broker/worker_link.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <set>
#include <string_view>

#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/utf8_text.h"
#include "sandbox/lockdown.h"
#include "vocab/wire_limits.h"

namespace vigo::broker {
namespace {

bool OneOf(std::string_view v, std::initializer_list<const char*> set) {
  for (const char* s : set) {
    if (v == s) return true;
  }
  return false;
}

// Valid UTF-8, at most `max` bytes, never cutting a character.
std::string BoundedText(std::string_view in, size_t max) {
  std::string s = ValidUtf8Text(in);
  if (s.size() <= max) return s;
  size_t n = max;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  s.resize(n);
  return s;
}

}  // namespace

v1::ApplierAttestation ApplierFromSummary(const v1::ApplierSummary& s) {
  v1::ApplierAttestation a;
  a.set_landlock_abi(s.landlock_abi());
  a.set_enforced(s.landlock_enforced());
  a.set_rights(BoundedText(s.landlock_access(), kMaxApplierTextBytes));
  for (int i = 0; i < s.landlock_domain_size(); ++i) {
    if (i >= kMaxApplierDomain) {
      a.set_domain_truncated(true);
      break;
    }
    a.add_domain(BoundedText(s.landlock_domain(i), kMaxApplierDomainBytes));
  }
  a.set_cap_eff(BoundedText(s.cap_eff(), kMaxApplierTextBytes));
  a.set_setup_us(s.setup_us());
  a.set_no_new_process(s.no_new_process());
  return a;
}

absl::StatusOr<v1::ReportResultRequest> DecodeWorkerReport(std::span<const uint8_t> payload,
                                                           const v1::PolicyBundle& bundle) {
  // WorkerReport's text fields are `bytes`: parsing fails only on a
  // malformed message, never on what a command printed.
  v1::WorkerReport r;
  if (payload.size() > static_cast<size_t>(INT_MAX) ||
      !r.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    return absl::InvalidArgumentError("report does not parse");
  }
  // Closed sets and caps: a worker that breaks them is broken or hostile.
  if (!OneOf(r.outcome(), {"ok", "changed", "failed"})) {
    return absl::InvalidArgumentError("report: bad outcome");
  }
  if (r.results_size() > vocab::kMaxReportResults || r.results_size() > bundle.resources_size()) {
    return absl::InvalidArgumentError("report: more results than resources");
  }
  v1::ReportResultRequest out;
  out.set_started_unix_ms(r.started_unix_ms());
  out.set_finished_unix_ms(r.finished_unix_ms());
  out.set_outcome(r.outcome());
  for (const v1::WorkerResourceResult& res : r.results()) {
    if (!OneOf(res.status(), {"ok", "changed", "failed"})) {
      return absl::InvalidArgumentError("report: bad status");
    }
    if (!OneOf(res.action(), {"none", "created", "updated", "deleted", "skipped", "blocked"})) {
      return absl::InvalidArgumentError("report: bad action");
    }
    if (res.message().size() > ipc::kMaxResultMessageBytes ||
        res.name().size() > ipc::kMaxResultNameBytes ||
        res.type().size() > ipc::kMaxResultTypeBytes) {
      return absl::InvalidArgumentError("report: field too long");
    }
    // Free text becomes valid UTF-8 here, whatever the worker sent: the
    // ReportResultRequest goes to the server (proto3 `string`, which its
    // parser refuses otherwise), into last_run.json and into our logs. An
    // honest worker's text is valid already and passes unchanged.
    v1::ResourceResult* o = out.add_results();
    o->set_name(ValidUtf8Text(res.name()));
    o->set_type(ValidUtf8Text(res.type()));
    o->set_status(res.status());
    o->set_action(res.action());
    o->set_message(ValidUtf8Text(res.message()));
    o->set_redactions(res.redactions());
  }
  if (r.has_applier()) *out.mutable_applier() = ApplierFromSummary(r.applier());
  return out;
}

void FatalProtocolViolation(std::string_view what, const absl::Status& status) {
  Log(LogLevel::kError, "protocol violation from the worker; ending the broker",
      {{"what", what}, {"error", status}});
  ::_exit(kProtocolViolationExit);
}

absl::StatusOr<std::string> DefaultWorkerPath() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return absl::InternalError("cannot read /proc/self/exe");
  std::string self(buf, static_cast<size_t>(n));
  size_t slash = self.rfind('/');
  return StrCat(self.substr(0, slash), "/vigo-worker");
}

absl::StatusOr<v1::AttestationReport> ReceiveHello(ipc::Channel& channel, ipc::PhaseTable& phases) {
  auto m = channel.Receive(ipc::Direction::kToBroker);
  if (!m.ok()) {
    if (absl::IsUnavailable(m.status())) {
      return absl::UnavailableError("vigo-worker exited before saying hello");
    }
    FatalProtocolViolation("hello", m.status());
  }
  if (absl::Status s = phases.Observe(ipc::Direction::kToBroker, m->type); !s.ok()) {
    FatalProtocolViolation("hello", s);
  }
  v1::AttestationReport report;
  if (!report.ParseFromArray(m->payload.data(), static_cast<int>(m->payload.size())) ||
      report.process() != "worker") {
    FatalProtocolViolation("hello", absl::InvalidArgumentError("bad attestation report"));
  }
  return report;
}

absl::StatusOr<v1::ReportResultRequest> ServeRun(ipc::Channel& channel, ipc::PhaseTable& phases,
                                                 const v1::PolicyBundle& bundle,
                                                 const SecretCache& cache) {
  std::string bytes;
  if (!bundle.SerializeToString(&bytes)) return absl::InternalError("cannot serialize bundle");
  VIGO_RETURN_IF_ERROR(phases.Observe(ipc::Direction::kToWorker, ipc::MsgType::kBundle));
  VIGO_RETURN_IF_ERROR(channel.Send(ipc::MsgType::kBundle, bytes));
  // Entitlement of this run: exactly the bundle's secret_refs.
  const std::set<std::string, std::less<>> allowed(bundle.secret_refs().begin(),
                                                   bundle.secret_refs().end());
  const uint64_t epoch = bundle.secrets_epoch();
  size_t served = 0;
  for (;;) {
    auto m = channel.Receive(ipc::Direction::kToBroker);
    if (!m.ok()) {
      if (absl::IsUnavailable(m.status())) {
        return absl::UnavailableError("vigo-worker exited during the run");
      }
      FatalProtocolViolation("receive", m.status());
    }
    if (absl::Status s = phases.Observe(ipc::Direction::kToBroker, m->type); !s.ok()) {
      FatalProtocolViolation("phase", s);
    }
    if (m->type == ipc::MsgType::kResolveBatch) {
      auto refs = ipc::DecodeResolveBatch(m->payload);
      if (!refs.ok()) FatalProtocolViolation("resolve batch", refs.status());
      // Every entry is re-checked here whatever the worker checked; one
      // unentitled entry ends the broker.
      std::vector<const sandbox::SecretBuffer*> values;
      std::vector<size_t> sizes;
      values.reserve(refs->size());
      sizes.reserve(refs->size());
      for (const std::string& ref : *refs) {
        if (allowed.count(ref) == 0) {
          FatalProtocolViolation(
              "resolve batch",
              absl::PermissionDeniedError(StrCat("ref ", ref, " is not in the current bundle")));
        }
        const sandbox::SecretBuffer* v = cache.Find(epoch, ref);
        if (v == nullptr) return absl::InternalError(StrCat("no cached value for ", ref));
        values.push_back(v);
        sizes.push_back(v->size());
      }
      // A prefix that fits one message; the worker asks again for the rest.
      const size_t n = ipc::ValuesThatFit(sizes);
      auto framed = ipc::EncodeValues(std::span(values.data(), n));
      if (!framed.ok()) return framed.status();
      VIGO_RETURN_IF_ERROR(phases.Observe(ipc::Direction::kToWorker, ipc::MsgType::kValues));
      absl::Status s = channel.Send(ipc::MsgType::kValues, framed->Reveal());
      framed->Clear();
      if (!s.ok()) {
        if (absl::IsUnavailable(s))
          return absl::UnavailableError("vigo-worker exited during the run");
        return s;
      }
      served += n;
      Log(LogLevel::kTrace, "served values", {{"count", static_cast<int64_t>(n)}});
      continue;
    }
    // The phase table admits only kReport here.
    auto report = DecodeWorkerReport(m->payload, bundle);
    if (!report.ok()) FatalProtocolViolation("report", report.status());
    VIGO_RETURN_IF_ERROR(phases.Observe(ipc::Direction::kToWorker, ipc::MsgType::kDone));
    absl::Status s = channel.Send(ipc::MsgType::kDone, std::string_view());
    if (!s.ok() && !absl::IsUnavailable(s)) return s;
    Log(LogLevel::kDebug, "worker reported",
        {{"outcome", report->outcome()}, {"values_served", served}});
    return report;
  }
}

namespace {

// True when the comma-separated opt-out list names `step`.
bool SkipsStep(std::string_view list, std::string_view step) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (list.substr(0, comma) == step) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

absl::StatusOr<WorkerLink> WorkerLink::Start(const WorkerStartOptions& options) {
  std::string path = options.worker_path;
  if (path.empty()) {
    VIGO_ASSIGN_OR_RETURN(path, DefaultWorkerPath());
  }
  if (::access(path.c_str(), X_OK) != 0) {
    return absl::NotFoundError(StrCat("vigo-worker not found at ", path));
  }
  VIGO_ASSIGN_OR_RETURN(ipc::SocketPair sp, ipc::CreateSocketPair());
  sandbox::SpawnOptions so;
  so.argv = {path};
  if (!options.apply_root.empty()) so.argv.push_back(StrCat("--apply-root=", options.apply_root));
  if (!options.worker_user.empty())
    so.argv.push_back(StrCat("--worker-user=", options.worker_user));
  if (!options.log_level.empty()) so.argv.push_back(StrCat("--log-level=", options.log_level));
  if (!options.secret_file_dir.empty()) {
    so.argv.push_back(StrCat("--secret-file-dir=", options.secret_file_dir));
  }
  if (options.insecure_allow_unlocked_memory) so.argv.push_back("--insecure-allow-unlocked-memory");
  if (!options.insecure_skip_lockdown.empty()) {
    so.argv.push_back(StrCat("--insecure-skip-lockdown=", options.insecure_skip_lockdown));
  }
  if (!options.hidden_paths.empty()) {
    std::string hide;
    for (const std::string& p : options.hidden_paths) {
      if (p.find(':') != std::string::npos) {
        return absl::InvalidArgumentError(StrCat("path ", p, " contains ':'"));
      }
      StrAppend(&hide, hide.empty() ? "" : ":", p);
    }
    so.argv.push_back(StrCat("--hide=", hide));
  }
  so.env = {};  // clean: nothing of the broker's environment reaches the worker
  so.fd_map = {{ipc::kWorkerSocketFd, sp.worker.get()}, {2, 2}};
  so.die_with_parent = true;
  // Same process group: the locked-down broker may signal only the worker's
  // pid itself (seccomp), never a group.
  so.new_process_group = false;
  // No controlling terminal for the worker or anything it runs: an operator's
  // `vigo run --once` from a shell must not hand its tty to exec children.
  so.new_session = true;
  // PID 1 of a new PID namespace (the worker's pid_namespace lockdown step
  // checks it and mounts its own procfs) unless that step is opted out.
  so.new_pid_namespace = !SkipsStep(options.insecure_skip_lockdown, sandbox::kStepPidNamespace);
  WorkerLink link;
  VIGO_ASSIGN_OR_RETURN(link.child_, sandbox::ChildProcess::Spawn(so));
  sp.worker.reset();  // only the worker holds its end: its death is our EOF
  link.channel_ = ipc::Channel(std::move(sp.broker));
  Log(LogLevel::kDebug, "worker started", {{"pid", static_cast<int64_t>(link.child_.pid())}});
  return link;
}

void WorkerLink::Shutdown() {
  if (!child_.running()) return;
  channel_ = ipc::Channel();
  // The run is over and the worker is idle. (WaitFor needs pidfd_open, which
  // the broker's filter does not allow; kill(worker pid) + wait4 it does.)
  child_.Kill(SIGKILL);
  (void)child_.Wait();
}

WorkerLink::Death WorkerLink::ReapDead() {
  if (!child_.running()) return {"already reaped", 0};
  channel_ = ipc::Channel();
  // A hung-up socket does not prove the process is gone (a broken worker may
  // close it and linger): wait briefly, then kill.
  absl::StatusOr<sandbox::ExitInfo> info = child_.WaitPolling(std::chrono::seconds(2));
  if (!info.ok()) return {StrCat("unknown (", std::string(info.status().message()), ")"), 0};
  if (info->timed_out) return {"closed its socket but kept running; killed", 0};
  if (info->signaled) return {StrCat("signal ", info->signal), info->signal};
  return {StrCat("exit code ", info->exit_code), 0};
}

absl::Status WorkerLink::AwaitHello() {
  VIGO_ASSIGN_OR_RETURN(attestation_, ReceiveHello(channel_, phases_));
  return absl::OkStatus();
}

}  // namespace vigo::broker
