#include "server/admin_client.h"

#include <grpcpp/grpcpp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>

#include "common/strings.h"
#include "vigo/v1/admin.grpc.pb.h"

namespace vigo::server {

ReloadNotice NotifyReload(const std::filesystem::path& admin_socket, const std::string& reason) {
  ReloadNotice out;
  struct stat st {};
  if (::stat(admin_socket.c_str(), &st) != 0 || !S_ISSOCK(st.st_mode)) {
    out.status = ReloadNotice::kNoServer;
    out.message = StrCat("no server is listening on ", admin_socket.string());
    return out;
  }
  if (::access(admin_socket.c_str(), R_OK | W_OK) != 0) {
    out.status = ReloadNotice::kFailed;
    out.message = StrCat(admin_socket.string(),
                         ": permission denied (the admin socket is for the server's user, root)");
    return out;
  }
  auto channel =
      grpc::CreateChannel(StrCat("unix:", admin_socket.string()), grpc::InsecureChannelCredentials());
  auto stub = v1::VigoAdmin::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ReloadRequest req;
  req.set_reason(reason);
  v1::ReloadResponse resp;
  grpc::Status s = stub->Reload(&ctx, req, &resp);
  if (!s.ok()) {
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
      out.status = ReloadNotice::kNoServer;
      out.message = StrCat("no server is listening on ", admin_socket.string());
    } else {
      out.status = ReloadNotice::kFailed;
      out.message = StrCat("admin call failed: ", s.error_message());
    }
    return out;
  }
  out.secrets_epoch = resp.secrets_epoch();
  if (!resp.ok()) {
    out.status = ReloadNotice::kFailed;
    out.message = resp.error();
    return out;
  }
  out.status = ReloadNotice::kReloaded;
  return out;
}

}  // namespace vigo::server
