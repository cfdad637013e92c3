// The agent (`vigo` + `vigo-worker`, real binaries) against a real VigoServer
// on 127.0.0.1 with a real local vault and real certificates.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <thread>

#include "absl/strings/str_join.h"
#include "gtest/gtest.h"
#include "sandbox/child_process.h"
#include "sandbox/landlock.h"
#include "tests/integration/server_fixture.h"

namespace vigo::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr char kDbCanary[] = "canary-db-a61f0c93e2b84d17";
constexpr char kApiCanary[] = "canary-api-5e27b0c4d9f1a3";
constexpr char kTokenCanary[] = "canary-token-c0ffee7731ab";
constexpr char kNewDbCanary[] = "canary-db2-9d8c7b6a5e4f30";

std::map<std::string, std::string> AgentStacks(const std::string& out_dir) {
  return {
      {"envoys.vgo",
       "envoys:\n"
       "  - match: \"web-*\"\n"
       "    environment: prod\n"
       "    roles: [app]\n"},
      {"roles.vgo", "roles:\n  app:\n    configcrates: [app]\n"},
      {"environments.vgo",
       "env:\n"
       "  prod:\n"
       "    vars:\n"
       "      db_password: \"secret:app/db\"\n"
       "      api_key: \"secret:app/api\"\n"},
      {"configcrates/app.vgo",
       "configcrate: app\n"
       "vars: { db_user: app }\n"
       "resources:\n"
       "  - name: data-dir\n"
       "    type: directory\n"
       "    target_path: /var/lib/app\n"
       "    mode: \"0750\"\n"
       "    owner: nobody\n"
       "    group: nogroup\n"
       "  - name: app-config\n"
       "    type: file\n"
       "    target_path: /etc/app/config.yaml\n"
       "    mode: \"0640\"\n"
       "    owner: nobody\n"
       "    group: nogroup\n"
       "    content: |\n"
       "      user: {{ .Vars.db_user }}\n"
       "      password: {{ .Vars.db_password }}\n"
       "      api: {{ .Vars.api_key }}\n"
       "    depends_on: [data-dir]\n"
       "  - name: app-env\n"  // no owner/group: root's, whatever --worker-user
       "    type: file\n"
       "    target_path: /etc/app/env/secrets.env\n"
       "    content: |\n"
       "      DB={{ .Vars.db_password }}\n"
       "  - name: cache-dir\n"
       "    type: directory\n"
       "    target_path: /var/cache/app\n"
       "  - name: register\n"
       "    type: exec\n"
       "    command: [\"/usr/bin/tee\", \"" +
           out_dir +
           "/stdin-copy\"]\n"
           "    stdin: \"secret:app/token\"\n"
           "    creates: /var/lib/app/registered\n"
           "  - name: mark-registered\n"
           "    type: exec\n"
           "    command: [\"/usr/bin/touch\", \"" +
           out_dir +
           "/root/var/lib/app/registered\"]\n"
           "    creates: /var/lib/app/registered\n"
           "    depends_on: [register]\n"
           "  - name: env-dump\n"
           "    type: exec\n"
           "    command: [\"/bin/sh\", \"-c\", \"cat /proc/$$/environ /proc/$$/cmdline > " +
           out_dir + "/env-dump; ls -l /proc/$$/fd > " + out_dir + "/fd-dump; touch " + out_dir +
           "/root/var/lib/app/env-dumped\"]\n"
           "    creates: /var/lib/app/env-dumped\n"},
  };
}

class AgentRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    out_ = work_.path();
    ServerFixtureOptions o;
    o.stacks = AgentStacks(out_.string());
    o.secrets = {{"app/db", kDbCanary}, {"app/api", kApiCanary}, {"app/token", kTokenCanary}};
    o.server_options.enable_watcher = false;
    fx_ = std::make_unique<ServerFixture>(o);
    ASSERT_TRUE(fx_->ok()) << fx_->error();
    creds_ = fx_->IssueEnvoy("web-1");
    ASSERT_TRUE(fx_->ok()) << fx_->error();
    fs::create_directories(root());
    fs::create_directories(state());
  }

  fs::path root() const { return out_ / "root"; }
  fs::path state() const { return out_ / "state"; }

  std::vector<std::string> Args(const std::string& mode, const std::string& target) const {
    std::vector<std::string> a = {BinPath("vigo").string()};
    if (mode == "once") {
      a.push_back("run");
      a.push_back("--once");
    } else {
      a.push_back("daemon");
      a.push_back("--interval=10");  // the minimum
    }
    for (std::string f : {
             "--server=" + target,
             "--ca-file=" + (creds_.dir / "ca.pem").string(),
             "--cert-file=" + (creds_.dir / "cert.pem").string(),
             "--key-file=" + (creds_.dir / "key.pem").string(),
             "--state-dir=" + state().string(),
             "--apply-root=" + root().string(),
             std::string("--log-level=trace"),
             std::string("--retry-for=20"),
         }) {
      a.push_back(f);
    }
    return a;
  }

  RunResult RunOnce() { return vigo::testing::Run(Args("once", fx_->target())); }

  std::vector<std::string> Canaries() const {
    return {kDbCanary, kApiCanary, kTokenCanary, kNewDbCanary};
  }

  TempDir work_;
  fs::path out_;
  std::unique_ptr<ServerFixture> fx_;
  EnvoyCreds creds_;
};

std::string LastRun(const fs::path& state) { return ReadFileOrEmpty(state / "last_run.json"); }

