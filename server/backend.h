// SecretBackend: where the server reads secret values. Implementations:
// `local` (server/vault/local_backend.h) and `isopass` (server/isopass/).
//
//   VIGO_ASSIGN_OR_RETURN(auto backend, OpenBackend(config));  // fails fast
//   VIGO_ASSIGN_OR_RETURN(bool exists, backend->Exists("webapp/db_pw"));
//   VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer v, backend->Get("webapp/db_pw"));
//
// Contract for every implementation:
//  - Thread-safe: the gRPC server calls it from many threads.
//  - Paths are validated with ValidateSecretPath before any I/O.
//  - Errors name the path and the cause, never a value, token or body.
//    NOT_FOUND for a missing secret; UNAVAILABLE when the backend cannot be
//    reached (never an empty or partial value); DATA_LOSS for a value that
//    fails authentication (tampered file).
//  - The server's read path (Exists/Get/Version/List) never needs the
//    operator unlock gate.
#ifndef VIGO_SERVER_BACKEND_H_
#define VIGO_SERVER_BACKEND_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sandbox/secret_buffer.h"

namespace vigo::server {

struct ServerConfig;

class SecretBackend {
 public:
  virtual ~SecretBackend() = default;

  // "local" or "isopass".
  virtual std::string_view Name() const = 0;
  // Start-up check: reachable, credentials and key material usable.
  virtual absl::Status CheckHealth() = 0;
  virtual absl::StatusOr<bool> Exists(std::string_view path) = 0;
  virtual absl::StatusOr<sandbox::SecretBuffer> Get(std::string_view path) = 0;
  // A value that changes whenever the secret's value changes (a version
  // counter, or a keyed fingerprint). Used for rotation detection.
  virtual absl::StatusOr<uint64_t> Version(std::string_view path) = 0;
  // Paths under `prefix` ("" = all), sorted.
  virtual absl::StatusOr<std::vector<std::string>> List(std::string_view prefix) = 0;
  // Called by every server reload before anything is read: re-resolve what
  // was opened at start (the local vault reopens its directory and reloads
  // its keys). On error the reload fails and the previous state is kept.
  virtual absl::Status Refresh() { return absl::OkStatus(); }
};

// The backend named in `config.secrets.backend`, checked with CheckHealth().
absl::StatusOr<std::unique_ptr<SecretBackend>> OpenBackend(const ServerConfig& config);

}  // namespace vigo::server

#endif  // VIGO_SERVER_BACKEND_H_
