// Fuzzes the report path, worker → broker → server, with arbitrary bytes in
// every text field (issue 13.1): nothing a command prints or a worker sends
// may crash a stage or reach the next one as text that is not UTF-8.
//
//   worker:  ScrubOutputAsText (scrub, escape \xHH, scrub) on arbitrary
//            output; BuildWorkerReport with arbitrary name, type, status,
//            action and message; serialize (kReport payload)
//   broker:  DecodeWorkerReport on that payload and on the raw input (any
//            frame); what it accepts must re-parse as a ReportResultRequest
//            (the server's gRPC parser) with only valid UTF-8 text
//   server:  LeakScanner over the report's texts for the fuzzed value, then
//            StoredReportText: valid UTF-8, and the raw value is gone
//
// Input layout: byte 0 = flags (bit 0: use fuzzed status/action instead of
// valid ones; bits 1-2: number of results - 1); then fields, each a 1-byte
// length followed by that many bytes (missing fields are empty): value,
// output, then per result name, type, status, action, message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "agent-broker/worker_link.h"
#include "agent-worker/scrub.h"
#include "agent-worker/worker_session.h"
#include "common/utf8_text.h"
#include "server/service/leak_scan.h"

namespace {

void Check(bool ok) {
  if (!ok) std::abort();  // a finding: the smoke replay fails on SIGABRT
}

bool AllTextValid(const vigo::v1::ReportResultRequest& r) {
  bool ok = vigo::IsValidUtf8(r.run_id()) && vigo::IsValidUtf8(r.bundle_digest()) &&
            vigo::IsValidUtf8(r.outcome());
  for (const auto& res : r.results()) {
    for (const std::string* s :
         {&res.name(), &res.type(), &res.status(), &res.action(), &res.message()}) {
      ok = ok && vigo::IsValidUtf8(*s);
    }
  }
  return ok;
}

// The broker's decode of `payload`; when accepted, the server's parse and
// leak scan of the result.
void BrokerThenServer(std::span<const uint8_t> payload, const vigo::v1::PolicyBundle& bundle,
                      const vigo::sandbox::SecretBuffer& value, std::string_view value_text) {
  auto report = vigo::broker::DecodeWorkerReport(payload, bundle);
  if (!report.ok()) return;  // a protocol violation: the broker ends, by design
  Check(AllTextValid(*report));
  vigo::v1::ReportResultRequest server_side;
  Check(server_side.ParseFromString(report->SerializeAsString()));

  std::vector<std::string_view> texts = {server_side.outcome()};
  for (const auto& res : server_side.results()) {
    texts.insert(texts.end(), {res.name(), res.type(), res.status(), res.action(), res.message()});
  }
  vigo::server::service::LeakScanner scanner(texts);
  bool scanned = scanner.Scan("fuzz/v", value).ok();
  scanned = scanner.Finish().ok() && scanned;
  // A value with none of the marker's characters cannot be re-formed by a
  // redaction, so after a complete scan it must be gone.
  const bool checkable = value_text.size() >= vigo::server::service::kMinLeakScanLen &&
                         value_text.find_first_of("[]redactfuzv:/") == std::string_view::npos;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::string redacted = scanner.Redacted(i);
    if (scanned && checkable) Check(redacted.find(value_text) == std::string::npos);
    Check(vigo::IsValidUtf8(vigo::server::service::StoredReportText(redacted, 64 * 1024)));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  std::vector<std::string> fields;
  for (size_t off = 1; off < size;) {
    size_t len = data[off++];
    if (len > size - off) len = size - off;
    fields.emplace_back(reinterpret_cast<const char*>(data + off), len);
    off += len;
  }
  auto field = [&](size_t i) { return i < fields.size() ? fields[i] : std::string(); };

  const std::string value_text = field(0).empty() ? std::string("fuzz-value") : field(0);
  auto value = vigo::sandbox::SecretBuffer::CopyFrom(vigo::TextBytes(value_text));
  if (!value.ok()) return 0;

  // Worker: the escaping itself is lossless and valid.
  const std::string output = field(1);
  const std::string escaped = vigo::EscapeInvalidUtf8(output);
  Check(vigo::IsValidUtf8(escaped));
  Check(vigo::UnescapeInvalidUtf8(escaped) == output);
  const std::string text = vigo::worker::ScrubOutputAsText(vigo::TextBytes(output), {&*value});
  Check(vigo::IsValidUtf8(text));

  const int n = 1 + ((flags >> 1) & 3);
  std::vector<vigo::v1::ResourceResult> results;
  vigo::v1::PolicyBundle bundle;
  for (int i = 0; i < n; ++i) {
    bundle.add_resources()->set_name("r");
    vigo::v1::ResourceResult r;
    const size_t b = 2 + 5 * static_cast<size_t>(i);
    r.set_name(field(b));
    r.set_type(field(b + 1));
    r.set_status((flags & 1) ? field(b + 2) : std::string("changed"));
    r.set_action((flags & 1) ? field(b + 3) : std::string("updated"));
    r.set_message(i == 0 ? "ran (exit 0); output: " + text : field(b + 4));
    results.push_back(std::move(r));
  }
  vigo::v1::WorkerReport wr = vigo::worker::BuildWorkerReport(std::move(results), 1, 2);
  Check(vigo::IsValidUtf8(wr.outcome()));
  for (const auto& r : wr.results()) {
    Check(vigo::IsValidUtf8(r.name()) && vigo::IsValidUtf8(r.type()) &&
          vigo::IsValidUtf8(r.message()));
    Check(r.message().size() <= vigo::ipc::kMaxResultMessageBytes);
  }
  const std::string payload = wr.SerializeAsString();
  auto accepted = vigo::broker::DecodeWorkerReport(vigo::TextBytes(payload), bundle);
  // An honest worker with valid statuses is never a protocol violation.
  if (!(flags & 1)) Check(accepted.ok());
  BrokerThenServer(vigo::TextBytes(payload), bundle, *value, value_text);
  // Any frame at all, straight from the input.
  BrokerThenServer(std::span<const uint8_t>(data, size), bundle, *value, value_text);
  return 0;
}
