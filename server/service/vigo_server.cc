#include "server/service/vigo_server.h"

#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/resource_quota.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_posix.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <set>
#include <sstream>
#include <unordered_map>

#include "common/log.h"
#include "common/seal.h"
#include "common/secret_ref.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/attestation.h"
#include "sandbox/lockdown.h"
#include "sandbox/unique_fd.h"
#include "server/service/admin_listener.h"
#include "server/service/agent_listener.h"
#include "server/service/leak_scan.h"
#include "server/service/liveness_probe.h"
#include "server/service/recordable_text.h"
#include "server/tls/pki.h"
#include "vigo/v1/admin.grpc.pb.h"
#include "vigo/v1/agent.grpc.pb.h"

namespace vigo::server::service {
namespace fs = std::filesystem;

namespace {

constexpr int kMaxRefsPerCall = 256;
constexpr int kMaxResults = 10000;
constexpr size_t kMaxFieldBytes = 64 * 1024;
// A report's applier attestation (the broker bounds it the same way,
// agent-broker/worker_link.h): directories beyond kMaxApplierDomain are not
// stored (domain_truncated says so); each text is cut at a character.
constexpr size_t kMaxApplierDomain = 64;
constexpr size_t kMaxApplierDomainBytes = 1024;
constexpr size_t kMaxApplierTextBytes = 256;
constexpr int kMaxMessageBytes = 4 * 1024 * 1024;
// A ResolveSecrets reply must fit in one message. Each SealedValue costs its
// ref, a 12-byte nonce, the value plus a 16-byte tag, and at most 16 bytes of
// protobuf framing; the reply adds the server key, the call id and the epoch.
// The 64 KiB margin keeps the estimate above the real encoded size.
constexpr size_t kResolveReplyOverhead = 1024;
constexpr size_t kMaxResolveReplyBytes = kMaxMessageBytes - 64 * 1024;
constexpr size_t SealedValueBytes(size_t ref_bytes, size_t value_bytes) {
  return ref_bytes + 12 + value_bytes + 16 + 16;
}
// What a report text is stored as when it could not be scanned for values.
constexpr char kWithheldText[] = "[withheld: could not be scanned for leaked values]";
// Pre-generated server X25519 keys (EphemeralKeyPool); a burst beyond this
// generates inline.
constexpr size_t kKeyPoolSize = 32;

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(static_cast<unsigned char*>(static_cast<void*>(raw.data())), static_cast<int>(bytes));
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (char c : raw) {
    auto b = static_cast<unsigned char>(c);
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 0xf]);
  }
  return out;
}

absl::StatusOr<std::string> ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat(p.string(), ": cannot read"));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Reads a small private file (the TLS key) with exactly one heap buffer, so
// the caller can wipe the only copy this process makes.
absl::StatusOr<std::string> ReadKeyFile(const fs::path& p) {
  constexpr off_t kMaxKeyFile = 64 * 1024;
  sandbox::UniqueFd fd(::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return absl::NotFoundError(StrCat(p.string(), ": cannot read"));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > kMaxKeyFile) {
    return absl::FailedPreconditionError(
        StrCat(p.string(), ": not a regular file of at most 64 KiB"));
  }
  std::string out(static_cast<size_t>(st.st_size), '\0');
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd.get(), out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      OPENSSL_cleanse(out.data(), out.size());
      return absl::DataLossError(StrCat(p.string(), ": short read"));
    }
    done += static_cast<size_t>(n);
  }
  return out;
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

struct Identity {
  std::string envoy;
  std::string fingerprint;
};

}  // namespace

// ---------------------------------------------------------------------------
// VigoAgent

class AgentServiceImpl final : public v1::VigoAgent::Service {
 public:
  explicit AgentServiceImpl(VigoServer* server) : server_(server) {}

