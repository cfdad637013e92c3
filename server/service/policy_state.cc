#include "server/service/policy_state.h"

#include <malloc.h>

#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"

namespace vigo::server::service {

absl::Status PolicyStore::LoadInitial() {
  LoadReport report;
  auto loaded = Load(&report);
  if (!loaded.ok()) {
    std::string first = report.errors.empty() ? std::string(loaded.status().message())
                                              : report.errors.front().ToString();
    std::string more =
        report.errors.size() > 1 ? StrCat(" (and ", report.errors.size() - 1, " more)") : "";
    return absl::Status(loaded.status().code(), StrCat("stacks: ", first, more));
  }
  const uint64_t epoch = (*loaded)->epoch;
  const uint64_t policy_version = (*loaded)->stacks->policy_version();
  Install(std::move(*loaded));
  (void)audit_({.event = "config.reload",
                .actor = "server",
                .envoy = "",
                .paths = {},
                .outcome = "ok",
                .detail = StrCat("reason=startup epoch=", epoch)});
  Log(LogLevel::kInfo, "stacks loaded",
      {{"epoch", epoch},
       {"policy_version", policy_version},
       {"files", report.files},
       {"references", report.references}});
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, uint64_t>> PolicyStore::Versions(const Stacks& stacks) {
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

absl::StatusOr<std::shared_ptr<const PolicyState>> PolicyStore::Load(LoadReport* report) {
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

void PolicyStore::Install(std::shared_ptr<const PolicyState> next) {
  std::lock_guard<std::mutex> lock(state_mu_);
  state_ = std::move(next);
  bundle_cache_.clear();
  bundle_cache_state_ = nullptr;
}

absl::StatusOr<uint64_t> PolicyStore::Reload(const std::string& reason) {
  std::lock_guard<std::mutex> lock(reload_mu_);
  LoadReport report;
  // Reopen what the backend opened at start (the local vault directory and
  // its master key) before reading anything: a replaced directory or a
  // changed, malformed or loosened key is seen now, not at the next restart.
  absl::Status refreshed = backend_->Refresh();
  auto loaded = refreshed.ok() ? Load(&report)
                               : absl::StatusOr<std::shared_ptr<const PolicyState>>(refreshed);
  if (!loaded.ok()) {
    last_reload_failed_ = true;
    std::string why;
    if (report.errors.empty()) {
      why = std::string(loaded.status().message());
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
    (void)audit_({.event = "config.reload",
                  .actor = "server",
                  .envoy = "",
                  .paths = {},
                  .outcome = "failed",
                  .detail = StrCat("reason=", reason, " epoch=", epoch(), " ", why.substr(0, 512),
                                   secrets_note)});
    return absl::Status(loaded.status().code(), why + secrets_note);
  }
  const uint64_t epoch = (*loaded)->epoch;
  const uint64_t policy_version = (*loaded)->stacks->policy_version();
  Install(std::move(*loaded));
  last_reload_failed_ = false;
  // The replaced state (and its bundle cache) is freed by now unless a call
  // still holds it; glibc keeps freed heap mapped, so a reload from a large
  // stack to a small one would keep the peak RSS for good (issue 13.8).
  ::malloc_trim(0);
  (void)audit_({.event = "config.reload",
                .actor = "server",
                .envoy = "",
                .paths = {},
                .outcome = "ok",
                .detail = StrCat("reason=", reason, " epoch=", epoch)});
  Log(LogLevel::kInfo, "reloaded",
      {{"reason", reason},
       {"epoch", epoch},
       {"policy_version", policy_version},
       {"references", report.references}});
  return epoch;
}

absl::StatusOr<bool> PolicyStore::RefreshSecretsOnly() {
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
  Install(std::move(next));
  return true;
}

bool PolicyStore::VersionsChanged() {
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

std::shared_ptr<const PolicyState> PolicyStore::state() const {
  std::lock_guard<std::mutex> lock(state_mu_);
  return state_;
}

absl::StatusOr<std::shared_ptr<const CompiledBundle>> PolicyStore::BundleFor(
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
    if (bundle_cache_.size() < kMaxCachedBundles) bundle_cache_[envoy] = shared;
  }
  return shared;
}

}  // namespace vigo::server::service
