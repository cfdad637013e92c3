// AdminListener: the admin socket checks SO_PEERCRED on every connection and
// hands only allowed peers to gRPC (AddInsecureChannelFromFd on a server with
// no listening port), refusing the rest with a logged warning.
#include "server/service/admin_listener.h"

#include <fcntl.h>
#include <grp.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/server_posix.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "common/log.h"
#include "common/strings.h"
#include "gtest/gtest.h"
#include "sandbox/child_process.h"
#include "tests/support/test_env.h"
#include "vigo/v1/admin.grpc.pb.h"

namespace vigo::server::service {
namespace {

namespace fs = std::filesystem;
using vigo::testing::ReadFileOrEmpty;
using vigo::testing::TempDir;
using vigo::testing::TestBinPath;

constexpr uint64_t kEpoch = 42;

class CountingAdmin final : public v1::VigoAdmin::Service {
 public:
  grpc::Status Status(grpc::ServerContext*, const v1::StatusRequest*,
                      v1::StatusResponse* resp) override {
    calls.fetch_add(1);
    resp->set_secrets_epoch(kEpoch);
    return grpc::Status::OK;
  }
  std::atomic<int> calls{0};
};

// A gRPC admin server with no listening port, fed by an AdminListener.
class AdminListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    log_ = tmp_.path() / "server.log";
    ASSERT_TRUE(SetLogFile(log_.string()).ok());
    sock_ = tmp_.path() / "admin.sock";
    grpc::ServerBuilder b;
    b.RegisterService(&service_);
    server_ = b.BuildAndStart();
    ASSERT_NE(server_, nullptr);
  }
  void TearDown() override {
    if (listener_) listener_->Stop();
    if (server_) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
    (void)SetLogFile("");
  }

  absl::Status StartListener(std::vector<uid_t> allowed) {
    AdminListenerOptions o;
    o.socket_path = sock_;
    o.allowed_uids = std::move(allowed);
    grpc::Server* srv = server_.get();
    auto l = AdminListener::Start(
        o, [srv](sandbox::UniqueFd fd) { grpc::AddInsecureChannelFromFd(srv, fd.release()); });
    if (!l.ok()) return l.status();
    listener_ = std::move(*l);
    return absl::OkStatus();
  }

