// VigoAdmin: the operator's service on <root>/run/admin.sock (AdminListener
// checks each peer's uid; this class only answers). Reload and Status.
//
//   AdminService admin(&server);   // registered on the admin gRPC server
//
// Thread safety: as VigoServer.
#ifndef VIGO_SERVER_SERVICE_ADMIN_SERVICE_H_
#define VIGO_SERVER_SERVICE_ADMIN_SERVICE_H_

#include <cstddef>

#include "vigo/v1/admin.grpc.pb.h"

namespace vigo::server::service {

class VigoServer;

class AdminService final : public v1::VigoAdmin::Service {
 public:
  // The reason an operator gives is recorded (log, audit) cut to this many bytes.
  static constexpr size_t kMaxReasonBytes = 64;

  explicit AdminService(VigoServer* server) : server_(server) {}

  grpc::Status Reload(grpc::ServerContext*, const v1::ReloadRequest* req,
                      v1::ReloadResponse* resp) override;
  grpc::Status Status(grpc::ServerContext*, const v1::StatusRequest*,
                      v1::StatusResponse* resp) override;

 private:
  VigoServer* server_;
};

}  // namespace vigo::server::service

#endif  // VIGO_SERVER_SERVICE_ADMIN_SERVICE_H_
