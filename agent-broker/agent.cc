#include "agent-broker/agent.h"

#include <openssl/rand.h>
#include <poll.h>
#include <signal.h>

#include <atomic>
#include <mutex>
#include <random>
#include <system_error>
#include <thread>

#include "common/args.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "vocab/ids.h"
#include "vocab/wire_limits.h"

namespace vigo::broker {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool Retryable(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
}

// Uniform in [0, max_ms]. Locked: parallel ResolveSecrets calls retry from
// their own threads.
int64_t JitterMs(int64_t max_ms) {
  static std::mutex mu;
  static std::mt19937_64 rng{std::random_device{}()};
  std::lock_guard<std::mutex> lock(mu);
  return std::uniform_int_distribution<int64_t>(0, max_ms)(rng);
}

}  // namespace

Agent::Agent(AgentOptions options, std::unique_ptr<AgentClient> client, WorkerLink worker,
             StateDir state, v1::AttestationReport broker_attestation)
    : options_(options),
      client_(std::move(client)),
      worker_(std::move(worker)),
      state_(std::move(state)),
      broker_attestation_(std::move(broker_attestation)) {
  auto cached = state_.LoadBundle();
  if (cached.ok()) bundle_ = std::move(*cached);
}

Agent::~Agent() {
  cache_.Clear();
  worker_.Shutdown();
}

absl::Status Agent::Retry(const char* what, const std::function<absl::Status()>& fn) {
  const auto deadline = std::chrono::steady_clock::now() + options_.retry_for;
  client_->SetDeadlineCap(deadline);
  return RetryUntil(what, deadline, fn);
}

absl::Status Agent::RetryUntil(const char* what, std::chrono::steady_clock::time_point deadline,
                               const std::function<absl::Status()>& fn) const {
  std::chrono::milliseconds backoff(500);
  for (int attempt = 1;; ++attempt) {
    absl::Status s = fn();
    if (s.ok() || !Retryable(s)) return s;
    // Full jitter: sleep uniformly in [0, backoff].
    std::chrono::milliseconds sleep(JitterMs(backoff.count()));
    if (std::chrono::steady_clock::now() + sleep >= deadline) return s;
    Log(LogLevel::kWarn, "server unreachable; retrying",
        {{"rpc", what},
         {"attempt", attempt},
         {"sleep_ms", static_cast<int64_t>(sleep.count())},
         {"error", s}});
    std::this_thread::sleep_for(sleep);
    backoff = std::min(backoff * 2, std::chrono::milliseconds(30000));
  }
}

absl::StatusOr<v1::PolicyBundle> Agent::CheckIn(bool force_bundle) {
  v1::CheckInRequest req;
  req.set_known_digest(force_bundle || !bundle_ ? "" : bundle_->digest());
  req.set_agent_version(kVigoVersion);
  *req.add_attestation() = broker_attestation_;
  *req.add_attestation() = worker_.attestation();
  v1::CheckInResponse resp;
  VIGO_RETURN_IF_ERROR(Retry("CheckIn", [&]() -> absl::Status {
    VIGO_ASSIGN_OR_RETURN(resp, client_->CheckIn(req));
    return absl::OkStatus();
  }));
  if (resp.has_bundle()) {
    bundle_ = resp.bundle();
    if (absl::Status s = state_.SaveBundle(*bundle_); !s.ok()) {
      Log(LogLevel::kWarn, "cannot save bundle", {{"error", s}});
    }
    Log(LogLevel::kInfo, "new bundle",
        {{"digest", bundle_->digest()},
         {"epoch", bundle_->secrets_epoch()},
         {"resources", bundle_->resources_size()}});
    return *bundle_;
  }
  if (!resp.has_no_change() || !bundle_ || resp.no_change().digest() != bundle_->digest()) {
    if (force_bundle) return absl::DataLossError("CheckIn: no bundle in the answer");
    return CheckIn(/*force_bundle=*/true);
  }
  Log(LogLevel::kDebug, "bundle unchanged", {{"digest", bundle_->digest()}});
  return *bundle_;
}

