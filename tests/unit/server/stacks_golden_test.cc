// Golden tests for the stacks compiler: tests/data/stacks/<case>/ compiled
// for several envoy names must equal tests/data/golden/<case>/<envoy>.json
// byte for byte. Regenerate after an intended change with
//   VIGO_UPDATE_GOLDENS=1 ctest -R stacks_golden
// and review the diff.
#include <google/protobuf/util/json_util.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/secret_ref.h"
#include "gtest/gtest.h"
#include "server/stacks.h"
#include "tests/support/fake_backend.h"
#include "tests/support/test_env.h"

namespace vigo::server {
namespace {

namespace fs = std::filesystem;

struct GoldenCase {
  std::string name;
  std::vector<std::string> secrets;    // paths present in the backend
  std::vector<std::string> envoys;     // each has a golden file
  std::vector<std::string> unmatched;  // must be NOT_FOUND
};

const std::vector<GoldenCase>& Cases() {
  static const std::vector<GoldenCase> cases = {
      {"basic", {"webapp/prod/db_password"}, {"web-1", "web-frontend-07"}, {"db-1", "web"}},
      {"fleet",
       {"db/backup_key", "db/prod/pg_password", "db/staging/pg_password", "tls/web/key",
        "web/htpasswd_hash"},
       {"db-primary", "db-replica", "web-01", "web-001", "mail-1"},
       {}},
  };
  return cases;
}

std::string ToJson(const v1::PolicyBundle& bundle) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.add_whitespace = true;
  opts.preserve_proto_field_names = true;
  std::string out;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(bundle, &out, opts).ok());
  return out;
}

bool UpdateGoldens() {
  const char* v = std::getenv("VIGO_UPDATE_GOLDENS");
  return v != nullptr && std::string(v) == "1";
}

class StacksGoldenTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(StacksGoldenTest, BundlesMatchGoldens) {
  const GoldenCase& c = GetParam();
  testing::FakeBackend backend;
  for (const std::string& p : c.secrets) backend.Put(p, "golden-value-never-in-a-bundle");
  LoadReport report;
  auto stacks = Stacks::Load(testing::SourcePath("tests/data/stacks/" + c.name), backend, &report,
                             LoadOptions{.policy_version = 1});
  ASSERT_TRUE(stacks.ok()) << stacks.status();
  EXPECT_EQ(backend.get_calls(), 0) << "the loader must never read a value";
  for (const std::string& envoy : c.envoys) {
    SCOPED_TRACE(envoy);
    auto b = (*stacks)->Compile(envoy, /*secrets_epoch=*/7);
    ASSERT_TRUE(b.ok()) << b.status();
    // Entitlement == secret_refs == markers found in the bundle.
    std::set<std::string> refs(b->bundle.secret_refs().begin(), b->bundle.secret_refs().end());
    EXPECT_EQ(refs, b->entitlement);
    EXPECT_EQ(BundleDigest(b->bundle), b->bundle.digest());
    std::string json = ToJson(b->bundle);
    fs::path golden = testing::SourcePath("tests/data/golden/" + c.name + "/" + envoy + ".json");
    if (UpdateGoldens()) {
      fs::create_directories(golden.parent_path());
      testing::WriteFileOrDie(golden, json, 0644);
      continue;
    }
    std::string want = testing::ReadFileOrEmpty(golden);
    ASSERT_FALSE(want.empty()) << "missing golden " << golden << " (VIGO_UPDATE_GOLDENS=1)";
    EXPECT_EQ(json, want) << "bundle of " << envoy << " differs from " << golden;
  }
  for (const std::string& envoy : c.unmatched) {
    auto b = (*stacks)->Compile(envoy, 7);
    EXPECT_TRUE(absl::IsNotFound(b.status())) << envoy << ": " << b.status();
  }
  EXPECT_GE(backend.exists_calls(), 1);
  EXPECT_EQ(backend.get_calls(), 0);
}

INSTANTIATE_TEST_SUITE_P(Cases, StacksGoldenTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<GoldenCase>& p) {
                           return p.param.name;
                         });

