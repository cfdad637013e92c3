// A small libcurl HTTPS client for isopass. Response bodies are received
// straight into a SecretBuffer (locked memory) and never into a std::string.
//
//   VIGO_ASSIGN_OR_RETURN(HttpClient http, HttpClient::Create(options));
//   VIGO_ASSIGN_OR_RETURN(HttpResponse r,
//                         http.Send("POST", "/api/client/search", &token, R"({"limit":100})"));
//   if (r.status == 200) { ... r.body.Reveal() ... }
//
// Transport policy (not configurable): https only (an http:// URL is refused
// by Create and libcurl is restricted to the https protocol), peer and host
// verification on, redirects never followed, HTTP/1.1, no compression, no
// cookies, connect and total timeouts, body size cap.
//
// Errors (the HTTP status is returned, not mapped, when a response arrives):
//  - UNAVAILABLE: cannot connect, timeout, TLS failure (including a server
//    certificate that does not verify), connection cut mid-body.
//  - RESOURCE_EXHAUSTED: the body is larger than max_body_bytes.
//  - INVALID_ARGUMENT (Create): a URL that is not https://, has credentials,
//    a query or a fragment.
// Messages name the method, the URL (which never carries credentials) and
// libcurl's error text; never a header, token or body.
//
// Residual exposure (documented in docs/operator/isopass.md): libcurl copies
// the Authorization header line into its own heap memory (the curl_slist
// entry, which we zero before freeing, and its request buffer, which libcurl
// frees without zeroing); OpenSSL's TLS record buffers also hold the request
// and response briefly. Neither is locked or zeroed by Vigo.
//
// Thread safety: Send may be called concurrently (one curl easy handle per
// call).
#ifndef VIGO_SERVER_ISOPASS_ISOPASS_HTTP_H_
#define VIGO_SERVER_ISOPASS_ISOPASS_HTTP_H_

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"

namespace vigo::server::isopass {

inline constexpr size_t kDefaultMaxBodyBytes = size_t{4} << 20;  // 4 MiB

struct HttpOptions {
  std::string base_url;  // https://host[:port][/prefix]; a trailing '/' is dropped
  std::string ca_file;   // PEM bundle to trust instead of the system CAs; empty = system
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds total_timeout{30000};
  // The whole body lives in the locked arena (16 MiB by default), so keep
  // this well below the arena capacity.
  size_t max_body_bytes = kDefaultMaxBodyBytes;
};

struct HttpResponse {
  long status = 0;
  sandbox::SecretBuffer body;
};

// Checks an isopass URL: https:// scheme, a host, no userinfo, query or
// fragment. The error names `where` (e.g. "secrets.url in /srv/vigo/server.yaml")
// and repeats the URL only when it carries no credentials.
absl::Status ValidateIsopassUrl(std::string_view url, std::string_view where);

class HttpClient {
 public:
  static absl::StatusOr<HttpClient> Create(HttpOptions options);

  // `api_path` starts with '/'. `bearer` (may be null) is sent as
  // "Authorization: Bearer <bytes>"; it must be printable ASCII without
  // spaces. `json_body` (non-secret) makes the request carry
  // Content-Type: application/json; for POST it may be empty.
  absl::StatusOr<HttpResponse> Send(std::string_view method, std::string_view api_path,
                                    const sandbox::SecretBuffer* bearer,
                                    std::string_view json_body) const;

  const std::string& base_url() const { return options_.base_url; }

 private:
  explicit HttpClient(HttpOptions options) : options_(std::move(options)) {}
  HttpOptions options_;
};

}  // namespace vigo::server::isopass

#endif  // VIGO_SERVER_ISOPASS_ISOPASS_HTTP_H_
