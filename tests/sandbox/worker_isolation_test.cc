// The walls between the worker and the broker, tried from a process that ran
// the real LockDownWorker: no ptrace of the broker, no /proc/<broker>/mem or
// environ, and no client key even as uid 0 with CAP_DAC_OVERRIDE.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sandbox/capabilities.h"
#include "sandbox/lockdown.h"
#include "tests/sandbox/sandbox_test_util.h"
#include "tests/support/test_env.h"

namespace vigo::sandbox {
namespace {

using testing::ChildResult;
using testing::kExitBodyReturned;
using testing::RunChild;
using testing::RunWorkerChild;
using testing::WriteAll;

constexpr char kCanary[] = "VIGO-CANARY-7f3a9c1e52b84d06";

// A running sandbox_victim; killed and reaped on destruction.
class Victim {
 public:
  explicit Victim(const std::string& mode) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) return;
    std::string bin = vigo::testing::TestBinPath("sandbox_victim").string();
    std::string env = std::string("VIGO_TEST_CANARY=") + kCanary;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      char* argv[] = {const_cast<char*>(bin.c_str()), const_cast<char*>(mode.c_str()), nullptr};
      char* envp[] = {const_cast<char*>(env.c_str()), nullptr};
      ::execve(bin.c_str(), argv, envp);
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    stdin_ = in[1];
    char buf[64] = {};
    ssize_t n = ::read(out[0], buf, sizeof(buf) - 1);
    ::close(out[0]);
    ready_ = n > 6 && std::strncmp(buf, "ready ", 6) == 0;
  }
  ~Victim() {
    if (stdin_ >= 0) ::close(stdin_);
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  bool ready() const { return ready_; }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
  bool ready_ = false;
};

// "key value" lines → map.
std::map<std::string, std::string> ParseLines(const std::string& out) {
  std::map<std::string, std::string> m;
  std::istringstream in(out);
  std::string k, v;
  while (in >> k >> v) m[k] = v;
  return m;
}

int OpenErrno(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::close(fd);
    return 0;
  }
  return errno;
}

std::string StatusField(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(std::string(key) + ":", 0) == 0) {
      std::string v = line.substr(std::strlen(key) + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return "";
}

class WorkerIsolationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "sandbox tests run as root";
    cred_dir_ = tmp_.path() / "agent-creds";
    state_dir_ = tmp_.path() / "broker-state";
    std::filesystem::create_directories(cred_dir_);
    std::filesystem::create_directories(state_dir_);
    key_ = cred_dir_ / "key.pem";
    vigo::testing::WriteFileOrDie(key_, kCanary, 0600);
    vigo::testing::WriteFileOrDie(state_dir_ / "state.db", kCanary, 0600);
  }

  WorkerLockdownSpec Spec(int out_fd) const {
    WorkerLockdownSpec spec;
    spec.keep_fds = {0, 1, 2, out_fd};
    spec.hidden_paths = {cred_dir_.string(), state_dir_.string()};
    return spec;
  }

  vigo::testing::TempDir tmp_;
  std::filesystem::path cred_dir_, state_dir_, key_;
};

TEST_F(WorkerIsolationTest, CannotOpenClientKeyEvenAsRootWithDacOverride) {
  // Control: outside the worker's namespace the key is readable.
  ASSERT_EQ(OpenErrno(key_.string()), 0);
  const std::string key = key_.string(), state = (state_dir_ / "state.db").string();
  ChildResult r = RunWorkerChild([&](int out) {
    auto locked = LockDownWorker(Spec(out));
    if (!locked.ok()) {
      WriteAll(out, "lockdown_failed 1\n");
      return 3;
    }
    std::string report = "uid " + std::to_string(::geteuid()) + "\ncapeff " +
                         StatusField("CapEff") + "\nkey " + std::to_string(OpenErrno(key)) +
                         "\nstate " + std::to_string(OpenErrno(state)) + "\n";
    WriteAll(out, report);
    return kExitBodyReturned;
  });
  ASSERT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
  auto m = ParseLines(r.out);
  EXPECT_EQ(m["uid"], "0");
  // CAP_DAC_OVERRIDE (bit 1) is really held: the wall is the namespace.
  uint64_t eff = std::stoull(m["capeff"], nullptr, 16);
  EXPECT_TRUE(eff & (uint64_t{1} << CAP_DAC_OVERRIDE)) << m["capeff"];
  EXPECT_TRUE(m["key"] == std::to_string(ENOENT) || m["key"] == std::to_string(EACCES))
      << "client key open returned errno " << m["key"];
  EXPECT_TRUE(m["state"] == std::to_string(ENOENT) || m["state"] == std::to_string(EACCES))
      << "broker state open returned errno " << m["state"];
  // And the host still sees it (the covers stayed in the worker's namespace).
  EXPECT_EQ(OpenErrno(key_.string()), 0);
}

