// Client side of the local admin endpoint (<root>/run/admin.sock), used by
// vigocli to tell a running server to reload.
//
//   auto r = NotifyReload(cfg.AdminSocket(), "secrets set");
//   if (r.status == ReloadNotice::kNoServer) ... // a note, not an error
#ifndef VIGO_SERVER_ADMIN_CLIENT_H_
#define VIGO_SERVER_ADMIN_CLIENT_H_

#include <cstdint>
#include <filesystem>
#include <string>

namespace vigo::server {

struct ReloadNotice {
  enum Status { kReloaded, kNoServer, kFailed } status = kNoServer;
  uint64_t secrets_epoch = 0;   // after a successful reload
  std::string message;          // why it failed (file:line errors), never a value
};

// Calls VigoAdmin.Reload over the unix socket. kNoServer when the socket does
// not exist or nobody listens. Timeout 10 s.
ReloadNotice NotifyReload(const std::filesystem::path& admin_socket, const std::string& reason);

}  // namespace vigo::server

#endif  // VIGO_SERVER_ADMIN_CLIENT_H_
