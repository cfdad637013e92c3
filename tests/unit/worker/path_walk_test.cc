// The apply root is a boundary (issue #14.4): every operation on a target
// resolves from an fd of the root without following a link, so a symlink
// planted anywhere on a target's path, or swapped in for a directory while
// the worker is busy, fails that resource (naming the link and the resource)
// and nothing is written, chmodded, chowned or removed outside the root.
//
// Layout of every test: <work>/root is the apply root, <work>/outside a
// directory the links point at (what the attacker wants written).
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>

#include "agent-worker/apply.h"
#include "agent-worker/fs_ops.h"
#include "gtest/gtest.h"
#include "sandbox/open_beneath.h"
#include "tests/support/test_env.h"

namespace vigo::worker {
namespace {

namespace fs = std::filesystem;
using vigo::testing::ReadFileOrEmpty;
using vigo::testing::TempDir;
using vigo::testing::WriteFileOrDie;

constexpr char kCanary[] = "canary-walk-7Qx2m";

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Every entry below `dir`, for "nothing was left there" checks.
std::vector<std::string> Entries(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    out.push_back(e.path().lexically_relative(dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// A MapValueSource that runs `on_get` before the first value is handed
// out: the engine fetches values after it has inspected a target and before
// it writes it, which is the window an unprivileged owner of a directory on
// the path races in.
class RacingValues : public ValueSource {
 public:
  explicit RacingValues(std::function<void()> on_get) : on_get_(std::move(on_get)) {}
  absl::Status Put(std::string path, std::span<const uint8_t> v) { return inner_.Put(path, v); }
  absl::StatusOr<const sandbox::SecretBuffer*> Get(std::string_view path) override {
    if (on_get_) std::exchange(on_get_, nullptr)();
    return inner_.Get(path);
  }
  std::vector<const sandbox::SecretBuffer*> Resolved() const override { return inner_.Resolved(); }
  void Clear() override { inner_.Clear(); }

 private:
  std::function<void()> on_get_;
  MapValueSource inner_;
};

class PathWalkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(root());
    fs::create_directories(outside());
    ASSERT_TRUE(values_.Put("app/db_pw", Bytes(kCanary)).ok());
    opts_.apply_root = root().string();
  }
  fs::path root() const { return work_.path() / "root"; }
  fs::path outside() const { return work_.path() / "outside"; }

  v1::Resource* AddFile(v1::PolicyBundle* b, const std::string& name, const std::string& path) {
    v1::Resource* r = b->add_resources();
    r->set_name(name);
    r->set_type("file");
    r->set_target_path(path);
    r->set_content("password: __VIGO_SECRET__app/db_pw__END__\n");
    b->add_secret_refs("app/db_pw");
    return r;
  }
  v1::Resource* AddDir(v1::PolicyBundle* b, const std::string& name, const std::string& path) {
    v1::Resource* r = b->add_resources();
    r->set_name(name);
    r->set_type("directory");
    r->set_target_path(path);
    return r;
  }
  std::vector<v1::ResourceResult> Apply(const v1::PolicyBundle& b, ValueSource* values = nullptr) {
    ApplyEngine engine(opts_);
    return engine.Apply(b, values != nullptr ? *values : values_);
  }
  // The failure every refused link gives: the resource, the link as the
  // bundle names it, and why.
  static void ExpectRefusedLink(const v1::ResourceResult& res, const std::string& resource,
                                const std::string& link) {
    EXPECT_EQ(res.status(), "failed") << res.message();
    EXPECT_NE(res.message().find("resource '" + resource + "'"), std::string::npos)
        << res.message();
    EXPECT_NE(res.message().find(link + " is a symbolic link"), std::string::npos) << res.message();
    EXPECT_EQ(res.message().find(kCanary), std::string::npos);
  }

  TempDir work_;
  ApplyOptions opts_;
  MapValueSource values_;
};

// The review's route: <apply-root>/etc/webapp planted as a (relative) link
// to a directory outside; the secret-bearing file must not land there.
TEST_F(PathWalkTest, FileBelowASymlinkedParentIsRefusedAndNothingIsWrittenOutside) {
  fs::create_directories(root() / "etc");
  fs::create_directory_symlink("../../outside", root() / "etc/webapp");
  v1::PolicyBundle b;
  AddFile(&b, "webapp-config", "/etc/webapp/config.yaml");
  auto results = Apply(b);
  ASSERT_EQ(results.size(), 1u);
  ExpectRefusedLink(results[0], "webapp-config", "/etc/webapp");
  EXPECT_EQ(Entries(outside()), std::vector<std::string>{});
  EXPECT_TRUE(fs::is_symlink(root() / "etc/webapp"));
}

// `..`-free, but the link is to an absolute path: refused the same way,
// also when the link is the first segment and missing parents would be
// created behind it.
TEST_F(PathWalkTest, ParentSymlinkToAnAbsolutePathIsRefusedBeforeAnyDirectoryIsCreated) {
  fs::create_directory_symlink(outside(), root() / "srv");
  v1::PolicyBundle b;
  AddFile(&b, "deep", "/srv/a/b/c.conf");
  auto results = Apply(b);
  ASSERT_EQ(results.size(), 1u);
  ExpectRefusedLink(results[0], "deep", "/srv");
  EXPECT_EQ(Entries(outside()), std::vector<std::string>{});
}

// A directory resource (with an owner) below a symlinked parent: neither
// created nor chowned outside.
TEST_F(PathWalkTest, DirectoryBelowASymlinkedParentIsRefused) {
  fs::create_directories(root() / "var/lib");
  fs::create_directory_symlink(outside(), root() / "var/lib/app");
  fs::create_directories(outside() / "data");
  struct stat before;
  ASSERT_EQ(::stat((outside() / "data").c_str(), &before), 0);
  v1::PolicyBundle b;
  AddDir(&b, "new-dir", "/var/lib/app/cache");
  v1::Resource* d = AddDir(&b, "existing-dir", "/var/lib/app/data");
  d->set_owner("nobody");
  d->set_mode("0777");
  auto results = Apply(b);
  ASSERT_EQ(results.size(), 2u);
  ExpectRefusedLink(results[0], "new-dir", "/var/lib/app");
  ExpectRefusedLink(results[1], "existing-dir", "/var/lib/app");
  EXPECT_EQ(Entries(outside()), std::vector<std::string>{"data"});
  struct stat after;
  ASSERT_EQ(::stat((outside() / "data").c_str(), &after), 0);
  EXPECT_EQ(after.st_uid, before.st_uid);
  EXPECT_EQ(after.st_mode, before.st_mode);
}

// state: absent through a symlinked parent: the file outside stays, and so
// does a directory outside.
TEST_F(PathWalkTest, DeleteBelowASymlinkedParentRemovesNothingOutside) {
  fs::create_directories(root() / "etc");
  fs::create_directory_symlink(outside(), root() / "etc/webapp");
  WriteFileOrDie(outside() / "old.conf", "keep", 0644);
  fs::create_directories(outside() / "old.d");
  v1::PolicyBundle b;
  AddFile(&b, "old-file", "/etc/webapp/old.conf")->set_state("absent");
  AddDir(&b, "old-dir", "/etc/webapp/old.d")->set_state("absent");
  auto results = Apply(b);
  ASSERT_EQ(results.size(), 2u);
  ExpectRefusedLink(results[0], "old-file", "/etc/webapp");
  ExpectRefusedLink(results[1], "old-dir", "/etc/webapp");
  EXPECT_EQ(ReadFileOrEmpty(outside() / "old.conf"), "keep");
  EXPECT_TRUE(fs::is_directory(outside() / "old.d"));
}

// The target itself is a link: refused (not replaced, not followed), for a
// file, a file to delete, and a directory.
TEST_F(PathWalkTest, SymlinkAsTheFinalComponentIsRefusedAndLeftAsItIs) {
  fs::create_directories(root() / "etc/webapp");
  WriteFileOrDie(outside() / "victim", "root-owned", 0600);
  fs::create_symlink(outside() / "victim", root() / "etc/webapp/config.yaml");
  fs::create_symlink(outside() / "victim", root() / "etc/webapp/old.conf");
  fs::create_directory_symlink(outside(), root() / "etc/webapp/data");
  v1::PolicyBundle b;
  AddFile(&b, "config", "/etc/webapp/config.yaml");
  AddFile(&b, "old", "/etc/webapp/old.conf")->set_state("absent");
  AddDir(&b, "data", "/etc/webapp/data")->set_mode("0777");
  auto results = Apply(b);
  ASSERT_EQ(results.size(), 3u);
  ExpectRefusedLink(results[0], "config", "/etc/webapp/config.yaml");
  ExpectRefusedLink(results[1], "old", "/etc/webapp/old.conf");
  ExpectRefusedLink(results[2], "data", "/etc/webapp/data");
  EXPECT_EQ(ReadFileOrEmpty(outside() / "victim"), "root-owned");
  EXPECT_TRUE(fs::is_symlink(root() / "etc/webapp/config.yaml"));
  EXPECT_TRUE(fs::is_symlink(root() / "etc/webapp/old.conf"));
  struct stat st;
  ASSERT_EQ(::stat(outside().c_str(), &st), 0);
  EXPECT_NE(st.st_mode & 07777, 0777u);
  // No temp file was left next to the links.
  EXPECT_EQ(Entries(root() / "etc/webapp"),
            (std::vector<std::string>{"config.yaml", "data", "old.conf"}));
}

// A hard link as the target, to a file outside the root with the very
// content the resource wants but another mode: the target is replaced by a
// new inode (rename), the linked file keeps its mode, owner and content.
TEST_F(PathWalkTest, HardLinkedTargetIsReplacedAndTheLinkedInodeIsNotModified) {
  fs::create_directories(root() / "etc");
  const std::string content = std::string("password: ") + kCanary + "\n";
  WriteFileOrDie(outside() / "victim", content, 0644);
  WriteFileOrDie(outside() / "other", "other content", 0644);
  fs::create_hard_link(outside() / "victim", root() / "etc/same.conf");
  fs::create_hard_link(outside() / "other", root() / "etc/differs.conf");
  v1::PolicyBundle b;
  AddFile(&b, "same", "/etc/same.conf")->set_mode("0600");
  AddFile(&b, "differs", "/etc/differs.conf")->set_mode("0600");
  auto results = Apply(b);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& res : results) EXPECT_EQ(res.status(), "changed") << res.message();
  struct stat victim, other, same, differs;
  ASSERT_EQ(::stat((outside() / "victim").c_str(), &victim), 0);
  ASSERT_EQ(::stat((outside() / "other").c_str(), &other), 0);
  ASSERT_EQ(::stat((root() / "etc/same.conf").c_str(), &same), 0);
  ASSERT_EQ(::stat((root() / "etc/differs.conf").c_str(), &differs), 0);
  EXPECT_EQ(victim.st_mode & 07777, 0644u);
  EXPECT_EQ(other.st_mode & 07777, 0644u);
  EXPECT_EQ(ReadFileOrEmpty(outside() / "victim"), content);
  EXPECT_EQ(ReadFileOrEmpty(outside() / "other"), "other content");
  EXPECT_NE(same.st_ino, victim.st_ino);
  EXPECT_NE(differs.st_ino, other.st_ino);
  EXPECT_EQ(same.st_mode & 07777, 0600u);
  EXPECT_EQ(same.st_nlink, 1u);
  EXPECT_EQ(ReadFileOrEmpty(root() / "etc/differs.conf"), content);
}

// The owner-swaps-a-directory race: /srv/app is owned by the app's user (a
// directory resource with `owner:`); after the worker inspected the target
// and while it fetches the value, that user renames the real directory away
// and puts a link to a directory of root's in its place. The write must not
// follow it.
TEST_F(PathWalkTest, DirectorySwappedForASymlinkAfterInspectionIsRefused) {
  fs::create_directories(root() / "srv/app/conf");
  fs::create_directories(outside() / "conf");
  WriteFileOrDie(outside() / "conf/app.conf", "root-owned", 0600);
  RacingValues racing([&] {
    fs::rename(root() / "srv/app", root() / "srv/app.moved");
    fs::create_directory_symlink(outside(), root() / "srv/app");
  });
  ASSERT_TRUE(racing.Put("app/db_pw", Bytes(kCanary)).ok());
  v1::PolicyBundle b;
  AddDir(&b, "app-dir", "/srv/app")->set_owner("nobody");
  AddFile(&b, "app-config", "/srv/app/conf/app.conf");
  auto results = Apply(b, &racing);
  ASSERT_EQ(results.size(), 2u);
  EXPECT_EQ(results[0].status(), "changed") << results[0].message();
  ExpectRefusedLink(results[1], "app-config", "/srv/app");
  EXPECT_EQ(ReadFileOrEmpty(outside() / "conf/app.conf"), "root-owned");
  EXPECT_EQ(Entries(outside()), (std::vector<std::string>{"conf", "conf/app.conf"}));
  EXPECT_EQ(Entries(root() / "srv/app.moved"), std::vector<std::string>{"conf"});
}

// An exec secret_file goes to <apply-root>/tmp when it exists: planted as a
// link to a directory outside, the value is not written there and the
// command does not run.
TEST_F(PathWalkTest, SecretFileThroughASymlinkedApplyRootTmpIsRefused) {
  fs::create_directory_symlink(outside(), root() / "tmp");
  v1::PolicyBundle b;
  v1::Resource* r = b.add_resources();
  r->set_name("with-secret-file");
  r->set_type("exec");
  r->set_secret_file("__VIGO_SECRET__app/db_pw__END__");
  b.add_secret_refs("app/db_pw");
  const std::string ran = (work_.path() / "ran").string();
  for (const char* a : {"/bin/cp", "{{ .SecretFile }}", ran.c_str()}) r->add_command(a);
  auto results = Apply(b);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status(), "failed") << results[0].message();
  EXPECT_NE(results[0].message().find("resource 'with-secret-file'"), std::string::npos)
      << results[0].message();
  EXPECT_NE(results[0].message().find("/tmp is a symbolic link"), std::string::npos)
      << results[0].message();
  EXPECT_FALSE(fs::exists(ran));
  EXPECT_EQ(Entries(outside()), std::vector<std::string>{});
}

// The walk on its own, without openat2's fast path deciding: a parent that
// is a regular file is named as such, a missing one is NOT_FOUND, and a
// link is named at its own segment (not the target's).
TEST(OpenParentDir, NamesTheComponentThatStopsTheWalk) {
  TempDir t;
  fs::create_directories(t.path() / "r/a");
  WriteFileOrDie(t.path() / "r/a/file", "x", 0644);
  fs::create_directory_symlink(t.path(), t.path() / "r/a/link");
  sandbox::UniqueFd root(::open((t.path() / "r").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(root);
  const std::string rs = (t.path() / "r").string();
  auto through_file = ParseTargetPath(root.get(), rs, "/a/file/x", "target_path");
  ASSERT_TRUE(through_file.ok());
  absl::Status s = OpenParentDir(*through_file, true).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_NE(s.message().find("/a/file exists and is not a directory"), std::string::npos) << s;
  auto missing = ParseTargetPath(root.get(), rs, "/a/none/x", "target_path");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(OpenParentDir(*missing, false).status().code(), absl::StatusCode::kNotFound);
  auto through_link = ParseTargetPath(root.get(), rs, "/a/link/b/c/x", "target_path");
  ASSERT_TRUE(through_link.ok());
  s = OpenParentDir(*through_link, true).status();
  EXPECT_NE(s.message().find("/a/link is a symbolic link"), std::string::npos) << s;
  EXPECT_FALSE(fs::exists(t.path() / "b"));
  // ".." never reaches the walk; the root itself is not a target.
  EXPECT_EQ(ParseTargetPath(root.get(), rs, "/a/../../x", "target_path").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseTargetPath(root.get(), rs, "/", "target_path").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// The fallback where the kernel has no openat2 (ENOSYS, forced here with a
// seccomp filter in a child): the per-segment walk alone still opens real
// directories, creates missing ones, and refuses a link naming it.
TEST(OpenParentDir, WithoutOpenat2ThePerSegmentWalkIsAsStrict) {
  TempDir t;
  fs::create_directories(t.path() / "r/a/b");
  fs::create_directories(t.path() / "outside");
  fs::create_directory_symlink(t.path() / "outside", t.path() / "r/a/link");
  const std::string rs = (t.path() / "r").string();
  pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == nullptr ||
        seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(openat2), 0) != 0 ||
        ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || seccomp_load(ctx) != 0) {
      ::_exit(10);
    }
    sandbox::UniqueFd root(::open(rs.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!root) ::_exit(11);
    // openat2 is really gone.
    if (sandbox::OpenBeneath(root.get(), "a", O_RDONLY | O_DIRECTORY) >= 0 || errno != ENOSYS) {
      ::_exit(12);
    }
    auto existing = ParseTargetPath(root.get(), rs, "/a/b/f", "target_path");
    if (!existing.ok() || !OpenParentDir(*existing, false).ok()) ::_exit(13);
    auto created = ParseTargetPath(root.get(), rs, "/a/new/deeper/f", "target_path");
    if (!created.ok() || !OpenParentDir(*created, true).ok()) ::_exit(14);
    auto linked = ParseTargetPath(root.get(), rs, "/a/link/x/f", "target_path");
    if (!linked.ok()) ::_exit(15);
    absl::Status s = OpenParentDir(*linked, true).status();
    if (s.code() != absl::StatusCode::kFailedPrecondition ||
        s.message().find("/a/link is a symbolic link") == std::string_view::npos) {
      ::_exit(16);
    }
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_TRUE(fs::is_directory(t.path() / "r/a/new/deeper"));
  EXPECT_EQ(Entries(t.path() / "outside"), std::vector<std::string>{});
}

}  // namespace
}  // namespace vigo::worker