absl::Status Agent::ResolveAll(v1::PolicyBundle* bundle) {
  for (int round = 0;; ++round) {
    cache_.Reset(bundle->secrets_epoch());     // zeroes values of an older epoch
    cache_.RetainOnly(bundle->secret_refs());  // and of refs this bundle dropped
    std::vector<std::string> missing =
        cache_.Missing(bundle->secrets_epoch(), bundle->secret_refs());
    if (missing.empty()) return absl::OkStatus();
    // One call for the whole bundle, split only where the server caps the
    // refs per call (vigosrv: 256); each call has its own fresh key.
    std::vector<std::vector<std::string>> parts;
    for (size_t i = 0; i < missing.size(); i += vocab::kMaxRefsPerCall) {
      parts.emplace_back(missing.begin() + static_cast<ptrdiff_t>(i),
                         missing.begin() + static_cast<ptrdiff_t>(std::min(
                                               missing.size(), i + vocab::kMaxRefsPerCall)));
    }
    const auto t0 = std::chrono::steady_clock::now();
    absl::Status s = ResolveParts(*bundle, parts);
    if (s.ok()) {
      Log(LogLevel::kInfo, "values resolved",
          {{"count", static_cast<int64_t>(missing.size())},
           {"calls", static_cast<int64_t>(parts.size())},
           {"ms", static_cast<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::steady_clock::now() - t0)
                                           .count())}});
      return s;
    }
    if (!absl::IsFailedPrecondition(s) || round > 0) return s;
    // Stale epoch: forget everything, check in again, retry once.
    Log(LogLevel::kInfo, "secrets epoch moved; checking in again", {{"error", s}});
    cache_.Clear();
    VIGO_ASSIGN_OR_RETURN(*bundle, CheckIn(/*force_bundle=*/true));
  }
}

absl::Status Agent::ResolveParts(const v1::PolicyBundle& bundle,
                                 const std::vector<std::vector<std::string>>& parts) {
  const auto deadline = std::chrono::steady_clock::now() + options_.retry_for;
  client_->SetDeadlineCap(deadline);  // before any thread exists: calls only read it
  if (parts.size() == 1) {
    return RetryUntil("ResolveSecrets", deadline,
                      [&] { return client_->ResolveInto(bundle, parts[0], &cache_); });
  }
  // Several calls (more than 256 refs) run concurrently: the server works on
  // them in parallel and each call's unsealing (an X25519 agreement per value)
  // overlaps the others' instead of queueing behind them. Each call unseals
  // into its own cache (SecretCache is not synchronized), merged here after
  // every thread has joined; a thread touches only its own slot.
  std::vector<SecretCache> local(parts.size());
  std::vector<absl::Status> status(parts.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < parts.size();) {
      local[i].Reset(bundle.secrets_epoch());
      status[i] = RetryUntil("ResolveSecrets", deadline,
                             [&] { return client_->ResolveInto(bundle, parts[i], &local[i]); });
    }
  };
  std::vector<std::thread> threads;
  for (size_t t = 1; t < std::min(parts.size(), kMaxConcurrentResolves); ++t) {
    // No exceptions across our APIs: without a thread the calls still run,
    // on fewer threads.
    try {
      threads.emplace_back(work);
    } catch (const std::system_error& e) {
      Log(LogLevel::kWarn, "cannot start a resolve thread; resolving on fewer",
          {{"error", std::string(e.what())}});
      break;
    }
  }
  work();
  for (std::thread& t : threads) t.join();
  // Like one call after another: values that arrived are kept (an epoch move
  // clears them in ResolveAll); the first failure, an epoch move before any
  // other, is the answer.
  absl::Status first;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (status[i].ok()) {
      cache_.MergeFrom(local[i]);
    } else if (first.ok() ||
               (absl::IsFailedPrecondition(status[i]) && !absl::IsFailedPrecondition(first))) {
      first = status[i];
    }
  }
  return first;
}

absl::Status Agent::Report(v1::ReportResultRequest* report) {
  absl::Status s = Retry("ReportResult", [&]() -> absl::Status {
    VIGO_ASSIGN_OR_RETURN(v1::ReportResultResponse r, client_->ReportResult(*report));
    (void)r;
    return absl::OkStatus();
  });
  if (absl::Status w = state_.SaveLastRun(*report); !w.ok()) {
    Log(LogLevel::kWarn, "cannot save last run", {{"error", w}});
  }
  return s;
}

void Agent::ReportFailure(const v1::PolicyBundle* bundle, int64_t started_ms,
                          const std::string& why) {
  v1::ReportResultRequest report;
  report.set_run_id(vocab::NewRunId());
  if (bundle != nullptr) {
    report.set_bundle_digest(bundle->digest());
    report.set_secrets_epoch(bundle->secrets_epoch());
  }
  report.set_started_unix_ms(started_ms);
  report.set_finished_unix_ms(NowMs());
  report.set_outcome("failed");
  v1::ResourceResult* r = report.add_results();
  r->set_name("vigo-agent");
  r->set_type("agent");
  r->set_status("failed");
  r->set_action("none");
  r->set_message(why);
  if (absl::Status s = Report(&report); !s.ok()) {
    Log(LogLevel::kWarn, "cannot report the failed run", {{"error", s}});
  }
}

