// The worker's jail tried from the exec-child position: a real vigosrv and a
// real `vigo run --once` apply a stack whose exec resource is a hostile
// program (tests/helpers/exec_attacker_main.cc, or a shell). Each test has a
// control that shows the route exists outside the jail, so a pass means a
// wall, not a broken probe.
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/integration/e2e_fixture.h"
#include "tests/support/test_env.h"

namespace vigo::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kCanary[] = "VIGO-JAIL-CANARY-4c1d9e77a0b3";

class JailTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "jail tests run as root (CI does)";
    ASSERT_TRUE(fleet_.Init()) << fleet_.last_error();
  }

  // Starts the server with one exec resource for web-1 and issues web-1.
  void StartWithExec(const std::vector<std::string>& command, int timeout_s = 60) {
    fleet_.WriteStacks({{"envoys.vgo", "envoys:\n  - match: web-1\n    configcrates: [probe]\n"},
                        {"configcrates/probe.vgo",
                         "configcrate: probe\nresources:\n  - name: attack\n    type: exec\n"
                         "    command: " +
                             Argv(command) + "\n    timeout: " + std::to_string(timeout_s) +
                             "\n"}});
    ASSERT_TRUE(fleet_.StartServer()) << fleet_.last_error();
    ASSERT_TRUE(fleet_.IssueEnvoy("web-1")) << fleet_.last_error();
  }

  fs::path Report() const { return fleet_.dir() / "attack.report"; }
  std::string Attacker() const { return TestBinPath("exec_attacker").string(); }

  E2eFleet fleet_;
};

// --- The operator's terminal ------------------------------------------------

// Runs argv as a session leader whose controlling terminal is the pty
// behind `master` (as an interactive shell runs `vigo run --once`); returns
// the exit status. The master is drained so the child never blocks on it.
int RunOnTerminal(int master, const std::vector<std::string>& argv) {
  const std::string slave_name = ::ptsname(master);
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setsid();
    int s = ::open(slave_name.c_str(), O_RDWR);  // becomes the controlling tty
    if (s < 0) ::_exit(120);
    ::dup2(s, 0);
    ::dup2(s, 1);
    ::dup2(s, 2);
    if (s > 2) ::close(s);
    std::vector<char*> a;
    for (const std::string& x : argv) a.push_back(const_cast<char*>(x.c_str()));
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    ::_exit(127);
  }
  std::atomic<bool> done{false};
  std::thread drain([&] {
    char buf[4096];
    while (!done) {
      struct pollfd p = {master, POLLIN, 0};
      if (::poll(&p, 1, 50) > 0 && ::read(master, buf, sizeof(buf)) <= 0) break;
    }
  });
  int status = 0;
  ::waitpid(pid, &status, 0);
  done = true;
  drain.join();
  return status;
}

// Bytes waiting in the terminal's input queue: what a shell would read next.
int PendingInput(int slave) {
  int n = 0;
  return ::ioctl(slave, FIONREAD, &n) == 0 ? n : -1;
}

struct Pty {
  int master = -1, slave = -1;
  Pty() {
    master = ::posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || ::grantpt(master) != 0 || ::unlockpt(master) != 0) return;
    slave = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
    struct termios t;
    if (slave >= 0 && ::tcgetattr(slave, &t) == 0) {
      ::cfmakeraw(&t);  // every injected byte is readable at once
      ::tcsetattr(slave, TCSANOW, &t);
    }
  }
  ~Pty() {
    if (slave >= 0) ::close(slave);
    if (master >= 0) ::close(master);
  }
};

TEST_F(JailTest, ControlTheAttackerInjectsIntoItsTerminalOutsideTheJail) {
  Pty pty;
  ASSERT_GE(pty.slave, 0);
  int status = RunOnTerminal(pty.master, {Attacker(), "tiocsti", Report().string()});
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  auto m = ReadReport(Report());
  EXPECT_EQ(m["fd0"], "ok") << "control: TIOCSTI on its own terminal must work unjailed";
  EXPECT_GT(PendingInput(pty.slave), 0) << "control: the injected input must be visible";
}

