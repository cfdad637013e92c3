// LeakScanner: defence in depth for ReportResult. Before a report is stored,
// every text field is searched for the values of the refs the reporting
// envoy is entitled to (raw, lower/upper hex, standard and URL-safe base64 at
// every byte alignment), in the text itself and in each of its decoding views
// (common/decode_views.h, the same views the worker's output scrubber uses:
// URL/form decoding, JSON string escapes, C/Python escapes, line unwrapping).
// A hit in a view marks the text bytes it was decoded from, so the escaped
// occurrence is what gets replaced. Every marked run is replaced by
// "[redacted:<path>]" and the path is reported so the caller can audit the
// leak.
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
// Not covered: two stacked escapings (one view undoes one layer), other
// transformations (HTML entities, quoted-printable, compression, hex with
// separators), and a value split across two text fields. Unlike the worker's
// scrubber there is no edge-fragment check: report texts are whole fields,
// not a captured tail.
//
// Memory: the encoded forms of one value are built one at a time in a
// SecretBuffer and dropped before the next (peak ≈ 2 × the value, for its hex
// form), so the number and size of entitled values do not add up in the
// locked arena. Decoding views are rebuilt on every Scan call, one kind at a
// time for all texts, and dropped before the next kind is built: peak ≈ the
// total size of the texts in the locked arena (a text with nothing a kind
// decodes gets no view of that kind) plus 8 bytes of offsets per decoded byte
// on the heap. They are not kept across values because all kinds at once
// would need up to 5 × the report (a 4 MiB report could not be scanned in
// the 16 MiB arena). Cost per value: up to 6 passes of its forms over the
// texts plus 5 view builds. Per text, one marker entry per byte.
//
// Failure: Scan returns RESOURCE_EXHAUSTED when a form or a decoding view
// does not fit in the locked arena; the caller must then not store the texts
// unscanned (marks made so far stay valid).
//
// SECURITY: every encoded form and decoded view lives in a SecretBuffer,
// wiped when dropped. The search is not constant-time: the scanned text comes
// from the envoy that is itself entitled to these values, so match timing
// tells it nothing it could not read. Where two values' hits overlap, the one
// covering more text bytes names the redacted run.
// Thread safety: none (one scanner per report).
#ifndef VIGO_SERVER_SERVICE_LEAK_SCAN_H_
#define VIGO_SERVER_SERVICE_LEAK_SCAN_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "common/decode_views.h"
#include "sandbox/secret_buffer.h"

namespace vigo::server::service {

inline constexpr size_t kMinLeakScanLen = 4;

class LeakScanner {
 public:
  // `texts` are borrowed and must outlive the scanner.
  explicit LeakScanner(std::vector<std::string_view> texts);

  // Marks every occurrence of `value`'s forms in every text, and in every
  // decoding view of it, as `path`. RESOURCE_EXHAUSTED when a form or a view
  // does not fit in the locked arena (the caller must then not store the
  // texts unscanned).
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
  // Marks every occurrence of `form` in views[i] (a view of text i, or none)
  // on the text bytes it was decoded from.
  void MarkForm(std::span<const uint8_t> form, int path,
                const std::vector<std::optional<DecodeView>>& views);
  // Calls `fn` with each encoded form of `v`, built one at a time.
  static absl::Status ForEachForm(std::span<const uint8_t> v,
                                  const std::function<void(std::span<const uint8_t>)>& fn);

  std::vector<std::string_view> texts_;
  std::vector<std::vector<Mark>> marks_;  // per text, per byte; empty until a hit
  std::vector<std::string> paths_;
  std::set<std::string> leaked_;
  size_t forms_scanned_ = 0;
};

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_LEAK_SCAN_H_
