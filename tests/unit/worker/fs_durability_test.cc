// The directory bookkeeping behind the apply engine's batched durability
// (agent-worker/fs_ops.h, FlushWrites in apply.cc): OpenParentDir reports the
// parent of every directory it creates, so their entries get fsynced;
// SyncDirs names every directory it could not fsync; a batch of files is
// linked only after PrepareWrite + a data sync, with final owner/mode.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <set>
#include <string>

#include "agent-worker/apply.h"
#include "agent-worker/fs_ops.h"
#include "gtest/gtest.h"
#include "tests/support/test_env.h"

namespace vigo::worker {
namespace {

namespace fs = std::filesystem;
using vigo::testing::TempDir;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST(FsDurability, OpenParentDirReportsTheParentOfEachDirectoryItCreates) {
  TempDir t;
  const std::string base = t.path().string();
  fs::create_directories(t.path() / "a");
  sandbox::UniqueFd root(::open(base.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  ASSERT_TRUE(root);
  auto target = ParseTargetPath(root.get(), base, "/a/b/c/f.conf", "target_path");
  ASSERT_TRUE(target.ok()) << target.status();
  std::set<std::string> created_in;
  ASSERT_TRUE(OpenParentDir(*target, /*create=*/true, &created_in).ok());
  EXPECT_EQ(created_in, (std::set<std::string>{base + "/a", base + "/a/b"}));
  // Nothing new: nothing to sync.
  std::set<std::string> again;
  ASSERT_TRUE(OpenParentDir(*target, /*create=*/true, &again).ok());
  EXPECT_TRUE(again.empty());
}

TEST(FsDurability, SyncDirsNamesEveryDirectoryItCouldNotSync) {
  TempDir t;
  const std::string ok = t.path().string();
  const std::string gone = ok + "/missing";
  std::set<std::string> dirs = {ok, gone};
  std::set<std::string> failed;
  absl::Status s = SyncDirs(&dirs, &failed);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(std::string(s.message()).find(gone), std::string::npos) << s;
  EXPECT_EQ(failed, std::set<std::string>{gone});
  EXPECT_TRUE(dirs.empty());
}

TEST(FsDurability, PreparedFileIsInvisibleUntilCommittedThenCompleteWithItsMode) {
  TempDir t;
  const std::string path = (t.path() / "f.conf").string();
  auto w = PrepareWrite(path, Bytes("password = x\n"), 0640, -1, -1);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_FALSE(fs::exists(path));  // written, not yet durable: not under its name
  ASSERT_EQ(::syncfs(w->fd.get()), 0);
  std::set<std::string> dirs;
  ASSERT_TRUE(CommitWrite(*w, &dirs).ok());
  EXPECT_EQ(dirs, std::set<std::string>{t.path().string()});  // directory fsync deferred
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(vigo::testing::ReadFileOrEmpty(path), "password = x\n");
}

TEST(FsDurability, ApplyOfManyFilesLinksEveryOneWithContentAndMode) {
  // More files than one flush batch (128), in directories the apply creates.
  TempDir t;
  v1::PolicyBundle bundle;
  MapValueSource values;
  for (int i = 0; i < 300; ++i) {
    v1::Resource* r = bundle.add_resources();
    r->set_name("f" + std::to_string(i));
    r->set_type("file");
    r->set_target_path("/etc/d" + std::to_string(i % 3) + "/f" + std::to_string(i));
    r->set_mode("0640");
    r->set_content("v = __VIGO_SECRET__s/" + std::to_string(i) + "__END__\n");
    bundle.add_secret_refs("s/" + std::to_string(i));
    ASSERT_TRUE(values.Put("s/" + std::to_string(i), Bytes("value-" + std::to_string(i))).ok());
  }
  ApplyOptions opts;
  opts.apply_root = t.path().string();
  ApplyEngine engine(opts);
  auto results = engine.Apply(bundle, values);
  ASSERT_EQ(results.size(), 300u);
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(results[i].status(), "changed") << results[i].message();
    const fs::path p = t.path() / ("etc/d" + std::to_string(i % 3)) / ("f" + std::to_string(i));
    EXPECT_EQ(vigo::testing::ReadFileOrEmpty(p), "v = value-" + std::to_string(i) + "\n");
    struct stat st;
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
  }
  for (const auto& e : fs::recursive_directory_iterator(t.path())) {
    EXPECT_EQ(e.path().filename().string().find(".vigo-tmp"), std::string::npos) << e.path();
  }
}

}  // namespace
}  // namespace vigo::worker