  grpc::Status CallStatus(uint64_t* epoch = nullptr) {
    auto stub = v1::VigoAdmin::NewStub(
        grpc::CreateChannel(StrCat("unix:", sock_.string()), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::StatusRequest req;
    v1::StatusResponse resp;
    grpc::Status s = stub->Status(&ctx, req, &resp);
    if (epoch != nullptr) *epoch = resp.secrets_epoch();
    return s;
  }

  // Waits for the listener's refusal counter (the refusal is logged on the
  // accept thread, possibly after the client already saw the failure).
  void WaitForRefusals(uint64_t n) {
    for (int i = 0; i < 200 && listener_->refused() < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  TempDir tmp_;
  fs::path log_;
  fs::path sock_;
  CountingAdmin service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<AdminListener> listener_;
};

TEST_F(AdminListenerTest, SameUidRpcIsServedAndTheSocketIsPrivate) {
  ASSERT_TRUE(StartListener(DefaultAdminPeerUids()).ok());
  struct stat st {};
  ASSERT_EQ(::lstat(sock_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  uint64_t epoch = 0;
  grpc::Status s = CallStatus(&epoch);
  ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  EXPECT_EQ(epoch, kEpoch);
  EXPECT_EQ(service_.calls.load(), 1);
  EXPECT_GE(listener_->accepted(), 1u);
  EXPECT_EQ(listener_->refused(), 0u);
  // A second call (new channel, new connection) works too.
  ASSERT_TRUE(CallStatus().ok());
  EXPECT_EQ(service_.calls.load(), 2);
}

TEST(AdminPeerUidsTest, RootAndOurOwnEuid) {
  auto uids = DefaultAdminPeerUids();
  EXPECT_NE(std::find(uids.begin(), uids.end(), 0u), uids.end());
  EXPECT_NE(std::find(uids.begin(), uids.end(), ::geteuid()), uids.end());
  EXPECT_LE(uids.size(), 2u);
}

// The uid check itself, without needing another user: a listener that allows
// only some other uid refuses us, whatever the file modes allow.
TEST_F(AdminListenerTest, PeerWhoseUidIsNotAllowedIsRefusedAndLogged) {
  const uid_t other = ::geteuid() + 4242;
  ASSERT_TRUE(StartListener({other}).ok());
  grpc::Status s = CallStatus();
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_EQ(service_.calls.load(), 0);
  WaitForRefusals(1);
  EXPECT_GE(listener_->refused(), 1u);
  EXPECT_EQ(listener_->accepted(), 0u);
  const std::string log = ReadFileOrEmpty(log_);
  EXPECT_NE(log.find("admin connection refused"), std::string::npos) << log;
  EXPECT_NE(log.find(StrCat("peer_uid=", ::geteuid())), std::string::npos) << log;
  EXPECT_NE(log.find(StrCat("peer_pid=", ::getpid())), std::string::npos) << log;
}

struct DropArgs {
  uid_t uid;
  gid_t gid;
};

// Runs between fork and exec: async-signal-safe syscalls only.
int DropToUser(void* arg) {
  const auto* a = static_cast<const DropArgs*>(arg);
  if (::setgroups(0, nullptr) != 0) return -1;
  if (::setresgid(a->gid, a->gid, a->gid) != 0) return -1;
  if (::setresuid(a->uid, a->uid, a->uid) != 0) return -1;
  return 0;
}

struct ProbeResult {
  int exit_code = -1;
  std::string out;
};

ProbeResult RunProbe(const fs::path& probe, const fs::path& sock, const fs::path& out_file,
                     DropArgs* drop) {
  ProbeResult r;
  sandbox::UniqueFd out(::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666));
  if (!out) return r;
  ::fchmod(out.get(), 0666);
  sandbox::SpawnOptions o;
  o.argv = {probe.string(), "--socket", sock.string()};
  o.env = {"PATH=/usr/bin:/bin"};
  o.fd_map = {{1, out.get()}, {2, out.get()}};
  if (drop != nullptr) {
    o.pre_exec = DropToUser;
    o.pre_exec_arg = drop;
  }
  auto child = sandbox::ChildProcess::Spawn(o);
  if (!child.ok()) {
    r.out = std::string(child.status().message());
    return r;
  }
  auto done = child->WaitFor(std::chrono::seconds(20));
  if (done.ok() && done->exited) r.exit_code = done->exit_code;
  r.out = ReadFileOrEmpty(out_file);
  return r;
}

// Another uid (nobody) connecting to a socket the file modes would let it
// reach: refused by the peer check, the RPC fails, the refusal is logged with
// the peer's uid. Needs root (to make a process of another uid).
TEST_F(AdminListenerTest, OtherUidIsRefusedEvenWhenFileModesWouldAllowIt) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a client as uid 65534";
  ASSERT_TRUE(StartListener(DefaultAdminPeerUids()).ok());
  // Test only: open the directory and the socket to everyone, so that the
  // peer check is the only wall left. The probe binary is copied here so
  // that uid 65534 can execute it whatever the build tree's modes are.
  ASSERT_EQ(::chmod(tmp_.path().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(sock_.c_str(), 0666), 0);
  const fs::path probe = tmp_.path() / "admin_probe";
  fs::copy_file(TestBinPath("admin_probe"), probe);
  ASSERT_EQ(::chmod(probe.c_str(), 0755), 0);

  // Control: the same probe as root is served.
  ProbeResult ok = RunProbe(probe, sock_, tmp_.path() / "probe-root.out", nullptr);
  ASSERT_EQ(ok.exit_code, 0) << ok.out;
  EXPECT_NE(ok.out.find(StrCat("epoch=", kEpoch)), std::string::npos) << ok.out;
  EXPECT_EQ(service_.calls.load(), 1);

  DropArgs nobody{65534, 65534};
  ProbeResult refused = RunProbe(probe, sock_, tmp_.path() / "probe-nobody.out", &nobody);
  EXPECT_EQ(refused.exit_code, 1) << refused.out;
  EXPECT_NE(refused.out.find(StrCat("status=", static_cast<int>(grpc::StatusCode::UNAVAILABLE))),
            std::string::npos)
      << refused.out;
  EXPECT_EQ(service_.calls.load(), 1);  // the service never saw the call
  WaitForRefusals(1);
  EXPECT_GE(listener_->refused(), 1u);
  const std::string log = ReadFileOrEmpty(log_);
  EXPECT_NE(log.find("admin connection refused: peer uid not allowed"), std::string::npos) << log;
  EXPECT_NE(log.find("peer_uid=65534"), std::string::npos) << log;
  EXPECT_NE(log.find("peer_gid=65534"), std::string::npos) << log;
}

TEST_F(AdminListenerTest, StopIsPromptRemovesTheSocketAndIsIdempotent) {
  ASSERT_TRUE(StartListener(DefaultAdminPeerUids()).ok());
  ASSERT_TRUE(CallStatus().ok());
  auto t0 = std::chrono::steady_clock::now();
  listener_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
  EXPECT_FALSE(fs::exists(fs::symlink_status(sock_)));
  listener_->Stop();
  grpc::Status s = CallStatus();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(service_.calls.load(), 1);
}

TEST_F(AdminListenerTest, StaleSocketIsReplacedOtherFilesAreLeftAlone) {
  // A regular file at the path: refused, untouched.
  vigo::testing::WriteFileOrDie(sock_, "operator data", 0600);
  absl::Status st = StartListener(DefaultAdminPeerUids());
  EXPECT_EQ(st.code(), absl::StatusCode::kAlreadyExists) << st;
  EXPECT_NE(std::string(st.message()).find(sock_.string()), std::string::npos) << st;
  EXPECT_EQ(ReadFileOrEmpty(sock_), "operator data");
  fs::remove(sock_);

  // A socket left by a dead server: replaced.
  {
    sandbox::UniqueFd stale(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    struct sockaddr_un addr {};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, sock_.c_str(), sizeof(addr.sun_path) - 1);
    ASSERT_EQ(::bind(stale.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr)), 0);
  }
  ASSERT_TRUE(StartListener(DefaultAdminPeerUids()).ok());
  EXPECT_TRUE(CallStatus().ok());
}

TEST_F(AdminListenerTest, StopLeavesANewerListenersSocketInPlace) {
  ASSERT_TRUE(StartListener(DefaultAdminPeerUids()).ok());
  std::unique_ptr<AdminListener> first = std::move(listener_);
  // Another server takes the path over (it replaces the socket file).
  ASSERT_TRUE(StartListener(DefaultAdminPeerUids()).ok());
  first->Stop();
  EXPECT_TRUE(fs::exists(fs::symlink_status(sock_)));
  EXPECT_TRUE(CallStatus().ok());
}

TEST(AdminListenerPathTest, TooLongPathIsRefusedByName) {
  AdminListenerOptions o;
  o.socket_path = fs::path("/tmp") / std::string(200, 'a');
  auto l = AdminListener::Start(o, [](sandbox::UniqueFd) {});
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace vigo::server::service
