// Durable atomic writes: a writer killed mid-write leaves the old file intact
// and no temp file; modes and owners are set before content exists.
#include "agent-worker/fs_ops.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>
#include <vector>

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

TEST(FsOps, ParseMode) {
  EXPECT_EQ(*ParseMode("0640"), 0640u);
  EXPECT_EQ(*ParseMode("755"), 0755u);
  EXPECT_FALSE(ParseMode("").ok());
  EXPECT_FALSE(ParseMode("0999").ok());
  EXPECT_FALSE(ParseMode("rw-r--r--").ok());
  EXPECT_FALSE(ParseMode("017777").ok());
}

TEST(FsOps, WriteReplacesAtomicallyWithMode) {
  TempDir d;
  std::string p = (d.path() / "f").string();
  ASSERT_TRUE(WriteFileAtomic(p, Bytes("one"), 0640, -1, -1).ok());
  EXPECT_EQ(ReadFileOrEmpty(p), "one");
  struct stat st;
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  ASSERT_TRUE(WriteFileAtomic(p, Bytes("two!"), 0600, -1, -1).ok());
  EXPECT_EQ(ReadFileOrEmpty(p), "two!");
  ASSERT_EQ(::stat(p.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_FALSE(fs::exists(TempNameFor(p)));
}

TEST(FsOps, ReplacesASymlinkInsteadOfFollowingIt) {
  TempDir d;
  std::string victim = (d.path() / "victim").string();
  vigo::testing::WriteFileOrDie(victim, "untouched");
  std::string p = (d.path() / "link").string();
  ASSERT_EQ(::symlink(victim.c_str(), p.c_str()), 0);
  ASSERT_TRUE(WriteFileAtomic(p, Bytes("new"), 0600, -1, -1).ok());
  EXPECT_EQ(ReadFileOrEmpty(victim), "untouched");
  EXPECT_FALSE(fs::is_symlink(p));
  EXPECT_EQ(ReadFileOrEmpty(p), "new");
}

TEST(FsOps, KilledWriterLeavesNoPartialAndNoTempFile) {
  TempDir d;
  std::string p = (d.path() / "big.conf").string();
  ASSERT_TRUE(WriteFileAtomic(p, Bytes("old content"), 0600, -1, -1).ok());
  constexpr size_t kBig = size_t{256} << 20;  // long enough to be interrupted
  for (int delay_ms : {0, 2, 10, 40}) {
    int ready[2];
    ASSERT_EQ(::pipe(ready), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      std::vector<uint8_t> big(kBig, 'x');
      (void)!::write(ready[1], "r", 1);  // about to write
      (void)WriteFileAtomic(p, big, 0600, -1, -1);
      ::_exit(0);
    }
    char c;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
    ::close(ready[0]);
    ::close(ready[1]);
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    // Either the old file, or (if the writer won the race) the complete new one.
    std::string now = ReadFileOrEmpty(p);
    if (now != "old content") {
      EXPECT_EQ(now.size(), kBig) << "partial file after kill at " << delay_ms << " ms";
      ASSERT_TRUE(WriteFileAtomic(p, Bytes("old content"), 0600, -1, -1).ok());
    }
    for (const auto& e : fs::directory_iterator(d.path())) {
      EXPECT_EQ(e.path().filename(), "big.conf") << "left behind: " << e.path();
    }
  }
}

TEST(FsOps, ReadFileSecretRefusesSymlinksAndLimits) {
  TempDir d;
  std::string p = (d.path() / "f").string();
  vigo::testing::WriteFileOrDie(p, "0123456789");
  auto b = ReadFileSecret(p, 100);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->size(), 10u);
  EXPECT_FALSE(ReadFileSecret(p, 5).ok());
  std::string l = (d.path() / "l").string();
  ASSERT_EQ(::symlink(p.c_str(), l.c_str()), 0);
  EXPECT_FALSE(ReadFileSecret(l, 100).ok());
}

}  // namespace
}  // namespace vigo::worker
