#include "server/service/caller_identity.h"

#include <grpcpp/grpcpp.h>

#include "common/log.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "server/tls/pki.h"
#include "vocab/envoy_name.h"
#include "vocab/ids.h"

namespace vigo::server::service {

absl::StatusOr<std::string> NewRequestId(grpc::ServerContext* ctx) {
  VIGO_ASSIGN_OR_RETURN(std::string rid, vocab::RandomHexId(8));
  ctx->AddInitialMetadata("vigo-request-id", rid);
  return rid;
}

absl::StatusOr<Identity> CallerIdentity::Authenticate(grpc::ServerContext* ctx,
                                                      const std::string& rid, const char* method) {
  auto auth = ctx->auth_context();
  if (!auth || !auth->IsPeerAuthenticated()) {
    Log(LogLevel::kWarn, "unauthenticated call", {{"req", rid}, {"method", method}});
    return absl::UnauthenticatedError("client certificate required");
  }
  auto cns = auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME);
  auto pems = auth->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME);
  if (cns.size() != 1 || pems.size() != 1) {
    return absl::UnauthenticatedError("client certificate must carry exactly one CN");
  }
  Identity id;
  id.envoy.assign(cns[0].data(), cns[0].size());
  if (!vocab::ValidateEnvoyName(id.envoy).ok()) {
    Log(LogLevel::kWarn, "bad envoy name in certificate", {{"req", rid}, {"method", method}});
    return absl::UnauthenticatedError("client certificate CN is not a valid envoy name");
  }
  std::string pem(pems[0].data(), pems[0].size());
  auto fp = Fingerprint(pem);
  if (!fp.ok()) return absl::UnauthenticatedError("client certificate unreadable");
  id.fingerprint = *fp;
  auto lookup = store_->LookupCert(id.fingerprint);
  if (!lookup.ok()) {
    Log(LogLevel::kError, "certificate lookup failed", {{"req", rid}, {"status", lookup.status()}});
    return absl::UnavailableError("server database unavailable");
  }
  if (lookup->state != CertState::kActive || lookup->name != id.envoy) {
    const char* why = lookup->state == CertState::kRevoked ? "revoked" : "unknown";
    Log(LogLevel::kWarn, "certificate refused",
        {{"req", rid},
         {"method", method},
         {"envoy", id.envoy},
         {"why", why},
         {"fingerprint", id.fingerprint}});
    return absl::UnauthenticatedError(
        StrCat("client certificate is ", why, " (issue a new one with 'vigocli envoy issue')"));
  }
  Log(LogLevel::kTrace, "call", {{"req", rid}, {"method", method}, {"envoy", id.envoy}});
  return id;
}

absl::StatusOr<std::string> CallerIdentity::Fingerprint(const std::string& pem) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = fp_cache_.find(pem);
    if (it != fp_cache_.end()) return it->second;
  }
  VIGO_ASSIGN_OR_RETURN(tls::CertInfo info, tls::CertInfoFromPem(pem));
  std::lock_guard<std::mutex> lock(mu_);
  if (fp_cache_.size() >= kMaxCachedCerts) fp_cache_.clear();
  fp_cache_[pem] = info.fingerprint_sha256;
  return info.fingerprint_sha256;
}

bool CallerIdentity::ShouldTouch(const std::string& fingerprint) {
  const int64_t now = vocab::NowUnixMs();
  std::lock_guard<std::mutex> lock(mu_);
  if (last_touch_.size() >= kMaxTouched && last_touch_.count(fingerprint) == 0) last_touch_.clear();
  int64_t& last = last_touch_[fingerprint];
  if (now - last < 60000) return false;
  last = now;
  return true;
}

}  // namespace vigo::server::service
