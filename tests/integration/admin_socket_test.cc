// The real vigosrv's admin socket: served to its own uid (vigocli server
// reload, a raw VigoAdmin call), refused by the SO_PEERCRED check to any
// other uid even when the file modes are opened up, with the refusal in the
// server log; the socket is gone after a clean stop.
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gtest/gtest.h"
#include "tests/integration/server_fixture.h"

namespace vigo::testing {
namespace {

namespace fs = std::filesystem;

struct DropArgs {
  uid_t uid;
  gid_t gid;
};

// Between fork and exec: async-signal-safe syscalls only.
int DropToUser(void* arg) {
  const auto* a = static_cast<const DropArgs*>(arg);
  if (::setgroups(0, nullptr) != 0) return -1;
  if (::setresgid(a->gid, a->gid, a->gid) != 0) return -1;
  if (::setresuid(a->uid, a->uid, a->uid) != 0) return -1;
  return 0;
}

// admin_probe (a VigoAdmin.Status call) on `sock`, as `drop` when given.
RunResult Probe(const fs::path& probe, const fs::path& sock, const fs::path& out_file,
                DropArgs* drop) {
  RunResult r;
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
    r.err = std::string(child.status().message());
    return r;
  }
  auto done = child->WaitFor(std::chrono::seconds(30));
  if (done.ok() && done->exited) r.exit_code = done->exit_code;
  r.out = ReadAllFile(out_file);
  return r;
}

class AdminSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.path() / "root";
    RunResult r =
        ::vigo::testing::Run({BinPath("vigosrv").string(), "init", "--root", root_.string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    WriteFileOrDie(tmp_.path() / "pass", "a long test passphrase 123\n", 0600);
    r = Cli({"secrets", "init", "--passphrase-file", (tmp_.path() / "pass").string()});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  RunResult Cli(std::vector<std::string> args) {
    std::vector<std::string> argv = {BinPath("vigocli").string(), "--root", root_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return ::vigo::testing::Run(argv);
  }

  TempDir tmp_;
  fs::path root_;
};

TEST_F(AdminSocketTest, OwnUidIsServedOtherUidIsRefusedAndLogged) {
  auto srv = StartVigosrv(root_, tmp_.path() / "logs");
  ASSERT_TRUE(srv.ok()) << srv.status();
  const fs::path sock = root_ / "run" / "admin.sock";
  struct stat st {};
  ASSERT_EQ(::lstat(sock.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  // Same uid: the operator's reload works end to end.
  RunResult r = Cli({"server", "reload"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << ReadAllFile(srv->err_file);
  const size_t at = r.out.find("secrets_epoch ");
  ASSERT_NE(at, std::string::npos) << r.out;
  const std::string epoch =
      r.out.substr(at + 14, r.out.find_first_not_of("0123456789", at + 14) - at - 14);
  ASSERT_FALSE(epoch.empty()) << r.out;

  const fs::path probe = tmp_.path() / "admin_probe";
  fs::copy_file(TestBinPath("admin_probe"), probe);
  ASSERT_EQ(::chmod(probe.c_str(), 0755), 0);
  RunResult own = Probe(probe, sock, tmp_.path() / "probe-own.out", nullptr);
  ASSERT_EQ(own.exit_code, 0) << own.out << own.err;
  EXPECT_NE(own.out.find(StrCat("epoch=", epoch, "\n")), std::string::npos) << own.out;

  if (::geteuid() != 0) {
    GTEST_SKIP() << "the other-uid half needs root (to run a client as uid 65534)";
  }
  // Test only: open every directory on the way and the socket itself, so the
  // peer-credential check is the only wall left.
  for (const fs::path& d : {tmp_.path(), root_}) ASSERT_EQ(::chmod(d.c_str(), 0755), 0);
  ASSERT_EQ(::chmod((root_ / "run").c_str(), 0711), 0);
  ASSERT_EQ(::chmod(sock.c_str(), 0666), 0);
  DropArgs nobody{65534, 65534};
  RunResult other = Probe(probe, sock, tmp_.path() / "probe-nobody.out", &nobody);
  EXPECT_EQ(other.exit_code, 1) << other.out << other.err;
  EXPECT_NE(other.out.find(StrCat("status=", static_cast<int>(grpc::StatusCode::UNAVAILABLE))),
            std::string::npos)
      << other.out;
  std::string log;
  for (int i = 0; i < 100; ++i) {
    log = ReadAllFile(srv->err_file);
    if (log.find("peer_uid=65534") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(log.find("admin connection refused: peer uid not allowed"), std::string::npos) << log;
  EXPECT_NE(log.find("peer_uid=65534"), std::string::npos) << log;
  // The server still serves its own uid after refusing another.
  RunResult again = Probe(probe, sock, tmp_.path() / "probe-again.out", nullptr);
  EXPECT_EQ(again.exit_code, 0) << again.out;
  EXPECT_NE(again.out.find(StrCat("epoch=", epoch, "\n")), std::string::npos) << again.out;

  srv->child.Kill(SIGTERM);
  auto done = srv->child.WaitFor(std::chrono::seconds(10));
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(done->exited && done->exit_code == 0) << ReadAllFile(srv->err_file);
  EXPECT_FALSE(fs::exists(fs::symlink_status(sock)));
}

}  // namespace
}  // namespace vigo::testing
