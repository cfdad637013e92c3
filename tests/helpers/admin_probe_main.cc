// admin_probe: one VigoAdmin.Status call over a unix socket, for tests that
// need the call to come from another uid (the test forks, drops to that uid
// and execs this). Prints "status=<CODE>" (and "epoch=N" on success).
//
//   admin_probe --socket /srv/vigo/run/admin.sock
// Exit: 0 when the call succeeded, 1 otherwise, 2 on usage errors.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "vigo/v1/admin.grpc.pb.h"

int main(int argc, char** argv) {
  std::string socket;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--socket") socket = argv[i + 1];
  }
  if (socket.empty()) {
    std::fprintf(stderr, "usage: admin_probe --socket PATH\n");
    return 2;
  }
  auto channel = grpc::CreateChannel("unix:" + socket, grpc::InsecureChannelCredentials());
  auto stub = vigo::v1::VigoAdmin::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  vigo::v1::StatusRequest req;
  vigo::v1::StatusResponse resp;
  grpc::Status s = stub->Status(&ctx, req, &resp);
  std::printf("status=%d\n", static_cast<int>(s.error_code()));
  if (!s.ok()) {
    std::printf("message=%s\n", s.error_message().c_str());
    return 1;
  }
  std::printf("epoch=%llu\n", static_cast<unsigned long long>(resp.secrets_epoch()));
  return 0;
}
