// Issue 15's hostile execs through the real agent (vigo broker, locked-down
// vigo-worker, exec under its seccomp layer) and the real server: a command
// that prints line 2 of a PEM EC private key (the line holding the private
// scalar), a 40-byte middle slice (raw and hex), or the first 40 and last 30
// bytes of a 1 MiB `secret_file` value. Before issue 15 each of these landed
// in the agent's log, last_run.json and the server's run_results in
// plaintext, with no leak flag. Now: no sink holds the slice or any 12-byte
// window of it (agent log at trace and stdout, last_run.json, bundle.json,
// `vigocli runs show --json`, the SQLite file and its -wal while the server
// runs and after, the server log at trace, `vigocli audit list --json`); the
// worker's redaction count says the command printed secret material; the
// unrelated text around it and a 7-byte fragment are stored verbatim.
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/e2e_fixture.h"
#include "tests/integration/slice_exec_fixture.h"
#include "tests/support/encodings.h"
#include "tests/support/window_scan.h"

namespace vigo::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// An EC P-256 private key as `openssl ec` prints it (base64 made up).
const std::string kPemLine2 = "MHcCAQEEIBv0s3kWq9Lr7XcN2yPz8fHj6Td4Qm1aUo5VgKe0RbYioAoGCCqGSM49";
const std::string kPem = "-----BEGIN EC PRIVATE KEY-----\n" + kPemLine2 +
                         "\nAwEHoUQDQgAE4n8ZrW2kTq7VdLh3Jx9mC5pBsYe1Nf0GuAa6Hc2OkT3mLq8XwZvR\n"
                         "yP4sD7fJ2hN9cV1bQe6uKo0iMtA5gHxW3lEjYcRtUw==\n"
                         "-----END EC PRIVATE KEY-----\n";

SlicePrint Print(std::string name, std::string path, SliceEnc e, size_t off, size_t len,
                 bool secret_file) {
  SlicePrint p;
  p.name = std::move(name);
  p.path = std::move(path);
  p.enc = e;
  p.off = off;
  p.len = len;
  p.secret_file = secret_file;
  return p;
}

class AgentSlicesTest : public ::testing::Test {
 protected:
  // Stores `values`, runs one agent whose bundle is `prints`, and collects
  // every sink's bytes.
  void RunHostile(const std::map<std::string, std::string>& values,
                  const std::vector<SlicePrint>& prints) {
    ASSERT_TRUE(fleet_.Init()) << fleet_.last_error();
    for (const auto& [path, v] : values) {
      ASSERT_TRUE(fleet_.SetSecret(path, v)) << fleet_.last_error();
      set_.AddValue(v);
    }
    set_.Build();
    std::string crate = "configcrate: hostile\nresources:\n";
    for (const SlicePrint& p : prints) crate += SliceExecYaml(p);
    fleet_.WriteStacks({{"envoys.vgo", "envoys:\n  - match: web-1\n    configcrates: [hostile]\n"},
                        {"configcrates/hostile.vgo", crate}});
    ASSERT_TRUE(fleet_.StartServer()) << fleet_.last_error();
    ASSERT_TRUE(fleet_.IssueEnvoy("web-1")) << fleet_.last_error();
    fs::create_directories(fleet_.ApplyRoot("web-1") / "tmp");
    RunResult r = fleet_.RunAgent("web-1");
    ASSERT_EQ(r.exit_code, 0) << r.err;
    sinks_["agent stdout"] = r.out;

    std::string runs_json;
    std::vector<std::string> ids = StoredRunIds(fleet_, "web-1", &runs_json);
    ASSERT_EQ(ids.size(), 1u) << runs_json;
    stored_ = StoredResults(fleet_, ids[0], &runs_json);
    sinks_["vigocli runs list/show --json"] = runs_json;
    sinks_["vigocli audit list --json"] = fleet_.Cli({"audit", "list", "--json"}).out;
    leak_audits_ = fleet_.CountAudit("secret.leak.detected");
    // The database and its write-ahead log as they are while the server runs.
    bool wal = false;
    for (const auto& f : fs::recursive_directory_iterator(fleet_.root() / "db")) {
      if (!f.is_regular_file()) continue;
      sinks_["running " + f.path().filename().string()] = ReadFileOrEmpty(f.path());
      wal |= f.path().filename().string().ends_with("-wal") && f.file_size() > 0;
    }
    EXPECT_TRUE(wal) << "no write-ahead log to scan";
    fleet_.StopServer();
    for (const auto& f : fs::recursive_directory_iterator(fleet_.root() / "db")) {
      if (f.is_regular_file())
        sinks_["stopped " + f.path().filename().string()] = ReadFileOrEmpty(f.path());
    }
    sinks_["agent log (trace)"] = ReadFileOrEmpty(fleet_.AgentLog("web-1"));
    sinks_["server log (trace)"] = ReadFileOrEmpty(fleet_.ServerLog());
    for (const char* f : {"last_run.json", "bundle.json", "attestation.json"})
      sinks_[f] = ReadFileOrEmpty(fleet_.StateDir("web-1") / f);
    last_run_redactions_ = LastRunRedactions(fleet_.StateDir("web-1"));
  }