// In its own PID namespace with its own procfs the broker does not exist for
// the worker at all (ENOENT); with that step opted out, the broker's
// non-dumpable flag still refuses (EACCES/EPERM): both walls are tried.
class WorkerProcWallTest : public WorkerIsolationTest,
                           public ::testing::WithParamInterface<bool> {};

TEST_P(WorkerProcWallTest, CannotReadBrokerMemEnvironOrRoot) {
  const bool own_pid_ns = GetParam();
  Victim broker("broker");
  ASSERT_TRUE(broker.ready());
  const std::string proc = "/proc/" + std::to_string(broker.pid());
  const std::string key_via_root = proc + "/root" + key_.string();
  ChildResult r = RunChild([&](int out) {
    WorkerLockdownSpec spec = Spec(out);
    if (!own_pid_ns) spec.insecure_skip = {kStepPidNamespace};
    if (!LockDownWorker(spec).ok()) return 3;
    WriteAll(out, "mem " + std::to_string(OpenErrno(proc + "/mem")) + "\nenviron " +
                      std::to_string(OpenErrno(proc + "/environ")) + "\nroot " +
                      std::to_string(OpenErrno(key_via_root)) + "\n");
    return kExitBodyReturned;
  }, 20, /*own_pid_namespace=*/own_pid_ns);
  ASSERT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
  auto m = ParseLines(r.out);
  for (const char* what : {"mem", "environ", "root"}) {
    if (own_pid_ns) {
      EXPECT_EQ(m[what], std::to_string(ENOENT))
          << what << ": the broker's /proc entry is visible from the worker's PID namespace";
    } else {
      EXPECT_TRUE(m[what] == std::to_string(EACCES) || m[what] == std::to_string(EPERM))
          << what << ": open of the broker's /proc file returned errno " << m[what];
    }
  }
}

INSTANTIATE_TEST_SUITE_P(PidNamespace, WorkerProcWallTest, ::testing::Bool(),
                         [](const auto& param_info) { return param_info.param ? "Own" : "OptedOut"; });

// The route the review used: a --worker-user worker reads the key through
// /proc/<pid>/root of a dumpable process of the SAME user that lives in the
// host's mount namespace (same uid, subset capabilities: the ptrace access
// check passes). With the PID namespace opted out the route is open (the
// control proves the test can see it); in the worker's own PID namespace the
// process does not exist.
TEST_P(WorkerProcWallTest, KeyViaProcRootOfAProcessOfTheWorkerUser) {
  const bool own_pid_ns = GetParam();
  const uid_t nobody = 65534;
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  pid_t victim = ::fork();
  if (victim == 0) {
    if (::setresgid(nobody, nobody, nobody) != 0 || ::setresuid(nobody, nobody, nobody) != 0) {
      ::_exit(126);
    }
    char* argv[] = {const_cast<char*>("/bin/sleep"), const_cast<char*>("60"), nullptr};
    char* envp[] = {nullptr};
    ::execve("/bin/sleep", argv, envp);  // exec re-arms dumpable: an ordinary user process
    ::_exit(127);
  }
  ASSERT_GT(victim, 0);
  ::close(ready[0]);
  ::close(ready[1]);
  // Wait until the exec happened (its /proc/<pid>/exe is /bin/sleep or coreutils).
  for (int i = 0; i < 200; ++i) {
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/" + std::to_string(victim) + "/exe", ec);
    if (!ec && exe.filename() != "sandbox_worker_isolation_test") break;
    ::usleep(10000);
  }
  const std::string via_root = "/proc/" + std::to_string(victim) + "/root" + key_.string();
  ChildResult r = RunChild([&](int out) {
    WorkerLockdownSpec spec = Spec(out);
    spec.run_as = UserSwitch{nobody, nobody, {}};
    if (!own_pid_ns) spec.insecure_skip = {kStepPidNamespace};
    if (!LockDownWorker(spec).ok()) return 3;
    std::string text = vigo::testing::ReadFileOrEmpty(via_root);
    WriteAll(out, std::string("errno ") + std::to_string(OpenErrno(via_root)) + "\nleaked " +
                      (text.find(kCanary) != std::string::npos ? "1" : "0") + "\n");
    return kExitBodyReturned;
  }, 20, own_pid_ns);
  ::kill(victim, SIGKILL);
  ::waitpid(victim, nullptr, 0);
  ASSERT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
  auto m = ParseLines(r.out);
  if (own_pid_ns) {
    EXPECT_EQ(m["leaked"], "0");
    EXPECT_EQ(m["errno"], std::to_string(ENOENT)) << "host process visible in the worker's /proc";
  } else {
    EXPECT_EQ(m["leaked"], "1") << "control: the route the PID namespace closes (errno "
                                << m["errno"] << ")";
  }
}