TEST_F(JailTest, ExecCannotPushInputIntoTheOperatorsTerminal) {
  StartWithExec({Attacker(), "tiocsti", Report().string()});
  Pty pty;
  ASSERT_GE(pty.slave, 0);
  std::vector<std::string> argv = {BinPath("vigo").string(), "run", "--once"};
  for (const std::string& f : fleet_.AgentFlags("web-1")) argv.push_back(f);
  argv.push_back("--log-level=warn");
  RunOnTerminal(pty.master, argv);
  auto m = ReadReport(Report());
  ASSERT_EQ(m["done"], "1") << "the attacker did not run: " << ReadFileOrEmpty(Report());
  // Nothing reached the terminal's input queue (the shell would run it).
  EXPECT_EQ(PendingInput(pty.slave), 0);
  // Every attempt was refused: stdio is not the terminal (pipes), the
  // command has no controlling tty, /dev has no tty, and the exec-child
  // filter kills TIOCSTI/TIOCLINUX (SIGSYS = 31).
  for (const char* k : {"fd0", "fd1", "fd2", "/dev/tty", "/dev/console", "/dev/tty0", "tioclinux"}) {
    EXPECT_NE(m[k], "ok") << k << " was injectable";
  }
  EXPECT_EQ(m["tioclinux"], "killed 31");
  for (const auto& [k, v] : m) {
    if (k.rfind("/dev/pts/", 0) == 0) ADD_FAILURE() << "exec saw " << k << " (" << v << ")";
  }
}

// --- Raw devices ------------------------------------------------------------

// A loop device over a file holding the canary, detached at the end.
class LoopDevice {
 public:
  explicit LoopDevice(const fs::path& image) {
    std::string data(1 << 20, '\0');
    data.replace(4096, sizeof(kCanary) - 1, kCanary);
    WriteFileOrDie(image, data, 0600);
    RunResult r = Run({"/sbin/losetup", "--find", "--show", image.string()});
    if (r.exit_code == 0) dev_ = r.out.substr(0, r.out.find('\n'));
  }
  ~LoopDevice() {
    if (!dev_.empty()) Run({"/sbin/losetup", "-d", dev_});
  }
  const std::string& dev() const { return dev_; }

 private:
  std::string dev_;
};

TEST_F(JailTest, ExecCannotReadABlockDeviceOrMakeOne) {
  LoopDevice loop(fleet_.dir() / "disk.img");
  ASSERT_FALSE(loop.dev().empty()) << "losetup failed";
  // Control: unjailed root reads the canary straight from the device.
  std::string head = ReadFileOrEmpty(loop.dev()).substr(0, 1 << 16);
  ASSERT_NE(head.find(kCanary), std::string::npos) << "control: canary not on " << loop.dev();

  StartWithExec({Attacker(), "devices", Report().string(), kCanary});
  RunResult r = fleet_.RunAgent("web-1");
  auto m = ReadReport(Report());
  ASSERT_EQ(m["done"], "1") << r.err;
  EXPECT_GT(std::stoi(m["block_tried"]), 0) << "the kernel has block devices to try";
  EXPECT_EQ(m["block_opened"], "0") << "a block device is reachable in the worker's /dev";
  EXPECT_EQ(m["block_leaked"], "0");
  EXPECT_NE(m["mknod"], "ok") << "an exec made a device node";
  // The whole /dev: the five character devices, the links, shm and log.
  std::istringstream names(m["dev_names"]);
  std::string name;
  const std::vector<std::string> allowed = {"null", "zero",   "full",   "random", "urandom", "fd",
                                            "stdin", "stdout", "stderr", "shm",    "log"};
  while (std::getline(names, name, ',')) {
    if (name.empty()) continue;
    EXPECT_NE(std::find(allowed.begin(), allowed.end(), name), allowed.end())
        << "/dev/" << name << " is in the worker's /dev";
  }
}