TEST(StacksGolden, DigestIsStableAndCoversContent) {
  testing::FakeBackend backend;
  backend.Put("webapp/prod/db_password", "x");
  auto stacks = Stacks::Load(testing::SourcePath("tests/data/stacks/basic"), backend, nullptr,
                             LoadOptions{.policy_version = 1});
  ASSERT_TRUE(stacks.ok()) << stacks.status();
  auto a = (*stacks)->Compile("web-1", 7);
  auto b = (*stacks)->Compile("web-1", 7);
  auto other_epoch = (*stacks)->Compile("web-1", 8);
  auto other_name = (*stacks)->Compile("web-2", 7);
  ASSERT_TRUE(a.ok() && b.ok() && other_epoch.ok() && other_name.ok());
  EXPECT_EQ(a->bundle.digest(), b->bundle.digest());
  EXPECT_EQ(a->bundle.digest().size(), 64u);
  EXPECT_NE(a->bundle.digest(), other_epoch->bundle.digest());
  EXPECT_NE(a->bundle.digest(), other_name->bundle.digest());
}

// leak_scan.window travels in the bundle (and so in its digest) only when it
// is not the default: a default fleet's digests are unchanged; a window
// outside 8..4096 is refused.
TEST(StacksGolden, RedactionWindowIsInTheBundleOnlyWhenNotTheDefault) {
  testing::FakeBackend backend;
  backend.Put("webapp/prod/db_password", "x");
  auto stacks = Stacks::Load(testing::SourcePath("tests/data/stacks/basic"), backend, nullptr,
                             LoadOptions{.policy_version = 1});
  ASSERT_TRUE(stacks.ok()) << stacks.status();
  auto plain = (*stacks)->Compile("web-1", 7);
  auto twelve = (*stacks)->Compile("web-1", 7, 12);
  auto sixteen = (*stacks)->Compile("web-1", 7, 16);
  ASSERT_TRUE(plain.ok() && twelve.ok() && sixteen.ok());
  EXPECT_EQ(plain->bundle.redaction_window(), 0u);
  EXPECT_EQ(twelve->bundle.digest(), plain->bundle.digest());
  EXPECT_EQ(sixteen->bundle.redaction_window(), 16u);
  EXPECT_NE(sixteen->bundle.digest(), plain->bundle.digest());
  EXPECT_TRUE(absl::IsInvalidArgument((*stacks)->Compile("web-1", 7, 7).status()));
  EXPECT_TRUE(absl::IsInvalidArgument((*stacks)->Compile("web-1", 7, 4097).status()));
}

TEST(StacksGolden, RulesAndReferencesForOperators) {
  testing::FakeBackend backend;
  for (const char* p : {"db/backup_key", "db/prod/pg_password", "db/staging/pg_password",
                        "tls/web/key", "web/htpasswd_hash"}) {
    backend.Put(p, "v");
  }
  auto stacks = Stacks::Load(testing::SourcePath("tests/data/stacks/fleet"), backend, nullptr);
  ASSERT_TRUE(stacks.ok()) << stacks.status();
  const auto& rules = (*stacks)->Rules();
  ASSERT_EQ(rules.size(), 4u);
  EXPECT_EQ(rules[0].match, "db-primary");
  EXPECT_EQ(rules[0].references, (std::set<std::string>{"db/backup_key", "db/prod/pg_password"}));
  EXPECT_EQ(rules[1].references, (std::set<std::string>{"db/staging/pg_password"}));
  EXPECT_TRUE(rules[3].references.empty());
  EXPECT_EQ((*stacks)->AllReferences().size(), 5u);
  auto rule = (*stacks)->RuleFor("db-primary");
  ASSERT_TRUE(rule.ok());
  EXPECT_EQ(rule->line, 2);
  EXPECT_TRUE(absl::IsInvalidArgument((*stacks)->Compile("bad name!", 1).status()));
  EXPECT_TRUE(absl::IsInvalidArgument((*stacks)->Compile(MarkerFor("db/backup_key"), 1).status()));
}

