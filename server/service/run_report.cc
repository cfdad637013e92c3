#include "server/service/run_report.h"

#include <algorithm>
#include <utility>

#include "vocab/ids.h"

namespace vigo::server::service {
namespace {

size_t StoredDomainSize(const v1::ReportResultRequest& req) {
  return std::min<size_t>(static_cast<size_t>(req.applier().domain_size()), kMaxApplierDomain);
}

}  // namespace

std::vector<std::string_view> ReportTexts(const v1::ReportResultRequest& req) {
  std::vector<std::string_view> texts = {req.run_id(), req.bundle_digest(), req.outcome()};
  const size_t domain = StoredDomainSize(req);
  texts.reserve(3 + 5 * static_cast<size_t>(req.results_size()) + 2 + domain);
  for (const v1::ResourceResult& r : req.results()) {
    texts.insert(texts.end(), {r.name(), r.type(), r.status(), r.action(), r.message()});
  }
  texts.insert(texts.end(), {req.applier().rights(), req.applier().cap_eff()});
  for (size_t i = 0; i < domain; ++i) texts.push_back(req.applier().domain(static_cast<int>(i)));
  return texts;
}

StoredReport BuildStoredReport(const v1::ReportResultRequest& req, const std::string& envoy,
                               const LeakScanner& scanner, bool scan_complete) {
  // Fail closed: when the scan did not cover every value, no text the agent
  // supplied is stored (only the counts and times), whatever field.
  auto clean = [&](size_t i, size_t max_bytes) {
    if (!scan_complete) return std::string(kWithheldText);
    // Valid UTF-8, cut at a character boundary (leak_scan.h).
    return StoredReportText(scanner.Redacted(i), max_bytes);
  };
  StoredReport out;
  RunRecord& run = out.run;
  run.id = clean(0, kMaxReportFieldBytes);
  if (run.id.empty() || !ValidateRunId(run.id).ok()) run.id = vocab::NewRunId();
  run.envoy = envoy;
  run.bundle_digest = clean(1, kMaxReportFieldBytes);
  run.secrets_epoch = req.secrets_epoch();
  run.started_ms = req.started_unix_ms();
  run.finished_ms = req.finished_unix_ms();
  run.received_ms = vocab::NowUnixMs();
  run.outcome = clean(2, kMaxReportFieldBytes);
  out.results.reserve(static_cast<size_t>(req.results_size()));
  for (size_t i = 0; i < static_cast<size_t>(req.results_size()); ++i) {
    const size_t t = 3 + 5 * i;
    const size_t m = kMaxReportFieldBytes;
    out.results.push_back({clean(t, m), clean(t + 1, m), clean(t + 2, m), clean(t + 3, m),
                           clean(t + 4, m),
                           static_cast<int64_t>(req.results(static_cast<int>(i)).redactions())});
  }
  if (req.has_applier()) {
    const v1::ApplierAttestation& a = req.applier();
    const size_t text = 3 + 5 * static_cast<size_t>(req.results_size());
    const size_t domain = StoredDomainSize(req);
    ApplierRecord ar;
    ar.landlock_abi = a.landlock_abi();
    ar.enforced = a.enforced();
    ar.rights = clean(text, kMaxApplierTextBytes);
    ar.cap_eff = clean(text + 1, kMaxApplierTextBytes);
    for (size_t i = 0; i < domain; ++i) {
      std::string d = clean(text + 2 + i, kMaxApplierDomainBytes);
      std::replace(d.begin(), d.end(), '\n', ' ');  // the store joins them with '\n'
      ar.domain.push_back(std::move(d));
    }
    ar.domain_truncated = a.domain_truncated() || static_cast<size_t>(a.domain_size()) > domain;
    ar.setup_us = a.setup_us();
    ar.no_new_process = a.no_new_process();
    run.applier = std::move(ar);
  }
  return out;
}

}  // namespace vigo::server::service
