// Issue 13.1: an exec whose output is not UTF-8 (binary bytes, Latin-1 text,
// a truncated sequence) used to make the worker's report unparsable: the
// broker ended itself with a protocol violation, no run reached the server
// and the agent exited 1 after every run. Real `vigo run --once` +
// `vigo-worker` against a real server: the run is stored with the output
// escaped (\xHH), a secret printed next to those bytes is still redacted,
// and the agent exits 0.
#include <fcntl.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "common/utf8_text.h"
#include "gtest/gtest.h"
#include "sandbox/child_process.h"
#include "tests/integration/server_fixture.h"

namespace vigo::testing {
namespace {

namespace fs = std::filesystem;

// Holds bytes that are not UTF-8 itself: the scrubber must find it raw.
const std::string kBinCanary =
    "K9\xff\xfe"
    "BINCANARY-4d21\xe9";

ServerFixtureOptions Options() {
  ServerFixtureOptions o;
  o.secrets = {{"app/bin", kBinCanary}};
  o.stacks = {
      {"envoys.vgo", "envoys:\n  - match: \"web-1\"\n    environment: prod\n    roles: [app]\n"},
      {"roles.vgo", "roles:\n  app:\n    configcrates: [app]\n"},
      {"environments.vgo", "env:\n  prod: {}\n"},
      // printf's octal escapes: ff fe, Latin-1 "café", the first two bytes
      // of the three-byte euro sign; then the secret from stdin, raw.
      {"configcrates/app.vgo",
       "configcrate: app\n"
       "resources:\n"
       "  - name: bytes\n"
       "    type: exec\n"
       "    command: [\"/bin/sh\", \"-c\", \"printf '\\\\377\\\\376 caf\\\\351 \\\\342\\\\202 <'; "
       "cat; printf '>'\"]\n"
       "    stdin: \"secret:app/bin\"\n"},
  };
  o.server_options.enable_watcher = false;
  return o;
}

TEST(AgentOutputBytesTest, NonUtf8ExecOutputReachesTheServerEscapedAndTheAgentExitsZero) {
  ServerFixture fx(Options());
  ASSERT_TRUE(fx.ok()) << fx.error();
  EnvoyCreds creds = fx.IssueEnvoy("web-1");
  ASSERT_TRUE(fx.ok()) << fx.error();
  AgentDirs dirs;
  const fs::path& state = dirs.state;
  RunResult r = vigo::testing::Run(AgentArgv("once", fx.target(), creds, dirs));
  EXPECT_EQ(r.exit_code, 0) << r.err.substr(r.err.size() > 4000 ? r.err.size() - 4000 : 0);
  EXPECT_EQ(r.err.find("protocol violation"), std::string::npos);

  // The run reached the server, with the bytes spelled out.
  auto runs = fx.store().ListRuns("web-1", 10);
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 1u);
  auto run = fx.store().GetRun((*runs)[0].id);
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->outcome, "changed");
  ASSERT_EQ(run->results.size(), 1u);
  const std::string& message = run->results[0].message;
  EXPECT_EQ(run->results[0].status, "changed") << message;
  EXPECT_NE(message.find("output: \\xff\\xfe caf\\xe9 \\xe2\\x82 <[REDACTED]>"), std::string::npos)
      << message;
  // Neither the raw value nor its escaped spelling left the agent.
  EXPECT_EQ(message.find("BINCANARY"), std::string::npos) << message;
  EXPECT_FALSE(run->redacted) << "the worker's scrubber, not the server's scan, must catch it";

  // last_run.json holds the same escaped text (JSON-escaped once more).
  const std::string last = ReadFileOrEmpty(state / "last_run.json");
  EXPECT_NE(last.find("caf\\\\xe9"), std::string::npos) << last;
  EXPECT_EQ(FindCanariesIn(r.err + r.out + last, "agent output", {"BINCANARY"}),
            std::vector<std::string>{});
}

// `vigo daemon` used to exit 1 after every such run (a crash loop the
// server never heard of): it reports the run and keeps running.
TEST(AgentOutputBytesTest, DaemonReportsTheRunAndKeepsRunning) {
  ServerFixture fx(Options());
  ASSERT_TRUE(fx.ok()) << fx.error();
  EnvoyCreds creds = fx.IssueEnvoy("web-1");
  ASSERT_TRUE(fx.ok()) << fx.error();
  AgentDirs dirs;
  const fs::path log = dirs.work.path() / "daemon.log";
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(log_fd, 0);
  sandbox::SpawnOptions so;
  so.argv = AgentArgv("daemon", fx.target(), creds, dirs);
  so.fd_map = {{2, log_fd}};
  auto daemon = sandbox::ChildProcess::Spawn(so);
  ::close(log_fd);
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  size_t runs = 0;
  for (int i = 0; i < 300 && runs == 0; ++i) {
    auto listed = fx.store().ListRuns("web-1", 10);
    ASSERT_TRUE(listed.ok()) << listed.status();
    runs = listed->size();
    if (runs == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_EQ(runs, 1u) << ReadFileOrEmpty(log);
  // Still running after the run (before the fix it had already exited 1);
  // WaitFor kills and reaps it when it times out.
  auto still = daemon->WaitFor(std::chrono::seconds(2));
  ASSERT_TRUE(still.ok()) << still.status();
  EXPECT_TRUE(still->timed_out) << "daemon exited: " << ReadFileOrEmpty(log);
  EXPECT_EQ(ReadFileOrEmpty(log).find("protocol violation"), std::string::npos);
}

// The broker → server direction: a client that sends such bytes in a proto3
// `string` field anyway gets that one call refused by gRPC's parser; the
// server stays up and stores the next, valid report (the escaped text).
TEST(AgentOutputBytesTest, ServerSurvivesAReportWithNonUtf8TextAndStoresTheEscapedOne) {
  ServerFixture fx(Options());
  ASSERT_TRUE(fx.ok()) << fx.error();
  auto stub = fx.Stub(fx.IssueEnvoy("web-1"));
  auto report = [&](const std::string& run_id, const std::string& message) {
    grpc::ClientContext ctx;
    v1::ReportResultRequest req;
    req.set_run_id(run_id);
    req.set_outcome("changed");
    v1::ResourceResult* r = req.add_results();
    r->set_name("bytes");
    r->set_type("exec");
    r->set_status("changed");
    r->set_action("updated");
    r->set_message(message);
    v1::ReportResultResponse resp;
    return stub->ReportResult(&ctx, req, &resp);
  };
  grpc::Status raw = report("run-raw-bytes-1", "output: caf\xe9");
  EXPECT_FALSE(raw.ok());
  grpc::Status escaped = report("run-escaped-1", "output: " + EscapeInvalidUtf8("caf\xe9"));
  ASSERT_TRUE(escaped.ok()) << escaped.error_message();
  auto run = fx.store().GetRun("run-escaped-1");
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_EQ(run->results.size(), 1u);
  EXPECT_EQ(run->results[0].message, "output: caf\\xe9");
}

}  // namespace
}  // namespace vigo::testing
