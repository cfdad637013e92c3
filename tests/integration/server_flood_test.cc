// A flood of idle TCP connections must not switch the agent port off
// (issue 13.2): a real vigosrv started with a soft RLIMIT_NOFILE of 1024 gets
// 2,000 connections on 127.0.0.1 that send nothing for 10 s; it must still be
// running, and a real agent must converge within 5 s afterwards. On gRPC
// 1.51's own listener, the first accept4 EMFILE ends accepting for good.
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "sandbox/unique_fd.h"
#include "tests/integration/e2e_fixture.h"

namespace vigo::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr char kCanary[] = "FLOODCANARY-7c1e0b94a25d4f3e";
constexpr int kFlood = 2000;

TEST(ServerFloodTest, TwoThousandIdleConnectionsLeaveTheAgentPortServing) {
  // This process holds the 2,000 client ends: raise our own soft limit.
  struct rlimit self {};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &self), 0);
  ASSERT_GE(self.rlim_max, static_cast<rlim_t>(kFlood + 200))
      << "the hard RLIMIT_NOFILE is too low to run the flood";
  if (self.rlim_cur < self.rlim_max) {
    rlimit raised = self;
    raised.rlim_cur = raised.rlim_max;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &raised), 0);
  }

  E2eFleet fleet;
  ASSERT_TRUE(fleet.Init()) << fleet.last_error();
  ASSERT_TRUE(fleet.SetSecret("app/db", kCanary)) << fleet.last_error();
  fleet.WriteStacks({{"envoys.vgo", "envoys:\n  - match: \"web-*\"\n    configcrates: [app]\n"},
                     {"configcrates/app.vgo",
                      "configcrate: app\n"
                      "resources:\n"
                      "  - name: app-config\n"
                      "    type: file\n"
                      "    target_path: /app.conf\n"
                      "    mode: \"0640\"\n"
                      "    content: \"password=secret:app/db\\n\"\n"}});
  fleet.SetServerSoftNofile(1024);
  ASSERT_TRUE(fleet.StartServer()) << fleet.last_error();
  ASSERT_TRUE(fleet.IssueEnvoy("web-1")) << fleet.last_error();

  struct sockaddr_in addr {};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(fleet.port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::vector<sandbox::UniqueFd> flood;
  flood.reserve(kFlood);
  for (int i = 0; i < kFlood; ++i) {
    // Non-blocking: once the server's backlog is full a blocking connect
    // would wait for SYN retries; the flood only has to be offered.
    sandbox::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    ASSERT_TRUE(fd) << std::strerror(errno);
    int r = ::connect(fd.get(), reinterpret_cast<struct sockaddr*>(&addr), sizeof(addr));
    ASSERT_TRUE(r == 0 || errno == EINPROGRESS) << std::strerror(errno);
    flood.push_back(std::move(fd));
  }
  std::this_thread::sleep_for(10s);
  int status = 0;
  ASSERT_EQ(::waitpid(fleet.server_pid(), &status, WNOHANG), 0)
      << "vigosrv exited during the flood: " << ReadFileOrEmpty(fleet.ServerLog());
  flood.clear();

  const auto started = std::chrono::steady_clock::now();
  // --retry-for bounds the agent itself; `timeout` bounds it if it hangs.
  std::vector<std::string> argv = {
      "/usr/bin/timeout", "20", BinPath("vigo").string(), "run", "--once", "--retry-for=5"};
  for (const auto& f : fleet.AgentFlags("web-1")) argv.push_back(f);
  RunResult r = vigo::testing::Run(argv);
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(r.exit_code, 0) << r.err << "\nserver log:\n" << ReadFileOrEmpty(fleet.ServerLog());
  EXPECT_LE(took, 5s) << "the agent took "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                      << " ms to converge after the flood";
  EXPECT_EQ(ReadFileOrEmpty(fleet.ApplyRoot("web-1") / "app.conf"),
            std::string("password=") + kCanary + "\n");
  // The limit was raised, and the gate (not EMFILE) turned the flood away.
  const std::string log = ReadFileOrEmpty(fleet.ServerLog());
  EXPECT_NE(log.find("raised the open-files limit"), std::string::npos) << log;
}

}  // namespace
}  // namespace vigo::testing
