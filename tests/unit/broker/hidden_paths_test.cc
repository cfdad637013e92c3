// What the worker's mount namespace covers: the key, the state dir, every
// `vigo --hide PATH`, and /srv/vigo and /var/lib/vigo when the host has them.
// The host is simulated by a map from path to canonical path, so the default
// list is tested without creating /srv/vigo on the machine.
#include "agent-broker/hidden_paths.h"

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vigo::broker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class HiddenPathsTest : public ::testing::Test {
 protected:
  HiddenPathsTest() {
    request_.key_file = "/etc/vigo/agent/key.pem";
    request_.state_dir = "/var/lib/vigo-agent";
    request_.cwd = "/home/op";
    exists_ = {{"/etc/vigo/agent/key.pem", "/etc/vigo/agent/key.pem"},
               {"/var/lib/vigo-agent", "/var/lib/vigo-agent"},
               {"/tmp", "/tmp"}};
  }

  absl::StatusOr<std::vector<std::string>> Compute() {
    return ComputeHiddenPaths(request_, [this](const std::string& p) -> std::optional<std::string> {
      auto it = exists_.find(p);
      if (it == exists_.end()) return std::nullopt;
      return it->second;
    });
  }
  std::string Error() {
    auto r = Compute();
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(r.status().message());
  }

  HiddenPathsRequest request_;
  std::map<std::string, std::string> exists_;
};

TEST_F(HiddenPathsTest, DefaultsAreHiddenOnlyWhenTheyExist) {
  auto r = Compute();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, ElementsAre("/etc/vigo/agent/key.pem", "/var/lib/vigo-agent"));

  exists_["/srv/vigo"] = "/srv/vigo";  // a co-located vigosrv
  r = Compute();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, ElementsAre("/etc/vigo/agent/key.pem", "/var/lib/vigo-agent", "/srv/vigo"));

  exists_["/var/lib/vigo"] = "/var/lib/vigo";
  r = Compute();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, ElementsAre("/etc/vigo/agent/key.pem", "/var/lib/vigo-agent", "/srv/vigo",
                              "/var/lib/vigo"));
}

// A symlinked default is hidden where it points (as mount(2) would cover it).
TEST_F(HiddenPathsTest, ASymlinkedDefaultIsHiddenAtItsTarget) {
  exists_["/srv/vigo"] = "/data/vigosrv";
  auto r = Compute();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, ElementsAre("/etc/vigo/agent/key.pem", "/var/lib/vigo-agent", "/data/vigosrv"));
}

TEST_F(HiddenPathsTest, ExplicitPathsAreAddedInOrderAndMadeAbsolute) {
  exists_["/home/op/private"] = "/home/op/private";
  exists_["/etc/ssl/private"] = "/etc/ssl/private";
  request_.hide = {"private/", "/etc/ssl/./private"};
  auto r = Compute();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, ElementsAre("/etc/vigo/agent/key.pem", "/var/lib/vigo-agent", "/home/op/private",
                              "/etc/ssl/private"));
}

TEST_F(HiddenPathsTest, AMissingExplicitPathIsAnErrorNamingIt) {
  request_.hide = {"/srv/vigo-typo"};
  EXPECT_THAT(Error(), HasSubstr("--hide /srv/vigo-typo: no such file or directory"));
}

TEST_F(HiddenPathsTest, AColonOrAnEmptyPathOrRootIsRefused) {
  exists_["/srv/a:b"] = "/srv/a:b";
  request_.hide = {"/srv/a:b"};
  EXPECT_THAT(Error(), HasSubstr("--hide /srv/a:b: a path to hide may not contain ':'"));
  request_.hide = {""};
  EXPECT_THAT(Error(), HasSubstr("--hide: empty path"));
  exists_["/"] = "/";
  request_.hide = {"/"};
  EXPECT_THAT(Error(), HasSubstr("would hide the whole file system"));
  request_.hide = {"../.."};  // from /home/op
  EXPECT_THAT(Error(), HasSubstr("would hide the whole file system"));
  // A link whose target has a ':' cannot be carried to the worker either.
  exists_["/srv/link"] = "/srv/x:y";
  request_.hide = {"/srv/link"};
  EXPECT_THAT(Error(), HasSubstr("/srv/x:y: a path the worker must not see may not contain ':'"));
}

// The key inside a hidden directory: the outer cover hides it, and listing it
// too would make the worker fail (the inner path is gone once the outer
// cover is mounted). Same for duplicates, in any order.
TEST_F(HiddenPathsTest, PathsBeneathAnotherHiddenPathAreDropped) {
  request_.key_file = "/srv/vigo/agent/key.pem";
  request_.state_dir = "/var/lib/vigo";
  exists_["/srv/vigo/agent/key.pem"] = "/srv/vigo/agent/key.pem";
  exists_["/srv/vigo"] = "/srv/vigo";
  exists_["/var/lib/vigo"] = "/var/lib/vigo";
  exists_["/srv/vigo/tls"] = "/srv/vigo/tls";
  request_.hide = {"/srv/vigo/tls", "/srv/vigo", "/var/lib/vigo"};
  auto r = Compute();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(*r, ElementsAre("/var/lib/vigo", "/srv/vigo"));
}

TEST_F(HiddenPathsTest, AnApplyRootBeneathAHiddenPathIsRefused) {
  exists_["/srv/stage"] = "/srv/stage";
  request_.hide = {"/srv/stage"};
  request_.apply_root = "/srv/stage/root";
  EXPECT_THAT(Error(), HasSubstr("--apply-root /srv/stage/root is at or beneath /srv/stage, which "
                                 "--hide hides from the worker"));
  request_.apply_root = "/srv/stage";
  EXPECT_THAT(Error(), HasSubstr("--apply-root /srv/stage is at or beneath /srv/stage"));
  // Under the state dir, or under a default the operator never named.
  request_.hide.clear();
  request_.apply_root = "/var/lib/vigo-agent/root";
  EXPECT_THAT(Error(), HasSubstr("which --state-dir hides"));
  exists_["/srv/vigo"] = "/srv/vigo";
  request_.apply_root = "/srv/vigo/stage";
  EXPECT_THAT(Error(), HasSubstr("which vigo hides from the worker by default (/srv/vigo"));
  // Siblings are fine: /srv/vigo-stage is not beneath /srv/vigo.
  request_.apply_root = "/srv/vigo-stage";
  EXPECT_TRUE(Compute().ok());
}

TEST_F(HiddenPathsTest, TheSecretFileDirectoryMustStayVisible) {
  request_.hide = {"/tmp"};
  EXPECT_THAT(Error(), HasSubstr("the secret_file directory /tmp is at or beneath /tmp"));
  exists_["/run/vigo"] = "/run/vigo";
  request_.hide = {"/run/vigo"};
  request_.secret_file_dir = "/run/vigo/secrets";
  EXPECT_THAT(Error(),
              HasSubstr("the secret_file directory /run/vigo/secrets is at or beneath /run/vigo"));
}

}  // namespace
}  // namespace vigo::broker
