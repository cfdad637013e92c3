// Per-envoy rate limits for the calls an envoy can repeat to grow the
// server's database and audit log (issue 13.4): ReportResult (count and
// request bytes) and denied ResolveSecrets (each one is an audit record).
//
//   EnvoyLimiter limiter(limits);
//   EnvoyLimiter::Verdict v = limiter.Admit("web-1", LimitedCall::kReport, req->ByteSizeLong());
//   if (!v.allowed) {
//     if (v.first_refusal) { /* audit envoy.throttled once for this window */ }
//     return RESOURCE_EXHAUSTED;
//   }
//
// Fixed windows of `window` length per (envoy, call). The first refusal in a
// window is flagged so the caller audits once per window, never once per
// call. Memory is bounded: at most kMaxTracked (envoy, call) pairs; expired
// windows are dropped first, and if every tracked pair is live the table is
// cleared (a flood of distinct names cannot grow it: names come from
// certificates this server recorded).
//
// Thread safety: all methods are thread-safe.
#ifndef VIGO_SERVER_SERVICE_ENVOY_LIMITS_H_
#define VIGO_SERVER_SERVICE_ENVOY_LIMITS_H_

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>

namespace vigo::server::service {

struct EnvoyLimits {
  std::chrono::milliseconds window{std::chrono::minutes(1)};
  int64_t reports = 30;                     // ReportResult calls per window
  int64_t report_bytes = 16 * 1024 * 1024;  // their request bytes per window
  int64_t denied_resolves = 10;             // denied ResolveSecrets per window
  // Stored runs of one envoy are kept under this many bytes of text: the
  // oldest runs of that envoy are pruned to make room for a new one.
  int64_t stored_run_bytes = 64 * 1024 * 1024;
};

enum class LimitedCall { kReport, kDeniedResolve };
std::string_view LimitedCallName(LimitedCall call);

class EnvoyLimiter {
 public:
  static constexpr size_t kMaxTracked = 200000;
  explicit EnvoyLimiter(const EnvoyLimits& limits) : limits_(limits) {}

  struct Verdict {
    bool allowed = true;
    bool first_refusal = false;    // the first refused call of this window
    int64_t retry_after_ms = 0;    // when refused: until the window ends
  };
  // Counts one call costing `bytes` (reports only) and says whether it is
  // within the limits. A refused call is not counted against the limits.
  Verdict Admit(std::string_view envoy, LimitedCall call, int64_t bytes,
                std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());

  const EnvoyLimits& limits() const { return limits_; }

 private:
  struct Window {
    std::chrono::steady_clock::time_point start;
    int64_t calls = 0;
    int64_t bytes = 0;
    bool refused = false;
  };
  const EnvoyLimits limits_;
  std::mutex mu_;
  std::map<std::pair<std::string, LimitedCall>, Window, std::less<>> windows_;  // under mu_
};

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_ENVOY_LIMITS_H_
