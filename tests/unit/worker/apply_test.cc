// The worker's apply engine on a temp apply-root.
#include "agent-worker/apply.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "agent-worker/fs_ops.h"
#include "common/secret_ref.h"
#include "gtest/gtest.h"
#include "tests/support/test_env.h"

namespace vigo::worker {
namespace {

namespace fs = std::filesystem;
using vigo::testing::ReadFileOrEmpty;
using vigo::testing::TempDir;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

mode_t ModeOf(const fs::path& p) {
  struct stat st;
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
  return st.st_mode & 07777;
}

class ApplyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(values_.Put("app/db_pw", Bytes("canary-db-Zq81x")).ok());
    ASSERT_TRUE(values_.Put("app/api_key", Bytes("canary-api-Pp03k")).ok());
    opts_.apply_root = root_.path().string();
    opts_.secret_file_dir = root_.path().string();
  }

  v1::Resource* AddFile(v1::PolicyBundle* b, std::string name, std::string path,
                        std::string content, std::string mode = "0640") {
    v1::Resource* r = b->add_resources();
    r->set_name(std::move(name));
    r->set_type("file");
    r->set_target_path(std::move(path));
    r->set_state("present");
    r->set_mode(std::move(mode));
    r->set_content(std::move(content));
    return r;
  }

  v1::Resource* AddExec(v1::PolicyBundle* b, std::string name, std::vector<std::string> argv) {
    v1::Resource* r = b->add_resources();
    r->set_name(std::move(name));
    r->set_type("exec");
    for (auto& a : argv) r->add_command(a);
    return r;
  }

  std::vector<v1::ResourceResult> Apply(const v1::PolicyBundle& b) {
    ApplyEngine engine(opts_);
    return engine.Apply(b, values_);
  }

  TempDir root_;
  ApplyOptions opts_;
  MapValueSource values_;
};

