// agent-worker/applier.h: the capabilities and the Landlock domain computed
// from a bundle (the forked applier itself is tested end to end in
// tests/sandbox/applier_landlock_test.cc).
#include "agent-worker/applier.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace vigo::worker {
namespace {

namespace fs = std::filesystem;

v1::Resource* Add(v1::PolicyBundle* b, const std::string& type, const std::string& path,
                  const std::string& mode = "") {
  v1::Resource* r = b->add_resources();
  r->set_name(path);
  r->set_type(type);
  r->set_target_path(path);
  r->set_mode(mode);
  return r;
}

bool HasCap(const std::vector<int>& caps, int c) {
  return std::find(caps.begin(), caps.end(), c) != caps.end();
}

TEST(ApplierCapabilitiesTest, ABundleOfCommandsOnlyKeepsNoCapability) {
  v1::PolicyBundle b;
  v1::Resource* e = b.add_resources();
  e->set_type("exec");
  e->add_command("/bin/true");
  EXPECT_TRUE(ApplierCapabilities(b).empty());
}

TEST(ApplierCapabilitiesTest, FilesKeepTheFileCapabilitiesAndFsetidOnlyForSetIdModes) {
  v1::PolicyBundle b;
  Add(&b, "file", "/etc/a.conf", "0644");
  std::vector<int> caps = ApplierCapabilities(b);
  EXPECT_TRUE(HasCap(caps, CAP_CHOWN));
  EXPECT_TRUE(HasCap(caps, CAP_DAC_OVERRIDE));
  EXPECT_TRUE(HasCap(caps, CAP_FOWNER));
  EXPECT_FALSE(HasCap(caps, CAP_FSETID));
  Add(&b, "file", "/usr/local/bin/tool", "4755");
  EXPECT_TRUE(HasCap(ApplierCapabilities(b), CAP_FSETID));
}

class LandlockDomainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vigo-domain-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    fs::create_directories(root_ / "etc/webapp");
    fs::create_directories(root_ / "srv");
    fs::create_directory_symlink("/etc", root_ / "srv/link");
    root_fd_ = ::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(root_fd_, 0);
  }
  void TearDown() override {
    if (root_fd_ >= 0) ::close(root_fd_);
    fs::remove_all(root_);
  }
  std::vector<std::string> Domain(const v1::PolicyBundle& b) {
    std::vector<sandbox::UniqueFd> fds;
    auto d = LandlockDomain(root_fd_, root_.string(), b, &fds);
    EXPECT_TRUE(d.ok()) << d.status();
    if (!d.ok()) return {};
    EXPECT_EQ(fds.size(), d->size());
    return *d;
  }
  fs::path root_;
  int root_fd_ = -1;
};

TEST_F(LandlockDomainTest, TheParentOfEachTargetOnceAndNoCommand) {
  v1::PolicyBundle b;
  Add(&b, "file", "/etc/webapp/a.conf");
  Add(&b, "file", "/etc/webapp/b.conf");
  Add(&b, "directory", "/etc/webapp/conf.d");
  v1::Resource* e = b.add_resources();
  e->set_type("exec");
  e->set_target_path("/var/lib");  // not a target: commands are not the applier's
  EXPECT_EQ(Domain(b), std::vector<std::string>{(root_ / "etc/webapp").string()});
}

// #14 review: the rule used to be on the nearest existing ancestor, so a
// bundle creating /etc/newapp/x.conf let the applier write anywhere in /etc
// (/etc/ld.so.preload). The missing parents are made first and the rule is
// on the target's own parent.
TEST_F(LandlockDomainTest, AMissingParentIsMadeSoTheRuleIsNeverOnAnAncestor) {
  v1::PolicyBundle b;
  Add(&b, "file", "/etc/newapp/sub/x.conf");
  Add(&b, "file", "/opt/tool/y");
  Add(&b, "directory", "/var/lib/app");
  EXPECT_EQ(Domain(b), (std::vector<std::string>{(root_ / "etc/newapp/sub").string(),
                                                 (root_ / "opt/tool").string(),
                                                 (root_ / "var/lib").string()}));
  for (const char* made : {"etc/newapp/sub", "opt/tool", "var/lib"}) {
    struct stat st;
    ASSERT_EQ(::stat((root_ / made).c_str(), &st), 0) << made;
    EXPECT_TRUE(S_ISDIR(st.st_mode)) << made;
    EXPECT_EQ(st.st_mode & 07777, 0755u) << made;
  }
  // The directory resource's own directory and the files are the engine's.
  EXPECT_FALSE(fs::exists(root_ / "var/lib/app"));
  EXPECT_FALSE(fs::exists(root_ / "etc/newapp/sub/x.conf"));
}

TEST_F(LandlockDomainTest, ATargetToBeRemovedMakesNothing) {
  v1::PolicyBundle b;
  Add(&b, "file", "/gone/dir/x")->set_state("absent");
  Add(&b, "file", "/etc/webapp/old.conf")->set_state("absent");
  EXPECT_EQ(Domain(b), std::vector<std::string>{(root_ / "etc/webapp").string()});
  EXPECT_FALSE(fs::exists(root_ / "gone"));
}

TEST_F(LandlockDomainTest, ALinkOnThePathIsNeverFollowedAndAddsNoRule) {
  v1::PolicyBundle b;
  Add(&b, "file", "/srv/link/passwd");      // /srv/link -> /etc on the host
  Add(&b, "file", "/srv/link/new/passwd");  // nothing made through the link
  EXPECT_EQ(Domain(b), std::vector<std::string>{});
  EXPECT_FALSE(fs::exists("/etc/new/passwd"));
}

}  // namespace
}  // namespace vigo::worker
