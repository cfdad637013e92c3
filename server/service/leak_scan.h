// LeakScanner: defence in depth for ReportResult. Before a report is stored,
// every text field is searched for the values of the refs the reporting
// envoy is entitled to, in every form (common/secret_forms.h, the same forms
// the worker's scrubber uses), whole or as any run of at least `window`
// bytes of a form (common/window_index.h), in the text itself and in each of
// its decoding views
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
//   if (!scan.Finish().ok()) { /* withhold the texts */ }
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
// Cost and memory: Scan only encodes; the encoded forms of all values go into
// one WindowIndex (common/window_index.h) and are searched together, in one pass
// over each text and over each of its decoding views, whenever the batch
// reaches its batch size (256 KiB of forms) and at Finish. So a report is walked once per
// batch, not once per form: 1,000 entitled values and 1,000 results cost one
// pass over ~6 views of ~5,000 short texts. Views are built one text at a
// time during a pass and dropped at once (peak: one view, ≤ the largest
// text, plus 8 bytes of heap offsets per decoded byte); forms: at most one
// batch (≈ 512 KiB plus the last value's forms) and its table. Per text, one
// marker entry per byte once it has a hit.
//
// Failure: Scan and Finish return RESOURCE_EXHAUSTED when a form, the index
// or a decoding view does not fit in the locked arena; the caller must then
// not store the texts unscanned (marks made so far stay valid). Redacted()
// and leaked() reflect only the values searched so far: call Finish first.
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
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "common/decode_views.h"
#include "common/window_index.h"
#include "sandbox/secret_buffer.h"

namespace vigo::server::service {

inline constexpr size_t kMinLeakScanLen = 4;

// What the server stores for one scanned report text: `redacted`
// (LeakScanner::Redacted) made valid UTF-8 (common/utf8_text.h ValidUtf8Text:
// a redaction edge may fall inside a character, and stored texts are served
// back in proto3 `string` fields) and cut at a character boundary to at most
// `max_bytes` plus "...[truncated]".
std::string StoredReportText(std::string_view redacted, size_t max_bytes);

class LeakScanner {
 public:
  // `texts` are borrowed and must outlive the scanner.
  // `window`: the redaction window (common/window_index.h).
  explicit LeakScanner(std::vector<std::string_view> texts,
                       size_t window = kDefaultRedactionWindow);

  // Queues `value`'s encoded forms under `path`; searches the queued forms
  // when they reach the batch size.
  absl::Status Scan(std::string_view path, const sandbox::SecretBuffer& value);
  // Searches whatever is queued. Call once after the last Scan.
  absl::Status Finish();

  // Text `i` with each maximal marked run replaced by "[redacted:<path>]".
  std::string Redacted(size_t i) const;
  // Paths that name at least one redacted run (after Finish).
  const std::set<std::string>& leaked() const { return leaked_; }
  // One entry per (path, form) that names a redacted run, with the number
  // of runs, after Finish. `form` is a FormKindName, followed by "/" and the
  // decoding view it was seen through ("hex/json-escaped"), if any.
  struct Leak {
    std::string path;
    std::string form;
    size_t runs = 0;
  };
  const std::vector<Leak>& leaks() const { return leaks_; }
  // Forms queued so far (for tests).
  size_t forms_scanned() const { return forms_scanned_; }
  // Passes over the texts so far (for tests: one per batch).
  size_t passes() const { return passes_; }

 private:
  struct Mark {
    int tag = -1;       // path index * kFormKindCount + FormKind, -1: not covered
    uint32_t rank = 0;  // 2 * text bytes the hit spans, +1 unless shared (higher wins)
    int view = -1;      // index into kDecodeViewKinds, -1: the text itself
  };
  // One pass: every text and each of its decoding views against the batch.
  absl::Status Flush();
  void MarkHit(size_t text, size_t begin, size_t end, uint32_t tag, int view);
  // fn(begin, end, best mark) for each maximal marked run of text i.
  template <typename Fn>
  void ForEachRun(size_t i, Fn&& fn) const;

  std::vector<std::string_view> texts_;
  std::vector<std::vector<Mark>> marks_;  // per text, per byte; empty until a hit
  std::vector<std::string> paths_;
  std::set<std::string> leaked_;
  std::vector<Leak> leaks_;
  WindowIndex index_;
  size_t forms_scanned_ = 0;
  size_t passes_ = 0;
};

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_LEAK_SCAN_H_
