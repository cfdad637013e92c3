// What the server stores of a ReportResultRequest: the texts an envoy sent,
// in the order the leak scan reads them, and the run built from the scan
// (every text redacted, bounded and cut at a character; all of them
// withheld when the scan did not cover every value). ReportResult in
// agent_service.cc loads the values, scans, and stores what this builds.
//
//   std::vector<std::string_view> texts = ReportTexts(req);
//   LeakScanner scanner(texts, window);
//   ... scanner.Scan(path, value) for each value the envoy may hold ...
//   StoredReport stored = BuildStoredReport(req, envoy, scanner, scan_complete);
//
// Thread safety: plain functions.
#ifndef VIGO_SERVER_SERVICE_RUN_REPORT_H_
#define VIGO_SERVER_SERVICE_RUN_REPORT_H_

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "server/service/leak_scan.h"
#include "server/service/store.h"
#include "vigo/v1/agent.pb.h"

namespace vigo::server::service {

// Each stored result or run text.
inline constexpr size_t kMaxReportFieldBytes = 64 * 1024;
// A report's applier attestation (the broker bounds it the same way,
// agent-broker/worker_link.h): directories beyond kMaxApplierDomain are not
// stored (domain_truncated says so); each text is cut at a character.
inline constexpr size_t kMaxApplierDomain = 64;
inline constexpr size_t kMaxApplierDomainBytes = 1024;
inline constexpr size_t kMaxApplierTextBytes = 256;
// What a report text is stored as when it could not be scanned for values.
inline constexpr char kWithheldText[] = "[withheld: could not be scanned for leaked values]";

// Every text field of `req`, views into it: the run's three (run_id,
// bundle_digest, outcome); five per result (name, type, status, action,
// message); the applier's rights and cap_eff and at most kMaxApplierDomain
// of its domain directories.
std::vector<std::string_view> ReportTexts(const v1::ReportResultRequest& req);

struct StoredReport {
  RunRecord run;                      // received_ms now; applier when the report has one
  std::vector<ResultRecord> results;  // in report order
};

// The run to store for `req` from `envoy`, its texts taken from `scanner`
// (built over ReportTexts(req) and finished). A run id that is empty or not
// valid after redaction is replaced by a new one.
StoredReport BuildStoredReport(const v1::ReportResultRequest& req, const std::string& envoy,
                               const LeakScanner& scanner, bool scan_complete);

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_RUN_REPORT_H_