  grpc::Status CheckIn(grpc::ServerContext* ctx, const v1::CheckInRequest* req,
                       v1::CheckInResponse* resp) override {
    const std::string rid = NewRequestId(ctx);
    auto id = Authenticate(ctx, rid, "CheckIn");
    if (!id.ok()) return ToGrpc(id.status());
    if (server_->config().require_hardening == "strict") {
      absl::Status hs = CheckHardening(*req, server_->text_fingerprinter());
      if (!hs.ok()) {
        Log(LogLevel::kWarn, "checkin refused: hardening",
            {{"req", rid}, {"envoy", id->envoy}, {"why", std::string(hs.message())}});
        return ToGrpc(hs);
      }
    }
    NoteCheckInLandlock(id->envoy, *req);
    auto state = server_->state();
    auto bundle = server_->BundleFor(state, id->envoy);
    if (!bundle.ok()) {
      Log(LogLevel::kWarn, "checkin: no bundle",
          {{"req", rid}, {"envoy", id->envoy}, {"status", bundle.status()}});
      return ToGrpc(bundle.status());
    }
    if (ShouldTouch(id->fingerprint)) {
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
    const std::string rid = NewRequestId(ctx);
    auto id = Authenticate(ctx, rid, "ResolveSecrets");
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
    if (req->refs_size() > kMaxRefsPerCall && denied.empty()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          StrCat("at most ", kMaxRefsPerCall, " refs per call"));
    }
    if (!denied.empty()) {
      if (grpc::Status t = Throttle(*id, LimitedCall::kDeniedResolve, 0, rid); !t.ok()) return t;
      // A denied ref is text the envoy chose: a path-shaped value of its own
      // would otherwise land verbatim in the audit chain and the log. Only
      // valid paths that pass the leak scan are named (recordable_text.h).
      const DeniedRefRecord rec = RecordDenied(denied, bundle.ok() ? &(*bundle)->entitlement
                                                                     : nullptr, rid);
      absl::Status a = server_->Audit({.event = "secret.resolve.denied",
                                       .actor = StrCat("envoy:", id->envoy),
                                       .envoy = id->envoy,
                                       .paths = rec.sample,
                                       .outcome = "denied",
                                       .detail = StrCat("req=", rid, " asked=", asked.size(), " ",
                                                        rec.detail)});
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
    std::vector<sandbox::SecretBuffer> values;
    values.reserve(static_cast<size_t>(req->refs_size()));
    size_t reply_bytes = kResolveReplyOverhead;
    for (const std::string& ref : req->refs()) {
      auto value = server_->backend().Get(ref);
      if (!value.ok()) {
        Log(LogLevel::kError, "resolve: backend read failed",
            {{"req", rid}, {"envoy", id->envoy}, {"path", ref}, {"status", value.status()}});
        if (absl::IsUnavailable(value.status())) {
          return fail(grpc::Status(grpc::StatusCode::UNAVAILABLE, "secret backend unavailable"));
        }
        if (absl::IsNotFound(value.status())) {
          // The envoy is entitled to `ref` (step 1), so naming it tells it
          // nothing new; the real cause lets its operator act.
          return fail(grpc::Status(
              grpc::StatusCode::FAILED_PRECONDITION,
              StrCat("secret '", ref,
                     "' is referenced by this envoy's bundle but no longer exists on the server "
                     "(deleted from the vault); the operator must store it again or change the "
                     "stacks")));
        }
        if (absl::IsDataLoss(value.status()) || absl::IsFailedPrecondition(value.status())) {
          // A tampered, rolled-back or unreadable vault file: the server log
          // has the details; the agent learns which of its secrets.
          return fail(grpc::Status(
              grpc::StatusCode::FAILED_PRECONDITION,
              StrCat("secret '", ref,
                     "' cannot be served: its vault file was refused (see the server log)")));
        }
        return fail(grpc::Status(grpc::StatusCode::INTERNAL, "secret backend error"));
      }
      const size_t sealed = SealedValueBytes(ref.size(), value->size());
      if (reply_bytes + sealed > kMaxResolveReplyBytes) {
        if (values.empty()) {
          // Alone in a reply and still too big: no split can deliver it.
          // The envoy is entitled to `ref` (step 1); naming it lets its
          // operator act.
          Log(LogLevel::kError, "resolve: a value is larger than any reply",
              {{"req", rid}, {"envoy", id->envoy}, {"path", ref}, {"bytes", value->size()}});
          return fail(grpc::Status(
              grpc::StatusCode::RESOURCE_EXHAUSTED,
              StrCat(
                  "secret '", ref, "' is ", value->size(),
                  " bytes, more than one ResolveSecrets reply can carry (",
                  kMaxResolveReplyBytes - kResolveReplyOverhead,
                  " bytes with its framing); it can never be delivered: store a smaller value")));
        }
        // This value (wiped now) and the rest are deferred: the call holds at
        // most one reply's worth, plus one value, of plaintext.
        break;
      }
      reply_bytes += sealed;
      values.push_back(std::move(value).value());
    }
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
    const std::string rid = NewRequestId(ctx);
    auto id = Authenticate(ctx, rid, "ReportResult");
    if (!id.ok()) return ToGrpc(id.status());
    if (req->results_size() > kMaxResults) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          StrCat("at most ", kMaxResults, " results per report"));
    }
    // Before any work (the leak scan reads every value): an envoy that
    // floods reports is refused, so the database grows at a bounded rate.
    if (grpc::Status t = Throttle(*id, LimitedCall::kReport,
                                  static_cast<int64_t>(req->ByteSizeLong()), rid);
        !t.ok()) {
      return t;
    }
    MaybePruneRuns();
    // Defence in depth: look for the values this envoy may hold in every
    // text field of the report. Texts 0-2 are the run's; then 5 per result;
    // then the applier's rights, cap_eff and its domain's directories (at
    // most kMaxApplierDomain of them are kept, the rest are not stored).
    std::vector<std::string_view> texts = {req->run_id(), req->bundle_digest(), req->outcome()};
    const size_t applier_domain =
        std::min<size_t>(static_cast<size_t>(req->applier().domain_size()), kMaxApplierDomain);
    texts.reserve(3 + 5 * static_cast<size_t>(req->results_size()) + 2 + applier_domain);
    for (const v1::ResourceResult& r : req->results()) {
      texts.insert(texts.end(), {r.name(), r.type(), r.status(), r.action(), r.message()});
    }
    const size_t applier_text = texts.size();
    texts.insert(texts.end(), {req->applier().rights(), req->applier().cap_eff()});
    for (size_t i = 0; i < applier_domain; ++i)
      texts.push_back(req->applier().domain(static_cast<int>(i)));
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
    // Fail closed: when the scan did not cover every value, no text the
    // agent supplied is stored (only the counts and times), whatever field.
    auto clean = [&](size_t i) {
      if (!scan_complete) return std::string(kWithheldText);
      // Valid UTF-8, cut at a character boundary (leak_scan.h).
      return StoredReportText(scanner.Redacted(i), kMaxFieldBytes);
    };
    RunRecord run;
    run.id = clean(0);
    if (run.id.empty() || !ValidateRunId(run.id).ok()) run.id = NewRunId();
    run.envoy = id->envoy;
    run.bundle_digest = clean(1);
    run.secrets_epoch = req->secrets_epoch();
    run.started_ms = req->started_unix_ms();
    run.finished_ms = req->finished_unix_ms();
    run.received_ms = NowUnixMs();
    run.outcome = clean(2);
    std::vector<ResultRecord> results;
    results.reserve(static_cast<size_t>(req->results_size()));
    for (size_t i = 0; i < static_cast<size_t>(req->results_size()); ++i) {
      const size_t t = 3 + 5 * i;
      results.push_back({clean(t), clean(t + 1), clean(t + 2), clean(t + 3), clean(t + 4),
                         static_cast<int64_t>(req->results(static_cast<int>(i)).redactions())});
    }
    if (req->has_applier()) {
      const v1::ApplierAttestation& a = req->applier();
      ApplierRecord ar;
      ar.landlock_abi = a.landlock_abi();
      ar.enforced = a.enforced();
      ar.rights = StoredReportText(
          scan_complete ? scanner.Redacted(applier_text) : std::string(kWithheldText),
          kMaxApplierTextBytes);
      ar.cap_eff = StoredReportText(
          scan_complete ? scanner.Redacted(applier_text + 1) : std::string(kWithheldText),
          kMaxApplierTextBytes);
      for (size_t i = 0; i < applier_domain; ++i) {
        std::string d = StoredReportText(
            scan_complete ? scanner.Redacted(applier_text + 2 + i) : std::string(kWithheldText),
            kMaxApplierDomainBytes);
        std::replace(d.begin(), d.end(), '\n', ' ');  // the store joins them with '\n'
        ar.domain.push_back(std::move(d));
      }
      ar.domain_truncated =
          a.domain_truncated() || static_cast<size_t>(a.domain_size()) > applier_domain;
      ar.setup_us = a.setup_us();
      run.applier = std::move(ar);
      CheckRunConfined(*id, run, rid);
    }
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
  // named only when clean. Fails closed: a value that cannot be read or a scan
  // that cannot finish leaves every ref fingerprinted, not named.
  DeniedRefRecord RecordDenied(const std::vector<std::string>& denied,
                               const std::set<std::string>* entitlement, const std::string& rid) {
    std::vector<std::string_view> texts(denied.begin(), denied.end());
    LeakScanner scanner(texts, server_->config().leak_scan_window);
    bool complete = true;
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
      absl::Status a = server_->Audit(
          {.event = "envoy.throttled",
           .actor = StrCat("envoy:", id.envoy),
           .envoy = id.envoy,
           .paths = {},
           .outcome = "refused",
           .detail = StrCat(LimitedCallName(call), ": ", what, " in ", window_s,
                            " s; further calls refused with RESOURCE_EXHAUSTED for ",
                            (v.retry_after_ms + 999) / 1000, " s (audited once per window) req=",
                            rid)});
      Log(LogLevel::kWarn, "envoy throttled",
          {{"req", rid}, {"envoy", id.envoy}, {"call", std::string(LimitedCallName(call))},
           {"audit", a}});
    }
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        StrCat("this envoy sent ", what, " in ", window_s, " s; retry in ",
                               (v.retry_after_ms + 999) / 1000, " s"));
  }

  // Deletes runs older than database.runs_retention, at most once per
  // runs_prune_interval (piggybacked on reports: an idle server does not grow).
  void MaybePruneRuns() {
    const int64_t now = NowUnixMs();
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

  static std::string NewRequestId(grpc::ServerContext* ctx) {
    std::string rid = RandomHex(8);
    ctx->AddInitialMetadata("vigo-request-id", rid);
    return rid;
  }

  // Envoy identity from the verified client certificate only; then the
  // certificate must be recorded and not revoked (checked on every call).
  absl::StatusOr<Identity> Authenticate(grpc::ServerContext* ctx, const std::string& rid,
                                        const char* method) {
    auto auth = ctx->auth_context();
    if (!auth || !auth->IsPeerAuthenticated()) {
      Log(LogLevel::kWarn, "unauthenticated call", {{"req", rid}, {"method", method}});
      return absl::UnauthenticatedError("client certificate required");
    }
    auto cns = auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
    auto pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
    if (cns.size() != 1 || pems.size() != 1) {
      return absl::UnauthenticatedError("client certificate must carry exactly one CN");
    }
    Identity id;
    id.envoy.assign(cns[0].data(), cns[0].size());
    if (!tls::ValidateEnvoyName(id.envoy).ok()) {
      Log(LogLevel::kWarn, "bad envoy name in certificate", {{"req", rid}, {"method", method}});
      return absl::UnauthenticatedError("client certificate CN is not a valid envoy name");
    }
    std::string pem(pems[0].data(), pems[0].size());
    auto fp = Fingerprint(pem);
    if (!fp.ok()) return absl::UnauthenticatedError("client certificate unreadable");
    id.fingerprint = *fp;
    auto lookup = server_->store().LookupCert(id.fingerprint);
    if (!lookup.ok()) {
      Log(LogLevel::kError, "certificate lookup failed",
          {{"req", rid}, {"status", lookup.status()}});
      return absl::UnavailableError("server database unavailable");
    }
    if (lookup->state != CertState::kActive || lookup->name != id.envoy) {
      const char* why = lookup->state == CertState::kRevoked ? "revoked" : "unknown";
      Log(LogLevel::kWarn, "certificate refused",
          {{"req", rid},
           {"method", method},
           {"envoy", id.envoy},
           {"why", why},
           {"fingerprint", id.fingerprint}});
      return absl::UnauthenticatedError(
          StrCat("client certificate is ", why, " (issue a new one with 'vigocli envoy issue')"));
    }
    Log(LogLevel::kTrace, "call", {{"req", rid}, {"method", method}, {"envoy", id.envoy}});
    return id;
  }

  absl::StatusOr<std::string> Fingerprint(const std::string& pem) {
    {
      std::lock_guard<std::mutex> lock(fp_mu_);
      auto it = fp_cache_.find(pem);
      if (it != fp_cache_.end()) return it->second;
    }
    VIGO_ASSIGN_OR_RETURN(tls::CertInfo info, tls::CertInfoFromPem(pem));
    std::lock_guard<std::mutex> lock(fp_mu_);
    if (fp_cache_.size() > 4096) fp_cache_.clear();
    fp_cache_[pem] = info.fingerprint_sha256;
    return info.fingerprint_sha256;
  }

  // last_seen is written at most once a minute per certificate: a check-in
  // should not cost a synchronous database write each time.
  bool ShouldTouch(const std::string& fingerprint) {
    const int64_t now = NowUnixMs();
    std::lock_guard<std::mutex> lock(fp_mu_);
    int64_t& last = last_touch_[fingerprint];
    if (now - last < 60000) return false;
    if (last_touch_.size() > 100000) last_touch_.clear();
    last = now;
    return true;
  }

  // The Landlock ABI the envoy's worker attested at its last check-in (for
  // ReportResult's run_unconfined check); -1 when it sent no worker report.
  void NoteCheckInLandlock(const std::string& envoy, const v1::CheckInRequest& req) {
    int abi = -1;
    for (const v1::AttestationReport& r : req.attestation()) {
      if (r.process() == "worker") abi = r.landlock_abi();
    }
    std::lock_guard<std::mutex> lock(landlock_mu_);
    if (checkin_landlock_.size() > 100000) checkin_landlock_.clear();
    checkin_landlock_[envoy] = abi;
  }

  // Strict hardening: the check-in said the kernel has Landlock, so every
  // run's applier must have restricted itself with it. A run whose report
  // says otherwise is stored (the operator needs it) but logged as an error
  // and audited as agent.hardening.run_unconfined.
  void CheckRunConfined(const Identity& id, const RunRecord& run, const std::string& rid) {
    if (server_->config().require_hardening != "strict" || !run.applier || run.applier->enforced) {
      return;
    }
    int abi = -1;
    {
      std::lock_guard<std::mutex> lock(landlock_mu_);
      auto it = checkin_landlock_.find(id.envoy);
      if (it != checkin_landlock_.end()) abi = it->second;
    }
    if (abi < 1) return;
    const std::string detail =
        StrCat("run=", run.id, " req=", rid, " checkin_landlock_abi=", abi,
               " applier_landlock_abi=", run.applier->landlock_abi, " enforced=false");
    absl::Status a = server_->Audit({.event = "agent.hardening.run_unconfined",
                                     .actor = StrCat("envoy:", id.envoy),
                                     .envoy = id.envoy,
                                     .paths = {},
                                     .outcome = "unconfined",
                                     .detail = detail});
    Log(LogLevel::kError,
        "report: the run's applier was not Landlock-confined although the check-in attested "
        "Landlock (require_hardening strict)",
        {{"req", rid},
         {"envoy", id.envoy},
         {"run", run.id},
         {"checkin_landlock_abi", static_cast<int64_t>(abi)},
         {"applier_landlock_abi", static_cast<int64_t>(run.applier->landlock_abi)},
         {"audit", a}});
  }

  // `checkin.require_hardening: strict`: every report must pass the very
  // check the agent runs on itself (sandbox::CheckStrict: seccomp, no_new_privs,
  // dumpable, arena lock/dontdump/backing, skipped steps, capability mask),
  // and both the broker and the worker must report.
  // The refusal names what failed; every string the envoy chose in it is
  // either from a closed set or replaced by its length and fingerprint
  // (RecordableAttestation), since it goes to the server log.
  static absl::Status CheckHardening(const v1::CheckInRequest& req, const TextFingerprinter& fp) {
    bool have_broker = false, have_worker = false;
    for (const v1::AttestationReport& r : req.attestation()) {
      if (r.process() == "broker") have_broker = true;
      if (r.process() == "worker") have_worker = true;
      absl::Status st = sandbox::CheckStrict(RecordableAttestation(r, fp));
      if (!st.ok()) {
        return absl::FailedPreconditionError(
            StrCat(RecordableProcess(r.process()), ": ", st.message()));
      }
    }
    if (!have_broker || !have_worker) {
      return absl::FailedPreconditionError(
          "checkin.require_hardening is strict: broker and worker attestation required");
    }
    return absl::OkStatus();
  }

  // `r` with each string field the envoy chose kept only when it is one of
  // the closed set of names CheckStrict accepts or reports (process, arena
  // backing, lockdown step names, a hex capability mask); anything else
  // becomes "<text, N bytes, fp=...>", which CheckStrict refuses just as it
  // would the original (not a known name, not hex), so the verdict is
  // unchanged and the message holds no envoy text.
  static sandbox::AttestationReport RecordableAttestation(const v1::AttestationReport& r,
                                                          const TextFingerprinter& fp) {
    static const std::set<std::string_view> kSteps = {
        sandbox::kStepCloseFds, sandbox::kStepMountNamespace, sandbox::kStepPidNamespace,
        sandbox::kStepRlimits,  sandbox::kStepDumpable,       sandbox::kStepArena,
        sandbox::kStepCapabilities, sandbox::kStepNoNewPrivs, sandbox::kStepSeccomp,
        sandbox::kStepLandlock};
    auto hex_mask = [&](const std::string& m) {
      bool hex = !m.empty() && m.size() <= 16 &&
                 m.find_first_not_of("0123456789abcdefABCDEF") == std::string::npos;
      return hex ? m : fp.Recorded(m);
    };
    sandbox::AttestationReport out;
    out.process = r.process() == "broker" || r.process() == "worker" ? r.process()
                                                                     : fp.Recorded(r.process());
    out.seccomp_mode = r.seccomp_mode();
    out.seccomp_filters = r.seccomp_filters();
    out.no_new_privs = r.no_new_privs();
    out.cap_eff = hex_mask(r.cap_eff());
    out.cap_bnd = hex_mask(r.cap_bnd());
    out.dumpable = r.dumpable();
    out.vm_lck_kb = r.vm_lck_kb();
    out.arena_locked = r.arena_locked();
    out.arena_dontdump = r.arena_dontdump();
    out.arena_backing = r.arena_backing() == "memfd_secret" || r.arena_backing() == "mlock"
                            ? r.arena_backing()
                            : fp.Recorded(r.arena_backing());
    for (const std::string& step : r.skipped_steps()) {
      out.skipped_steps.push_back(kSteps.count(step) ? step : fp.Recorded(step));
    }
    out.landlock_abi = r.landlock_abi();
    out.applier_landlock = r.applier_landlock();
    return out;
  }

  // The process name as it may appear in a log line (the envoy chose it).
  static std::string RecordableProcess(const std::string& p) {
    if (p == "broker" || p == "worker") return p;
    return StrCat("<process name, ", p.size(), " bytes>");
  }

  VigoServer* server_;
  EnvoyLimiter limiter_{server_->options().limits};
  std::atomic<int64_t> last_prune_ms_{0};
  std::mutex fp_mu_;
  std::unordered_map<std::string, std::string> fp_cache_;
  std::unordered_map<std::string, int64_t> last_touch_;  // under fp_mu_
  std::mutex landlock_mu_;
  std::unordered_map<std::string, int>
      checkin_landlock_;  // envoy -> worker ABI, under landlock_mu_
};

