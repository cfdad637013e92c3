// The `isopass` secrets backend: secrets live in isopass, an HTTPS secrets
// service (docs/operator/isopass.md).
//
//   // server.yaml: secrets: { backend: isopass, url: https://isopass:8443,
//   //                         token_file: isopass-token, ca_file: tls/isopass-ca.pem }
//   VIGO_ASSIGN_OR_RETURN(std::unique_ptr<SecretBackend> b, OpenIsopassBackend(cfg));
//   VIGO_RETURN_IF_ERROR(b->CheckHealth());            // OpenBackend does this
//   VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer pw, b->Get("db-admin/password"));
//
// Mapping: Vigo path P is the isopass secret named P when its type is a raw
// type (its value). For username_password, key_value_pair and tls_bundle, the
// secret N is addressed by field: N/<field> (split at the last '/', tried only
// when no secret is named P exactly). The structured secret itself (N) is not
// a value: Exists(N) is false and Get(N) is NOT_FOUND with a hint.
//
// Freshness: the backend keeps a snapshot of every secret (values in
// SecretBuffers) from one POST /api/client/search. Exists, Get, Version and
// List serve from the snapshot while it is younger than the poll interval and
// fetch a new one first otherwise (so Get never returns a value older than
// the poll interval). Refresh() fetches now. When a fetch fails and the
// snapshot is older than the poll interval, the snapshot is dropped and every
// call fails with the fetch error (UNAVAILABLE when isopass cannot be
// reached), never with an empty or stale value; the next call after
// `failure_backoff` tries again, so the backend recovers by itself.
//
// Versions: the secret's `version` (integer) or else `updated_at` (RFC 3339,
// in microseconds) when isopass reports one; otherwise the first 8 bytes of
// HMAC-SHA256(per-process random key, path || 0x00 || value), recomputed at
// every fetch. Either changes when the value changes.
//
// Authentication: the long-lived token (token_file: a regular file, mode
// 0600 or 0400, owned by the server's uid, read into a SecretBuffer at every
// exchange) is exchanged at POST /api/auth/token for a short-lived token, which
// is reused until 30 s before its expires_at. A 401 on an API call triggers
// one fresh exchange and one retry; a second 401 is UNAUTHENTICATED.
//
// Errors name the path, URL, endpoint, HTTP status or file; never a value,
// token or body. Codes: NOT_FOUND (no such secret or field), UNAVAILABLE
// (unreachable, TLS failure, 5xx, malformed/truncated body), UNAUTHENTICATED
// (token refused), PERMISSION_DENIED (HTTP 403; token file mode/owner),
// FAILED_PRECONDITION (duplicate names, possible truncation, bad value shape),
// RESOURCE_EXHAUSTED (body over the size cap), INVALID_ARGUMENT (bad path,
// bad configuration such as an http:// URL).
//
// Thread safety: all methods are thread-safe. Network calls are serialized by
// one mutex; callers block while a fetch is in flight (bounded by timeouts).
#ifndef VIGO_SERVER_ISOPASS_ISOPASS_BACKEND_H_
#define VIGO_SERVER_ISOPASS_ISOPASS_BACKEND_H_

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"
#include "server/backend.h"
#include "server/isopass/isopass_http.h"
#include "server/isopass/isopass_parse.h"
#include "server/server_config.h"

namespace vigo::server {

// Opens the isopass backend described by `config` (url, token_file, ca_file,
// poll_interval). Checks the configuration and the token file locally; does
// not contact isopass (OpenBackend calls CheckHealth next).
absl::StatusOr<std::unique_ptr<SecretBackend>> OpenIsopassBackend(const ServerConfig& config);

struct IsopassOptions {
  std::string url;                   // https://host[:port][/prefix]
  std::filesystem::path token_file;  // absolute
  std::filesystem::path ca_file;     // absolute, or empty for the system CAs
  std::chrono::seconds poll_interval{60};
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds total_timeout{30000};
  size_t max_body_bytes = isopass::kDefaultMaxBodyBytes;
  // The search request's limit; a result this long is refused as possibly
  // truncated.
  size_t search_limit = 10000;
  // After a failed fetch, calls within this window return the same error
  // without contacting isopass again.
  std::chrono::milliseconds failure_backoff{1000};
  std::chrono::seconds token_refresh_margin{30};
  // Names the configuration in error messages ("/srv/vigo/server.yaml").
  std::string config_name = "isopass configuration";
};

class IsopassBackend final : public SecretBackend {
 public:
  // Validates the options and the token file; no network I/O.
  static absl::StatusOr<std::unique_ptr<IsopassBackend>> Create(IsopassOptions options);