TEST_F(ApplyTest, FileCreateUnchangedUpdateDelete) {
  v1::PolicyBundle b;
  AddFile(&b, "cfg", "/etc/app/config.yaml",
          "user: app\npassword: " + MarkerFor("app/db_pw") + "\n");
  auto r1 = Apply(b);
  ASSERT_EQ(r1.size(), 1u);
  EXPECT_EQ(r1[0].status(), "changed") << r1[0].message();
  EXPECT_EQ(r1[0].action(), "created");
  fs::path p = root_.path() / "etc/app/config.yaml";
  EXPECT_EQ(ReadFileOrEmpty(p), "user: app\npassword: canary-db-Zq81x\n");
  EXPECT_EQ(ModeOf(p), 0640u);
  EXPECT_EQ(r1[0].message().find("canary"), std::string::npos);

  // Unchanged: no write (inode stays the same), action none.
  struct stat before;
  ASSERT_EQ(::stat(p.c_str(), &before), 0);
  auto r2 = Apply(b);
  EXPECT_EQ(r2[0].status(), "ok");
  EXPECT_EQ(r2[0].action(), "none");
  struct stat after;
  ASSERT_EQ(::stat(p.c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino);

  // Mode drift only: fixed in place.
  ASSERT_EQ(::chmod(p.c_str(), 0666), 0);
  auto r3 = Apply(b);
  EXPECT_EQ(r3[0].status(), "changed");
  EXPECT_EQ(r3[0].action(), "updated");
  EXPECT_EQ(ModeOf(p), 0640u);

  // New value: updated, message carries fingerprints, not content.
  ASSERT_TRUE(values_.Put("app/db_pw", Bytes("canary-db-NEW77")).ok());
  auto r4 = Apply(b);
  EXPECT_EQ(r4[0].action(), "updated");
  EXPECT_NE(r4[0].message().find("fingerprint"), std::string::npos);
  EXPECT_TRUE(
      vigo::testing::FindCanariesIn(r4[0].message(), "msg", {"canary-db-Zq81x", "canary-db-NEW77"})
          .empty());
  EXPECT_EQ(ReadFileOrEmpty(p), "user: app\npassword: canary-db-NEW77\n");
  EXPECT_FALSE(fs::exists(TempNameFor(p.string())));

  // Absent: deleted, then none.
  b.mutable_resources(0)->set_state("absent");
  auto r5 = Apply(b);
  EXPECT_EQ(r5[0].action(), "deleted");
  EXPECT_FALSE(fs::exists(p));
  auto r6 = Apply(b);
  EXPECT_EQ(r6[0].action(), "none");
  EXPECT_EQ(r6[0].status(), "ok");
}

TEST_F(ApplyTest, SecretBearingFileDefaultsTo0600) {
  v1::PolicyBundle b;
  AddFile(&b, "k", "/k.txt", MarkerFor("app/api_key"), "");
  auto r = Apply(b);
  EXPECT_EQ(r[0].status(), "changed");
  EXPECT_EQ(ModeOf(root_.path() / "k.txt"), 0600u);
}

TEST_F(ApplyTest, OwnerAndGroupAreApplied) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown";
  v1::PolicyBundle b;
  v1::Resource* r = AddFile(&b, "f", "/owned.txt", "x", "0600");
  r->set_owner("nobody");
  r->set_group("nogroup");
  auto res = Apply(b);
  ASSERT_EQ(res[0].status(), "changed") << res[0].message();
  struct stat st;
  ASSERT_EQ(::stat((root_.path() / "owned.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 65534u);
  // Ownership drift is converged.
  ASSERT_EQ(::chown((root_.path() / "owned.txt").c_str(), 0, 0), 0);
  EXPECT_EQ(Apply(b)[0].action(), "updated");
  ASSERT_EQ(::stat((root_.path() / "owned.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
}

TEST_F(ApplyTest, UnknownOwnerFails) {
  v1::PolicyBundle b;
  AddFile(&b, "f", "/x.txt", "x")->set_owner("no-such-user-vigo");
  auto r = Apply(b);
  EXPECT_EQ(r[0].status(), "failed");
  EXPECT_NE(r[0].message().find("no-such-user-vigo"), std::string::npos);
  EXPECT_FALSE(fs::exists(root_.path() / "x.txt"));
}

TEST_F(ApplyTest, MissingValueFailsWithoutWriting) {
  v1::PolicyBundle b;
  AddFile(&b, "f", "/x.txt", MarkerFor("app/missing"));
  auto r = Apply(b);
  EXPECT_EQ(r[0].status(), "failed");
  EXPECT_FALSE(fs::exists(root_.path() / "x.txt"));
}

TEST_F(ApplyTest, PathTraversalRefused) {
  v1::PolicyBundle b;
  AddFile(&b, "f", "/../escape.txt", "x");
  AddFile(&b, "g", "relative.txt", "x");
  auto r = Apply(b);
  EXPECT_EQ(r[0].status(), "failed");
  EXPECT_EQ(r[1].status(), "failed");
  EXPECT_FALSE(fs::exists(root_.path().parent_path() / "escape.txt"));
}

TEST_F(ApplyTest, Directory) {
  v1::PolicyBundle b;
  v1::Resource* d = b.add_resources();
  d->set_name("data");
  d->set_type("directory");
  d->set_target_path("/var/lib/app");
  d->set_mode("0750");
  auto r1 = Apply(b);
  EXPECT_EQ(r1[0].action(), "created") << r1[0].message();
  EXPECT_TRUE(fs::is_directory(root_.path() / "var/lib/app"));
  EXPECT_EQ(ModeOf(root_.path() / "var/lib/app"), 0750u);
  EXPECT_EQ(Apply(b)[0].action(), "none");
  ASSERT_EQ(::chmod((root_.path() / "var/lib/app").c_str(), 0777), 0);
  EXPECT_EQ(Apply(b)[0].action(), "updated");
  EXPECT_EQ(ModeOf(root_.path() / "var/lib/app"), 0750u);
  d->set_state("absent");
  EXPECT_EQ(Apply(b)[0].action(), "deleted");
  EXPECT_FALSE(fs::exists(root_.path() / "var/lib/app"));
}

TEST_F(ApplyTest, ExecStdinSecretAndCreates) {
  v1::PolicyBundle b;
  v1::Resource* e = AddExec(&b, "tee", {"/usr/bin/tee", root_.path().string() + "/got"});
  e->set_stdin(MarkerFor("app/db_pw"));
  e->set_creates("/got");
  auto r1 = Apply(b);
  ASSERT_EQ(r1[0].status(), "changed") << r1[0].message();
  EXPECT_EQ(ReadFileOrEmpty(root_.path() / "got"), "canary-db-Zq81x");
  // tee echoed the value to stdout: the result carries it scrubbed.
  EXPECT_NE(r1[0].message().find("[REDACTED]"), std::string::npos) << r1[0].message();
  EXPECT_EQ(r1[0].message().find("canary"), std::string::npos);
  // creates exists now: skipped, not run again.
  auto r2 = Apply(b);
  EXPECT_EQ(r2[0].status(), "ok");
  EXPECT_EQ(r2[0].action(), "skipped");
}

TEST_F(ApplyTest, ExecSecretFileIsSubstitutedAndRemoved) {
  v1::PolicyBundle b;
  // cp the secret file somewhere we can inspect, and record its mode.
  v1::Resource* e =
      AddExec(&b, "cp",
              {"/bin/cp", "--preserve=mode", "{{ .SecretFile }}", root_.path().string() + "/copy"});
  e->set_secret_file(MarkerFor("app/api_key"));
  auto r = Apply(b);
  ASSERT_EQ(r[0].status(), "changed") << r[0].message();
  EXPECT_EQ(ReadFileOrEmpty(root_.path() / "copy"), "canary-api-Pp03k");
  EXPECT_EQ(ModeOf(root_.path() / "copy"), 0600u);
  // Nothing named vigo-secret.* is left in the secret_file dir.
  for (const auto& ent : fs::directory_iterator(root_.path())) {
    EXPECT_EQ(ent.path().filename().string().find("vigo-secret"), std::string::npos) << ent.path();
  }
}

TEST_F(ApplyTest, ExecFailureOutputIsScrubbed) {
  v1::PolicyBundle b;
  // Echo stdin (the secret) in several encodings, then fail.
  v1::Resource* e = AddExec(&b, "leak",
                            {"/bin/sh", "-c",
                             "v=$(cat); echo \"raw=$v\"; printf %s \"$v\" | base64; "
                             "printf %s \"$v\" | od -An -tx1 | tr -d ' \\n'; echo; exit 3"});
  e->set_stdin(MarkerFor("app/db_pw"));
  auto r = Apply(b);
  ASSERT_EQ(r[0].status(), "failed");
  EXPECT_NE(r[0].message().find("exit code 3"), std::string::npos) << r[0].message();
  EXPECT_NE(r[0].message().find("raw=[REDACTED]"), std::string::npos) << r[0].message();
  EXPECT_TRUE(vigo::testing::FindCanariesIn(r[0].message(), "msg", {"canary-db-Zq81x"}).empty())
      << r[0].message();
}

// Issue 15.4: the exec result counts the runs the worker redacted (three
// encodings of the value: at least 3), and an exec whose output holds no
// value counts 0. Only the number travels; the message keeps [REDACTED].
TEST_F(ApplyTest, ExecResultCountsTheRedactedRunsOfItsOutput) {
  v1::PolicyBundle b;
  v1::Resource* e = AddExec(&b, "leak",
                            {"/bin/sh", "-c",
                             "v=$(cat); echo \"raw=$v\"; printf %s \"$v\" | base64; "
                             "printf %s \"$v\" | od -An -tx1 | tr -d ' \\n'; echo"});
  e->set_stdin(MarkerFor("app/db_pw"));
  AddExec(&b, "quiet", {"/bin/sh", "-c", "echo nothing to hide"});
  auto r = Apply(b);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_GE(r[0].redactions(), 3u) << r[0].message();
  EXPECT_EQ(r[1].redactions(), 0u) << r[1].message();
  EXPECT_NE(r[1].message().find("nothing to hide"), std::string::npos) << r[1].message();
}

// Issue 15.1: the window N comes from the bundle (server.yaml
// leak_scan.window). The value is 15 bytes; the command prints a 13-byte and
// a 14-byte slice of it. Default N = 12: both go. N = 14: only the 14-byte
// slice goes. A bundle asking for less than the floor (3) gets 8: an 8-byte
// slice goes, a 3-byte fragment stays.
TEST_F(ApplyTest, ExecOutputIsScrubbedWithTheBundlesRedactionWindow) {
  auto run = [&](uint32_t window, const std::string& script) {
    v1::PolicyBundle b;
    b.set_redaction_window(window);
    v1::Resource* e = AddExec(&b, "slices", {"/bin/sh", "-c", "cat >/dev/null; " + script});
    e->set_stdin(MarkerFor("app/db_pw"));  // canary-db-Zq81x
    auto r = Apply(b);
    EXPECT_EQ(r[0].status(), "changed") << r[0].message();
    return r[0].message();
  };
  const std::string slices = "echo 'a=anary-db-Zq81 b=anary-db-Zq81x.'";
  std::string out = run(0, slices);
  EXPECT_NE(out.find("a=[REDACTED] b=[REDACTED]."), std::string::npos) << out;
  out = run(14, slices);
  EXPECT_NE(out.find("a=anary-db-Zq81 b=[REDACTED]."), std::string::npos) << out;
  out = run(3, "echo 'c=ary-db-Z d=ary.'");
  EXPECT_NE(out.find("c=[REDACTED] d=ary."), std::string::npos) << out;
}

// Like the worker's IPC source: Resolved() lists only values handed out so
// far. Exec output must still be scrubbed of every value of the bundle, e.g.
// a command that prints a file an earlier run wrote.
class LazyValueSource : public ValueSource {
 public:
  explicit LazyValueSource(MapValueSource* all) : all_(all) {}
  absl::StatusOr<const sandbox::SecretBuffer*> Get(std::string_view path) override {
    auto v = all_->Get(path);
    if (v.ok()) handed_out_.push_back(*v);
    return v;
  }
  std::vector<const sandbox::SecretBuffer*> Resolved() const override { return handed_out_; }
  void Clear() override { handed_out_.clear(); }

 private:
  MapValueSource* all_;
  std::vector<const sandbox::SecretBuffer*> handed_out_;
};

TEST_F(ApplyTest, ExecOutputIsScrubbedOfValuesNotYetResolvedThisRun) {
  vigo::testing::WriteFileOrDie(root_.path() / "old.conf", "password=canary-db-Zq81x\n", 0600);
  v1::PolicyBundle b;
  AddExec(&b, "show", {"/bin/cat", (root_.path() / "old.conf").string()});
  b.add_secret_refs("app/db_pw");  // entitled, but no resource before the exec asked for it
  LazyValueSource lazy(&values_);
  ApplyEngine engine(opts_);
  auto r = engine.Apply(b, lazy);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_TRUE(vigo::testing::FindCanariesIn(r[0].message(), "msg", {"canary-db-Zq81x"}).empty())
      << r[0].message();
  EXPECT_NE(r[0].message().find("[REDACTED]"), std::string::npos) << r[0].message();
}

// A worker killed mid-exec leaves its secret_file behind; the next worker
// removes it, but never a live worker's.
TEST_F(ApplyTest, StaleSecretFileDirsOfDeadWorkersAreSwept) {
  // Dead: its worker's lock is gone (a killed worker's flock is released).
  const std::string dead = (root_.path() / "vigo-secret.AbCdEf").string();
  vigo::testing::WriteFileOrDie(dead + "/secret", "canary-db-Zq81x", 0600);
  vigo::testing::WriteFileOrDie(dead + "/lock", "", 0600);
  // Live: the lock file is held (by this test, as a worker would).
  const std::string live = (root_.path() / "vigo-secret.GhIjKl").string();
  vigo::testing::WriteFileOrDie(live + "/secret", "still-in-use", 0600);
  vigo::testing::WriteFileOrDie(live + "/lock", "", 0600);
  int held = ::open((live + "/lock").c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(held, 0);
  ASSERT_EQ(::flock(held, LOCK_EX), 0);
  EXPECT_EQ(SweepStaleSecretFiles(root_.path().string()), 1);
  EXPECT_FALSE(std::filesystem::exists(dead));
  EXPECT_EQ(vigo::testing::ReadFileOrEmpty(live + "/secret"), "still-in-use");
  ::close(held);
  // Once the holder is gone, the next sweep removes it too.
  EXPECT_EQ(SweepStaleSecretFiles(root_.path().string()), 1);
  EXPECT_FALSE(std::filesystem::exists(live));
}

// A local user plants `vigo-secret.*` as a symlink to a directory holding a
// root-owned file named `secret`: the sweep must not zero or delete it.
TEST_F(ApplyTest, SweepDoesNotFollowASymlinkedSecretDir) {
  const std::filesystem::path victim_dir = root_.path() / "victim";
  vigo::testing::WriteFileOrDie(victim_dir / "secret", "root-owned-data", 0600);
  std::filesystem::create_directory_symlink(victim_dir, root_.path() / "vigo-secret.Planted");
  EXPECT_EQ(SweepStaleSecretFiles(root_.path().string()), 0);
  EXPECT_EQ(vigo::testing::ReadFileOrEmpty(victim_dir / "secret"), "root-owned-data");
  EXPECT_TRUE(std::filesystem::is_symlink(root_.path() / "vigo-secret.Planted"));
}

// Inside a real stale dir, `secret` swapped for a symlink or a hard link to
// another file: that file is neither zeroed nor removed.
TEST_F(ApplyTest, SweepDoesNotZeroALinkedSecretFile) {
  const std::filesystem::path other = root_.path() / "other-file";
  vigo::testing::WriteFileOrDie(other, "keep-me", 0600);
  const std::filesystem::path sym_dir = root_.path() / "vigo-secret.SymLnk";
  std::filesystem::create_directories(sym_dir);
  std::filesystem::create_symlink(other, sym_dir / "secret");
  const std::filesystem::path hard_dir = root_.path() / "vigo-secret.HrdLnk";
  std::filesystem::create_directories(hard_dir);
  std::filesystem::create_hard_link(other, hard_dir / "secret");
  SweepStaleSecretFiles(root_.path().string());
  EXPECT_EQ(vigo::testing::ReadFileOrEmpty(other), "keep-me");
  EXPECT_FALSE(std::filesystem::exists(sym_dir));
  EXPECT_FALSE(std::filesystem::exists(hard_dir));
}

TEST_F(ApplyTest, ExecEnvironmentIsClean) {
  ::setenv("VIGO_TEST_LEAK", "should-not-pass", 1);
  v1::PolicyBundle b;
  v1::Resource* e = AddExec(&b, "env", {"/usr/bin/env"});
  v1::EnvVar* v = e->add_environment();
  v->set_name("APP_MODE");
  v->set_value("prod");
  auto r = Apply(b);
  ASSERT_EQ(r[0].status(), "changed") << r[0].message();
  EXPECT_NE(r[0].message().find("APP_MODE=prod"), std::string::npos);
  EXPECT_NE(r[0].message().find("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), std::string::npos);
  EXPECT_EQ(r[0].message().find("VIGO_TEST_LEAK"), std::string::npos);
}

TEST_F(ApplyTest, ExecTimeoutKillsProcessGroup) {
  v1::PolicyBundle b;
  v1::Resource* e = AddExec(&b, "sleep", {"/bin/sh", "-c", "sleep 30 & sleep 30"});
  e->set_timeout_seconds(1);
  auto start = std::chrono::steady_clock::now();
  auto r = Apply(b);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r[0].status(), "failed");
  EXPECT_NE(r[0].message().find("timed out"), std::string::npos) << r[0].message();
  EXPECT_LT(took, std::chrono::seconds(10));
}

TEST_F(ApplyTest, MarkerInArgvRefused) {
  v1::PolicyBundle b;
  AddExec(&b, "bad", {"/bin/echo", MarkerFor("app/db_pw")});
  auto r = Apply(b);
  EXPECT_EQ(r[0].status(), "failed");
  EXPECT_NE(r[0].message().find("refused"), std::string::npos);
}

TEST_F(ApplyTest, FailedDependencyBlocksDependents) {
  v1::PolicyBundle b;
  AddExec(&b, "fails", {"/bin/false"});
  AddFile(&b, "after", "/after.txt", "x")->add_depends_on("fails");
  AddFile(&b, "after2", "/after2.txt", "x")->add_depends_on("after");
  AddFile(&b, "free", "/free.txt", "x");
  auto r = Apply(b);
  EXPECT_EQ(r[0].status(), "failed");
  EXPECT_EQ(r[1].action(), "blocked");
  EXPECT_EQ(r[2].action(), "blocked");
  EXPECT_EQ(r[3].status(), "changed");
  EXPECT_FALSE(fs::exists(root_.path() / "after.txt"));
  EXPECT_EQ(ApplyEngine::Outcome(r), "failed");
}

TEST_F(ApplyTest, StaleTempFileFromCrashIsRemoved) {
  v1::PolicyBundle b;
  AddFile(&b, "f", "/t.txt", "v1");
  Apply(b);
  std::string tmp = TempNameFor((root_.path() / "t.txt").string());
  vigo::testing::WriteFileOrDie(tmp, "partial");
  b.mutable_resources(0)->set_content("v2");
  auto r = Apply(b);
  EXPECT_EQ(r[0].action(), "updated");
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_EQ(ReadFileOrEmpty(root_.path() / "t.txt"), "v2");
}

TEST_F(ApplyTest, StaleTempFileNextToAnUnchangedFileIsRemovedToo) {
  v1::PolicyBundle b;
  AddFile(&b, "f", "/t.txt", "v1");
  Apply(b);
  // A worker killed mid-write (named-temp fallback) left a temp holding the
  // new content; the next run finds the target already up to date.
  std::string tmp = TempNameFor((root_.path() / "t.txt").string());
  vigo::testing::WriteFileOrDie(tmp, "v1");
  auto r = Apply(b);
  EXPECT_EQ(r[0].action(), "none");
  EXPECT_FALSE(fs::exists(tmp));
}

}  // namespace
}  // namespace vigo::worker