// ---------------------------------------------------------------------------
// VigoAdmin (unix socket, 0600 in a 0700 dir)

class AdminServiceImpl final : public v1::VigoAdmin::Service {
 public:
  explicit AdminServiceImpl(VigoServer* server) : server_(server) {}

  grpc::Status Reload(grpc::ServerContext*, const v1::ReloadRequest* req,
                      v1::ReloadResponse* resp) override {
    std::string reason = req->reason().empty() ? "admin" : req->reason().substr(0, 64);
    auto epoch = server_->Reload(reason);
    if (epoch.ok()) {
      resp->set_ok(true);
      resp->set_secrets_epoch(*epoch);
    } else {
      resp->set_ok(false);
      resp->set_secrets_epoch(server_->epoch());
      resp->set_error(std::string(epoch.status().message()));
    }
    return grpc::Status::OK;
  }

  grpc::Status Status(grpc::ServerContext*, const v1::StatusRequest*,
                      v1::StatusResponse* resp) override {
    auto state = server_->state();
    resp->set_secrets_epoch(state->epoch);
    resp->set_policy_version(state->stacks ? state->stacks->policy_version() : 0);
    resp->set_backend(std::string(server_->backend().Name()));
    resp->set_started_unix_ms(server_->started_unix_ms());
    return grpc::Status::OK;
  }

