// server.yaml's leak_scan.window (issue 15.1): the redaction window of the
// server's report scan and, through the bundle, of every worker's scrubber.
// Default 12; a whole number from 8 to 4096; anything else is an error that
// names the file, the line, the key and the bad text.
#include "server/server_config.h"

#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "tests/support/test_env.h"

namespace vigo::server {
namespace {

absl::StatusOr<ServerConfig> LoadWith(const testing::TempDir& root, const std::string& yaml) {
  std::ofstream(root.path() / "server.yaml") << yaml;
  return LoadServerConfig(root.path());
}

TEST(ServerConfigTest, LeakScanWindowDefaultsToTwelve) {
  testing::TempDir root;
  auto cfg = LoadWith(root, "log:\n  level: info\n");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->leak_scan_window, 12u);
}

TEST(ServerConfigTest, LeakScanWindowTakesAWholeNumberFromEightTo4096) {
  testing::TempDir root;
  for (const auto& [text, want] :
       std::vector<std::pair<std::string, size_t>>{{"8", 8}, {"16", 16}, {"4096", 4096}}) {
    auto cfg = LoadWith(root, "leak_scan:\n  window: " + text + "\n");
    ASSERT_TRUE(cfg.ok()) << text << ": " << cfg.status();
    EXPECT_EQ(cfg->leak_scan_window, want);
  }
}

TEST(ServerConfigTest, LeakScanWindowOutsideTheRangeOrNotANumberIsRefusedByName) {
  testing::TempDir root;
  for (const std::string text : {"7", "0", "4097", "-12", "12abc", "0x10", "1e2", "99999999999"}) {
    auto cfg = LoadWith(root, "server:\n  hostname: h\nleak_scan:\n  window: " + text + "\n");
    ASSERT_FALSE(cfg.ok()) << text;
    EXPECT_TRUE(absl::IsInvalidArgument(cfg.status())) << cfg.status();
    const std::string msg(cfg.status().message());
    EXPECT_NE(msg.find("server.yaml:4: 'leak_scan.window' is '" + text + "'"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find("from 8 to 4096"), std::string::npos) << msg;
  }
  auto cfg = LoadWith(root, "leak_scan:\n  size: 12\n");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("unknown key 'leak_scan.size'"), std::string::npos)
      << cfg.status();
}

}  // namespace
}  // namespace vigo::server
