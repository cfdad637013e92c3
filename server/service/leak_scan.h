// LeakScanner: defence in depth for ReportResult. Before a report is stored,
// every text field is searched for the values of the refs the reporting
// envoy is entitled to (raw, lower/upper hex, standard and URL-safe base64);
// every hit is replaced by "[redacted:<path>]" and the path is reported so
// the caller can audit the leak.
//
//   LeakScanner scan;
//   VIGO_RETURN_IF_ERROR(scan.Add("webapp/db_pw", value));   // value: SecretBuffer
//   std::set<std::string> leaked;
//   std::string clean = scan.Redact(message, &leaked);
//
// Values shorter than kMinLeakScanLen bytes are not scanned (they would
// redact ordinary words); docs/operator/server.md says so.
//
// SECURITY: the value and each encoded form live in SecretBuffers owned by
// the scanner, wiped on destruction. The search is not constant-time: the
// scanned text comes from the envoy that is itself entitled to these values,
// so match timing tells it nothing it could not read.
// Thread safety: Redact is const and may run concurrently; Add may not.
#ifndef VIGO_SERVER_SERVICE_LEAK_SCAN_H_
#define VIGO_SERVER_SERVICE_LEAK_SCAN_H_

#include <cstddef>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "sandbox/secret_buffer.h"

namespace vigo::server::service {

inline constexpr size_t kMinLeakScanLen = 4;

class LeakScanner {
 public:
  absl::Status Add(std::string_view path, const sandbox::SecretBuffer& value);
  std::string Redact(std::string_view text, std::set<std::string>* leaked_paths) const;
  size_t forms() const { return forms_.size(); }

 private:
  struct Form {
    std::string path;
    sandbox::SecretBuffer bytes;
  };
  std::vector<Form> forms_;  // longest first, so a longer form wins an overlap
};

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_LEAK_SCAN_H_