 private:
  VigoServer* server_;
};

// ---------------------------------------------------------------------------
// VigoServer

VigoServer::VigoServer(ServerConfig cfg, ServerOptions options)
    : cfg_(std::move(cfg)), options_(options) {}

VigoServer::~VigoServer() {
  Shutdown();
  if (watcher_.joinable()) watcher_.join();
  for (int& fd : stop_pipe_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

absl::StatusOr<std::unique_ptr<VigoServer>> VigoServer::Create(
    const ServerConfig& cfg, std::unique_ptr<SecretBackend> backend, const ServerOptions& options) {
  std::unique_ptr<VigoServer> s(new VigoServer(cfg, options));
  // TLS material first: cheap, and the most common operator mistake.
  absl::Status tls_ok = tls::CheckServerTlsMaterial(cfg.TlsDir());
  if (!tls_ok.ok()) {
    return absl::Status(tls_ok.code(), StrCat("bad TLS material: ", tls_ok.message()));
  }
  if (options.enable_admin) {
    // One server per data root (the admin socket, the watcher and the epoch
    // assume it); taken before anything is loaded or written.
    fs::path run_dir = cfg.root / "run";
    std::error_code ec;
    fs::create_directories(run_dir, ec);
    fs::path lock_path = run_dir / "vigosrv.lock";
    s->lock_fd_ = sandbox::UniqueFd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!s->lock_fd_ || ::flock(s->lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
      return absl::FailedPreconditionError(
          StrCat("another vigosrv is serving this root (", lock_path.string(), " is locked)"));
    }
  }
  if (backend == nullptr) {
    auto opened = OpenBackend(cfg);
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          StrCat("secret backend '", cfg.secrets_backend,
                                 "' unusable: ", opened.status().message()));
    }
    backend = std::move(*opened);
  } else {
    absl::Status h = backend->CheckHealth();
    if (!h.ok()) {
      return absl::Status(
          h.code(), StrCat("secret backend '", backend->Name(), "' unhealthy: ", h.message()));
    }
  }
  s->backend_ = std::move(backend);
  auto db1 = Database::Open(cfg.DatabasePath());
  if (!db1.ok()) {
    return absl::Status(db1.status().code(), StrCat("database: ", db1.status().message()));
  }
  s->store_db_ = std::move(*db1);
  VIGO_ASSIGN_OR_RETURN(s->audit_db_, Database::Open(cfg.DatabasePath()));
  if (cfg.database_synchronous == "normal") {
    // Operator's choice (server.yaml database.synchronous): WAL commits are
    // not fsynced one by one; a power loss may drop the newest records.
    VIGO_RETURN_IF_ERROR(s->audit_db_->Exec("PRAGMA synchronous=NORMAL"));
    VIGO_RETURN_IF_ERROR(s->store_db_->Exec("PRAGMA synchronous=NORMAL"));
  }
  s->store_ = std::make_unique<ServerStore>(s->store_db_.get());
  VIGO_RETURN_IF_ERROR(s->store_->Init());
  s->audit_ = std::make_unique<AuditLog>(s->audit_db_.get());
  s->audit_writer_ = std::make_unique<AuditWriter>(s->audit_.get());
  s->key_pool_ = std::make_unique<EphemeralKeyPool>(kKeyPoolSize);

  LoadReport report;
  auto state = s->LoadState(&report);
  if (!state.ok()) {
    std::string first = report.errors.empty() ? std::string(state.status().message())
                                              : report.errors.front().ToString();
    std::string more =
        report.errors.size() > 1 ? StrCat(" (and ", report.errors.size() - 1, " more)") : "";
    return absl::Status(state.status().code(), StrCat("stacks: ", first, more));
  }
  {
    std::lock_guard<std::mutex> lock(s->state_mu_);
    s->state_ = *state;
  }
  (void)s->Audit({.event = "config.reload",
                  .actor = "server",
                  .envoy = "",
                  .paths = {},
                  .outcome = "ok",
                  .detail = StrCat("reason=startup epoch=", (*state)->epoch)});
  Log(LogLevel::kInfo, "stacks loaded",
      {{"epoch", (*state)->epoch},
       {"policy_version", (*state)->stacks->policy_version()},
       {"files", report.files},
       {"references", report.references}});
  return s;
}

