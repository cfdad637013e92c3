#include "server/service/strict_hardening.h"

#include "common/ipc/attestation_proto.h"
#include "common/strings.h"
#include "sandbox/attestation.h"

namespace vigo::server::service {
namespace {

// The process name as it may appear in a log line (the envoy chose it).
std::string RecordableProcess(const std::string& p) {
  if (p == "broker" || p == "worker") return p;
  return StrCat("<process name, ", p.size(), " bytes>");
}

// Bounds the map: an envoy set larger than this starts over (a run of an
// envoy forgotten this way is judged as without a check-in: seccomp only).
constexpr size_t kMaxRemembered = 100000;

}  // namespace

absl::Status CheckStrictCheckIn(const v1::CheckInRequest& req, const TextFingerprinter& fp) {
  bool have_broker = false, have_worker = false;
  for (const v1::AttestationReport& r : req.attestation()) {
    if (r.process() == "broker") have_broker = true;
    if (r.process() == "worker") have_worker = true;
    absl::Status st = sandbox::CheckStrict(
        ipc::FromProto(r, [&fp](const std::string& s) { return fp.Recorded(s); }));
    if (!st.ok()) {
      // A hex mask passes FromProto as sent (CheckStrict must read it), and
      // 16 hex digits may be 8 bytes of a value: the refusal names it by
      // fingerprint only (review of issue 15).
      std::string why(st.message());
      const std::string eff = StrCat("cap_eff=", r.cap_eff(), " ");
      if (size_t at = why.find(eff); at != std::string::npos) {
        why.replace(at, eff.size(), StrCat("cap_eff=", fp.Recorded(r.cap_eff()), " "));
      }
      return absl::FailedPreconditionError(StrCat(RecordableProcess(r.process()), ": ", why));
    }
  }
  if (!have_broker || !have_worker) {
    return absl::FailedPreconditionError(
        "checkin.require_hardening is strict: broker and worker attestation required");
  }
  return absl::OkStatus();
}

void CheckInLandlock::Note(const std::string& envoy, const v1::CheckInRequest& req) {
  int abi = -1;
  for (const v1::AttestationReport& r : req.attestation()) {
    if (r.process() == "worker") abi = r.landlock_abi();
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (abi_.size() > kMaxRemembered) abi_.clear();
  abi_[envoy] = abi;
}

int CheckInLandlock::For(const std::string& envoy) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = abi_.find(envoy);
  return it == abi_.end() ? -1 : it->second;
}

std::optional<std::string> CheckInLandlock::Unconfined(const std::string& envoy,
                                                       const RunRecord& run,
                                                       const std::string& rid) const {
  const int abi = For(envoy);
  if (!run.applier) {
    // No attestation at all: the applier's confinement is unknown, and
    // leaving the field out must not be a way around this audit. A strict
    // server let no check-in through without a worker report, so every
    // envoy reporting here has (or had) a worker, hence an applier; nor is
    // a check-in this server no longer remembers (a restart, the bound
    // above) an excuse.
    return StrCat("run=", run.id, " req=", rid, " checkin_landlock_abi=", abi, " applier=missing");
  }
  const bool landlock_missing = abi >= 1 && !run.applier->enforced;
  if (!landlock_missing && run.applier->no_new_process) return std::nullopt;
  return StrCat("run=", run.id, " req=", rid, " checkin_landlock_abi=", abi,
                " applier_landlock_abi=", run.applier->landlock_abi,
                " enforced=", run.applier->enforced ? "true" : "false",
                " no_new_process=", run.applier->no_new_process ? "true" : "false");
}

}  // namespace vigo::server::service
