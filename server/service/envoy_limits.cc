#include "server/service/envoy_limits.h"

namespace vigo::server::service {

std::string_view LimitedCallName(LimitedCall call) {
  switch (call) {
    case LimitedCall::kReport:
      return "ReportResult";
    case LimitedCall::kDeniedResolve:
      return "denied ResolveSecrets";
  }
  return "?";
}

EnvoyLimiter::Verdict EnvoyLimiter::Admit(std::string_view envoy, LimitedCall call, int64_t bytes,
                                          std::chrono::steady_clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  auto key = std::make_pair(std::string(envoy), call);
  auto it = windows_.find(key);
  if (it == windows_.end()) {
    if (windows_.size() >= kMaxTracked) {
      for (auto w = windows_.begin(); w != windows_.end();) {
        w = now - w->second.start >= limits_.window ? windows_.erase(w) : std::next(w);
      }
      if (windows_.size() >= kMaxTracked) windows_.clear();
    }
    it = windows_.emplace(std::move(key), Window{now}).first;
  }
  Window& w = it->second;
  if (now - w.start >= limits_.window) w = Window{now};
  const int64_t max_calls = call == LimitedCall::kReport ? limits_.reports : limits_.denied_resolves;
  const bool over_bytes = call == LimitedCall::kReport && w.bytes + bytes > limits_.report_bytes;
  Verdict v;
  if (w.calls + 1 > max_calls || over_bytes) {
    v.allowed = false;
    v.first_refusal = !w.refused;
    w.refused = true;
    v.retry_after_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(w.start + limits_.window - now)
            .count();
    return v;
  }
  ++w.calls;
  w.bytes += bytes;
  return v;
}

}  // namespace vigo::server::service