absl::StatusOr<std::map<std::string, uint64_t>> VigoServer::Versions(const Stacks& stacks) {
  std::map<std::string, uint64_t> out;
  for (const std::string& path : stacks.AllReferences()) {
    auto v = backend_->Version(path);
    if (!v.ok()) {
      return absl::Status(v.status().code(), StrCat("secret '", path, "': ", v.status().message()));
    }
    out[path] = *v;
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const PolicyState>> VigoServer::LoadState(LoadReport* report) {
  VIGO_ASSIGN_OR_RETURN(std::shared_ptr<const Stacks> stacks,
                        Stacks::Load(cfg_.StacksDir(), *backend_, report));
  VIGO_ASSIGN_OR_RETURN(auto versions, Versions(*stacks));
  // Every successful load is a new epoch, persisted so restarts never go back.
  VIGO_ASSIGN_OR_RETURN(uint64_t epoch, store_->BumpEpoch());
  auto st = std::make_shared<PolicyState>();
  st->stacks = std::move(stacks);
  st->epoch = epoch;
  st->versions = std::move(versions);
  return std::shared_ptr<const PolicyState>(std::move(st));
}

absl::StatusOr<uint64_t> VigoServer::Reload(const std::string& reason) {
  std::lock_guard<std::mutex> lock(reload_mu_);
  LoadReport report;
  // Reopen what the backend opened at start (the local vault directory and
  // its master key) before reading anything: a replaced directory or a
  // changed, malformed or loosened key is seen now, not at the next restart.
  absl::Status refreshed = backend_->Refresh();
  auto state = refreshed.ok() ? LoadState(&report)
                              : absl::StatusOr<std::shared_ptr<const PolicyState>>(refreshed);
  if (!state.ok()) {
    last_reload_failed_ = true;
    std::string why;
    if (report.errors.empty()) {
      why = std::string(state.status().message());
    } else {
      for (size_t i = 0; i < report.errors.size() && i < 10; ++i) {
        if (i) why += "; ";
        why += report.errors[i].ToString();
      }
      if (report.errors.size() > 10) StrAppend(&why, "; ... (", report.errors.size(), " errors)");
    }
    // One answer for every agent while the stacks do not load: the last good
    // stacks stay, but a changed, deleted or restored secret they reference
    // still moves the epoch. Without this a `--once` agent (no cache) got the
    // new value while a daemon kept its cached one until the stacks were
    // fixed. Only when the backend itself could not be refreshed does nothing
    // move (there is no trustworthy version to compare).
    std::string secrets_note;
    if (refreshed.ok()) {
      auto moved = RefreshSecretsOnly();
      if (!moved.ok()) {
        secrets_note = StrCat(" (secrets not refreshed: ", moved.status().message(), ")");
      } else if (*moved) {
        secrets_note = StrCat(" (referenced secrets changed: secrets_epoch ", epoch(),
                              " serves them with the last good stacks)");
      }
    }
    Log(LogLevel::kError, "reload failed; keeping the last good config",
        {{"reason", reason}, {"error", why}, {"epoch", epoch()}, {"secrets", secrets_note}});
    (void)Audit({.event = "config.reload",
                 .actor = "server",
                 .envoy = "",
                 .paths = {},
                 .outcome = "failed",
                 .detail = StrCat("reason=", reason, " epoch=", epoch(), " ", why.substr(0, 512),
                                  secrets_note)});
    return absl::Status(state.status().code(), why + secrets_note);
  }
  uint64_t epoch = (*state)->epoch;
  {
    std::lock_guard<std::mutex> slock(state_mu_);
    state_ = *state;
    bundle_cache_.clear();
    bundle_cache_state_ = nullptr;
  }
  last_reload_failed_ = false;
  // The replaced state (and its bundle cache) is freed by now unless a call
  // still holds it; glibc keeps freed heap mapped, so a reload from a large
  // stack to a small one would keep the peak RSS for good (issue 13.8).
  ::malloc_trim(0);
  (void)Audit({.event = "config.reload",
               .actor = "server",
               .envoy = "",
               .paths = {},
               .outcome = "ok",
               .detail = StrCat("reason=", reason, " epoch=", epoch)});
  Log(LogLevel::kInfo, "reloaded",
      {{"reason", reason},
       {"epoch", epoch},
       {"policy_version", (*state)->stacks->policy_version()},
       {"references", report.references}});
  return epoch;
}

absl::StatusOr<bool> VigoServer::RefreshSecretsOnly() {
  std::shared_ptr<const PolicyState> cur = state();
  std::map<std::string, uint64_t> versions;
  for (const std::string& path : cur->stacks->AllReferences()) {
    auto v = backend_->Version(path);
    // An unreachable backend tells nothing about the secret: keep the epoch
    // (agents keep what they hold) rather than make every agent re-resolve
    // into the outage.
    if (absl::IsUnavailable(v.status())) return v.status();
    // A missing or refused secret is version 0: the epoch moves, and the
    // agents' next resolve is told why it cannot be served (ResolveSecrets).
    versions[path] = v.ok() ? *v : 0;
  }
  if (versions == cur->versions) return false;
  VIGO_ASSIGN_OR_RETURN(uint64_t epoch, store_->BumpEpoch());
  auto next = std::make_shared<PolicyState>();
  next->stacks = cur->stacks;
  next->epoch = epoch;
  next->versions = std::move(versions);
  {
    std::lock_guard<std::mutex> slock(state_mu_);
    state_ = std::move(next);
    bundle_cache_.clear();
    bundle_cache_state_ = nullptr;
  }
  return true;
}

uint64_t VigoServer::epoch() const { return state()->epoch; }

std::shared_ptr<const PolicyState> VigoServer::state() const {
  std::lock_guard<std::mutex> lock(state_mu_);
  return state_;
}

absl::Status VigoServer::Audit(const AuditEvent& event) {
  absl::Status st = audit_writer_->Append(event);
  if (!st.ok())
    Log(LogLevel::kError, "audit append failed", {{"event", event.event}, {"status", st}});
  return st;
}

std::future<absl::Status> VigoServer::AuditAsync(AuditEvent event) {
  return audit_writer_->Submit(std::move(event));
}

absl::StatusOr<std::shared_ptr<const CompiledBundle>> VigoServer::BundleFor(
    const std::shared_ptr<const PolicyState>& state, const std::string& envoy) {
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (bundle_cache_state_ == state.get()) {
      auto it = bundle_cache_.find(envoy);
      if (it != bundle_cache_.end()) return it->second;
    }
  }
  VIGO_ASSIGN_OR_RETURN(CompiledBundle b,
                        state->stacks->Compile(envoy, state->epoch, cfg_.leak_scan_window));
  auto shared = std::make_shared<const CompiledBundle>(std::move(b));
  std::lock_guard<std::mutex> lock(state_mu_);
  if (state_.get() == state.get()) {
    if (bundle_cache_state_ != state.get()) {
      bundle_cache_.clear();
      bundle_cache_state_ = state.get();
    }
    if (bundle_cache_.size() < 100000) bundle_cache_[envoy] = shared;
  }
  return shared;
}

absl::Status VigoServer::Start(const std::string& listen) {
  started_ms_ = NowUnixMs();
  const std::string addr = listen.empty() ? cfg_.grpc_listen : listen;
  // The TLS key goes to gRPC (which wants a string) and our copy is wiped.
  VIGO_ASSIGN_OR_RETURN(std::string ca_pem, ReadFile(cfg_.TlsDir() / "ca.pem"));
  VIGO_ASSIGN_OR_RETURN(std::string cert_pem, ReadFile(cfg_.TlsDir() / "server.pem"));
  VIGO_ASSIGN_OR_RETURN(std::string key_pem, ReadKeyFile(cfg_.TlsDir() / "server.key"));
  {
    auto fp = TextFingerprinter::FromKeyMaterial(key_pem);
    if (!fp.ok()) {
      OPENSSL_cleanse(key_pem.data(), key_pem.size());
      return fp.status();
    }
    text_fp_.emplace(std::move(*fp));
  }
  grpc::SslServerCredentialsOptions ssl(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = ca_pem;
  ssl.pem_key_cert_pairs.push_back({key_pem, cert_pem});
  OPENSSL_cleanse(key_pem.data(), key_pem.size());
  auto creds = grpc::SslServerCredentials(ssl);
  OPENSSL_cleanse(ssl.pem_key_cert_pairs[0].private_key.data(),
                  ssl.pem_key_cert_pairs[0].private_key.size());

  // The agent port is ours (agent_listener.h): bound here, so a port in use
  // or a bad address fails the start with one line and before gRPC starts;
  // gRPC only ever sees connections that passed the ClientHello gate.
  {
    std::string host;
    int want_port = 0;
    absl::Status parsed =
        ParseListenAddress(addr, listen.empty() ? "server.grpc_listen" : "--grpc-listen",
                           /*allow_port_zero=*/true, &host, &want_port);
    if (!parsed.ok()) return parsed;
  }
  AgentListenerOptions gate;
  gate.address = addr;
  gate.max_pending = options_.max_pending_handshakes;
  gate.max_pending_per_source = options_.max_pending_handshakes_per_source;
  gate.hello_timeout = options_.hello_timeout;
  struct rlimit nofile {};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    // Pending connections must never be what exhausts the descriptors.
    gate.max_pending =
        std::min<size_t>(gate.max_pending, std::max<size_t>(16, nofile.rlim_cur / 4));
  }
  VIGO_ASSIGN_OR_RETURN(agent_listener_, AgentListener::Bind(gate));
  port_ = agent_listener_->port();

  agent_service_ = std::make_unique<AgentServiceImpl>(this);
  grpc::ServerBuilder builder;
  // No AddListeningPort: gRPC's own listener would bring back its accept
  // loop (which stops for good after one EMFILE) and SO_REUSEPORT.
  agent_acceptor_ = builder.experimental().AddExternalConnectionAcceptor(
      grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD, creds);
  const auto ms = [](std::chrono::seconds d) {
    return static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
  };
  // The rest of the handshake after the gate (TLS and the HTTP/2 preface): a
  // client that completes mTLS and then sends nothing is closed here.
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, ms(cfg_.handshake_timeout));
  // Connections without calls are closed (GOAWAY); agents dial again at their
  // next check-in, so an idle fleet holds no memory here.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS, ms(cfg_.max_connection_idle));
  // The server pings connections (calls or not) after 2 min of silence and
  // drops those that do not answer in 20 s: a vanished peer is noticed
  // before max_connection_idle. Agents send no pings of their own, so the
  // client-ping policing (max ping strikes) never applies to them.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 120 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20 * 1000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // All agent connections together may hold at most this much gRPC buffer
  // memory; under pressure gRPC shrinks per-connection buffers and refuses
  // new calls with RESOURCE_EXHAUSTED instead of growing.
  constexpr size_t kAgentPortMemoryQuota = size_t{512} << 20;
  grpc::ResourceQuota quota("vigosrv-agent-port");
  quota.Resize(kAgentPortMemoryQuota);
  builder.SetResourceQuota(quota);
  builder.RegisterService(agent_service_.get());
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  // Replies: a CheckIn carries one bundle of up to stacks' kMaxBundleBytes
  // (refused at load when larger); every other reply stays far below.
  builder.SetMaxSendMessageSize(static_cast<int>(kMaxBundleBytes + 64 * 1024));
  agent_server_ = builder.BuildAndStart();
  if (!agent_server_) {
    agent_listener_.reset();
    return absl::UnavailableError(StrCat("cannot start the agent service on ", addr));
  }
  grpc::experimental::ExternalConnectionAcceptor* acceptor = agent_acceptor_.get();
  agent_listener_->Start([acceptor](sandbox::UniqueFd fd, std::string first_bytes) {
    grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters p;
    p.fd = fd.release();  // gRPC owns it from here
    if (!first_bytes.empty()) {
      grpc::Slice slice(first_bytes);
      p.read_buffer = grpc::ByteBuffer(&slice, 1);
    }
    acceptor->HandleNewConnection(&p);
  });
  std::string host = addr.substr(0, addr.rfind(':'));
  listen_address_ = StrCat(host, ":", port_);
  if (options_.liveness_interval.count() > 0) {
    LivenessProbeOptions po;
    po.target = agent_listener_->LoopbackTarget();
    po.ca_pem = ca_pem;
    po.interval = options_.liveness_interval;
    po.timeout = options_.liveness_timeout;
    po.failures_to_exit = options_.liveness_failures;
    AgentListener* listener = agent_listener_.get();
    po.before_connect = [listener](const std::string& source) { listener->AllowPastCaps(source); };
    liveness_ = LivenessProbe::Start(po, [this](const std::string& why) {
      Log(LogLevel::kError, "agent port is dead; exiting so the service manager restarts vigosrv",
          {{"why", why}});
      agent_port_dead_ = true;
      if (options_.on_agent_port_dead) options_.on_agent_port_dead();
    });
  }

  fs::path run_dir = cfg_.root / "run";
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  ::chmod(run_dir.c_str(), 0700);
  if (options_.enable_admin) {
    // gRPC gets no listening port: AdminListener owns admin.sock, checks each
    // peer's SO_PEERCRED uid (root or our own euid) and only then hands the
    // connection to admin_server_.
    fs::path sock = cfg_.AdminSocket();
    admin_service_ = std::make_unique<AdminServiceImpl>(this);
    grpc::ServerBuilder ab;
    ab.RegisterService(admin_service_.get());
    admin_server_ = ab.BuildAndStart();
    if (!admin_server_) {
      return absl::UnavailableError(StrCat("cannot start the admin service for ", sock.string()));
    }
    AdminListenerOptions lo;
    lo.socket_path = sock;
    lo.allowed_uids = DefaultAdminPeerUids();
    grpc::Server* admin = admin_server_.get();
    auto listener = AdminListener::Start(lo, [admin](sandbox::UniqueFd fd) {
      grpc::AddInsecureChannelFromFd(admin, fd.release());  // gRPC owns it from here
    });
    if (!listener.ok()) {
      return absl::UnavailableError(
          StrCat("cannot listen on ", sock.string(), ": ", listener.status().message()));
    }
    admin_listener_ = std::move(*listener);
  }
  {
    std::ofstream f(run_dir / "vigosrv.addr", std::ios::trunc);
    f << listen_address_ << "\n";
  }
  if (options_.enable_watcher) {
    if (::pipe2(stop_pipe_, O_CLOEXEC) != 0) return absl::InternalError("pipe2 failed");
    watcher_ = std::thread([this] { WatchLoop(); });
  }
  Log(LogLevel::kInfo, "serving",
      {{"listen", listen_address_},
       {"admin", options_.enable_admin ? cfg_.AdminSocket().string() : std::string("off")},
       {"backend", std::string(backend_->Name())},
       {"epoch", epoch()}});
  return absl::OkStatus();
}

