#include "server/backend.h"

#include "common/status_macros.h"
#include "common/strings.h"
#include "server/isopass/isopass_backend.h"
#include "server/server_config.h"
#include "server/vault/local_backend.h"
#include "server/vault/version_floor.h"

namespace vigo::server {

absl::StatusOr<std::unique_ptr<SecretBackend>> OpenBackend(const ServerConfig& config) {
  if (config.secrets_backend == "local") {
    // The rollback guard: the highest committed version per path, kept in
    // the database next to the audit chain (server/vault/version_floor.h).
    VIGO_ASSIGN_OR_RETURN(std::shared_ptr<vault::VersionFloor> floor,
                          vault::VersionFloor::Open(config.DatabasePath()));
    VIGO_ASSIGN_OR_RETURN(std::unique_ptr<LocalBackend> local,
                          LocalBackend::Open(config.SecretsDir(), std::move(floor)));
    VIGO_RETURN_IF_ERROR(local->CheckHealth());
    return std::unique_ptr<SecretBackend>(std::move(local));
  }
  if (config.secrets_backend == "isopass") {
    VIGO_ASSIGN_OR_RETURN(std::unique_ptr<SecretBackend> backend, OpenIsopassBackend(config));
    VIGO_RETURN_IF_ERROR(backend->CheckHealth());
    return backend;
  }
  return absl::InvalidArgumentError(
      StrCat((config.root / "server.yaml").string(), ": secrets.backend '",
             config.secrets_backend, "' is not one of: local, isopass"));
}

}  // namespace vigo::server
