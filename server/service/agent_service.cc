#include "server/service/agent_service.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <future>
#include <set>

#include "common/log.h"
#include "common/seal.h"
#include "common/secret_ref.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "server/service/caller_identity.h"
#include "server/service/leak_scan.h"
#include "server/service/recordable_text.h"
#include "server/service/resolve_values.h"
#include "server/service/run_report.h"
#include "server/service/strict_hardening.h"
#include "server/service/vigo_server.h"
#include "vocab/ids.h"
#include "vocab/wire_limits.h"

namespace vigo::server::service {

namespace {

constexpr int kMaxMessageBytes = kMaxAgentMessageBytes;

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

std::string JoinPaths(const std::vector<std::string>& paths, size_t limit = 20) {
  std::string out;
  for (size_t i = 0; i < paths.size() && i < limit; ++i) {
    if (i) out.push_back(',');
    out += paths[i];
  }
  if (paths.size() > limit) StrAppend(&out, ",...(", paths.size(), " total)");
  return out;
}

// A ref from a request as it may be recorded: valid paths as-is, anything
// else replaced (it is attacker-chosen text, maybe a value pasted by
// mistake, and must not reach the audit log or server log verbatim).
std::string RecordableRef(const std::string& ref) {
  if (ValidateSecretPath(ref).ok()) return ref;
  return InvalidPathRecord(ref.size());
}

}  // namespace

class AgentService final : public v1::VigoAgent::Service {
 public:
  explicit AgentService(VigoServer* server) : server_(server), callers_(&server->store()) {}

  grpc::Status CheckIn(grpc::ServerContext* ctx, const v1::CheckInRequest* req,
                       v1::CheckInResponse* resp) override {
    auto new_rid = NewRequestId(ctx);
    if (!new_rid.ok()) return ToGrpc(new_rid.status());
    const std::string& rid = *new_rid;
    auto id = callers_.Authenticate(ctx, rid, "CheckIn");
    if (!id.ok()) return ToGrpc(id.status());
    if (server_->config().require_hardening == "strict") {
      absl::Status hs = CheckStrictCheckIn(*req, server_->text_fingerprinter());
      if (!hs.ok()) {
        Log(LogLevel::kWarn, "checkin refused: hardening",
            {{"req", rid}, {"envoy", id->envoy}, {"why", std::string(hs.message())}});
        return ToGrpc(hs);
      }
    }
    checkin_landlock_.Note(id->envoy, *req);
    auto state = server_->state();
    auto bundle = server_->BundleFor(state, id->envoy);
    if (!bundle.ok()) {
      Log(LogLevel::kWarn, "checkin: no bundle",
          {{"req", rid}, {"envoy", id->envoy}, {"status", bundle.status()}});
      return ToGrpc(bundle.status());
    }
    if (callers_.ShouldTouch(id->fingerprint)) {
      absl::Status touch = server_->store().TouchLastSeen(id->fingerprint);
      if (!touch.ok()) Log(LogLevel::kWarn, "last_seen update failed", {{"status", touch}});
    }
    const v1::PolicyBundle& b = (*bundle)->bundle;
    bool same = !req->known_digest().empty() && req->known_digest() == b.digest();
    if (same) {
      resp->mutable_no_change()->set_secrets_epoch(b.secrets_epoch());
      resp->mutable_no_change()->set_digest(b.digest());
    } else {
      *resp->mutable_bundle() = b;
    }
    Log(LogLevel::kInfo, "checkin",
        {{"req", rid},
         {"envoy", id->envoy},
         {"epoch", b.secrets_epoch()},
         {"digest", b.digest()},
         {"result", same ? "no_change" : "bundle"},
         {"refs", b.secret_refs_size()}});
    return grpc::Status::OK;
  }

