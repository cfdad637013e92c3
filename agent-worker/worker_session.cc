#include "agent-worker/worker_session.h"

#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/utf8_text.h"
#include "vocab/ids.h"

namespace vigo::worker {
v1::WorkerReport BuildWorkerReport(std::vector<v1::ResourceResult> results, int64_t started_unix_ms,
                                   int64_t finished_unix_ms) {
  // Valid UTF-8 within the broker's cap, cut at a character boundary.
  auto text = [](std::string_view s, size_t cap) {
    static constexpr std::string_view kCut = "...[truncated]";
    std::string t = ValidUtf8Text(s);
    if (t.size() > cap) t = StrCat(Utf8Head(t, cap - kCut.size()), kCut);
    return t;
  };
  v1::WorkerReport report;
  report.set_started_unix_ms(started_unix_ms);
  report.set_finished_unix_ms(finished_unix_ms);
  report.set_outcome(ApplyEngine::Outcome(results));
  for (v1::ResourceResult& r : results) {
    v1::WorkerResourceResult* o = report.add_results();
    o->set_name(text(r.name(), ipc::kMaxResultNameBytes));
    o->set_type(text(r.type(), ipc::kMaxResultTypeBytes));
    o->set_status(std::move(*r.mutable_status()));
    o->set_action(std::move(*r.mutable_action()));
    o->set_message(text(r.message(), ipc::kMaxResultMessageBytes));
    o->set_redactions(r.redactions());
  }
  return report;
}

absl::StatusOr<const sandbox::SecretBuffer*> IpcValueSource::Get(std::string_view path) {
  auto it = cache_.find(path);
  if (it != cache_.end()) return &it->second;
  if (!broken_.ok()) return broken_;
  if (allowed_.count(std::string(path)) == 0) {
    return absl::PermissionDeniedError(StrCat("secret ", path, " is not in this bundle"));
  }
  auto fail = [&](absl::Status s) {
    broken_ = s;
    return s;
  };
  // One round trip for this value and up to kMaxRefsPerBatch - 1 more of the
  // bundle's refs not fetched yet: every one of them is in the bundle's
  // secret_refs (the entitlement the broker re-checks), and the apply needs
  // them anyway (its files, or scrubbing exec output). A round trip per value
  // costs two scheduler wake-ups, which under CPU contention dominated a
  // 1,000-file apply.
  std::vector<std::string> batch = {std::string(path)};
  for (const std::string& ref : allowed_) {
    if (batch.size() == ipc::kMaxRefsPerBatch) break;
    if (ref != path && cache_.find(ref) == cache_.end()) batch.push_back(ref);
  }
  auto payload = ipc::EncodeResolveBatch(batch);
  if (!payload.ok()) return fail(payload.status());
  if (absl::Status s = phases_.Observe(ipc::Direction::kToBroker, ipc::MsgType::kResolveBatch);
      !s.ok()) {
    return fail(s);
  }
  if (absl::Status s = channel_.Send(ipc::MsgType::kResolveBatch, *payload); !s.ok()) {
    return fail(s);
  }
  auto m = channel_.Receive(ipc::Direction::kToWorker);
  if (!m.ok()) return fail(m.status());
  if (absl::Status s = phases_.Observe(ipc::Direction::kToWorker, m->type); !s.ok()) return fail(s);
  // The phase table admits only kValues here. The broker answered a prefix
  // of `batch` (at least `path`); the rest is asked for on a later miss.
  auto values = ipc::DecodeValues(m->value, batch.size());
  m->value.Clear();
  if (!values.ok()) return fail(values.status());
  for (size_t i = 0; i < values->size(); ++i) {
    cache_.insert_or_assign(std::move(batch[i]), std::move((*values)[i]));
  }
  return &cache_.find(path)->second;
}

std::vector<const sandbox::SecretBuffer*> IpcValueSource::Resolved() const {
  std::vector<const sandbox::SecretBuffer*> out;
  for (const auto& [k, v] : cache_) out.push_back(&v);
  return out;
}

absl::Status WorkerSession::Run(const std::string& hello) {
  VIGO_RETURN_IF_ERROR(phases_.Observe(ipc::Direction::kToBroker, ipc::MsgType::kHello));
  VIGO_RETURN_IF_ERROR(channel_.Send(ipc::MsgType::kHello, hello));
  for (;;) {
    auto m = channel_.Receive(ipc::Direction::kToWorker);
    if (!m.ok()) {
      if (absl::IsUnavailable(m.status())) return absl::OkStatus();  // broker hung up
      return m.status();
    }
    VIGO_RETURN_IF_ERROR(phases_.Observe(ipc::Direction::kToWorker, m->type));
    // The phase table allows only kBundle here.
    VIGO_RETURN_IF_ERROR(RunOne(m->payload));
    auto done = channel_.Receive(ipc::Direction::kToWorker);
    if (!done.ok()) return done.status();
    VIGO_RETURN_IF_ERROR(phases_.Observe(ipc::Direction::kToWorker, done->type));
  }
}

absl::Status WorkerSession::RunOne(const std::vector<uint8_t>& bundle_bytes) {
  v1::PolicyBundle bundle;
  if (!bundle.ParseFromArray(bundle_bytes.data(), static_cast<int>(bundle_bytes.size()))) {
    return absl::InvalidArgumentError("ipc: bundle message does not parse");
  }
  std::set<std::string> allowed(bundle.secret_refs().begin(), bundle.secret_refs().end());
  IpcValueSource values(channel_, phases_, std::move(allowed));
  const int64_t started = vocab::NowUnixMs();
  Log(LogLevel::kInfo, "apply start",
      {{"resources", bundle.resources_size()}, {"digest", bundle.digest()}});
  // Files and directories in the confined applier; its exec resources here.
  engine_.BeginExecs(bundle);
  ApplierRun run =
      RunApplier(bundle, values, applier_, [&](const v1::Resource& r, pid_t applier_pid) {
        engine_.set_spare_pid(applier_pid);
        return engine_.RunExec(r, values);
      });
  // Every value is zeroed before the result leaves this process.
  values.Clear();
  VIGO_RETURN_IF_ERROR(values.broken());
  Log(LogLevel::kInfo, "applier",
      {{"landlock_abi", run.summary.landlock_abi()},
       {"landlock", run.summary.landlock_enforced() ? "enforced" : "off"},
       {"writable_hierarchies", run.summary.landlock_domain_size()},
       {"cap_eff", run.summary.cap_eff()},
       {"setup_us", run.summary.setup_us()}});
  // Landlock's unit is the hierarchy: a target directly in the apply root
  // puts the rule on the apply root itself. Say so.
  const std::string root = applier_.apply.apply_root.empty() ? "/" : applier_.apply.apply_root;
  for (const std::string& d : run.summary.landlock_domain()) {
    if (d == root) {
      Log(LogLevel::kWarn,
          "applier domain is the whole apply root (a file or directory target lies directly in "
          "it; the applier may write anywhere beneath it)",
          {{"apply_root", root}});
      break;
    }
  }
  v1::WorkerReport report = BuildWorkerReport(std::move(run.results), started, vocab::NowUnixMs());
  *report.mutable_applier() = std::move(run.summary);
  Log(LogLevel::kInfo, "apply done", {{"outcome", report.outcome()}});
  std::string bytes;
  if (!report.SerializeToString(&bytes)) return absl::InternalError("cannot serialize report");
  VIGO_RETURN_IF_ERROR(phases_.Observe(ipc::Direction::kToBroker, ipc::MsgType::kReport));
  return channel_.Send(ipc::MsgType::kReport, bytes);
}

}  // namespace vigo::worker