  // No sink holds any of `pieces` (named), nor any 12-byte window of any
  // form of any value (tests/support/window_scan.h).
  void ExpectInNoSink(const std::map<std::string, std::string>& pieces) {
    ASSERT_FALSE(sinks_["agent log (trace)"].empty());
    ASSERT_FALSE(sinks_["server log (trace)"].empty());
    for (const auto& [sink, bytes] : sinks_) {
      for (const auto& [what, piece] : pieces) {
        EXPECT_EQ(bytes.find(piece), std::string::npos) << sink << " holds " << what;
      }
      EXPECT_THAT(windows::FindWindowsIn(bytes, sink, set_), IsEmpty());
    }
  }

  // The print ran, was counted as redacted by the worker (stored and in
  // last_run.json), and its unrelated text and fragments stayed.
  void ExpectRedactedAndControlsKept(const SlicePrint& p, const std::string& v) {
    SCOPED_TRACE(p.name);
    ASSERT_EQ(stored_.count(p.name), 1u);
    const StoredResult& s = stored_[p.name];
    EXPECT_THAT(s.message, HasSubstr("ran (exit 0)"));
    EXPECT_THAT(s.message, HasSubstr("[REDACTED]"));
    EXPECT_GE(s.redactions, 1);
    EXPECT_GE(last_run_redactions_[p.name], 1);
    EXPECT_THAT(s.message, HasSubstr(p.Begin()));
    EXPECT_THAT(s.message, HasSubstr(p.End()));
    if (p.ctl) {
      EXPECT_THAT(s.message, HasSubstr(p.Ctl(v)));
    }
    if (p.hex) {
      EXPECT_THAT(s.message, HasSubstr(p.Hex(v)));
    }
  }

  E2eFleet fleet_;
  windows::WindowSet set_;
  std::map<std::string, std::string> sinks_;
  std::map<std::string, StoredResult> stored_;
  std::map<std::string, int64_t> last_run_redactions_;
  int leak_audits_ = 0;
};

TEST_F(AgentSlicesTest, ExecPrintingLineTwoOfAPemKeyOrAMiddleSliceLeavesItInNoSink) {
  const size_t line2 = kPem.find('\n') + 1;
  const size_t line4 = kPem.find('\n', line2 + kPemLine2.size() + 1) + 1;
  const size_t mid = (kPem.size() - 40) / 2;
  ASSERT_EQ(kPem.substr(line2, kPemLine2.size()), kPemLine2);
  std::vector<SlicePrint> prints = {
      Print("line2-file", "tls/ec-key", SliceEnc::kLine, line2, kPemLine2.size(), true),
      Print("line2-stdin", "tls/ec-key", SliceEnc::kRaw, line2, kPemLine2.size(), false),
      Print("middle40-raw", "tls/ec-key", SliceEnc::kRaw, mid, 40, false),
      Print("middle40-hex", "tls/ec-key", SliceEnc::kHex, mid, 40, true)};
  prints[0].line_no = 2;
  prints[0].ctl = prints[1].ctl = prints[3].ctl = line4 + 3;
  prints[0].hex = line4 + 20;
  prints[2].ctl = 5;
  prints[2].hex = kPem.size() - 10;
  RunHostile({{"tls/ec-key", kPem}}, prints);
  if (HasFatalFailure()) return;
  const std::string slice = kPem.substr(mid, 40);
  ExpectInNoSink({{"line 2", kPemLine2},
                  {"12 bytes of line 2", kPemLine2.substr(20, 12)},
                  {"the middle 40 bytes", slice},
                  {"12 bytes of the middle slice", slice.substr(14, 12)},
                  {"the middle slice in hex", enc::Hex(slice)},
                  {"12 hex digits of the middle slice", enc::Hex(slice).substr(30, 12)}});
  for (const SlicePrint& p : prints) ExpectRedactedAndControlsKept(p, kPem);
  // The worker scrubbed it all: nothing reached the server for its scan.
  EXPECT_EQ(leak_audits_, 0);
}

TEST_F(AgentSlicesTest, ExecPrintingTheHeadAndTailOfAMebibyteSecretFileLeavesThemInNoSink) {
  std::mt19937_64 rng(15);
  std::string big(size_t{1} << 20, '\0');
  for (char& c : big) c = static_cast<char>(rng() & 0xff);
  std::vector<SlicePrint> prints = {
      Print("head40", "blob/big", SliceEnc::kRaw, 0, 40, true),
      Print("tail30", "blob/big", SliceEnc::kRaw, big.size() - 30, 30, true),
      Print("middle40", "blob/big", SliceEnc::kRaw, big.size() / 2 - 20, 40, true)};
  for (SlicePrint& p : prints) p.hex = 4096;
  RunHostile({{"blob/big", big}}, prints);
  if (HasFatalFailure()) return;
  const std::string head = big.substr(0, 40), tail = big.substr(big.size() - 30),
                    mid = big.substr(big.size() / 2 - 20, 40);
  ExpectInNoSink({{"the first 40 bytes", head},
                  {"12 of the first 40 bytes", head.substr(28, 12)},
                  {"the last 30 bytes", tail},
                  {"12 of the last 30 bytes", tail.substr(0, 12)},
                  {"the middle 40 bytes", mid},
                  {"12 of the middle 40 bytes", mid.substr(10, 12)}});
  for (const SlicePrint& p : prints) ExpectRedactedAndControlsKept(p, big);
  EXPECT_EQ(leak_audits_, 0);
}

}  // namespace
}  // namespace vigo::testing