absl::StatusOr<std::string> Agent::RunOnce() {
  const int64_t started = NowMs();
  auto bundle = CheckIn(/*force_bundle=*/false);
  if (!bundle.ok()) {
    Log(LogLevel::kError, "check-in failed", {{"error", bundle.status()}});
    // Refused (revoked or unknown certificate, hardening check): this agent
    // may no longer hold values, so it forgets them now, not at exit.
    if (absl::IsUnauthenticated(bundle.status()) || absl::IsPermissionDenied(bundle.status()) ||
        absl::IsFailedPrecondition(bundle.status())) {
      const auto forgotten = static_cast<int64_t>(cache_.size());
      cache_.Clear();
      Log(LogLevel::kInfo, "check-in refused; cached values forgotten", {{"values", forgotten}});
    }
    return bundle.status();
  }
  if (absl::Status s = ResolveAll(&*bundle); !s.ok()) {
    Log(LogLevel::kError, "resolving secrets failed", {{"error", s}});
    ReportFailure(&*bundle, started,
                  StrCat("resolving secrets failed: ", std::string(s.message())));
    return s;
  }
  auto report = worker_.ServeRun(*bundle, cache_);
  if (!report.ok()) {
    worker_dead_ = absl::IsUnavailable(report.status());
    Log(LogLevel::kError, "run failed", {{"error", report.status()}});
    ReportFailure(&*bundle, started, std::string(report.status().message()));
    if (!worker_dead_) {
      // Anything but a dead worker leaves the broker and the worker out of
      // step mid-run (phase table, an unanswered resolve): a broken invariant
      // across the socketpair ends the broker; the service manager restarts it.
      FatalProtocolViolation("run", report.status());
    }
    return report.status();
  }
  report->set_run_id(vocab::NewRunId());
  report->set_bundle_digest(bundle->digest());
  report->set_secrets_epoch(bundle->secrets_epoch());
  if (report->started_unix_ms() == 0) report->set_started_unix_ms(started);
  std::string outcome = report->outcome();
  if (absl::Status s = Report(&*report); !s.ok()) {
    Log(LogLevel::kError, "cannot report the run", {{"error", s}});
  }
  Log(LogLevel::kInfo, "run finished",
      {{"run_id", report->run_id()}, {"outcome", outcome}, {"epoch", bundle->secrets_epoch()}});
  return outcome;
}

int Agent::WorkerGone(const std::atomic<bool>& stop) {
  WorkerLink::Death death = worker_.ReapDead();
  // A service manager stopping the agent signals the whole process group, and
  // the worker may die of it before this process's own handler has run: a
  // worker ended by SIGTERM/SIGINT/SIGHUP waits briefly for our own stop.
  if (death.signal == SIGTERM || death.signal == SIGINT || death.signal == SIGHUP) {
    for (int i = 0; i < 50 && !stop.load(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  if (stop.load()) {
    Log(LogLevel::kInfo, "stopping", {{"worker", death.how}});
    return 0;
  }
  Log(LogLevel::kError, "vigo-worker is gone; exiting for the service manager to restart",
      {{"worker", death.how}});
  return 1;
}

int Agent::Daemon(const std::atomic<bool>& stop) {
  while (!stop.load()) {
    auto outcome = RunOnce();
    if (worker_dead_) return WorkerGone(stop);
    // Sleep interval ± 10 %, watching the worker socket so a dead worker is
    // noticed at once, and the stop flag.
    int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(options_.interval).count();
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(ms - ms / 10 + JitterMs(ms / 5));
    while (!stop.load() && std::chrono::steady_clock::now() < until) {
      struct pollfd p = {worker_.fd(), POLLIN, 0};
      int rc = ::poll(&p, 1, 200);
      if (rc > 0 && (p.revents & (POLLHUP | POLLERR)) != 0) return WorkerGone(stop);
      if (rc > 0 && (p.revents & POLLIN) != 0) {
        // The worker may not speak while idle.
        FatalProtocolViolation("idle", absl::FailedPreconditionError("message while idle"));
      }
    }
  }
  Log(LogLevel::kInfo, "stopping");
  return 0;
}

}  // namespace vigo::broker
