// Positive path for the broker filter: a real gRPC client (threads, epoll,
// eventfd, TCP, HTTP/2) makes a call from inside a process that ran the real
// LockDownBroker. Without this, an allowlist that is too tight would only
// show up as a SIGSYS in production (OpenSSH's connect-privsep lesson).
#include <grpcpp/grpcpp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>

#include "gtest/gtest.h"
#include "sandbox/attestation.h"
#include "sandbox/lockdown.h"
#include "tests/sandbox/sandbox_test_util.h"
#include "vigo/v1/agent.grpc.pb.h"

namespace vigo::sandbox {
namespace {

using testing::ChildResult;
using testing::kExitBodyReturned;

// The child: lock down first (single-threaded, before gRPC exists in this
// process), then be a gRPC client. Exit codes say how far it got.
int LockedClient(int port_fd) {
  int port = 0;
  if (::read(port_fd, &port, sizeof(port)) != sizeof(port)) return 2;
  BrokerLockdownSpec spec;
  spec.keep_fds = {0, 1, 2};
  if (!LockDownBroker(spec).ok()) return 3;
  auto report = CollectAttestation();
  if (!report.ok() || !CheckStrict(*report).ok()) return 4;

  auto channel =
      grpc::CreateChannel("127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials());
  auto stub = vigo::v1::VigoAgent::NewStub(channel);
  for (int i = 0; i < 3; ++i) {  // several calls: connection reuse, timers
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    vigo::v1::CheckInRequest req;
    vigo::v1::CheckInResponse resp;
    grpc::Status st = stub->CheckIn(&ctx, req, &resp);
    // The test server implements nothing: UNIMPLEMENTED proves a full
    // round trip over HTTP/2.
    if (st.error_code() != grpc::StatusCode::UNIMPLEMENTED) return 10 + st.error_code();
  }
  return kExitBodyReturned;
}

TEST(BrokerGrpcTest, GrpcClientWorksUnderTheRealBrokerLockdown) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // Fork before this process starts any gRPC thread.
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[1]);
    ::dup2(fds[0], 0);  // the port arrives on stdin; lockdown keeps 0,1,2
    ::alarm(60);
    ::_exit(LockedClient(0));
  }
  ::close(fds[0]);

  vigo::v1::VigoAgent::Service service;  // every method UNIMPLEMENTED
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_TRUE(server != nullptr);
  ASSERT_GT(port, 0);
  ASSERT_EQ(::write(fds[1], &port, sizeof(port)), static_cast<ssize_t>(sizeof(port)));
  ::close(fds[1]);

  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  server->Shutdown();
  if (WIFSIGNALED(status)) {
    FAIL() << "locked-down gRPC client killed by " << strsignal(WTERMSIG(status))
           << " (SIGSYS: the broker table misses a syscall gRPC needs; `dmesg | grep "
              "type=1326` names it)";
  }
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), kExitBodyReturned)
      << "2: no port, 3: lockdown failed, 4: attestation not strict, 10+N: gRPC status N";
}

}  // namespace
}  // namespace vigo::sandbox