// --- Other processes' /proc/<pid>/root ----------------------------------------

// A capability-less root process in the host namespaces (dumpable, so the
// kernel's ptrace-read check lets any root process with a superset of its
// capabilities through /proc/<pid>/root).
class CapabilityLessRootProcess {
 public:
  CapabilityLessRootProcess() {
    pid_ = ::fork();
    if (pid_ == 0) {
      for (int cap = 0; cap <= CAP_LAST_CAP; ++cap) ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
      char* argv[] = {const_cast<char*>("/bin/sleep"), const_cast<char*>("120"), nullptr};
      char* envp[] = {nullptr};
      ::execve("/bin/sleep", argv, envp);  // root exec with an empty bounding set: no caps
      ::_exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      std::string status = ReadFileOrEmpty("/proc/" + std::to_string(pid_) + "/status");
      if (status.find("CapEff:\t0000000000000000") != std::string::npos) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~CapabilityLessRootProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

class JailProcTest : public JailTest, public ::testing::WithParamInterface<bool> {};

TEST_P(JailProcTest, ExecCannotReachTheKeyThroughAHostProcessRoot) {
  const bool opted_out = GetParam();  // control: the route the PID namespace closes
  CapabilityLessRootProcess victim;
  ASSERT_GT(victim.pid(), 0);
  // The key the worker must not read: the envoy's own client key, hidden by
  // the mount cover; the canary stands in for it.
  const fs::path key = fleet_.CredsDir("web-1") / "key.pem";
  StartWithExec({Attacker(), "proc", Report().string(), std::to_string(victim.pid()),
                 key.string(), "PRIVATE KEY"});
  std::vector<std::string> extra;
  if (opted_out) extra = {"--insecure-skip-lockdown=pid_namespace"};
  RunResult r = fleet_.RunAgent("web-1", extra);
  auto m = ReadReport(Report());
  ASSERT_EQ(m["done"], "1") << r.err;
  if (opted_out) {
    EXPECT_EQ(m["root_leaked"], "1")
        << "control: without the PID namespace the key is readable via /proc/<pid>/root";
    return;
  }
  EXPECT_EQ(m["root_leaked"], "0") << "the client key was read through /proc/<pid>/root";
  EXPECT_EQ(m["saw_target"], "0") << "a host process is visible in the worker's /proc";
  // The worker (PID 1), the command and its own child at most.
  EXPECT_LE(std::stoi(m["proc_pids"]), 4) << "host processes are visible";
}

INSTANTIATE_TEST_SUITE_P(PidNamespace, JailProcTest, ::testing::Bool(),
                         [](const auto& param_info) {
                           return param_info.param ? "ControlOptedOut" : "Jailed";
                         });

// --- vigo --hide PATH and its defaults ------------------------------------------

// A directory the operator names with --hide (a co-located service's vault,
// say) holding a world-readable canary: an exec reads it without the flag
// (control) and finds nothing with it.
class JailHideTest : public JailTest, public ::testing::WithParamInterface<bool> {};

TEST_P(JailHideTest, ExecCannotReadAFileBeneathAHideDirectory) {
  const bool hidden = GetParam();
  const fs::path vault = fleet_.dir() / "other-service" / "vault";
  WriteFileOrDie(vault / "master.key", kCanary, 0644);
  StartWithExec({Attacker(), "read", Report().string(), kCanary, (vault / "master.key").string()});
  std::vector<std::string> extra;
  if (hidden) extra = {"--hide", (fleet_.dir() / "other-service").string()};
  RunResult r = fleet_.RunAgent("web-1", extra);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto m = ReadReport(Report());
  ASSERT_EQ(m["done"], "1") << r.err;
  if (!hidden) {
    EXPECT_EQ(m["leaked0"], "1") << "control: without --hide the exec reads the file";
    return;
  }
  EXPECT_EQ(m["leaked0"], "0") << "a file beneath --hide was read by an exec";
  EXPECT_EQ(m["path0"], "errno " + std::to_string(ENOENT)) << "the cover is an empty directory";
  // The host's copy is untouched (the cover lives in the worker's namespace).
  EXPECT_EQ(ReadFileOrEmpty(vault / "master.key"), kCanary);
}

INSTANTIATE_TEST_SUITE_P(Hide, JailHideTest, ::testing::Bool(), [](const auto& param_info) {
  return param_info.param ? "Hidden" : "ControlNotHidden";
});

// The default: /srv/vigo (a co-located vigosrv's root) is hidden without any
// flag. The host's /srv is not touched: the agent runs in a private mount
// namespace of the test's where /srv is a fresh tmpfs holding vigo/ and, as
// the control that the tmpfs is visible to the worker, other/.
TEST_F(JailTest, ExecCannotReadTheDefaultHiddenSrvVigo) {
  ASSERT_TRUE(fs::is_directory("/srv")) << "the test mounts a private tmpfs on /srv";
  const bool host_has_vault = fs::exists("/srv/vigo/secrets/.master.key");
  StartWithExec({Attacker(), "read", Report().string(), kCanary, "/srv/vigo/secrets/.master.key",
                 "/srv/other/data"});
  std::vector<std::string> argv = {BinPath("vigo").string(), "run", "--once"};
  for (const std::string& f : fleet_.AgentFlags("web-1")) argv.push_back(f);
  const fs::path err = fleet_.dir() / "agent-private-srv.err";
  pid_t pid = ::fork();
  if (pid == 0) {
    // Only this child (and the agent it becomes) sees the tmpfs; it goes
    // away with the namespace, whatever the test's outcome.
    if (::unshare(CLONE_NEWNS) != 0) ::_exit(120);
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(121);
    if (::mount("vigo-test-srv", "/srv", "tmpfs", MS_NOSUID | MS_NODEV, "mode=755") != 0) {
      ::_exit(122);
    }
    for (const char* d : {"/srv/vigo", "/srv/vigo/secrets", "/srv/other"}) {
      if (::mkdir(d, 0755) != 0) ::_exit(123);
    }
    for (const char* f : {"/srv/vigo/secrets/.master.key", "/srv/other/data"}) {
      int fd = ::open(f, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0 || ::write(fd, kCanary, sizeof(kCanary) - 1) != sizeof(kCanary) - 1) ::_exit(124);
      ::close(fd);
    }
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (e < 0 || ::dup2(e, 2) < 0) ::_exit(125);
    std::vector<char*> a;
    for (const std::string& x : argv) a.push_back(const_cast<char*>(x.c_str()));
    a.push_back(nullptr);
    ::execv(a[0], a.data());
    ::_exit(127);
  }
  ASSERT_GT(pid, 0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "status " << status << ": " << ReadFileOrEmpty(err);
  EXPECT_EQ(fs::exists("/srv/vigo/secrets/.master.key"), host_has_vault)
      << "the test's tmpfs reached the host";
  auto m = ReadReport(Report());
  ASSERT_EQ(m["done"], "1") << ReadFileOrEmpty(err);
  EXPECT_EQ(m["leaked1"], "1") << "control: the worker sees the private /srv";
  EXPECT_EQ(m["leaked0"], "0") << "/srv/vigo is readable by an exec without --hide";
  EXPECT_EQ(m["path0"], "errno " + std::to_string(ENOENT));
}

// --- File handles and hard links -------------------------------------------------

// "TYPE HEX" of `path`'s file handle (name_to_handle_at, as host root), or "".
std::string HandleOf(const fs::path& path) {
  std::vector<unsigned char> buf(sizeof(file_handle) + MAX_HANDLE_SZ);
  auto* fh = reinterpret_cast<file_handle*>(buf.data());
  fh->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = 0;
  if (::name_to_handle_at(AT_FDCWD, path.c_str(), fh, &mount_id, 0) != 0) return "";
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned i = 0; i < fh->handle_bytes; ++i) {
    hex += kHex[fh->f_handle[i] >> 4];
    hex += kHex[fh->f_handle[i] & 15];
  }
  return std::to_string(fh->handle_type) + " " + hex;
}

// The key's inode opened by handle from a directory on the same file
// system, around every mount cover (the "shocker" route). The handle is taken
// by the test on the host and read by the attacker from a file.
class JailHandleTest : public JailTest, public ::testing::WithParamInterface<bool> {};

TEST_P(JailHandleTest, ExecCannotOpenTheKeyByFileHandle) {
  const bool jailed = GetParam();
  StartWithExec({Attacker(), "handle", Report().string(), "PRIVATE KEY",
                 fleet_.CredsDir("web-1").string(), (fleet_.dir() / "key.handle").string()});
  const fs::path key = fleet_.CredsDir("web-1") / "key.pem";
  const std::string handle = HandleOf(key);
  ASSERT_FALSE(handle.empty()) << "name_to_handle_at on the key: " << std::strerror(errno);
  WriteFileOrDie(fleet_.dir() / "key.handle", handle, 0600);
  if (!jailed) {
    // Control: the same attacker, unjailed (host root), reads the key.
    RunResult r = vigo::testing::Run({Attacker(), "handle", Report().string(), "PRIVATE KEY",
                                      fleet_.CredsDir("web-1").string(),
                                      (fleet_.dir() / "key.handle").string()});
    auto m = ReadReport(Report());
    ASSERT_EQ(m["done"], "1") << r.err;
    EXPECT_EQ(m["open_by_handle_at"], "ok");
    EXPECT_EQ(m["handle_leaked"], "1") << "control: the handle opens the key outside the jail";
    return;
  }
  RunResult r = fleet_.RunAgent("web-1");
  auto m = ReadReport(Report());
  ASSERT_EQ(m["done"], "1") << r.err;
  EXPECT_NE(m["handle_bytes"], "0");
  // Killed by the exec-child and worker filters (SIGSYS = 31); without them
  // EPERM (no CAP_DAC_READ_SEARCH).
  EXPECT_TRUE(m["open_by_handle_at"] == "killed 31" ||
              m["open_by_handle_at"] == "errno " + std::to_string(EPERM))
      << m["open_by_handle_at"];
  EXPECT_NE(m["handle_leaked"], "1") << "the client key was opened by handle";
}

INSTANTIATE_TEST_SUITE_P(OpenByHandle, JailHandleTest, ::testing::Bool(),
                         [](const auto& param_info) {
                           return param_info.param ? "Jailed" : "ControlUnjailed";
                         });

std::vector<std::string> Names(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

// A second name for the key's inode (link, linkat by path, by O_PATH fd with
// AT_EMPTY_PATH, by /proc/self/fd): in the jail the key path is a cover on
// another mount, so no route reaches the inode and nothing is left behind.
class JailLinkTest : public JailTest, public ::testing::WithParamInterface<bool> {};

TEST_P(JailLinkTest, ExecCannotHardLinkTheKey) {
  const bool jailed = GetParam();
  const fs::path creds = fleet_.CredsDir("web-1");
  const std::vector<std::string> argv = {
      Attacker(),    "link", Report().string(), "PRIVATE KEY", (creds / "key.pem").string(),
      creds.string()};
  StartWithExec(argv);
  const std::vector<std::string> before = Names(creds);
  RunResult r = jailed ? fleet_.RunAgent("web-1") : vigo::testing::Run(argv);
  auto m = ReadReport(Report());
  ASSERT_EQ(m["done"], "1") << r.err;
  for (int i = 0; i < 4; ++i) {
    const std::string k = "link" + std::to_string(i);
    if (!jailed) {
      EXPECT_EQ(m[k], "ok") << "control: " << k << " links the key outside the jail";
      EXPECT_EQ(m[k + "_leaked"], "1") << "control: " << k;
      continue;
    }
    EXPECT_NE(m[k], "ok") << k << " gave the key's cover a second name";
    EXPECT_EQ(m[k + "_leaked"], "0") << k << " reached the client key";
  }
  EXPECT_EQ(Names(creds), before) << "a link was left in the credential dir";
}

INSTANTIATE_TEST_SUITE_P(HardLinks, JailLinkTest, ::testing::Bool(), [](const auto& param_info) {
  return param_info.param ? "Jailed" : "ControlUnjailed";
});

// --- /proc/<pid>/root of a process of the worker user -------------------------

constexpr uid_t kNobody = 65534;

// A dumpable `sleep` running as nobody in the host's namespaces.
class NobodyProcess {
 public:
  NobodyProcess() {
    pid_ = ::fork();
    if (pid_ == 0) {
      if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
          ::setresuid(kNobody, kNobody, kNobody) != 0) {
        ::_exit(126);
      }
      char* argv[] = {const_cast<char*>("/bin/sleep"), const_cast<char*>("120"), nullptr};
      char* envp[] = {nullptr};
      ::execve("/bin/sleep", argv, envp);
      ::_exit(127);
    }
    for (int i = 0; i < 200; ++i) {
      std::string cmdline = ReadFileOrEmpty("/proc/" + std::to_string(pid_) + "/cmdline");
      if (cmdline.rfind("/bin/sleep", 0) == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  ~NobodyProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

// The worker applies as --worker-user nobody; its command (nobody, no
// capabilities) opens /proc/<pid>/root of another nobody process in the
// host's namespaces: same uid, no capabilities, so the kernel's ptrace-read
// check passes and the link leads to the host's root, around every cover.
// The target is a world-readable canary beneath --hide (the 0600 key is
// out of a capability-less nobody's reach anyway).
class JailWorkerUserProcTest : public JailTest, public ::testing::WithParamInterface<bool> {};

TEST_P(JailWorkerUserProcTest, ExecOfTheWorkerUserCannotUseAHostProcessRoot) {
  const bool opted_out = GetParam();  // control: the route the PID namespace closes
  // nobody reaches the report and the canary (the rest of the tree stays 0700).
  fs::permissions(fleet_.dir(), fs::perms(0711));
  const fs::path hidden = fleet_.dir() / "hidden";
  WriteFileOrDie(hidden / "canary", kCanary, 0644);
  fs::permissions(hidden, fs::perms(0755));
  WriteFileOrDie(Report(), "", 0666);
  ASSERT_EQ(::chown(Report().c_str(), kNobody, kNobody), 0);
  NobodyProcess victim;
  ASSERT_GT(victim.pid(), 0);
  StartWithExec({Attacker(), "proc", Report().string(), std::to_string(victim.pid()),
                 (hidden / "canary").string(), kCanary});
  std::vector<std::string> extra = {"--worker-user=nobody", "--hide", hidden.string()};
  if (opted_out) extra.push_back("--insecure-skip-lockdown=pid_namespace");
  RunResult r = fleet_.RunAgent("web-1", extra);
  auto m = ReadReport(Report());
  ASSERT_EQ(m["done"], "1") << r.err;
  // Control: the victim is a live nobody process on the host all along.
  EXPECT_EQ(::kill(victim.pid(), 0), 0);
  EXPECT_NE(ReadFileOrEmpty("/proc/" + std::to_string(victim.pid()) + "/status")
                .find("Uid:\t65534\t65534"),
            std::string::npos);
  if (opted_out) {
    EXPECT_EQ(m["saw_target"], "1");
    EXPECT_EQ(m["root_leaked"], "1")
        << "control: without the PID namespace /proc/<pid>/root leads around --hide";
    return;
  }
  EXPECT_EQ(m["saw_target"], "0") << "a host process of the worker user is visible";
  EXPECT_EQ(m["root_leaked"], "0") << "a hidden file was read through /proc/<pid>/root";
}

INSTANTIATE_TEST_SUITE_P(WorkerUser, JailWorkerUserProcTest, ::testing::Bool(),
                         [](const auto& param_info) {
                           return param_info.param ? "ControlOptedOut" : "Jailed";
                         });

// --- Reaching into the worker: pidfd_open, pidfd_getfd, kcmp, setns -----------

TEST_F(JailTest, ControlTheAttackerReachesIntoItsParentOutsideTheJail) {
  RunResult r = vigo::testing::Run({Attacker(), "pid", Report().string()});
  auto m = ReadReport(Report());
  ASSERT_EQ(m["done"], "1") << r.err;
  EXPECT_EQ(m["pidfd_open_parent"], "ok");
  EXPECT_EQ(m["pidfd_getfd_parent"], "ok") << "control: pidfd_getfd steals the parent's fd 0";
  EXPECT_EQ(m["kcmp_parent"], "ok");
}

// From an exec command: the worker is PID 1 of the namespace. A pidfd of it
// may be opened (pidfd_open is how programs wait for processes), but every
// use that reaches into it is killed by the filters (SIGSYS = 31), and a
// SIGKILL through the pidfd is dropped by the kernel (a namespace's init
// ignores signals from inside it that it has no handler for): the run ends
// normally.
TEST_F(JailTest, ExecCannotReachIntoTheWorker) {
  StartWithExec({Attacker(), "pid", Report().string(), "kill"});
  RunResult r = fleet_.RunAgent("web-1");
  auto m = ReadReport(Report());
  ASSERT_EQ(m["done"], "1") << r.err;
  EXPECT_EQ(r.exit_code, 0) << r.err;
  int checked = 0;
  for (const auto& [k, v] : m) {
    if (k.rfind("pidfd_getfd_", 0) == 0 || k.rfind("kcmp_", 0) == 0 || k.rfind("setns_", 0) == 0) {
      EXPECT_EQ(v, "killed 31") << k;
      ++checked;
    }
  }
  EXPECT_GE(checked, 3) << "the attacker tried the worker (PID 1)";
  EXPECT_EQ(m["init_alive"], "1") << "the exec killed the worker";
  RecordProperty("pidfd_open_init", m["pidfd_open_init"]);
  RecordProperty("pidfd_kill_init", m["pidfd_kill_init"]);
}

// --- Timeouts -----------------------------------------------------------------

bool ProcessWithArgExists(const std::string& token) {
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string n = e.path().filename();
    if (n.empty() || n[0] < '0' || n[0] > '9') continue;
    if (ReadFileOrEmpty(e.path() / "cmdline").find(token) != std::string::npos) return true;
  }
  return false;
}

TEST_F(JailTest, ASetsidGrandchildDiesWithTheTimeout) {
  const std::string started = (fleet_.dir() / "grandchild.started").string();
  // The grandchild leaves the command's process group and session, so a
  // process-group kill would miss it.
  StartWithExec({"/bin/sh", "-c",
                 "setsid /bin/sh -c 'echo up > " + started + "; exec sleep 918273' & exec sleep 918274"},
                /*timeout_s=*/2);
  RunResult r = fleet_.RunAgent("web-1");
  EXPECT_TRUE(fs::exists(started)) << "the grandchild never ran: " << r.err;
  bool alive = true;
  for (int i = 0; i < 50 && alive; ++i) {  // the kill is synchronous; allow reaping
    alive = ProcessWithArgExists("918273") || ProcessWithArgExists("918274");
    if (alive) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_FALSE(alive) << "a descendant of the timed-out command outlived the run";
}

}  // namespace
}  // namespace vigo::testing
