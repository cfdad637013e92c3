// Memory properties of the running broker (`vigo daemon`), checked from the
// outside as root:
//  - After an apply, the canary value is not in any readable byte of the
//    broker's memory outside the locked arena (/proc/<pid>/mem, every
//    readable mapping). With memfd_secret backing the arena itself is
//    unreadable, so the canary must not be found at all.
//  - After an epoch change (rotation + reload + next check-in), the old value
//    is gone everywhere, arena included.
//  - Crashing the broker with SIGABRT while kernel.core_pattern points at a
//    temp dir produces no core file, while a control process in the same
//    setup does dump core (so the setup itself is proven to work).
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/e2e_fixture.h"

namespace vigo::testing {
namespace {

struct Region {
  uintptr_t start = 0, end = 0;
  std::string perms, name;
};

std::vector<Region> Maps(pid_t pid) {
  std::vector<Region> out;
  std::ifstream in("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(in, line)) {
    Region r;
    unsigned long s = 0, e = 0;
    char perms[8] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %7s", &s, &e, perms) != 3) continue;
    r.start = s;
    r.end = e;
    r.perms = perms;
    size_t slash = line.find('/');
    if (slash != std::string::npos) r.name = line.substr(slash);
    out.push_back(r);
  }
  return out;
}

struct ScanResult {
  int hits = 0;
  int unreadable_regions = 0;
  std::vector<std::string> where;
};

ScanResult ScanMemory(pid_t pid, const std::string& needle) {
  ScanResult res;
  int fd = ::open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    res.unreadable_regions = -1;
    return res;
  }
  for (const Region& r : Maps(pid)) {
    if (r.perms[0] != 'r') continue;
    std::string buf(r.end - r.start, '\0');
    ssize_t n = ::pread(fd, buf.data(), buf.size(), static_cast<off_t>(r.start));
    if (n <= 0) {
      ++res.unreadable_regions;
      continue;
    }
    buf.resize(static_cast<size_t>(n));
    for (size_t at = buf.find(needle); at != std::string::npos; at = buf.find(needle, at + 1)) {
      ++res.hits;
      char where[96];
      std::snprintf(where, sizeof(where), "%lx %s %s", static_cast<unsigned long>(r.start + at),
                    r.perms.c_str(), r.name.c_str());
      res.where.push_back(where);
    }
  }
  ::close(fd);
  return res;
}

std::string Status(pid_t pid) {
  return ReadFileOrEmpty("/proc/" + std::to_string(pid) + "/status");
}

class BrokerMemoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fleet_.Init()) << fleet_.last_error();
    ASSERT_TRUE(fleet_.SetSecret("mem/canary", kOld)) << fleet_.last_error();
    fleet_.WriteStacks({{"envoys.vgo", "envoys:\n  - match: \"mem-1\"\n    configcrates: [c]\n"},
                        {"configcrates/c.vgo",
                         "configcrate: c\nresources:\n  - name: f\n    type: file\n"
                         "    target_path: /out\n    content: \"v=secret:mem/canary\"\n"}});
    ASSERT_TRUE(fleet_.StartServer()) << fleet_.last_error();
    ASSERT_TRUE(fleet_.IssueEnvoy("mem-1")) << fleet_.last_error();
  }
  void TearDown() override {
    if (daemon_ > 0) {
      ::kill(daemon_, SIGKILL);
      ::waitpid(daemon_, nullptr, 0);
    }
  }

  void StartDaemon() {
    std::vector<std::string> args = {BinPath("vigo").string(), "daemon", "--interval", "10"};
    for (const auto& f : fleet_.AgentFlags("mem-1")) args.push_back(f);
    std::filesystem::path log = fleet_.AgentLog("mem-1");
    daemon_ = ::fork();
    if (daemon_ == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
      ::dup2(fd, 2);
      std::vector<char*> av;
      for (auto& a : args) av.push_back(a.data());
      av.push_back(nullptr);
      ::execv(av[0], av.data());
      ::_exit(127);
    }
  }

  bool WaitForFile(const std::string& want) {
    for (int i = 0; i < 300; ++i) {
      if (ReadFileOrEmpty(fleet_.ApplyRoot("mem-1") / "out") == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  static constexpr const char* kOld = "MEMCANARY-old-7f3a9c1e5b2d4068";
  static constexpr const char* kNew = "MEMCANARY-new-1b8e2d7c9a4f6035";
  E2eFleet fleet_;
  pid_t daemon_ = -1;
};

TEST_F(BrokerMemoryTest, ValueOnlyInArenaWhileCachedAndGoneAfterEpochChange) {
  StartDaemon();
  ASSERT_TRUE(WaitForFile(std::string("v=") + kOld)) << ReadFileOrEmpty(fleet_.AgentLog("mem-1"));
  std::string status = Status(daemon_);
  EXPECT_NE(status.find("Seccomp:\t2"), std::string::npos) << status;
  EXPECT_NE(status.find("NoNewPrivs:\t1"), std::string::npos) << status;

  ScanResult before = ScanMemory(daemon_, kOld);
  ASSERT_GE(before.unreadable_regions, 0) << "cannot open /proc/<broker>/mem as root";
  // The arena is the only place the value may be. memfd_secret pages are not
  // readable through /proc/<pid>/mem at all; mlock-backed arena pages are, and
  // are marked "lo" in smaps. Either way no hit may lie outside a locked region.
  std::string smaps = ReadFileOrEmpty("/proc/" + std::to_string(daemon_) + "/smaps");
  for (const std::string& w : before.where) {
    unsigned long addr = std::stoul(w.substr(0, w.find(' ')), nullptr, 16);
    bool in_locked = false;
    std::istringstream in(smaps);
    std::string line;
    unsigned long s = 0, e = 0;
    while (std::getline(in, line)) {
      unsigned long a = 0, b = 0;
      if (std::sscanf(line.c_str(), "%lx-%lx", &a, &b) == 2 && line.find(' ') < 20) {
        s = a;
        e = b;
      } else if (line.rfind("VmFlags:", 0) == 0 && addr >= s && addr < e) {
        in_locked = line.find(" lo") != std::string::npos && line.find(" dd") != std::string::npos;
      }
    }
    EXPECT_TRUE(in_locked) << "value found outside the locked arena at " << w;
  }

  // Rotate: new value, reload, the daemon's next check-in moves to the new epoch.
  ASSERT_TRUE(fleet_.SetSecret("mem/canary", kNew));
  fleet_.Cli({"server", "reload"});
  ASSERT_TRUE(WaitForFile(std::string("v=") + kNew)) << ReadFileOrEmpty(fleet_.AgentLog("mem-1"));
  ScanResult after = ScanMemory(daemon_, kOld);
  EXPECT_EQ(after.hits, 0) << "old value still in broker memory after eviction: "
                           << (after.where.empty() ? "" : after.where[0]);
}

TEST_F(BrokerMemoryTest, RevokedEnvoyForgetsItsCachedValuesAtTheNextCheckIn) {
  StartDaemon();
  ASSERT_TRUE(WaitForFile(std::string("v=") + kOld)) << ReadFileOrEmpty(fleet_.AgentLog("mem-1"));
  RunResult r = fleet_.Cli({"envoy", "revoke", "mem-1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // The daemon checks in every 10 s (the minimum); the refused check-in empties its cache
  // (one value) rather than keeping it until exit.
  bool forgotten = false;
  for (int i = 0; i < 300 && !forgotten; ++i) {
    const std::string log = ReadFileOrEmpty(fleet_.AgentLog("mem-1"));
    forgotten = log.find("check-in refused; cached values forgotten values=1") != std::string::npos;
    if (!forgotten) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(forgotten) << ReadFileOrEmpty(fleet_.AgentLog("mem-1"));
  EXPECT_EQ(ScanMemory(daemon_, kOld).hits, 0);
}

TEST_F(BrokerMemoryTest, CrashProducesNoCoreDumpWhileAControlDoes) {
  const char* kPattern = "/proc/sys/kernel/core_pattern";
  std::string saved = ReadFileOrEmpty(kPattern);
  TempDir cores;
  std::string pattern = (cores.path() / "core.%e.%p").string();
  {
    std::ofstream out(kPattern);
    out << pattern;
  }
  if (ReadFileOrEmpty(kPattern).find(cores.path().string()) == std::string::npos) {
    GTEST_SKIP() << "cannot set kernel.core_pattern (needs root in the initial namespaces)";
  }
  struct Restore {
    std::string value;
    ~Restore() { std::ofstream(("/proc/sys/kernel/core_pattern")) << value; }
  } restore{saved};

  // Control: an ordinary dumpable process in the same setup dumps core.
  pid_t control = ::fork();
  if (control == 0) {
    rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
    ::setrlimit(RLIMIT_CORE, &unlimited);
    ::abort();
  }
  int st = 0;
  ::waitpid(control, &st, 0);
  ASSERT_TRUE(WIFSIGNALED(st));
  size_t control_cores = 0;
  for (int i = 0; i < 50 && control_cores == 0; ++i) {
    control_cores = static_cast<size_t>(std::distance(
        std::filesystem::directory_iterator(cores.path()), std::filesystem::directory_iterator()));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GT(control_cores, 0u) << "the control did not dump core: the setup proves nothing";
  for (const auto& e : std::filesystem::directory_iterator(cores.path())) {
    std::filesystem::remove(e.path());
  }

  // The broker, holding the value in its cache, is crashed with SIGABRT.
  rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
  ::setrlimit(RLIMIT_CORE, &unlimited);  // inherited; the broker must lower it itself
  StartDaemon();
  ASSERT_TRUE(WaitForFile(std::string("v=") + kOld));
  ::kill(daemon_, SIGABRT);
  ::waitpid(daemon_, &st, 0);
  daemon_ = -1;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::vector<std::string> found;
  for (const auto& e : std::filesystem::directory_iterator(cores.path())) {
    found.push_back(e.path().string());
  }
  EXPECT_TRUE(found.empty()) << "core file written: " << found[0];
}

}  // namespace
}  // namespace vigo::testing