// Control for the test above: the canary is in the victim's environment and
// an unrestricted root process can read it, so "open failed" means a wall.
TEST_F(WorkerIsolationTest, ControlUnrestrictedRootReadsPlainVictimEnviron) {
  Victim plain("plain");
  ASSERT_TRUE(plain.ready());
  std::string env =
      vigo::testing::ReadFileOrEmpty("/proc/" + std::to_string(plain.pid()) + "/environ");
  EXPECT_NE(env.find(kCanary), std::string::npos);
}

TEST_F(WorkerIsolationTest, PtraceOfBrokerKillsTheWorker) {
  Victim broker("broker");
  ASSERT_TRUE(broker.ready());
  const pid_t target = broker.pid();
  ChildResult r = RunWorkerChild([&](int out) {
    if (!LockDownWorker(Spec(out)).ok()) return 3;
    ::syscall(SYS_ptrace, PTRACE_ATTACH, target, 0, 0);
    return kExitBodyReturned;
  });
  EXPECT_TRUE(r.KilledBySigsys()) << r.Describe();
}

// Second wall: even with the seccomp step skipped, ptrace fails because the
// broker is not dumpable and the worker has no CAP_SYS_PTRACE.
TEST_F(WorkerIsolationTest, PtraceFailsEvenWithoutSeccomp) {
  Victim broker("broker");
  ASSERT_TRUE(broker.ready());
  const pid_t target = broker.pid();
  // The PID namespace would make the broker invisible (ESRCH): opt out of
  // it too, to try the non-dumpable wall on its own.
  ChildResult r = RunChild([&](int out) {
    WorkerLockdownSpec spec = Spec(out);
    spec.insecure_skip = {kStepSeccomp, kStepPidNamespace};
    auto locked = LockDownWorker(spec);
    if (!locked.ok() ||
        locked->skipped_steps != std::vector<std::string>{"pid_namespace", "seccomp"}) {
      return 3;
    }
    long rc = ::syscall(SYS_ptrace, PTRACE_ATTACH, target, 0, 0);
    WriteAll(out, "rc " + std::to_string(rc) + "\nerrno " + std::to_string(errno) + "\n");
    return kExitBodyReturned;
  });
  ASSERT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
  auto m = ParseLines(r.out);
  EXPECT_EQ(m["rc"], "-1");
  EXPECT_EQ(m["errno"], std::to_string(EPERM));
}

TEST_F(WorkerIsolationTest, MissingHiddenPathFailsClosed) {
  ChildResult r = RunWorkerChild([&](int out) {
    WorkerLockdownSpec spec = Spec(out);
    spec.hidden_paths.push_back((tmp_.path() / "does-not-exist").string());
    auto locked = LockDownWorker(spec);
    return !locked.ok() && locked.status().code() == absl::StatusCode::kNotFound ? kExitBodyReturned
                                                                                 : 1;
  });
  EXPECT_TRUE(r.exited && r.code == kExitBodyReturned) << r.Describe();
}

}  // namespace
}  // namespace vigo::sandbox