TEST_F(AgentRunTest, AppliesStackThenIsIdempotentWithoutLeaks) {
  RunResult r1 = RunOnce();
  ASSERT_EQ(r1.exit_code, 0) << r1.err;

  fs::path cfg = root() / "etc/app/config.yaml";
  EXPECT_EQ(ReadFileOrEmpty(cfg),
            StrCat("user: app\npassword: ", kDbCanary, "\napi: ", kApiCanary, "\n"));
  struct stat st;
  ASSERT_EQ(::stat(cfg.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 65534u);
  ASSERT_EQ(::stat((root() / "var/lib/app").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_uid, 65534u);
  // The exec read its secret on stdin.
  EXPECT_EQ(ReadFileOrEmpty(out_ / "stdin-copy"), kTokenCanary);
  EXPECT_TRUE(fs::exists(root() / "var/lib/app/registered"));
  // Children inherit no value, and not the socketpair (only fds 0-2 + the ls's own).
  std::string env_dump = ReadFileOrEmpty(out_ / "env-dump");
  EXPECT_NE(env_dump.find("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), std::string::npos) << env_dump;
  EXPECT_EQ(ReadFileOrEmpty(out_ / "fd-dump").find("socket:"), std::string::npos)
      << ReadFileOrEmpty(out_ / "fd-dump");

  std::string run1 = LastRun(state());
  EXPECT_NE(run1.find("\"outcome\":\"changed\""), std::string::npos) << run1;
  EXPECT_NE(run1.find("[REDACTED]"), std::string::npos) << run1;  // tee echoed the token

  // Second run: nothing changes.
  struct stat before;
  ASSERT_EQ(::stat(cfg.c_str(), &before), 0);
  RunResult r2 = RunOnce();
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  std::string run2 = LastRun(state());
  EXPECT_NE(run2.find("\"outcome\":\"ok\""), std::string::npos) << run2;
  EXPECT_EQ(run2.find("\"status\":\"changed\""), std::string::npos) << run2;
  struct stat after;
  ASSERT_EQ(::stat(cfg.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);

  // The server stored both runs.
  auto runs = fx_->store().ListRuns("web-1", 10);
  ASSERT_TRUE(runs.ok()) << runs.status();
  EXPECT_EQ(runs->size(), 2u);

  // No value anywhere: state dir, logs at trace level, run results, children's env/argv.
  EXPECT_EQ(FindCanaries(state(), Canaries()), std::vector<std::string>{});
  EXPECT_EQ(FindCanariesIn(r1.err + r1.out + r2.err + r2.out, "logs", Canaries()),
            std::vector<std::string>{});
  EXPECT_EQ(FindCanariesIn(env_dump, "exec environ/cmdline", Canaries()), std::vector<std::string>{});
  for (const auto& run : *runs) {
    auto full = fx_->store().GetRun(run.id);
    ASSERT_TRUE(full.ok());
    EXPECT_FALSE(full->redacted);
    for (const auto& res : full->results) {
      EXPECT_EQ(FindCanariesIn(res.message, res.name, Canaries()), std::vector<std::string>{});
    }
  }
  // No temp files left behind.
  for (const auto& e : fs::recursive_directory_iterator(root())) {
    EXPECT_EQ(e.path().filename().string().find(".vigo-tmp"), std::string::npos) << e.path();
  }

  // `vigo status` shows the cached bundle (markers only) and the last run.
  RunResult status = vigo::testing::Run({BinPath("vigo").string(), "status", "--state-dir=" + state().string()});
  EXPECT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find("__VIGO_SECRET__app/db__END__"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("attestation"), std::string::npos);
  EXPECT_EQ(FindCanariesIn(status.out, "status", Canaries()), std::vector<std::string>{});
}

// Issue 14: the run's applier attestation (Landlock ABI, enforced, rights,
// domain) travels broker -> server: the stored run carries the domain of
// the bundle's file resources, and last_run.json has it too.
TEST_F(AgentRunTest, StoredRunCarriesTheAppliersLandlockDomain) {
  ASSERT_GE(sandbox::LandlockAbi(), 1) << "CI kernels have Landlock (ABI 7)";
  // Existing parents, so the domain is them and not the whole apply root.
  fs::create_directories(root() / "etc/app/env");
  fs::create_directories(root() / "var/lib");
  fs::create_directories(root() / "var/cache");
  RunResult r = RunOnce();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto runs = fx_->store().ListRuns("web-1", 1);
  ASSERT_TRUE(runs.ok() && runs->size() == 1u);
  auto run = fx_->store().GetRun((*runs)[0].id);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_TRUE(run->applier.has_value());
  const server::service::ApplierRecord& a = *run->applier;
  EXPECT_EQ(a.landlock_abi, sandbox::LandlockAbi());
  EXPECT_TRUE(a.enforced);
  EXPECT_NE(a.rights.find("write_file"), std::string::npos) << a.rights;
  EXPECT_FALSE(a.cap_eff.empty());
  const std::string etc_app = (root() / "etc/app").string();
  bool has_etc_app = false;
  for (const std::string& d : a.domain) {
    has_etc_app |= d == etc_app;
    EXPECT_NE(d, root().string()) << "the domain is the whole apply root";
  }
  EXPECT_TRUE(has_etc_app) << "domain: " << absl::StrJoin(a.domain, ", ");
  EXPECT_FALSE(a.domain_truncated);
  const std::string last = LastRun(state());
  EXPECT_NE(last.find("\"applier\""), std::string::npos) << last;
  EXPECT_NE(last.find("\"enforced\":true"), std::string::npos) << last;
  EXPECT_NE(last.find(etc_app), std::string::npos) << last;
}

// Issue 15.4: the worker's redactions are counted in the run result (count
// only): the exec that echoes its secret (tee of the token) has redactions
// >= 1 in the stored run and last_run.json; an exec that prints nothing, 0.
TEST_F(AgentRunTest, ExecThatPrintsItsSecretHasItsRedactionsCountedInTheStoredRun) {
  RunResult r = RunOnce();
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto runs = fx_->store().ListRuns("web-1", 1);
  ASSERT_TRUE(runs.ok() && runs->size() == 1u);
  auto run = fx_->store().GetRun((*runs)[0].id);
  ASSERT_TRUE(run.ok()) << run.status();
  std::map<std::string, int64_t> redactions;
  for (const auto& res : run->results) redactions[res.name] = res.redactions;
  ASSERT_TRUE(redactions.count("register") && redactions.count("env-dump"));
  EXPECT_GE(redactions["register"], 1);
  EXPECT_EQ(redactions["env-dump"], 0);
  EXPECT_EQ(redactions["app-config"], 0);
  EXPECT_FALSE(run->redacted);  // the worker scrubbed it: nothing reached the server
  const std::string last = LastRun(state());
  EXPECT_NE(last.find("\"redactions\":"), std::string::npos) << last;
  EXPECT_EQ(FindCanaries(state(), Canaries()), std::vector<std::string>{});
}

// --worker-user: the worker applies as `nobody` with only the file
// capabilities; owners and modes still come out right, and a target
// without owner: is root's, not the worker user's.
TEST_F(AgentRunTest, WorkerUserAppliesAsThatUserButFilesWithoutOwnerStayRoots) {
  // Commands run as that user too (no capabilities across exec): let them
  // write their outputs.
  fs::permissions(out_, fs::perms::all);
  std::vector<std::string> args = Args("once", fx_->target());
  args.push_back("--worker-user=nobody");
  RunResult r = vigo::testing::Run(args);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  fs::path cfg = root() / "etc/app/config.yaml";
  EXPECT_NE(ReadFileOrEmpty(cfg).find(kDbCanary), std::string::npos);
  struct stat st;
  ASSERT_EQ(::stat(cfg.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  // Without owner:/group: the worker's uid does not leak into ownership:
  // the file, the directories created on its way and a directory resource
  // are root's (issue #13.17: they came out owned by nobody).
  for (const fs::path& p : {root() / "etc/app/env/secrets.env", root() / "etc/app/env",
                            root() / "etc/app", root() / "var/cache/app", root() / "var/cache"}) {
    ASSERT_EQ(::stat(p.c_str(), &st), 0) << p;
    EXPECT_EQ(st.st_uid, 0u) << p;
    EXPECT_EQ(st.st_gid, 0u) << p;
  }
  ASSERT_EQ(::stat((root() / "etc/app/env/secrets.env").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_EQ(ReadFileOrEmpty(root() / "etc/app/env/secrets.env"), StrCat("DB=", kDbCanary, "\n"));
  // The exec ran as nobody.
  ASSERT_EQ(::stat((out_ / "stdin-copy").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(ReadFileOrEmpty(out_ / "stdin-copy"), kTokenCanary);
  std::string att = ReadFileOrEmpty(state() / "attestation.json");
  EXPECT_NE(att.find("\"process\":\"worker\""), std::string::npos) << att;
  EXPECT_EQ(FindCanariesIn(r.err, "logs", Canaries()), std::vector<std::string>{});
}

// The review's route through the real agent (broker, locked-down worker
// under its seccomp filter): <apply-root>/etc/app planted as a link to a
// directory outside. The secret-bearing file fails naming the link and the
// resource; nothing lands outside; the rest of the bundle still applies.
TEST_F(AgentRunTest, PlantedParentSymlinkFailsTheFileAndWritesNothingOutside) {
  const fs::path elsewhere = out_ / "elsewhere";
  fs::create_directories(elsewhere);
  fs::create_directories(root() / "etc");
  fs::create_directory_symlink(elsewhere, root() / "etc/app");
  RunResult r = RunOnce();
  EXPECT_EQ(r.exit_code, 1) << r.err;
  std::vector<std::string> left;
  for (const auto& e : fs::recursive_directory_iterator(elsewhere)) left.push_back(e.path());
  EXPECT_EQ(left, std::vector<std::string>{});
  EXPECT_TRUE(fs::is_symlink(root() / "etc/app"));
  const std::string run = LastRun(state());
  EXPECT_NE(run.find("resource 'app-config': /etc/app is a symbolic link"), std::string::npos)
      << run;
  EXPECT_NE(run.find("\"outcome\":\"failed\""), std::string::npos) << run;
  EXPECT_TRUE(fs::is_directory(root() / "var/lib/app"));  // the unaffected directory resource
  EXPECT_EQ(FindCanaries(state(), Canaries()), std::vector<std::string>{});
  EXPECT_EQ(FindCanariesIn(r.err + r.out, "logs", Canaries()), std::vector<std::string>{});
}

TEST_F(AgentRunTest, EpochBumpWritesTheNewValue) {
  RunResult r1 = RunOnce();
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  uint64_t epoch1 = fx_->server().epoch();
  fx_->SetSecret("app/db", kNewDbCanary);
  auto e2 = fx_->server().Reload("test");
  ASSERT_TRUE(e2.ok()) << e2.status();
  ASSERT_GT(fx_->server().epoch(), epoch1);
  RunResult r2 = RunOnce();
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_NE(ReadFileOrEmpty(root() / "etc/app/config.yaml").find(kNewDbCanary), std::string::npos);
  std::string run2 = LastRun(state());
  EXPECT_NE(run2.find(StrCat("\"secrets_epoch\":\"", fx_->server().epoch(), "\"")), std::string::npos)
      << run2;
  EXPECT_NE(run2.find("\"action\":\"updated\""), std::string::npos) << run2;
  EXPECT_EQ(FindCanaries(state(), Canaries()), std::vector<std::string>{});
  EXPECT_EQ(FindCanariesIn(r2.err, "logs", Canaries()), std::vector<std::string>{});
}

// Reads a "Key:\tvalue" line of /proc/<pid>/status.
std::string ProcStatus(pid_t pid, const std::string& key) {
  std::ifstream in(StrCat("/proc/", static_cast<int64_t>(pid), "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::string v = line.substr(key.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  }
  return "";
}

pid_t ChildOf(pid_t parent) {
  std::ifstream in(StrCat("/proc/", static_cast<int64_t>(parent), "/task/",
                          static_cast<int64_t>(parent), "/children"));
  pid_t p = -1;
  in >> p;
  return p;
}

TEST_F(AgentRunTest, DaemonIsLockedDownAndExitsWhenTheWorkerDies) {
  fs::path log = out_ / "daemon.log";
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  ASSERT_GE(log_fd, 0);
  sandbox::SpawnOptions so;
  so.argv = Args("daemon", fx_->target());
  so.fd_map = {{2, log_fd}};
  auto daemon = sandbox::ChildProcess::Spawn(so);
  ::close(log_fd);
  ASSERT_TRUE(daemon.ok()) << daemon.status();
  // Wait for the first run to finish.
  for (int i = 0; i < 200 && LastRun(state()).find("outcome") == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_NE(LastRun(state()).find("outcome"), std::string::npos) << ReadFileOrEmpty(log);
  pid_t pid = daemon->pid();
  EXPECT_EQ(ProcStatus(pid, "Seccomp"), "2");
  EXPECT_EQ(ProcStatus(pid, "NoNewPrivs"), "1");
  EXPECT_NE(ProcStatus(pid, "VmLck"), "0 kB");
  EXPECT_NE(ProcStatus(pid, "VmLck"), "");
  pid_t worker = ChildOf(pid);
  ASSERT_GT(worker, 0);
  EXPECT_EQ(ProcStatus(worker, "Seccomp"), "2");
  EXPECT_EQ(ProcStatus(worker, "NoNewPrivs"), "1");
  // Neither process carries a value in its environment or argv.
  for (pid_t p : {pid, worker}) {
    std::string env = ReadFileOrEmpty(StrCat("/proc/", static_cast<int64_t>(p), "/environ"));
    std::string cmd = ReadFileOrEmpty(StrCat("/proc/", static_cast<int64_t>(p), "/cmdline"));
    EXPECT_EQ(FindCanariesIn(env + cmd, "environ/cmdline", Canaries()), std::vector<std::string>{});
  }
  std::string wenv = ReadFileOrEmpty(StrCat("/proc/", static_cast<int64_t>(worker), "/environ"));
  EXPECT_TRUE(wenv.empty()) << "worker environment is not clean";
  // Kill the worker: the broker notices and exits non-zero (no hang).
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  auto exit = daemon->WaitFor(15s);
  ASSERT_TRUE(exit.ok());
  EXPECT_FALSE(exit->timed_out) << ReadFileOrEmpty(log);
  EXPECT_TRUE(exit->exited && exit->exit_code != 0) << ReadFileOrEmpty(log);
  EXPECT_EQ(FindCanariesIn(ReadFileOrEmpty(log), "daemon log", Canaries()), std::vector<std::string>{});
}

// The agent waits (wait_for_ready, then backoff with jitter) for a server that
// is down when the run starts, and converges once it is up.
TEST_F(AgentRunTest, UnreachableServerIsRetriedUntilItComes) {
  // A port nobody listens on yet.
  ServerFixtureOptions o;
  o.stacks = AgentStacks(out_.string());
  o.secrets = {{"app/db", kDbCanary}, {"app/api", kApiCanary}, {"app/token", kTokenCanary}};
  o.server_options.enable_watcher = false;
  o.start = false;
  auto late = std::make_unique<ServerFixture>(o);
  ASSERT_TRUE(late->ok()) << late->error();
  EnvoyCreds c = late->IssueEnvoy("web-1");
  creds_ = c;
  int port = 0;
  {
    // Find a free port: start and stop a throwaway listener.
    int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a = {};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
    socklen_t len = sizeof(a);
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    ::close(s);
  }
  std::string target = StrCat("127.0.0.1:", port);
  std::thread starter([&] {
    std::this_thread::sleep_for(3s);
    EXPECT_TRUE(late->server().Start(target).ok());
  });
  auto start = std::chrono::steady_clock::now();
  RunResult r = vigo::testing::Run(Args("once", target));
  starter.join();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GE(std::chrono::steady_clock::now() - start, 3s);
  EXPECT_NE(ReadFileOrEmpty(root() / "etc/app/config.yaml").find(kDbCanary), std::string::npos);
}

// The server goes away under a running daemon and comes back (same address,
// same data root) with a new value: the daemon keeps retrying and converges.
TEST_F(AgentRunTest, DaemonSurvivesServerRestartAndConverges) {
  fs::path log = out_ / "daemon.log";
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  sandbox::SpawnOptions so;
  so.argv = Args("daemon", fx_->target());
  so.fd_map = {{2, log_fd}};
  auto daemon = sandbox::ChildProcess::Spawn(so);
  ::close(log_fd);
  ASSERT_TRUE(daemon.ok());
  fs::path cfg = root() / "etc/app/config.yaml";
  for (int i = 0; i < 200 && ReadFileOrEmpty(cfg).find(kDbCanary) == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_NE(ReadFileOrEmpty(cfg).find(kDbCanary), std::string::npos) << ReadFileOrEmpty(log);
  const std::string target = fx_->target();
  fx_->server().Shutdown();
  fx_->server().Wait();
  // The server comes back from its data (a copy: the fixture keeps the
  // original root's lock), with a new value for app/db.
  fs::path root2 = out_ / "srv2";
  fs::copy(fx_->root(), root2, fs::copy_options::recursive);
  auto cfg2 = server::LoadServerConfig(root2);
  ASSERT_TRUE(cfg2.ok()) << cfg2.status();
  {
    auto writer = server::LocalBackend::Open(cfg2->SecretsDir());
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Set("app/db", TestBuf(kNewDbCanary)).ok());
  }
  std::this_thread::sleep_for(3s);  // the daemon runs (and waits) against a dead server
  auto backend = server::LocalBackend::Open(cfg2->SecretsDir());
  ASSERT_TRUE(backend.ok());
  server::service::ServerOptions opts;
  opts.enable_watcher = false;
  auto again = server::service::VigoServer::Create(*cfg2, std::move(*backend), opts);
  ASSERT_TRUE(again.ok()) << again.status();
  ASSERT_TRUE((*again)->Start(target).ok());
  for (int i = 0; i < 300 && ReadFileOrEmpty(cfg).find(kNewDbCanary) == std::string::npos; ++i) {
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(ReadFileOrEmpty(cfg).find(kNewDbCanary), std::string::npos) << ReadFileOrEmpty(log);
  ::kill(daemon->pid(), SIGTERM);  // the broker only, not its group
  auto exit = daemon->WaitFor(15s);
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->exited && exit->exit_code == 0) << ReadFileOrEmpty(log);
  EXPECT_EQ(FindCanariesIn(ReadFileOrEmpty(log), "daemon log", Canaries()), std::vector<std::string>{});
  EXPECT_EQ(FindCanaries(state(), Canaries()), std::vector<std::string>{});
  (*again)->Shutdown();
}

TEST_F(AgentRunTest, KilledWorkerLeavesNoPartialOrTempFile) {
  // A stack of many large secret-bearing files; the worker is killed while
  // it writes them.
  constexpr int kFiles = 150;
  ServerFixtureOptions o;
  std::string filler(16 * 1024, 'f');
  std::string crate = "configcrate: many\nresources:\n";
  for (int i = 0; i < kFiles; ++i) {
    crate += StrCat("  - name: f", i, "\n    type: file\n    target_path: /many/f", i,
                    ".conf\n    mode: \"0640\"\n    content: \"", filler,
                    " {{ .Vars.db_password }}\\n\"\n");
  }
  o.stacks = {{"envoys.vgo", "envoys:\n  - match: \"web-*\"\n    environment: prod\n    roles: [r]\n"},
              {"roles.vgo", "roles:\n  r:\n    configcrates: [many]\n"},
              {"environments.vgo", "env:\n  prod:\n    vars:\n      db_password: \"secret:app/db\"\n"},
              {"configcrates/many.vgo", crate}};
  o.secrets = {{"app/db", kDbCanary}};
  o.server_options.enable_watcher = false;
  auto fx = std::make_unique<ServerFixture>(o);
  ASSERT_TRUE(fx->ok()) << fx->error();
  creds_ = fx->IssueEnvoy("web-1");
  fs::path log = out_ / "kill.log";
  int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  sandbox::SpawnOptions so;
  so.argv = Args("once", fx->target());
  so.fd_map = {{2, log_fd}};
  auto agent = sandbox::ChildProcess::Spawn(so);
  ::close(log_fd);
  ASSERT_TRUE(agent.ok());
  // Kill the worker as soon as the first files appear.
  pid_t worker = -1;
  for (int i = 0; i < 20000; ++i) {
    if (worker <= 0) worker = ChildOf(agent->pid());
    if (worker > 0 && fs::exists(root() / "many/f3.conf")) break;
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_GT(worker, 0) << ReadFileOrEmpty(log);
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  auto exit = agent->WaitFor(30s);
  ASSERT_TRUE(exit.ok());
  EXPECT_FALSE(exit->timed_out);
  EXPECT_TRUE(exit->exited && exit->exit_code != 0) << ReadFileOrEmpty(log);
  std::string expect = StrCat(filler, " ", kDbCanary, "\n");
  int complete = 0;
  for (const auto& e : fs::directory_iterator(root() / "many")) {
    EXPECT_EQ(e.path().filename().string().find(".vigo-tmp"), std::string::npos) << e.path();
    if (e.path().filename().string().find(".vigo-tmp") != std::string::npos) continue;
    EXPECT_EQ(ReadFileOrEmpty(e.path()), expect) << "partial file " << e.path();
    struct stat st;
    ASSERT_EQ(::stat(e.path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u) << e.path();
    ++complete;
  }
  EXPECT_LT(complete, kFiles) << "the worker finished before it was killed; test proves nothing";
  // The failed run reached the server.
  auto runs = fx->store().ListRuns("web-1", 10);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 1u);
  EXPECT_EQ((*runs)[0].outcome, "failed");
  EXPECT_EQ(FindCanariesIn(ReadFileOrEmpty(log), "log", Canaries()), std::vector<std::string>{});
}

}  // namespace
}  // namespace vigo::testing
