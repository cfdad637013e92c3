// A port in use fails the start of a second vigosrv (gRPC's default
// SO_REUSEPORT would let it bind and take a share of the agents).
#include <string>

#include "gtest/gtest.h"
#include "tests/integration/e2e_fixture.h"

namespace vigo::testing {
namespace {

TEST(ServerPortTest, SecondServerOnAPortInUseFailsAtStart) {
  E2eFleet first;
  ASSERT_TRUE(first.Init()) << first.last_error();
  first.WriteStacks({{"envoys.vgo", "envoys: []\n"}});
  ASSERT_TRUE(first.StartServer()) << first.last_error();
  E2eFleet second;
  ASSERT_TRUE(second.Init()) << second.last_error();
  second.WriteStacks({{"envoys.vgo", "envoys: []\n"}});
  // `timeout`: on the old code the second server binds and serves forever.
  RunResult r = vigo::testing::Run({"/usr/bin/timeout", "20", BinPath("vigosrv").string(), "--root",
                     second.root().string(), "--grpc-listen",
                     "127.0.0.1:" + std::to_string(first.port())});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.exit_code, 124) << "the second server bound the port in use and kept serving";
  EXPECT_NE((r.err + r.out).find("cannot listen on 127.0.0.1:" + std::to_string(first.port())),
            std::string::npos)
      << r.err << r.out;
}

}  // namespace
}  // namespace vigo::testing
