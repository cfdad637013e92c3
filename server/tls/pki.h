// The server's small PKI: a CA (ECDSA P-256) that signs the server
// certificate and every envoy's client certificate. OpenSSL 3 EVP/X509 APIs.
//
//   VIGO_RETURN_IF_ERROR(CreateCa(tls / "ca.pem", tls / "ca.key", "Vigo CA"));
//   VIGO_RETURN_IF_ERROR(IssueServerCert(ca, tls / "server.pem", tls / "server.key", "vigo.lan"));
//   VIGO_ASSIGN_OR_RETURN(CertInfo c, IssueClientCert(ca, out / "cert.pem", out / "key.pem",
//                                                     "web-1", std::chrono::hours(24 * 365)));
//   VIGO_RETURN_IF_ERROR(CheckServerTlsMaterial(tls));  // start-up check
//
// Files: certificates are written 0644, private keys 0600. Every writer
// refuses to replace an existing file (ALREADY_EXISTS naming the path); keys
// are written straight from OpenSSL to a fresh O_EXCL fd, never through a
// std::string.
//
// Thread safety: free functions, no shared state.
#ifndef VIGO_SERVER_TLS_PKI_H_
#define VIGO_SERVER_TLS_PKI_H_

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace vigo::server::tls {

struct CaFiles {
  std::filesystem::path cert;  // ca.pem
  std::filesystem::path key;   // ca.key
};

struct CertInfo {
  std::string common_name;
  std::string serial_hex;          // upper-case hex, as OpenSSL prints it
  std::string fingerprint_sha256;  // lower-case hex of SHA-256(DER)
  int64_t not_before_unix = 0;
  int64_t not_after_unix = 0;
};

// A self-signed CA, valid 10 years. ALREADY_EXISTS if either file exists.
absl::Status CreateCa(const CaFiles& out, std::string_view common_name);

// A server certificate for `hostname` with SANs DNS:hostname, DNS:localhost,
// IP:127.0.0.1, IP:::1 (EKU serverAuth), valid 2 years, or until the CA
// expires if that is sooner (capped: it never outlives the CA).
absl::StatusOr<CertInfo> IssueServerCert(const CaFiles& ca, const std::filesystem::path& cert_out,
                                         const std::filesystem::path& key_out,
                                         std::string_view hostname);

// A certificate issued at `now_unix` for `validity` must not outlive the CA
// that signs it (`ca`: the CA certificate's info): a leaf that outlives its
// CA stops working on the CA's last day while its notAfter says otherwise.
// FAILED_PRECONDITION naming the CA's notAfter and the whole days it has left
// (the largest validity still allowed), also when the CA has expired.
// Every issuer below (server and client certificates) enforces it.
absl::Status CheckValidityWithinCa(const CertInfo& ca, std::chrono::seconds validity,
                                   int64_t now_unix);

// A client certificate with CN = envoy_name (EKU clientAuth).
// FAILED_PRECONDITION when `validity` would outlive the CA (see above).
absl::StatusOr<CertInfo> IssueClientCert(const CaFiles& ca, const std::filesystem::path& cert_out,
                                         const std::filesystem::path& key_out,
                                         std::string_view envoy_name,
                                         std::chrono::seconds validity);

// Parses one PEM certificate (the first in `pem`).
absl::StatusOr<CertInfo> CertInfoFromPem(std::string_view pem);
absl::StatusOr<CertInfo> ReadCertInfo(const std::filesystem::path& cert_path);

// Start-up check of <tls_dir>/{ca.pem,server.pem,server.key}: each parses,
// the key matches the certificate, the certificate chains to the CA and is
// currently valid. The error names the file and the cause.
absl::Status CheckServerTlsMaterial(const std::filesystem::path& tls_dir);

}  // namespace vigo::server::tls

#endif  // VIGO_SERVER_TLS_PKI_H_
