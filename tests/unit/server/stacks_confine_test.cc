// `confine:` on exec resources (#14.3): what compiles into the bundle, and
// every load error, each named by file:line and key.
#include <map>
#include <string>
#include <vector>

#include "common/secret_ref.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/stacks.h"
#include "tests/support/fake_backend.h"

namespace vigo::server {
namespace {

using Files = std::map<std::string, std::string>;

// A crate of one exec resource whose `confine:` (and what follows) starts at
// line 6.
const char kHead[] =
    "configcrate: app\nvars:\n  data: /var/lib/app\nresources:\n"
    "  - name: m\n    type: exec\n    command: [/bin/true]\n";  // lines 1-7
constexpr int kConfineLine = 8;

class StacksConfineTest : public ::testing::Test {
 protected:
  StacksConfineTest() { backend_.Put("app/pw", "canary-value-7f3a9"); }

  Files WithCrate(const std::string& crate) {
    return {{"envoys.vgo",
             "envoys:\n  - match: \"web-*\"\n    environment: prod\n    configcrates: [app]\n"},
            {"environments.vgo", "env:\n  prod:\n    vars:\n      pw: \"secret:app/pw\"\n"},
            {"configcrates/app.vgo", crate}};
  }

  absl::StatusOr<v1::Resource> CompileOne(const std::string& crate) {
    auto stacks = Stacks::LoadFiles(WithCrate(crate), backend_, nullptr);
    if (!stacks.ok()) return stacks.status();
    auto b = (*stacks)->Compile("web-1", 1);
    if (!b.ok()) return b.status();
    if (b->bundle.resources_size() != 1) return absl::InternalError("expected one resource");
    return b->bundle.resources(0);
  }

  std::vector<LoadError> LoadErrors(const std::string& crate) {
    LoadReport report;
    auto stacks = Stacks::LoadFiles(WithCrate(crate), backend_, &report);
    EXPECT_FALSE(stacks.ok()) << "expected a load error";
    for (const LoadError& e : report.errors) {
      EXPECT_EQ(e.ToString().find("canary-value"), std::string::npos) << e.ToString();
    }
    EXPECT_EQ(backend_.get_calls(), 0);
    return report.errors;
  }

  // Exactly one error, at configcrates/app.vgo:line, with `key` and `needle`.
  void ExpectError(const std::string& body, int line, const std::string& key,
                   const std::string& needle) {
    std::vector<LoadError> errors = LoadErrors(kHead + body);
    std::string all;
    for (const LoadError& e : errors) all += e.ToString() + "\n";
    ASSERT_EQ(errors.size(), 1u) << all;
    EXPECT_EQ(errors[0].file, "configcrates/app.vgo") << all;
    EXPECT_EQ(errors[0].line, line) << all;
    EXPECT_EQ(errors[0].key, key) << all;
    EXPECT_THAT(errors[0].ToString(), ::testing::HasSubstr(needle));
  }

  testing::FakeBackend backend_;
};

TEST_F(StacksConfineTest, ConfineCompilesIntoTheBundle) {
  auto r = CompileOne(std::string(kHead) +
                      "    confine:\n      writable: [/srv/app, \"{{ .Vars.data }}\"]\n"
                      "      network: false\n");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->has_confine());
  EXPECT_TRUE(r->confine().restrict_writes());
  EXPECT_THAT(r->confine().writable(), ::testing::ElementsAre("/srv/app", "/var/lib/app"));
  EXPECT_TRUE(r->confine().deny_network());
}

TEST_F(StacksConfineTest, EmptyWritableMeansNoWritesAndNetworkDefaultsToAllowed) {
  auto r = CompileOne(std::string(kHead) + "    confine: {writable: []}\n");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->has_confine());
  EXPECT_TRUE(r->confine().restrict_writes());
  EXPECT_EQ(r->confine().writable_size(), 0);
  EXPECT_FALSE(r->confine().deny_network());
}

TEST_F(StacksConfineTest, NetworkAloneLeavesWritesUnconfined) {
  auto r = CompileOne(std::string(kHead) + "    confine: {network: false}\n");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(r->has_confine());
  EXPECT_FALSE(r->confine().restrict_writes());
  EXPECT_TRUE(r->confine().deny_network());
}

TEST_F(StacksConfineTest, WithoutConfineTheExecIsUnconfined) {
  auto r = CompileOne(kHead);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->has_confine());
}

TEST_F(StacksConfineTest, ConfineOnAFileOrDirectoryResourceIsAnError) {
  for (const char* type : {"file", "directory"}) {
    std::vector<LoadError> errors =
        LoadErrors(std::string("configcrate: app\nresources:\n  - name: f\n    type: ") + type +
                   "\n    target_path: /etc/x\n    confine: {writable: [/etc]}\n");
    ASSERT_EQ(errors.size(), 1u) << type;
    EXPECT_EQ(errors[0].line, 6) << type;
    EXPECT_EQ(errors[0].key, "confine") << type;
    EXPECT_THAT(errors[0].ToString(),
                ::testing::HasSubstr(std::string("unknown key in a ") + type + " resource"));
  }
}

