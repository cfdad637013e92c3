// Who is calling the agent service: the envoy name from the CN of the
// verified client certificate (gRPC AuthContext), then that certificate's
// SHA-256 fingerprint checked against the envoy_certs table on *every call*;
// unknown or revoked certificates get UNAUTHENTICATED. No request field names
// the caller.
//
//   CallerIdentity callers(&store);
//   VIGO_ASSIGN_OR_RETURN(std::string rid, NewRequestId(ctx));
//   auto id = callers.Authenticate(ctx, rid, "CheckIn");   // Identity or UNAUTHENTICATED
//   if (id.ok() && callers.ShouldTouch(id->fingerprint)) store.TouchLastSeen(id->fingerprint);
//
// Caches, both bounded: certificate PEM → fingerprint (parsing a certificate
// on every call is the expensive part; the fingerprint is still looked up in
// the store every call, so a revocation takes effect at once), and the last
// time each certificate's last_seen was written (at most once a minute).
//
// Thread safety: all methods are thread-safe.
#ifndef VIGO_SERVER_SERVICE_CALLER_IDENTITY_H_
#define VIGO_SERVER_SERVICE_CALLER_IDENTITY_H_

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

#include "absl/status/statusor.h"
#include "server/service/store.h"

namespace grpc {
class ServerContext;
}

namespace vigo::server::service {

struct Identity {
  std::string envoy;
  std::string fingerprint;
};

// A fresh request id (16 hex digits), also sent to the caller as the
// `vigo-request-id` initial metadata so both logs name the same call.
// INTERNAL when the random generator fails.
absl::StatusOr<std::string> NewRequestId(grpc::ServerContext* ctx);

class CallerIdentity {
 public:
  static constexpr size_t kMaxCachedCerts = 4096;
  static constexpr size_t kMaxTouched = 100000;

  explicit CallerIdentity(ServerStore* store) : store_(store) {}

  // The caller's identity, or UNAUTHENTICATED (no verified certificate, not
  // exactly one CN, a CN that is not a valid envoy name, a certificate that
  // is not recorded, revoked, or recorded for another name) or UNAVAILABLE
  // (the store cannot be read). `method` names the RPC in log lines.
  absl::StatusOr<Identity> Authenticate(grpc::ServerContext* ctx, const std::string& rid,
                                        const char* method);

  // True at most once a minute per certificate: when the caller should
  // write last_seen (a check-in must not cost a synchronous write each time).
  bool ShouldTouch(const std::string& fingerprint);

 private:
  absl::StatusOr<std::string> Fingerprint(const std::string& pem);

  ServerStore* store_;
  std::mutex mu_;
  std::unordered_map<std::string, std::string> fp_cache_;  // PEM -> fingerprint, under mu_
  std::unordered_map<std::string, int64_t> last_touch_;    // fingerprint -> ms, under mu_
};

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_CALLER_IDENTITY_H_
