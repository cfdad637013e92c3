// sandbox/landlock.h: a restricted process writes beneath its rules and
// nowhere else; reads stay allowed. Each case restricts a forked child (the
// restriction is for life), the parent checks what the child managed.
#include "sandbox/landlock.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"

namespace vigo::sandbox {
namespace {

namespace fs = std::filesystem;

class LandlockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (LandlockAbi() < 1) GTEST_SKIP() << "kernel without Landlock";
    char tmpl[] = "/tmp/vigo-landlock-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ / "allowed" / "sub");
    fs::create_directories(dir_ / "other");
    std::ofstream(dir_ / "other" / "existing") << "before";
    std::ofstream(dir_ / "allowed" / "existing") << "before";
    std::ofstream(dir_ / "only-file") << "before";
  }
  void TearDown() override {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  // Runs `body` in a child restricted to writes beneath `allowed`; returns
  // the child's exit status (0 ok, else the errno of the failed step + 100).
  template <typename F>
  int InRestrictedChild(const std::vector<fs::path>& allowed, F body) {
    pid_t pid = ::fork();
    if (pid == 0) {
      if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) ::_exit(90);
      auto rs = LandlockRuleset::ForWrites();
      if (!rs.ok()) ::_exit(91);
      for (const fs::path& p : allowed) {
        if (!rs->AllowWritesBeneathPath(p.string()).ok()) ::_exit(92);
      }
      if (!rs->RestrictSelf().ok()) ::_exit(93);
      ::_exit(body());
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
  }

  static int Errno(int rc) { return rc < 0 ? errno : 0; }

  fs::path dir_;
};

TEST_F(LandlockTest, WriteAccessGrowsWithTheAbi) {
  EXPECT_EQ(LandlockWriteAccess(0), 0u);
  EXPECT_LT(LandlockWriteAccess(1), LandlockWriteAccess(2));
  EXPECT_NE(LandlockAccessNames(LandlockWriteAccess(3)).find("truncate"), std::string::npos);
  EXPECT_EQ(LandlockAccessNames(LandlockWriteAccess(1)).find("refer"), std::string::npos);
  EXPECT_EQ(LandlockAccessNames(LandlockWriteAccess(LandlockAbi())).find("read_file"),
            std::string::npos)
      << "reads must not be handled";
}

TEST_F(LandlockTest, CreatingAFileOutsideTheRulesIsRefused) {
  fs::path outside = dir_ / "other" / "new";
  int rc = InRestrictedChild({dir_ / "allowed"}, [&] {
    return Errno(::open(outside.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  });
  EXPECT_EQ(rc, EACCES);
  EXPECT_FALSE(fs::exists(outside));
}

TEST_F(LandlockTest, WritingAnExistingFileOutsideTheRulesIsRefused) {
  fs::path outside = dir_ / "other" / "existing";
  int rc = InRestrictedChild({dir_ / "allowed"},
                             [&] { return Errno(::open(outside.c_str(), O_WRONLY | O_CLOEXEC)); });
  EXPECT_EQ(rc, EACCES);
}

TEST_F(LandlockTest, RemovingRenamingOrLinkingOutsideTheRulesIsRefused) {
  fs::path victim = dir_ / "other" / "existing";
  EXPECT_EQ(InRestrictedChild({dir_ / "allowed"}, [&] { return Errno(::unlink(victim.c_str())); }),
            EACCES);
  fs::path moved = dir_ / "allowed" / "moved";
  EXPECT_EQ(InRestrictedChild({dir_ / "allowed"},
                              [&] { return Errno(::rename(victim.c_str(), moved.c_str())); }),
            EACCES)
      << "rename out of a denied directory";
  EXPECT_EQ(InRestrictedChild(
                {dir_ / "allowed"},
                [&] { return Errno(::symlink("/etc/shadow", (dir_ / "other" / "ln").c_str())); }),
            EACCES);
  EXPECT_TRUE(fs::exists(victim));
}

TEST_F(LandlockTest, WritesBeneathARuleAndReadsAnywhereWork) {
  fs::path inside = dir_ / "allowed" / "sub" / "new";
  fs::path readable = dir_ / "other" / "existing";
  int rc = InRestrictedChild({dir_ / "allowed"}, [&] {
    int fd = ::open(inside.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return 100 + errno;
    ::close(fd);
    if (::rename(inside.c_str(), (dir_ / "allowed" / "existing").c_str()) != 0) return 100 + errno;
    if (::mkdir((dir_ / "allowed" / "d").c_str(), 0700) != 0) return 100 + errno;
    int r = ::open(readable.c_str(), O_RDONLY | O_CLOEXEC);
    if (r < 0) return 100 + errno;
    ::close(r);
    return 0;
  });
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(fs::is_directory(dir_ / "allowed" / "d"));
}

TEST_F(LandlockTest, ARuleOnAFileAllowsWritingItButNotItsDirectory) {
  fs::path file = dir_ / "only-file";
  int rc = InRestrictedChild({file}, [&] {
    int fd = ::open(file.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) return 100 + errno;
    ::close(fd);
    return Errno(::open((dir_ / "sibling").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  });
  EXPECT_EQ(rc, EACCES);
  EXPECT_FALSE(fs::exists(dir_ / "sibling"));
}

TEST_F(LandlockTest, AMissingRulePathIsNotFoundNamingIt) {
  auto rs = LandlockRuleset::ForWrites();
  ASSERT_TRUE(rs.ok()) << rs.status();
  absl::Status s = rs->AllowWritesBeneathPath((dir_ / "nope").string());
  EXPECT_TRUE(absl::IsNotFound(s)) << s;
  EXPECT_NE(s.message().find("nope"), std::string::npos) << s;
  EXPECT_TRUE(rs->allowed().empty());
}

}  // namespace
}  // namespace vigo::sandbox