TEST(StacksGolden, CompileIsThreadSafe) {
  testing::FakeBackend backend;
  backend.Put("webapp/prod/db_password", "x");
  auto stacks = Stacks::Load(testing::SourcePath("tests/data/stacks/basic"), backend, nullptr);
  ASSERT_TRUE(stacks.ok()) << stacks.status();
  auto want = (*stacks)->Compile("web-1", 7);
  ASSERT_TRUE(want.ok());
  std::vector<std::string> digests(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < digests.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        auto b = (*stacks)->Compile("web-1", 7);
        if (!b.ok() || (i > 0 && b->bundle.digest() != digests[t])) {
          digests[t] = "mismatch";
          return;
        }
        digests[t] = b->bundle.digest();
      }
    });
  }
  for (auto& th : threads) th.join();
  for (const std::string& d : digests) EXPECT_EQ(d, want->bundle.digest());
}

TEST(StacksGolden, EnvoyNameThatWouldCompleteAMarkerIsRefused) {
  // "__VIGO_SECRE" is not marker text on its own, so the load accepts it; an
  // envoy named "T__a__END__" would complete a marker for path "a" that no
  // config references. Compile must refuse rather than entitle.
  testing::FakeBackend backend;
  backend.Put("a", "v");
  auto stacks = Stacks::LoadFiles(
      {{"envoys.vgo", "envoys:\n  - match: \"*\"\n    configcrates: [c]\n"},
       {"configcrates/c.vgo",
        "configcrate: c\nresources:\n  - name: f\n    type: file\n    target_path: /f\n"
        "    content: \"__VIGO_SECRE{{ .Envoy.Name }}\"\n"}},
      backend, nullptr);
  ASSERT_TRUE(stacks.ok()) << stacks.status();
  EXPECT_TRUE((*stacks)->Compile("web-1", 1).ok());
  auto forged = (*stacks)->Compile("T__a__END__", 1);
  EXPECT_TRUE(absl::IsInvalidArgument(forged.status())) << forged.status();
}

TEST(StacksGolden, EnvoyNameLongerThanACertificateCnIsRefused) {
  // The compiler used to take names up to 253 bytes, the PKI up to 64: a
  // bundle for an envoy that could never get a certificate.
  testing::FakeBackend backend;
  auto stacks = Stacks::LoadFiles(
      {{"envoys.vgo", "envoys:\n  - match: \"*\"\n    configcrates: [c]\n"},
       {"configcrates/c.vgo",
        "configcrate: c\nresources:\n  - name: f\n    type: file\n    target_path: /f\n"
        "    content: \"{{ .Envoy.Name }}\"\n"}},
      backend, nullptr);
  ASSERT_TRUE(stacks.ok()) << stacks.status();
  EXPECT_TRUE((*stacks)->Compile(std::string(64, 'a'), 1).ok());
  auto longer = (*stacks)->Compile(std::string(65, 'a'), 1);
  EXPECT_TRUE(absl::IsInvalidArgument(longer.status())) << longer.status();
  EXPECT_TRUE(absl::IsInvalidArgument((*stacks)->RuleFor(std::string(65, 'a')).status()));
}

TEST(StacksGolden, GlobMatch) {
  EXPECT_TRUE(EnvoyGlobMatch("web-*", "web-1"));
  EXPECT_TRUE(EnvoyGlobMatch("web-*", "web-"));
  EXPECT_FALSE(EnvoyGlobMatch("web-*", "web"));
  EXPECT_TRUE(EnvoyGlobMatch("w?b-*-x", "web-a-b-x"));
  EXPECT_FALSE(EnvoyGlobMatch("web-??", "web-001"));
  EXPECT_TRUE(EnvoyGlobMatch("*", "anything"));
  EXPECT_TRUE(EnvoyGlobMatch("*a*b*", "xxaxxbxx"));
  EXPECT_FALSE(EnvoyGlobMatch("*a*b", "xxaxxbxx"));
}

}  // namespace
}  // namespace vigo::server
