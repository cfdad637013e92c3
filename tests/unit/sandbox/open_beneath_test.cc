// OpenBeneath: one openat2 that refuses symlinks anywhere in the path and any
// escape from the directory.
#include "sandbox/open_beneath.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "sandbox/unique_fd.h"
#include "tests/support/test_env.h"

namespace vigo::sandbox {
namespace {

namespace fs = std::filesystem;
using vigo::testing::TempDir;

class OpenBeneathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(tmp_.path() / "vault" / "app");
    std::ofstream(tmp_.path() / "vault" / "app" / "pw") << "ciphertext";
    std::ofstream(tmp_.path() / "outside") << "not yours";
    dir_ = UniqueFd(::open((tmp_.path() / "vault").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    ASSERT_TRUE(dir_);
  }
  int Errno(const char* rel) {
    UniqueFd fd(OpenBeneath(dir_.get(), rel, O_RDONLY));
    return fd ? 0 : errno;
  }
  TempDir tmp_;
  UniqueFd dir_;
};

TEST_F(OpenBeneathTest, OpensAPlainPathBelowTheDirectory) {
  UniqueFd fd(OpenBeneath(dir_.get(), "app/pw", O_RDONLY));
  ASSERT_TRUE(fd) << std::strerror(errno);
  char buf[16] = {};
  EXPECT_EQ(::read(fd.get(), buf, sizeof(buf)), 10);
  EXPECT_EQ(::fcntl(fd.get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
}

TEST_F(OpenBeneathTest, RefusesASymlinkInTheLastSegment) {
  fs::create_symlink(tmp_.path() / "outside", tmp_.path() / "vault" / "app" / "link");
  EXPECT_EQ(Errno("app/link"), ELOOP);
}

TEST_F(OpenBeneathTest, RefusesASymlinkedDirectorySegment) {
  fs::create_directory_symlink(tmp_.path() / "vault" / "app", tmp_.path() / "vault" / "alias");
  EXPECT_EQ(Errno("alias/pw"), ELOOP);
}

TEST_F(OpenBeneathTest, RefusesEscapes) {
  EXPECT_EQ(Errno("../outside"), EXDEV);
  EXPECT_EQ(Errno("app/../../outside"), EXDEV);
  EXPECT_EQ(Errno((tmp_.path() / "outside").c_str()), EXDEV);
}

TEST_F(OpenBeneathTest, MissingPathsAndCreateAreErrors) {
  EXPECT_EQ(Errno("app/none"), ENOENT);
  EXPECT_EQ(Errno("app/pw/x"), ENOTDIR);
  UniqueFd fd(OpenBeneath(dir_.get(), "app/new", O_RDWR | O_CREAT));
  EXPECT_FALSE(fd);
  EXPECT_EQ(errno, EINVAL);
  EXPECT_FALSE(fs::exists(tmp_.path() / "vault" / "app" / "new"));
}

}  // namespace
}  // namespace vigo::sandbox