  std::string_view Name() const override { return "isopass"; }
  // GET /api/client/me (reachability, TLS, credentials), then a fresh
  // snapshot (search permission, response shape). One-line error.
  absl::Status CheckHealth() override;
  absl::StatusOr<bool> Exists(std::string_view path) override;
  absl::StatusOr<sandbox::SecretBuffer> Get(std::string_view path) override;
  absl::StatusOr<uint64_t> Version(std::string_view path) override;
  absl::StatusOr<std::vector<std::string>> List(std::string_view prefix) override;

  // Fetches a new snapshot now. On failure a snapshot younger than the poll
  // interval is kept.
  absl::Status Refresh();

  // Token exchanges so far (for tests and the status page; not secret).
  uint64_t token_exchanges() const;

 private:
  struct PathEntry {
    const sandbox::SecretBuffer* value = nullptr;  // points into secrets
    uint64_t version = 0;
  };
  struct Snapshot {
    std::vector<isopass::ParsedSecret> secrets;
    std::map<std::string, PathEntry, std::less<>> paths;
    // Names whose lookups fail with this status (duplicates, bad values,
    // structured secrets addressed without a field).
    std::map<std::string, absl::Status, std::less<>> name_errors;
    std::map<std::string, std::string, std::less<>> structured;  // name → type
    std::chrono::steady_clock::time_point fetched_at;
  };

  IsopassBackend(IsopassOptions options, isopass::HttpClient http,
                 sandbox::SecretBuffer fingerprint_key);

  // All below require mu_.
  absl::StatusOr<std::shared_ptr<const Snapshot>> FreshSnapshotLocked();
  absl::Status FetchSnapshotLocked();
  absl::Status EnsureTokenLocked();
  absl::Status ExchangeTokenLocked();
  absl::StatusOr<sandbox::SecretBuffer> CallLocked(std::string_view method,
                                                   std::string_view api_path,
                                                   std::string_view json_body);
  absl::StatusOr<std::shared_ptr<Snapshot>> BuildSnapshot(
      std::vector<isopass::ParsedSecret> secrets) const;
  absl::StatusOr<uint64_t> Fingerprint(std::string_view path,
                                       const sandbox::SecretBuffer& value) const;
  // The entry for `path` or the error for it (NOT_FOUND, ...).
  absl::StatusOr<const PathEntry*> Lookup(const Snapshot& snap, std::string_view path) const;

  const IsopassOptions options_;
  const isopass::HttpClient http_;
  const sandbox::SecretBuffer fingerprint_key_;

  mutable std::mutex mu_;
  sandbox::SecretBuffer token_;  // short-lived; empty when none
  std::chrono::system_clock::time_point token_expires_at_;
  uint64_t token_exchanges_ = 0;
  std::shared_ptr<const Snapshot> snapshot_;
  absl::Status last_failure_;
  std::chrono::steady_clock::time_point last_failure_at_;
};

// Reads an isopass token file into a SecretBuffer after checking that it is a
// regular file (no symlink), mode 0600 or 0400, owned by the effective uid,
// at most 64 KiB, and (after trailing whitespace is dropped) non-empty
// printable ASCII without spaces. Errors name the file and the fix.
absl::StatusOr<sandbox::SecretBuffer> ReadIsopassTokenFile(const std::filesystem::path& path);

}  // namespace vigo::server

#endif  // VIGO_SERVER_ISOPASS_ISOPASS_BACKEND_H_