TEST_F(StacksConfineTest, ConfineMustBeAMapOfKnownKeys) {
  ExpectError("    confine: true\n", kConfineLine, "confine", "expected a map");
  ExpectError("    confine: [/srv]\n", kConfineLine, "confine", "expected a map");
  ExpectError("    confine:\n      writeable: [/srv]\n", kConfineLine + 1, "writeable",
              "unknown key in confine (allowed: writable, network)");
  ExpectError("    confine:\n      writable: [/a]\n      writable: [/b]\n", kConfineLine + 2,
              "writable", "duplicate key in confine");
}

TEST_F(StacksConfineTest, ConfineThatConfinesNothingIsAnError) {
  ExpectError("    confine: {}\n", kConfineLine, "confine", "confines nothing");
  ExpectError("    confine: {network: true}\n", kConfineLine, "confine", "confines nothing");
}

TEST_F(StacksConfineTest, WritableMustBeAListOfPathStrings) {
  ExpectError("    confine: {writable: /srv}\n", kConfineLine, "confine.writable",
              "expected a list");
  ExpectError("    confine:\n      writable:\n", kConfineLine + 1, "confine.writable",
              "expected a list");
  ExpectError("    confine:\n      writable:\n        - /srv\n        - {a: b}\n", kConfineLine + 3,
              "confine.writable[1]", "expected a path");
}

TEST_F(StacksConfineTest, WritablePathsMustBeAbsoluteWithoutDotDot) {
  ExpectError("    confine:\n      writable:\n        - var/lib/app\n", kConfineLine + 2,
              "confine.writable[0]", "'var/lib/app' is not an absolute path");
  ExpectError("    confine:\n      writable:\n        - /srv\n        - \"\"\n", kConfineLine + 3,
              "confine.writable[1]", "is not an absolute path");
  ExpectError("    confine:\n      writable:\n        - /var/lib/../../etc\n", kConfineLine + 2,
              "confine.writable[0]", "'..' component");
  ExpectError("    confine:\n      writable:\n        - /var/./lib\n", kConfineLine + 2,
              "confine.writable[0]", "'.' component");
}

TEST_F(StacksConfineTest, TemplatedWritablePathIsCheckedAfterRendering) {
  std::vector<LoadError> errors = LoadErrors(
      "configcrate: app\nvars:\n  up: \"..\"\nresources:\n"
      "  - name: m\n    type: exec\n    command: [/bin/true]\n"
      "    confine:\n      writable:\n        - \"/srv/{{ .Vars.up }}/etc\"\n");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].line, 10);
  EXPECT_EQ(errors[0].key, "confine.writable[0]");
  EXPECT_THAT(errors[0].ToString(), ::testing::HasSubstr("'..' component"));
}

TEST_F(StacksConfineTest, DuplicateWritablePathsAreAnError) {
  ExpectError("    confine:\n      writable:\n        - /srv/app\n        - /srv//app/\n",
              kConfineLine + 3, "confine.writable[1]",
              "'/srv//app/' is also listed as confine.writable[0]");
  // Through a var: found once rendered.
  ExpectError(
      "    confine:\n      writable:\n        - /var/lib/app\n"
      "        - \"{{ .Vars.data }}\"\n",
      kConfineLine + 3, "confine.writable[1]", "also listed as confine.writable[0]");
}

TEST_F(StacksConfineTest, AtMostSixtyFourWritablePaths) {
  std::string list;
  for (int i = 0; i < 65; ++i) list += (i ? ", /d" : "/d") + std::to_string(i);
  ExpectError("    confine:\n      writable: [" + list + "]\n", kConfineLine + 1,
              "confine.writable", "at most 64 writable paths (found 65)");
  // 64 is fine.
  list.clear();
  for (int i = 0; i < 64; ++i) list += (i ? ", /d" : "/d") + std::to_string(i);
  auto r = CompileOne(std::string(kHead) + "    confine:\n      writable: [" + list + "]\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->confine().writable_size(), 64);
}

TEST_F(StacksConfineTest, SecretReferenceInAWritablePathIsRefused) {
  ExpectError("    confine:\n      writable:\n        - \"secret:app/pw\"\n", kConfineLine + 2,
              "confine.writable[0]",
              "secret reference 'secret:app/pw' is not allowed in 'confine.writable[0]' (paths");
  ExpectError("    confine:\n      writable:\n        - \"/srv/{{ .Vars.pw }}\"\n",
              kConfineLine + 2, "confine.writable[0]", "var 'pw' holds a secret reference");
}

TEST_F(StacksConfineTest, NetworkMustBeABool) {
  for (const char* value : {"\"false\"", "no", "0", "off", "False"}) {
    ExpectError(std::string("    confine:\n      network: ") + value + "\n", kConfineLine + 1,
                "confine.network", "network must be true or false");
  }
  ExpectError("    confine:\n      network: [false]\n", kConfineLine + 1, "confine.network",
              "network must be true or false");
  ExpectError("    confine:\n      network:\n      writable: [/srv]\n", kConfineLine + 1,
              "confine.network", "network must be true or false");
}

}  // namespace
}  // namespace vigo::server
