// LeakScanner: defence in depth for ReportResult. Before a report is stored,
// every text field is searched for the values of the refs the reporting
// envoy is entitled to (raw, lower/upper hex, standard and URL-safe base64 at
// every byte alignment); every hit is replaced by "[redacted:<path>]" and the
// path is reported so the caller can audit the leak.
//
//   LeakScanner scan({run_id, outcome, message1, ...});   // texts, borrowed
//   for (each entitled path) {
//     if (!scan.Scan(path, value).ok()) { /* withhold the texts */ }
//   }
//   std::string clean = scan.Redacted(2);
//   if (!scan.leaked().empty()) { /* audit secret.leak.detected */ }
//
// Values shorter than kMinLeakScanLen bytes are not scanned (they would
// redact ordinary words); docs/operator/server.md says so.
//
// Memory: the encoded forms of one value are built one at a time in a
// SecretBuffer and dropped before the next (peak ≈ 2 × the value, for its hex
// form), so the number and size of entitled values do not add up in the
// locked arena. Per text, one marker entry per byte.
//
// SECURITY: every encoded form lives in a SecretBuffer, wiped when dropped.
// The search is not constant-time: the scanned text comes from the envoy that
// is itself entitled to these values, so match timing tells it nothing it
// could not read. Where two values' forms overlap, the longer form names the
// redacted run.
// Thread safety: none (one scanner per report).
#ifndef VIGO_SERVER_SERVICE_LEAK_SCAN_H_
#define VIGO_SERVER_SERVICE_LEAK_SCAN_H_

#include <cstddef>
#include <cstdint>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "sandbox/secret_buffer.h"

namespace vigo::server::service {

inline constexpr size_t kMinLeakScanLen = 4;

class LeakScanner {
 public:
  // `texts` are borrowed and must outlive the scanner.
  explicit LeakScanner(std::vector<std::string_view> texts);

  // Marks every occurrence of `value`'s forms in every text as `path`.
  // RESOURCE_EXHAUSTED when a form does not fit in the locked arena (the
  // caller must then not store the texts unscanned).
  absl::Status Scan(std::string_view path, const sandbox::SecretBuffer& value);

  // Text `i` with each maximal marked run replaced by "[redacted:<path>]".
  std::string Redacted(size_t i) const;
  // Paths with at least one hit so far.
  const std::set<std::string>& leaked() const { return leaked_; }
  // Forms searched so far (for tests).
  size_t forms_scanned() const { return forms_scanned_; }

 private:
  struct Mark {
    int path = -1;          // index into paths_, -1: not covered
    uint32_t form_len = 0;  // the covering form's length (longer wins)
  };
  void MarkForm(std::span<const uint8_t> form, int path);

  std::vector<std::string_view> texts_;
  std::vector<std::vector<Mark>> marks_;  // per text, per byte; empty until a hit
  std::vector<std::string> paths_;
  std::set<std::string> leaked_;
  size_t forms_scanned_ = 0;
};

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_LEAK_SCAN_H_