bool VigoServer::VersionsChanged() {
  // A vault directory replaced under us changes nothing we would see through
  // the old descriptor; a failed refresh means the reload must report it.
  if (!backend_->Refresh().ok()) return true;
  auto st = state();
  for (const auto& [path, version] : st->versions) {
    auto v = backend_->Version(path);
    if (!v.ok() || *v != version) return true;
  }
  return false;
}

void VigoServer::WatchLoop() {
  sandbox::UniqueFd ino;
  std::vector<fs::path> watched;
  auto add_watches = [&]() {
    if (!ino) return;
    std::error_code ec;
    fs::path dir = cfg_.SecretsDir();
    const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_CREATE |
                          IN_ATTRIB | IN_ONLYDIR;
    ::inotify_add_watch(ino.get(), dir.c_str(), mask);
    for (auto it = fs::recursive_directory_iterator(dir, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_directory(ec)) ::inotify_add_watch(ino.get(), it->path().c_str(), mask);
    }
  };
  if (backend_->Name() == "local") {
    ino = sandbox::UniqueFd(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    add_watches();
  }
  auto next_poll = std::chrono::steady_clock::now() + options_.poll_interval;
  bool pending = false;
  auto pending_at = std::chrono::steady_clock::now();
  while (true) {
    auto now = std::chrono::steady_clock::now();
    auto deadline = pending ? std::min(pending_at, next_poll) : next_poll;
    int timeout_ms = static_cast<int>(std::max<int64_t>(
        0, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count()));
    struct pollfd fds[2] = {{stop_pipe_[0], POLLIN, 0}, {ino ? ino.get() : -1, POLLIN, 0}};
    int n = ::poll(fds, 2, timeout_ms);
    if (n < 0 && errno != EINTR) break;
    if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP))) break;
    if (n > 0 && (fds[1].revents & POLLIN)) {
      char buf[4096];
      while (::read(ino.get(), buf, sizeof(buf)) > 0) {
      }
      add_watches();  // new subdirectories
      pending = true;
      pending_at = std::chrono::steady_clock::now() + options_.debounce;
      continue;
    }
    now = std::chrono::steady_clock::now();
    bool check = false;
    const char* why = "";
    if (pending && now >= pending_at) {
      pending = false;
      check = true;
      why = "secrets dir changed";
    }
    if (now >= next_poll) {
      next_poll = now + options_.poll_interval;
      check = true;
      why = *why ? why : "version poll";
    }
    if (!check) continue;
    // A failed previous reload is retried at every check, the version poll
    // included: the operator may have added the missing secret, and a backend
    // without a file watch (isopass) is only ever seen recovering by the poll.
    if (last_reload_failed_ || VersionsChanged()) {
      Log(LogLevel::kInfo, "rotation detected", {{"why", why}});
      (void)Reload(StrCat("watcher: ", why));
    }
  }
}

void VigoServer::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    if (shutdown_) return;
    shutdown_ = true;
  }
  if (stop_pipe_[1] >= 0) {
    char c = 'x';
    (void)!::write(stop_pipe_[1], &c, 1);
  }
  auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(2);
  // Probe, then gate: no connection is handed to agent_server_ while or after
  // it shuts down (the acceptor would neither serve nor close it).
  if (liveness_) liveness_->Stop();
  if (agent_listener_) agent_listener_->Stop();
  if (agent_server_) agent_server_->Shutdown(deadline);
  // The listener first (joins its thread, unlinks admin.sock): no connection
  // is handed to admin_server_ while or after it shuts down.
  if (admin_listener_) admin_listener_->Stop();
  if (admin_server_) admin_server_->Shutdown(deadline);
  if (watcher_.joinable() && watcher_.get_id() != std::this_thread::get_id()) watcher_.join();
  if (agent_server_) Log(LogLevel::kInfo, "stopped");
  done_cv_.notify_all();
}

void VigoServer::Wait() {
  std::unique_lock<std::mutex> lock(done_mu_);
  done_cv_.wait(lock, [this] { return shutdown_; });
}

}  // namespace vigo::server::service