  grpc::Status ResolveSecrets(grpc::ServerContext* ctx, const v1::ResolveSecretsRequest* req,
                              v1::ResolveSecretsResponse* resp) override {
    auto new_rid = NewRequestId(ctx);
    if (!new_rid.ok()) return ToGrpc(new_rid.status());
    const std::string& rid = *new_rid;
    auto id = callers_.Authenticate(ctx, rid, "ResolveSecrets");
    if (!id.ok()) return ToGrpc(id.status());
    auto state = server_->state();

    // 1. Entitlement, before anything else. A path that does not exist and a
    //    path that is not in this envoy's bundle get the same answer.
    std::set<std::string> entitled;
    auto bundle = server_->BundleFor(state, id->envoy);
    if (bundle.ok()) entitled = (*bundle)->entitlement;
    std::vector<std::string> denied;  // as the envoy sent them: never recorded as-is
    std::vector<std::string> asked;
    for (const std::string& ref : req->refs()) {
      asked.push_back(RecordableRef(ref));
      if (entitled.count(ref) == 0) denied.push_back(ref);
    }
    if (static_cast<size_t>(req->refs_size()) > vocab::kMaxRefsPerCall && denied.empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          StrCat("at most ", vocab::kMaxRefsPerCall, " refs per call"));
    }
    if (!denied.empty()) {
      if (grpc::Status t = Throttle(*id, LimitedCall::kDeniedResolve, 0, rid); !t.ok()) return t;
      // A denied ref is text the envoy chose: a path-shaped value of its own
      // would otherwise land verbatim in the audit chain and the log. Only
      // valid paths that pass the leak scan are named (recordable_text.h).
      const DeniedRefRecord rec =
          RecordDenied(denied, bundle.ok() ? &(*bundle)->entitlement : nullptr,
                       /*entitlement_known=*/bundle.ok() || absl::IsNotFound(bundle.status()), rid);
      absl::Status a =
          server_->Audit({.event = "secret.resolve.denied",
                          .actor = StrCat("envoy:", id->envoy),
                          .envoy = id->envoy,
                          .paths = rec.sample,
                          .outcome = "denied",
                          .detail = StrCat("req=", rid, " asked=", asked.size(), " ", rec.detail)});
      Log(LogLevel::kWarn, "resolve denied",
          {{"req", rid},
           {"envoy", id->envoy},
           {"refs", JoinPaths(rec.sample)},
           {"detail", rec.detail},
           {"audit", a}});
      return grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                          "one or more refs are not in this envoy's bundle");
    }
    // 2. Epoch.
    if (req->secrets_epoch() != state->epoch) {
      Log(LogLevel::kInfo, "resolve stale epoch",
          {{"req", rid},
           {"envoy", id->envoy},
           {"asked_epoch", req->secrets_epoch()},
           {"epoch", state->epoch}});
      return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                          StrCat("secrets_epoch ", req->secrets_epoch(), " is stale (current ",
                                 state->epoch, "); check in again"));
    }
    // 3. The values that fit one reply are read first, so that what the "ok"
    //    record names is exactly what the reply carries: the longest prefix
    //    of the refs (in request order) whose sealed values fit; the rest are
    //    counted in `deferred`, not read (but the one that did not fit),
    //    released or audited, and the agent asks again. A missing secret, a backend error or a
    //    single value that can never fit a reply is answered with one "failed" record and no "ok"
    //    record. Then the "ok" record is queued and committed while the sealer is set up and the
    //    values are sealed; the handler waits for it before replying. If anything fails after it
    //    was queued, a second record with outcome "failed" and the same call id says nothing was
    //    released.
    if (req->recipient_key().size() != kSealKeyLen) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          StrCat("recipient_key is ", req->recipient_key().size(),
                                 " bytes; an X25519 public key is ", kSealKeyLen));
    }
    auto call_id = NewCallId();
    if (!call_id.ok()) return ToGrpc(call_id.status());
    std::future<absl::Status> audited;
    // What a "failed" record names: what was asked, or once the "ok" record
    // is queued, what that record said was released.
    const std::vector<std::string>* failed_paths = &asked;
    auto fail = [&](grpc::Status why) {
      resp->Clear();
      absl::Status first = audited.valid() ? audited.get() : absl::OkStatus();
      absl::Status second =
          server_->Audit({.event = "secret.resolve",
                          .actor = StrCat("envoy:", id->envoy),
                          .envoy = id->envoy,
                          .paths = *failed_paths,
                          .outcome = "failed",
                          .detail = StrCat("epoch=", state->epoch, " call=", *call_id, " req=", rid,
                                           " released nothing: ", why.error_message())});
      if (!first.ok() || !second.ok()) {
        Log(LogLevel::kError, "resolve: audit append failed",
            {{"req", rid}, {"status", first.ok() ? second : first}});
      }
      return why;
    };
    auto read = ReadReplyValues(server_->backend(), req->refs(), rid, id->envoy);
    if (!read.ok()) return fail(ToGrpc(read.status()));
    std::vector<sandbox::SecretBuffer> values = std::move(read).value();
    // What this reply releases: the first values.size() refs.
    const std::vector<std::string> released(asked.begin(),
                                            asked.begin() + static_cast<ptrdiff_t>(values.size()));
    const size_t deferred = asked.size() - released.size();
    failed_paths = &released;
    audited = server_->AuditAsync(
        {.event = "secret.resolve",
         .actor = StrCat("envoy:", id->envoy),
         .envoy = id->envoy,
         .paths = released,
         .outcome = "ok",
         .detail = StrCat("epoch=", state->epoch, " call=", *call_id, " req=", rid,
                          deferred > 0 ? StrCat(" deferred=", deferred) : std::string())});
    // 4. A sealer for this call: a pre-generated server key (used once), the
    //    call id, one X25519 agreement with the request's key.
    auto server_key = server_->key_pool().Take();
    if (!server_key.ok()) return fail(ToGrpc(server_key.status()));
    auto sealer = Sealer::Create(req->recipient_key(), std::move(*server_key), *call_id);
    if (!sealer.ok()) return fail(ToGrpc(sealer.status()));
    for (size_t i = 0; i < values.size(); ++i) {
      const std::string& ref = req->refs(static_cast<int>(i));
      SealContext sctx{id->envoy, state->epoch, ref, sealer->call_id()};
      auto box = sealer->Seal(sctx, values[i]);
      if (!box.ok()) return fail(ToGrpc(box.status()));
      v1::SealedValue* sv = resp->add_values();
      sv->set_ref(ref);
      sv->set_nonce(std::move(box->nonce));
      sv->set_ciphertext(std::move(box->ciphertext));
    }
    values.clear();
    resp->set_deferred(static_cast<uint32_t>(deferred));
    if (resp->ByteSizeLong() > static_cast<size_t>(kMaxMessageBytes)) {
      // Cannot happen while SealedValueBytes over-estimates; if it ever did,
      // gRPC would refuse to send after an "ok" record. Say so instead.
      return fail(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                               "reply larger than the message limit; ask for fewer refs per call"));
    }
    absl::Status a = audited.get();
    if (!a.ok()) {
      resp->Clear();
      Log(LogLevel::kError, "resolve: audit append failed", {{"req", rid}, {"status", a}});
      return grpc::Status(grpc::StatusCode::INTERNAL, "audit log unavailable");
    }
    resp->set_server_key(sealer->server_public_key());
    resp->set_call_id(sealer->call_id());
    resp->set_secrets_epoch(state->epoch);
    Log(LogLevel::kInfo, "resolve",
        {{"req", rid},
         {"envoy", id->envoy},
         {"epoch", state->epoch},
         {"call", sealer->call_id()},
         {"refs", JoinPaths(released)},
         {"deferred", static_cast<int64_t>(deferred)}});
    return grpc::Status::OK;
  }

  grpc::Status ReportResult(grpc::ServerContext* ctx, const v1::ReportResultRequest* req,
                            v1::ReportResultResponse* resp) override {
    auto new_rid = NewRequestId(ctx);
    if (!new_rid.ok()) return ToGrpc(new_rid.status());
    const std::string& rid = *new_rid;
    auto id = callers_.Authenticate(ctx, rid, "ReportResult");
    if (!id.ok()) return ToGrpc(id.status());
    if (req->results_size() > vocab::kMaxReportResults) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          StrCat("at most ", vocab::kMaxReportResults, " results per report"));
    }
    // Before any work (the leak scan reads every value): an envoy that
    // floods reports is refused, so the database grows at a bounded rate.
    if (grpc::Status t =
            Throttle(*id, LimitedCall::kReport, static_cast<int64_t>(req->ByteSizeLong()), rid);
        !t.ok()) {
      return t;
    }
    MaybePruneRuns();
    // Defence in depth: look for the values this envoy may hold in every
    // text field of the report (run_report.h).
    std::vector<std::string_view> texts = ReportTexts(*req);
    LeakScanner scanner(texts, server_->config().leak_scan_window);
    auto state = server_->state();
    auto bundle = server_->BundleFor(state, id->envoy);
    // Fail closed: when a value cannot be loaded (backend down, rotation
    // race) or scanned (locked memory full), free-text messages are withheld
    // instead of stored unscanned. An envoy no rule matches is entitled to
    // nothing, so there is nothing to scan.
    bool scan_complete = bundle.ok() || absl::IsNotFound(bundle.status());
    if (bundle.ok()) {
      for (const std::string& path : (*bundle)->entitlement) {
        auto value = server_->backend().Get(path);
        absl::Status st = value.ok() ? scanner.Scan(path, *value) : value.status();
        if (!st.ok()) {
          Log(LogLevel::kWarn, "report: cannot scan for a value; messages withheld",
              {{"req", rid}, {"path", path}, {"status", st}});
          scan_complete = false;
        }
      }
    }
    if (absl::Status st = scanner.Finish(); !st.ok()) {
      Log(LogLevel::kWarn, "report: leak scan did not finish; messages withheld",
          {{"req", rid}, {"status", st}});
      scan_complete = false;
    }
    auto [run, results] = BuildStoredReport(*req, id->envoy, scanner, scan_complete);
    CheckRunConfined(*id, run, rid);
    const std::set<std::string>& leaked = scanner.leaked();
    run.redacted = !leaked.empty();
    absl::Status st =
        server_->store().StoreRun(run, results, server_->options().limits.stored_run_bytes);
    // Leaks are events: one audit record per (path, form) the scan redacted,
    // with the number of runs, and the server-wide counter.
    for (const LeakScanner::Leak& leak : scanner.leaks()) {
      const uint64_t total = server_->CountLeakRedactions(leak.runs);
      absl::Status a = server_->Audit({.event = "secret.leak.detected",
                                       .actor = StrCat("envoy:", id->envoy),
                                       .envoy = id->envoy,
                                       .paths = {leak.path},
                                       .outcome = "redacted",
                                       .detail = StrCat("run=", run.id, " form=", leak.form,
                                                        " runs=", leak.runs, " req=", rid)});
      Log(LogLevel::kError, "report: agent leaked secret material; stored redacted",
          {{"req", rid},
           {"envoy", id->envoy},
           {"run", run.id},
           {"ref", leak.path},
           {"form", leak.form},
           {"runs", static_cast<int64_t>(leak.runs)},
           {"leak_redactions_total", static_cast<int64_t>(total)},
           {"audit", a}});
    }
    if (!st.ok()) {
      Log(LogLevel::kWarn, "report: store failed", {{"req", rid}, {"status", st}});
      return ToGrpc(st);
    }
    resp->set_run_id(run.id);
    Log(LogLevel::kInfo, "report",
        {{"req", rid},
         {"envoy", id->envoy},
         {"run", run.id},
         {"outcome", run.outcome},
         {"results", results.size()}});
    return grpc::Status::OK;
  }

 private:
  // The audit form of a call's denied refs: each valid path is scanned for the
  // values of `entitlement` (the envoy's own; nil: entitled to nothing) and
  // named only when clean. Fails closed: an entitlement that is not known, a
  // value that cannot be read or a scan that cannot finish leaves every ref
  // fingerprinted, not named.
  DeniedRefRecord RecordDenied(const std::vector<std::string>& denied,
                               const std::set<std::string>* entitlement, bool entitlement_known,
                               const std::string& rid) {
    std::vector<std::string_view> texts(denied.begin(), denied.end());
    LeakScanner scanner(texts, server_->config().leak_scan_window);
    // An envoy no rule matches (NotFound) holds nothing to scan for; any
    // other failure to compile its bundle leaves its values unknown, so
    // every ref is fingerprinted (fail closed, like ReportResult).
    bool complete = entitlement_known;
    if (entitlement != nullptr) {
      for (const std::string& path : *entitlement) {
        auto value = server_->backend().Get(path);
        absl::Status st = value.ok() ? scanner.Scan(path, *value) : value.status();
        if (!st.ok()) {
          Log(LogLevel::kWarn, "resolve denied: cannot scan the refs for a value",
              {{"req", rid}, {"path", path}, {"status", st}});
          complete = false;
        }
      }
    }
    if (absl::Status st = scanner.Finish(); !st.ok()) complete = false;
    std::vector<bool> clean(denied.size(), complete);
    if (complete) {
      for (size_t i = 0; i < denied.size(); ++i) clean[i] = scanner.Redacted(i) == denied[i];
    }
    return DeniedRefSample(denied, clean, server_->text_fingerprinter());
  }

  // RESOURCE_EXHAUSTED when `id` went over a per-envoy limit in this window;
  // the first refusal of each window is audited (envoy.throttled), the rest
  // only counted, so a flood costs at most one record per window.
  grpc::Status Throttle(const Identity& id, LimitedCall call, int64_t bytes,
                        const std::string& rid) {
    EnvoyLimiter::Verdict v = limiter_.Admit(id.envoy, call, bytes);
    if (v.allowed) return grpc::Status::OK;
    const EnvoyLimits& l = limiter_.limits();
    const int64_t window_s = std::chrono::duration_cast<std::chrono::seconds>(l.window).count();
    const std::string what =
        call == LimitedCall::kReport
            ? StrCat("more than ", l.reports, " reports or ", l.report_bytes, " bytes of reports")
            : StrCat("more than ", l.denied_resolves, " denied resolves");
    if (v.first_refusal) {
      absl::Status a =
          server_->Audit({.event = "envoy.throttled",
                          .actor = StrCat("envoy:", id.envoy),
                          .envoy = id.envoy,
                          .paths = {},
                          .outcome = "refused",
                          .detail = StrCat(LimitedCallName(call), ": ", what, " in ", window_s,
                                           " s; further calls refused with RESOURCE_EXHAUSTED for ",
                                           (v.retry_after_ms + 999) / 1000,
                                           " s (audited once per window) req=", rid)});
      Log(LogLevel::kWarn, "envoy throttled",
          {{"req", rid},
           {"envoy", id.envoy},
           {"call", std::string(LimitedCallName(call))},
           {"audit", a}});
    }
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        StrCat("this envoy sent ", what, " in ", window_s, " s; retry in ",
                               (v.retry_after_ms + 999) / 1000, " s"));
  }

  // Deletes runs older than database.runs_retention, at most once per
  // runs_prune_interval (piggybacked on reports: an idle server does not grow).
  void MaybePruneRuns() {
    const int64_t now = vocab::NowUnixMs();
    const int64_t every = server_->options().runs_prune_interval.count();
    int64_t last = last_prune_ms_.load();
    if (now - last < every || !last_prune_ms_.compare_exchange_strong(last, now)) return;
    const int64_t retention_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(server_->config().runs_retention)
            .count();
    auto pruned = server_->store().PruneRuns(now - retention_ms);
    if (!pruned.ok()) {
      Log(LogLevel::kWarn, "runs prune failed", {{"status", pruned.status()}});
    } else if (*pruned > 0) {
      Log(LogLevel::kInfo, "runs pruned", {{"runs", *pruned}, {"retention_ms", retention_ms}});
    }
  }

  // Strict hardening: a run whose applier was not confined as the check-in
  // attested, or whose report attests no applier (strict_hardening.h), is
  // stored (the operator needs it) but logged at error and audited as
  // agent.hardening.run_unconfined.
  void CheckRunConfined(const Identity& id, const RunRecord& run, const std::string& rid) {
    if (server_->config().require_hardening != "strict") return;
    std::optional<std::string> detail = checkin_landlock_.Unconfined(id.envoy, run, rid);
    if (!detail) return;
    absl::Status a = server_->Audit({.event = "agent.hardening.run_unconfined",
                                     .actor = StrCat("envoy:", id.envoy),
                                     .envoy = id.envoy,
                                     .paths = {},
                                     .outcome = "unconfined",
                                     .detail = *detail});
    Log(LogLevel::kError,
        "report: the run's applier was not confined as attested (Landlock although the check-in "
        "attested it, or its no-fork/no-exec seccomp layer), or the report attests no applier "
        "(require_hardening strict)",
        {{"req", rid}, {"envoy", id.envoy}, {"run", run.id}, {"detail", *detail}, {"audit", a}});
  }

  VigoServer* server_;
  EnvoyLimiter limiter_{server_->options().limits};
  std::atomic<int64_t> last_prune_ms_{0};
  CallerIdentity callers_;
  CheckInLandlock checkin_landlock_;
};

std::unique_ptr<v1::VigoAgent::Service> NewAgentService(VigoServer* server) {
  return std::make_unique<AgentService>(server);
}

}  // namespace vigo::server::service
