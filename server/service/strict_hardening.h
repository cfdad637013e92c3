// `checkin.require_hardening: strict`, on the server: what a check-in's
// attestation must prove, and what each run's applier must have had.
//
//   absl::Status s = CheckStrictCheckIn(req, fingerprinter);  // FAILED_PRECONDITION names why
//   checkins.Note(envoy, req);                                // at every check-in
//   if (auto detail = checkins.Unconfined(envoy, run)) ...    // audit run_unconfined
//
// Thread safety: CheckStrictCheckIn is a plain function; CheckInLandlock is
// safe to call concurrently.
#ifndef VIGO_SERVER_SERVICE_STRICT_HARDENING_H_
#define VIGO_SERVER_SERVICE_STRICT_HARDENING_H_

#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "absl/status/status.h"
#include "server/service/recordable_text.h"
#include "server/service/store.h"
#include "vigo/v1/agent.pb.h"

namespace vigo::server::service {

// Both the broker and the worker must report, and each report must pass
// the very check the agent runs on itself (sandbox::CheckStrict: seccomp,
// no_new_privs, dumpable, arena lock/dontdump/backing, skipped steps,
// capability mask). The refusal names what failed; every string the envoy
// chose in it is from a closed set or replaced by its length and
// fingerprint, since it goes to the server log.
absl::Status CheckStrictCheckIn(const v1::CheckInRequest& req, const TextFingerprinter& fp);

// The Landlock ABI each envoy's worker attested at its last check-in, for
// judging its runs' appliers.
class CheckInLandlock {
 public:
  // Remembers `req`'s worker ABI for `envoy` (-1: no worker report).
  void Note(const std::string& envoy, const v1::CheckInRequest& req);
  // The ABI last noted for `envoy`; -1 when none.
  int For(const std::string& envoy) const;
  // The audit detail when `run`'s applier was not confined as attested: not
  // Landlock-enforced although the check-in attested Landlock, without its
  // no-fork/no-exec seccomp layer (which needs nothing of the kernel, so
  // counts on every kernel), or with no applier attestation at all (detail
  // `applier=missing`: an older agent, a failed run the broker reported
  // itself, or an envoy that left the field out); nullopt when it was.
  // For strict servers only: every check-in they accept had a worker.
  // The attestation is the envoy's own word; only its Landlock enforcement
  // is cross-checked, against the check-in's ABI.
  std::optional<std::string> Unconfined(const std::string& envoy, const RunRecord& run,
                                        const std::string& rid) const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, int> abi_;  // envoy -> worker ABI, under mu_
};

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_STRICT_HARDENING_H_
