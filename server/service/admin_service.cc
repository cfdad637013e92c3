#include "server/service/admin_service.h"

#include <string>

#include "server/service/vigo_server.h"

namespace vigo::server::service {

grpc::Status AdminService::Reload(grpc::ServerContext*, const v1::ReloadRequest* req,
                                  v1::ReloadResponse* resp) {
  std::string reason = req->reason().empty() ? "admin" : req->reason().substr(0, kMaxReasonBytes);
  auto epoch = server_->Reload(reason);
  if (epoch.ok()) {
    resp->set_ok(true);
    resp->set_secrets_epoch(*epoch);
  } else {
    resp->set_ok(false);
    resp->set_secrets_epoch(server_->epoch());
    resp->set_error(std::string(epoch.status().message()));
  }
  return grpc::Status::OK;
}

grpc::Status AdminService::Status(grpc::ServerContext*, const v1::StatusRequest*,
                                  v1::StatusResponse* resp) {
  auto state = server_->state();
  resp->set_secrets_epoch(state->epoch);
  resp->set_policy_version(state->stacks ? state->stacks->policy_version() : 0);
  resp->set_backend(std::string(server_->backend().Name()));
  resp->set_started_unix_ms(server_->started_unix_ms());
  return grpc::Status::OK;
}

}  // namespace vigo::server::service
