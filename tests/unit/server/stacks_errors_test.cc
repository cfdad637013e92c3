// Every load error class of the stacks compiler names file:line (and key),
// and a load reports all errors, not just the first.
#include <map>
#include <string>
#include <vector>

#include "common/secret_ref.h"
#include "common/strings.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/stacks.h"
#include "tests/support/fake_backend.h"
#include "tests/support/test_env.h"
#include "vocab/wire_limits.h"

namespace vigo::server {
namespace {

using Files = std::map<std::string, std::string>;

const char kEnvoys[] = R"(envoys:
  - match: "web-*"
    environment: prod
    roles: [web]
    vars:
      port: "8080"
)";
const char kRoles[] = R"(roles:
  web:
    configcrates: [app]
)";
const char kEnvironments[] = R"(env:
  prod:
    vars:
      pw: "secret:app/pw"
)";
const char kCrate[] = R"(configcrate: app
vars:
  user: app
resources:
  - name: app-config
    type: file
    target_path: /etc/app.conf
    content: "user={{ .Vars.user }} pw={{ .Vars.pw }} port={{ .Vars.port }}"
)";

Files BaseFiles() {
  return {{"envoys.vgo", kEnvoys},
          {"roles.vgo", kRoles},
          {"environments.vgo", kEnvironments},
          {"configcrates/app.vgo", kCrate}};
}

class StacksErrorsTest : public ::testing::Test {
 protected:
  StacksErrorsTest() { backend_.Put("app/pw", "canary-value-7f3a9"); }

  std::vector<LoadError> LoadErrors(const Files& files) {
    LoadReport report;
    auto stacks = Stacks::LoadFiles(files, backend_, &report);
    EXPECT_FALSE(stacks.ok()) << "expected a load error";
    if (!stacks.ok()) {
      EXPECT_TRUE(absl::IsInvalidArgument(stacks.status()));
      // The status message lists the errors too.
      for (const LoadError& e : report.errors) {
        if (&e - report.errors.data() >= 20) break;
        EXPECT_THAT(std::string(stacks.status().message()), ::testing::HasSubstr(e.ToString()));
      }
    }
    EXPECT_EQ(backend_.get_calls(), 0);
    for (const LoadError& e : report.errors) {
      EXPECT_EQ(e.ToString().find("canary-value"), std::string::npos) << e.ToString();
    }
    return report.errors;
  }

  // Replaces one file of the valid base set and expects an error at file:line
  // whose text contains `needle`.
  void ExpectError(const std::string& file, const std::string& text, int line,
                   const std::string& needle, const std::string& key = "") {
    Files files = BaseFiles();
    files[file] = text;
    std::vector<LoadError> errors = LoadErrors(files);
    std::string all;
    for (const LoadError& e : errors) all += e.ToString() + "\n";
    bool found = false;
    for (const LoadError& e : errors) {
      if (e.file == file && e.line == line && e.ToString().find(needle) != std::string::npos &&
          (key.empty() || e.key == key)) {
        found = true;
      }
    }
    EXPECT_TRUE(found) << "no error at " << file << ":" << line << " with '" << needle
                       << "'; got:\n"
                       << all;
  }

  testing::FakeBackend backend_;
};

// A crate whose `copies` resources each carry `var_bytes` of one var.
std::string BigCrate(int copies, size_t var_bytes) {
  std::string crate = "configcrate: app\nvars:\n  user: app\n  big: \"" +
                      std::string(var_bytes, 'b') + "\"\nresources:\n";
  for (int i = 0; i < copies; ++i) {
    crate += "  - name: big-" + std::to_string(i) + "\n    type: file\n    target_path: /etc/big-" +
             std::to_string(i) + "\n    content: \"{{ .Vars.big }} {{ .Vars.pw }}\"\n";
  }
  return crate;
}

// #13.9: a bundle over the old 4 MiB message limit is delivered (the server
// sends up to kMaxBundleBytes); one that can exceed kMaxBundleBytes is a load
// error naming the rule and the size, not a fleet that silently stops.
TEST_F(StacksErrorsTest, BundleOverFourMebibytesCompiles) {
  Files files = BaseFiles();
  files["configcrates/app.vgo"] = BigCrate(4, 1536 * 1024);
  LoadReport report;
  auto stacks = Stacks::LoadFiles(files, backend_, &report);
  ASSERT_TRUE(stacks.ok()) << stacks.status();
  auto b = (*stacks)->Compile("web-1", 1);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_GT(b->bundle.ByteSizeLong(), size_t{4} << 20);
  EXPECT_LT(b->bundle.ByteSizeLong(), kMaxBundleBytes);
}

TEST_F(StacksErrorsTest, BundleThatCanExceedTheLimitIsALoadErrorNamingTheRuleAndSize) {
  Files files = BaseFiles();
  files["configcrates/app.vgo"] = BigCrate(12, 1536 * 1024);
  std::vector<LoadError> errors = LoadErrors(files);
  bool found = false;
  for (const LoadError& e : errors) {
    const std::string t = e.ToString();
    if (e.file == "envoys.vgo" && t.find("web-*") != std::string::npos &&
        t.find("can be up to") != std::string::npos &&
        t.find(std::to_string(kMaxBundleBytes)) != std::string::npos) {
      found = true;
    }
  }
  EXPECT_TRUE(found) << (errors.empty() ? "no errors" : errors.front().ToString());
}

// Issue 16 (wire limits): a rule whose bundle has more resources than one
// run can report is a load error naming the rule and the limit (its runs
// would apply and then be refused at ReportResult); at the limit it loads.
TEST_F(StacksErrorsTest, BundleWithMoreResourcesThanOneReportIsALoadError) {
  auto crate = [](int n) {
    std::string c = "configcrate: app\nvars:\n  user: app\nresources:\n";
    for (int i = 0; i < n; ++i) {
      c += "  - name: f-" + std::to_string(i) + "\n    type: file\n    target_path: /etc/f-" +
           std::to_string(i) + "\n    content: \"{{ .Vars.pw }}\"\n";
    }
    return c;
  };
  Files files = BaseFiles();
  files["configcrates/app.vgo"] = crate(vocab::kMaxReportResults + 1);
  std::vector<LoadError> errors = LoadErrors(files);
  bool found = false;
  for (const LoadError& e : errors) {
    const std::string t = e.ToString();
    if (e.file == "envoys.vgo" && t.find("web-*") != std::string::npos &&
        t.find(StrCat(vocab::kMaxReportResults + 1, " resources, more than the ",
                      vocab::kMaxReportResults)) != std::string::npos) {
      found = true;
    }
  }
  EXPECT_TRUE(found) << (errors.empty() ? "no errors" : errors.front().ToString());
  files["configcrates/app.vgo"] = crate(vocab::kMaxReportResults);
  LoadReport report;
  auto stacks = Stacks::LoadFiles(files, backend_, &report);
  EXPECT_TRUE(stacks.ok()) << stacks.status();
}

TEST_F(StacksErrorsTest, BaseSetLoads) {
  LoadReport report;
  auto stacks = Stacks::LoadFiles(BaseFiles(), backend_, &report);
  ASSERT_TRUE(stacks.ok()) << stacks.status();
  EXPECT_EQ(report.files, 4u);
  EXPECT_EQ(report.envoy_rules, 1u);
  EXPECT_EQ(report.configcrates, 1u);
  EXPECT_EQ(report.references, 1u);
  EXPECT_EQ(backend_.get_calls(), 0);
  EXPECT_EQ(backend_.exists_calls(), 1);
}

TEST_F(StacksErrorsTest, ToStringFormat) {
  EXPECT_EQ((LoadError{"roles.vgo", 12, "x", "bad"}).ToString(),
            "stacks/roles.vgo:12: key 'x': bad");
  EXPECT_EQ((LoadError{"envoys.vgo", 0, "", "missing"}).ToString(), "stacks/envoys.vgo: missing");
}

TEST_F(StacksErrorsTest, MalformedYaml) {
  ExpectError("roles.vgo", "roles:\n  web:\n    configcrates: [app\n", 4, "malformed YAML");
}

TEST_F(StacksErrorsTest, UnknownKeys) {
  ExpectError("roles.vgo", "roles:\n  web:\n    configcrate: [app]\n", 3, "unknown key",
              "configcrate");
  ExpectError("envoys.vgo", "envoys:\n  - match: x\n    role: [web]\n", 3, "unknown key", "role");
  ExpectError("configcrates/app.vgo",
              "configcrate: app\nresources:\n  - name: a\n    type: file\n    target_path: /a\n"
              "    command: [ls]\n",
              6, "unknown key in a file resource", "command");
  ExpectError("environments.vgo", "envs:\n  prod: {}\n", 1, "unknown key", "envs");
}

TEST_F(StacksErrorsTest, DuplicateKey) {
  ExpectError("configcrates/app.vgo",
              "configcrate: app\nresources:\n  - name: a\n    type: file\n    target_path: /a\n"
              "    target_path: /b\n",
              6, "duplicate key");
}

TEST_F(StacksErrorsTest, BadModeStateTypeTimeout) {
  const std::string head = "configcrate: app\nresources:\n  - name: a\n";
  ExpectError("configcrates/app.vgo",
              head + "    type: file\n    target_path: /a\n    mode: \"0999\"\n", 6, "octal",
              "mode");
  ExpectError("configcrates/app.vgo",
              head + "    type: file\n    target_path: /a\n    mode: rw-r\n", 6, "octal", "mode");
  ExpectError("configcrates/app.vgo",
              head + "    type: file\n    target_path: /a\n    state: gone\n", 6,
              "present' or 'absent", "state");
  ExpectError("configcrates/app.vgo", head + "    type: symlink\n", 4, "unknown resource type");
  ExpectError("configcrates/app.vgo", head + "    type: exec\n    command: [ls]\n    timeout: 5m\n",
              6, "timeout", "timeout");
  ExpectError("configcrates/app.vgo", head + "    target_path: /a\n", 3, "needs a 'type'");
  ExpectError("configcrates/app.vgo", head + "    type: file\n", 3, "needs 'target_path'");
}

TEST_F(StacksErrorsTest, TemplatedModeIsCheckedAfterRendering) {
  Files files = BaseFiles();
  files["configcrates/app.vgo"] =
      "configcrate: app\nvars:\n  m: \"77777\"\nresources:\n  - name: a\n    type: file\n"
      "    target_path: /a\n    mode: \"{{ .Vars.m }}\"\n";
  auto errors = LoadErrors(files);
  ASSERT_FALSE(errors.empty());
  EXPECT_EQ(errors[0].file, "configcrates/app.vgo");
  EXPECT_EQ(errors[0].line, 8);
  EXPECT_THAT(errors[0].message, ::testing::HasSubstr("octal"));
}

TEST_F(StacksErrorsTest, MissingReference) {
  ExpectError("environments.vgo", "env:\n  prod:\n    vars:\n      pw: \"secret:app/nope\"\n", 4,
              "secret 'app/nope' does not exist");
}

TEST_F(StacksErrorsTest, MalformedReference) {
  ExpectError("environments.vgo", "env:\n  prod:\n    vars:\n      pw: \"secret:app//x\"\n", 4,
              "malformed secret reference");
}

TEST_F(StacksErrorsTest, ReferencesRefusedInEveryPlacement) {
  const std::string head = "configcrate: app\nresources:\n  - name: a\n";
  const std::string file = head + "    type: file\n";
  const std::string exec = head + "    type: exec\n";
  ExpectError("configcrates/app.vgo", exec + "    command: [\"/bin/x\", \"secret:app/pw\"]\n", 5,
              "not allowed in 'command[1]'");
  ExpectError("configcrates/app.vgo", exec + "    command: [\"/bin/x\", \"--pw=secret:app/pw\"]\n",
              5, "not allowed in 'command[1]'");
  ExpectError("configcrates/app.vgo",
              exec + "    command: [\"/bin/x\"]\n    environment:\n      PW: \"secret:app/pw\"\n",
              7, "not allowed in 'environment.PW'");
  ExpectError("configcrates/app.vgo", file + "    target_path: \"secret:app/pw\"\n", 5,
              "not allowed in 'target_path'");
  ExpectError("configcrates/app.vgo", file + "    target_path: /a\n    owner: \"secret:app/pw\"\n",
              6, "not allowed in 'owner'");
  ExpectError("configcrates/app.vgo", file + "    target_path: /a\n    group: \"secret:app/pw\"\n",
              6, "not allowed in 'group'");
  ExpectError("configcrates/app.vgo", file + "    target_path: /a\n    mode: \"secret:app/pw\"\n",
              6, "not allowed in 'mode'");
  ExpectError("configcrates/app.vgo",
              "configcrate: app\nresources:\n  - name: \"secret:app/pw\"\n    type: file\n"
              "    target_path: /a\n",
              3, "not allowed in resource name");
  ExpectError("configcrates/app.vgo",
              exec + "    command: [\"/bin/x\"]\n    creates: \"secret:app/pw\"\n", 6,
              "not allowed in 'creates'");
}

TEST_F(StacksErrorsTest, ReferenceHoldingVarRefusedInEveryPlacement) {
  // pw holds secret:app/pw (environments.vgo); templating it into a refused
  // field must fail just like a direct reference.
  const std::string head = "configcrate: app\nresources:\n  - name: a\n";
  const std::string file = head + "    type: file\n";
  const std::string exec = head + "    type: exec\n";
  const std::string via = "var 'pw' holds a secret reference";
  ExpectError("configcrates/app.vgo", exec + "    command: [\"/bin/x\", \"{{ .Vars.pw }}\"]\n", 5,
              via);
  ExpectError("configcrates/app.vgo",
              exec + "    command: [\"/bin/x\"]\n    environment:\n      PW: \"{{ .Vars.pw }}\"\n",
              7, via);
  ExpectError("configcrates/app.vgo", file + "    target_path: \"/etc/{{ .Vars.pw }}\"\n", 5, via);
  ExpectError("configcrates/app.vgo", file + "    target_path: /a\n    owner: \"{{.Vars.pw}}\"\n",
              6, via);
  ExpectError("configcrates/app.vgo", file + "    target_path: /a\n    group: \"{{ .Vars.pw }}\"\n",
              6, via);
  ExpectError("configcrates/app.vgo", file + "    target_path: /a\n    mode: \"{{ .Vars.pw }}\"\n",
              6, via);
  ExpectError("configcrates/app.vgo",
              exec + "    command: [\"/bin/x\"]\n    cwd: \"{{ .Vars.pw }}\"\n", 6, via);
}

TEST_F(StacksErrorsTest, ReferenceMustBeWholeValueOutsideContent) {
  ExpectError("environments.vgo", "env:\n  prod:\n    vars:\n      pw: \"x secret:app/pw\"\n", 4,
              "must be the whole value");
  ExpectError("configcrates/app.vgo",
              "configcrate: app\nresources:\n  - name: a\n    type: exec\n    command: [x]\n"
              "    stdin: \"pw=secret:app/pw\"\n",
              6, "must be the whole value");
  ExpectError("configcrates/app.vgo",
              "configcrate: app\nresources:\n  - name: a\n    type: exec\n    command: [x]\n"
              "    secret_file: /etc/passwd\n",
              6, "secret_file must be a reference");
}

TEST_F(StacksErrorsTest, ForgedMarkerAnywhere) {
  const std::string marker = MarkerFor("app/pw");
  ExpectError("configcrates/app.vgo",
              "configcrate: app\nresources:\n  - name: a\n    type: file\n    target_path: /a\n"
              "    content: \"" +
                  marker + "\"\n",
              6, "literal marker text");
  ExpectError("environments.vgo", "env:\n  prod:\n    vars:\n      pw: \"" + marker + "\"\n", 4,
              "literal marker text");
  // In a comment, and built with a YAML escape the raw scan cannot see.
  ExpectError("roles.vgo", "# " + marker + "\nroles:\n  web:\n    configcrates: [app]\n", 1,
              "literal marker text");
  ExpectError("envoys.vgo",
              "envoys:\n  - match: \"web-*\"\n    environment: prod\n    roles: [web]\n    vars:\n"
              "      port: \"\\x5f_VIGO_SECRET__app/pw__END__\"\n",
              6, "literal marker text");
}

TEST_F(StacksErrorsTest, UnknownTemplateNames) {
  const std::string head =
      "configcrate: app\nresources:\n  - name: a\n    type: file\n    target_path: /a\n";
  ExpectError("configcrates/app.vgo", head + "    content: \"{{ .Vars.nope }}\"\n", 6,
              "unknown template name '.Vars.nope'");
  ExpectError("configcrates/app.vgo", head + "    content: \"{{ .Envoy.Address }}\"\n", 6,
              "unknown template name '.Envoy.Address'");
  ExpectError("configcrates/app.vgo", head + "    content: \"{{ .Vars.user \"\n", 6,
              "unterminated template");
  ExpectError("configcrates/app.vgo", head + "    content: \"{{ .SecretFile }}\"\n", 6,
              ".SecretFile }}' is allowed only");
  ExpectError("configcrates/app.vgo",
              "configcrate: app\nresources:\n  - name: a\n    type: exec\n"
              "    command: [\"/bin/x\", \"{{ .SecretFile }}\"]\n",
              3, "needs 'secret_file");
}

TEST_F(StacksErrorsTest, OtherTemplateLanguagesPassThrough) {
  Files files = BaseFiles();
  files["configcrates/app.vgo"] =
      "configcrate: app\nresources:\n  - name: a\n    type: file\n    target_path: /a\n"
      "    content: \"{{ jinja_var }} {{user}} {{ .Vars.pw }}\"\n";
  auto stacks = Stacks::LoadFiles(files, backend_, nullptr);
  ASSERT_TRUE(stacks.ok()) << stacks.status();
  auto b = (*stacks)->Compile("web-1", 1);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->bundle.resources(0).content(), "{{ jinja_var }} {{user}} " + MarkerFor("app/pw"));
}

TEST_F(StacksErrorsTest, DependsOnCycleAndUnknownDependency) {
  ExpectError("configcrates/app.vgo",
              "configcrate: app\nresources:\n"
              "  - name: a\n    type: exec\n    command: [x]\n    depends_on: [b]\n"
              "  - name: b\n    type: exec\n    command: [x]\n    depends_on: [c]\n"
              "  - name: c\n    type: exec\n    command: [x]\n    depends_on: [a]\n",
              14, "depends_on cycle: a -> b -> c -> a");
  ExpectError("configcrates/app.vgo",
              "configcrate: app\nresources:\n"
              "  - name: a\n    type: exec\n    command: [x]\n    depends_on: [a]\n",
              6, "depends_on cycle: a -> a");
  ExpectError("configcrates/app.vgo",
              "configcrate: app\nresources:\n"
              "  - name: a\n    type: exec\n    command: [x]\n    depends_on: [ghost]\n",
              6, "unknown dependency 'ghost'");
}

TEST_F(StacksErrorsTest, DependencyInACrateTheRuleDoesNotInclude) {
  Files files = BaseFiles();
  files["configcrates/other.vgo"] =
      "configcrate: other\nresources:\n  - name: o\n    type: exec\n    command: [x]\n";
  files["configcrates/app.vgo"] =
      "configcrate: app\nresources:\n  - name: a\n    type: exec\n    command: [x]\n"
      "    depends_on: [o]\n";
  auto errors = LoadErrors(files);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].line, 6);
  EXPECT_THAT(errors[0].message,
              ::testing::HasSubstr("configcrate 'other', which envoys matching 'web-*'"));
}

TEST_F(StacksErrorsTest, DuplicateNames) {
  Files files = BaseFiles();
  files["configcrates/dup.vgo"] =
      "configcrate: dup\nresources:\n  - name: app-config\n    type: file\n    target_path: /b\n";
  auto errors = LoadErrors(files);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].ToString(),
            "stacks/configcrates/dup.vgo:3: key 'name': duplicate resource name 'app-config' "
            "(first at configcrates/app.vgo:5); resource names are unique across all configcrates");
  ExpectError("configcrates/dup.vgo", "configcrate: app\n", 1, "duplicate configcrate 'app'");
  ExpectError("envoys.vgo", "envoys:\n  - match: a\n  - match: a\n", 3, "duplicate match pattern");
}

TEST_F(StacksErrorsTest, UnknownRoleCrateEnvironment) {
  ExpectError("envoys.vgo", "envoys:\n  - match: a\n    roles: [ghost]\n", 3,
              "unknown role 'ghost'");
  ExpectError("envoys.vgo", "envoys:\n  - match: a\n    configcrates: [ghost]\n", 3,
              "unknown configcrate 'ghost'");
  ExpectError("envoys.vgo", "envoys:\n  - match: a\n    environment: ghost\n", 3,
              "unknown environment 'ghost'");
  ExpectError("roles.vgo", "roles:\n  web:\n    configcrates: [app, ghost]\n", 3,
              "unknown configcrate 'ghost'");
}

TEST_F(StacksErrorsTest, ConflictingCrateDefaults) {
  Files files = BaseFiles();
  files["configcrates/b.vgo"] = "configcrate: b\nvars:\n  user: other\n";
  files["roles.vgo"] = "roles:\n  web:\n    configcrates: [app, b]\n";
  auto errors = LoadErrors(files);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].file, "configcrates/b.vgo");
  EXPECT_EQ(errors[0].line, 3);
  EXPECT_THAT(errors[0].message, ::testing::HasSubstr("different default"));
  // Overriding it in the rule resolves the conflict.
  files["envoys.vgo"] = std::string(kEnvoys) + "      user: chosen\n";
  EXPECT_TRUE(Stacks::LoadFiles(files, backend_, nullptr).ok());
}

TEST_F(StacksErrorsTest, NoEnvoysFileAndUnknownFile) {
  Files files = BaseFiles();
  files.erase("envoys.vgo");
  files["envoy.vgo"] = "envoys: []\n";
  auto errors = LoadErrors(files);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].ToString(),
            "stacks/envoy.vgo: unknown .vgo file (expected envoys.vgo, roles.vgo, "
            "environments.vgo or configcrates/*.vgo)");
  EXPECT_EQ(errors[1].ToString(), "stacks/envoys.vgo: missing: a stacks tree needs envoys.vgo");
}

TEST_F(StacksErrorsTest, MissingDirectoryAndMalformedFileOnDisk) {
  testing::TempDir dir;
  LoadReport report;
  auto missing = Stacks::Load(dir.path() / "nope", backend_, &report);
  ASSERT_FALSE(missing.ok());
  ASSERT_EQ(report.errors.size(), 1u);
  EXPECT_THAT(report.errors[0].message, ::testing::HasSubstr("does not exist"));

  testing::WriteFileOrDie(dir.path() / "envoys.vgo", "envoys:\n  - match: [unclosed\n");
  testing::WriteFileOrDie(dir.path() / "README.md", "not a vgo file, ignored");
  auto bad = Stacks::Load(dir.path(), backend_, &report);
  ASSERT_FALSE(bad.ok());
  ASSERT_EQ(report.errors.size(), 1u);
  EXPECT_EQ(report.errors[0].file, "envoys.vgo");
  EXPECT_EQ(report.errors[0].line, 3);
  EXPECT_THAT(report.errors[0].message, ::testing::HasSubstr("malformed YAML"));
}

TEST_F(StacksErrorsTest, BackendUnavailable) {
  backend_.SetUnavailable(true);
  auto errors = LoadErrors(BaseFiles());
  ASSERT_GE(errors.size(), 1u);
  bool named = false;
  for (const auto& e : errors)
    named |= e.ToString().find("cannot check secret 'app/pw'") != std::string::npos;
  EXPECT_TRUE(named);
}

TEST_F(StacksErrorsTest, ReportsAllErrorsNotJustTheFirst) {
  Files files = BaseFiles();
  files["roles.vgo"] = "roles:\n  web:\n    configcrates: [app, ghost]\n";                     // :3
  files["environments.vgo"] = "env:\n  prod:\n    vars:\n      pw: \"secret:app/missing\"\n";  // :4
  files["configcrates/app.vgo"] =
      "configcrate: app\n"
      "resources:\n"
      "  - name: a\n"
      "    type: file\n"
      "    target_path: /a\n"
      "    mode: \"999\"\n"  // :6
      "    colour: blue\n"   // :7
      "  - name: b\n"
      "    type: exec\n"
      "    command: [\"/bin/x\", \"secret:app/pw\"]\n"  // :10
      "    depends_on: [nothing]\n";                    // :11
  auto errors = LoadErrors(files);
  std::vector<std::string> where;
  for (const auto& e : errors) where.push_back(e.file + ":" + std::to_string(e.line));
  EXPECT_THAT(
      where, ::testing::IsSupersetOf({"roles.vgo:3", "environments.vgo:4", "configcrates/app.vgo:6",
                                      "configcrates/app.vgo:7", "configcrates/app.vgo:10",
                                      "configcrates/app.vgo:11"}));
  EXPECT_GE(errors.size(), 6u);
}

TEST_F(StacksErrorsTest, LoaderNeverCallsGet) {
  auto stacks = Stacks::LoadFiles(BaseFiles(), backend_, nullptr);
  ASSERT_TRUE(stacks.ok());
  auto b = (*stacks)->Compile("web-9", 3);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->entitlement, (std::set<std::string>{"app/pw"}));
  EXPECT_EQ(backend_.get_calls(), 0);
}

}  // namespace
}  // namespace vigo::server

namespace vigo::server {
namespace {

TEST_F(StacksErrorsTest, InvalidUtf8AndNulAreRefused) {
  // Bundle strings are proto3 strings: a peer refuses invalid UTF-8.
  ExpectError("roles.vgo", "roles:\n  web:\n    configcrates: [app]\n# \xff\xfe\n", 4,
              "not valid UTF-8");
  ExpectError("environments.vgo", "env:\n  prod:\n    vars:\n      pw: \"\\ud800\"\n", 4,
              "malformed YAML");
  ExpectError("environments.vgo", "env:\n  prod:\n    vars:\n      pw: \"a\\0b\"\n", 4,
              "not valid UTF-8");
}

}  // namespace
}  // namespace vigo::server

namespace vigo::server {
namespace {

// A crate whose one file resource has `target_path` (line 5).
std::string CrateWithPath(const std::string& path) {
  return "configcrate: app\n"
         "resources:\n"
         "  - name: a\n"
         "    type: file\n"
         "    target_path: \"" +
         path + "\"\n";
}

TEST_F(StacksErrorsTest, RelativeTargetPathIsALoadError) {
  ExpectError("configcrates/app.vgo", CrateWithPath("etc/app.conf"), 5, "not an absolute path",
              "target_path");
  ExpectError("configcrates/app.vgo", CrateWithPath("{{ .Envoy.Name }}/app.conf"), 5,
              "not an absolute path", "target_path");
}

TEST_F(StacksErrorsTest, DotDotInAPathIsALoadError) {
  ExpectError("configcrates/app.vgo", CrateWithPath("/etc/../root/.ssh/authorized_keys"), 5,
              "'..' component", "target_path");
  ExpectError("configcrates/app.vgo", CrateWithPath("/srv/./x"), 5, "'.' component",
              "target_path");
  // Through a var the trial compile renders.
  Files files = BaseFiles();
  files["configcrates/app.vgo"] =
      "configcrate: app\nvars:\n  up: \"..\"\nresources:\n"
      "  - name: a\n    type: file\n    target_path: \"/srv/{{ .Vars.up }}/x\"\n";
  bool found = false;
  for (const LoadError& e : LoadErrors(files)) {
    found |= e.line == 7 && e.key == "target_path" && e.message.find("'..'") != std::string::npos;
  }
  EXPECT_TRUE(found);
  ExpectError("configcrates/app.vgo",
              "configcrate: app\nresources:\n  - name: m\n    type: exec\n"
              "    command: [/bin/true]\n    cwd: ../x\n    creates: /a/../b\n",
              6, "not an absolute path", "cwd");
  ExpectError("configcrates/app.vgo",
              "configcrate: app\nresources:\n  - name: m\n    type: exec\n"
              "    command: [/bin/true]\n    creates: /a/../b\n",
              6, "'..' component", "creates");
}

TEST_F(StacksErrorsTest, TwoResourcesOnOneTargetPathAreALoadError) {
  Files files = BaseFiles();
  files["configcrates/app.vgo"] =
      "configcrate: app\nresources:\n"
      "  - name: a\n    type: file\n    target_path: /etc/app.conf\n"          // :5
      "  - name: b\n    type: directory\n    target_path: \"/etc//app.conf/\"\n";  // :8
  std::vector<LoadError> errors = LoadErrors(files);
  ASSERT_EQ(errors.size(), 1u) << (errors.empty() ? "" : errors.front().ToString());
  EXPECT_EQ(errors[0].line, 8);
  EXPECT_THAT(errors[0].ToString(), ::testing::HasSubstr("also the target of resource 'a'"));
  EXPECT_THAT(errors[0].ToString(), ::testing::HasSubstr("configcrates/app.vgo:5"));
}

TEST_F(StacksErrorsTest, MarkerAssembledFromVarsIsALoadErrorInEveryField) {
  // Neither var alone is marker text; joined they spell a marker the load
  // never checked. Each field is tried on its own line.
  const std::string vars =
      "configcrate: app\nvars:\n  a: \"__VIGO_SEC\"\n  b: \"RET__app/other__END__\"\n"
      "resources:\n";  // resources start at line 6
  struct Case {
    std::string resource;
    int line;
    std::string key;
  };
  const std::vector<Case> cases = {
      {"  - name: x\n    type: exec\n    command: [/bin/echo, \"{{ .Vars.a }}{{ .Vars.b }}\"]\n",
       8, "command[1]"},
      {"  - name: x\n    type: file\n    target_path: \"/etc/{{ .Vars.a }}{{ .Vars.b }}\"\n", 8,
       "target_path"},
      {"  - name: x\n    type: file\n    target_path: /etc/x\n"
       "    owner: \"{{ .Vars.a }}{{ .Vars.b }}\"\n",
       9, "owner"},
      {"  - name: x\n    type: file\n    target_path: /etc/x\n"
       "    content: \"pw={{ .Vars.a }}{{ .Vars.b }}\"\n",
       9, "content"},
  };
  for (const Case& c : cases) {
    Files files = BaseFiles();
    files["configcrates/app.vgo"] = vars + c.resource;
    bool found = false;
    std::string all;
    for (const LoadError& e : LoadErrors(files)) {
      all += e.ToString() + "\n";
      found |= e.line == c.line && e.key == c.key &&
               e.message.find("join into marker text") != std::string::npos;
    }
    EXPECT_TRUE(found) << c.key << ":\n" << all;
  }
}

TEST_F(StacksErrorsTest, AnErrorInASharedCrateIsPrintedOnceNotOncePerRule) {
  Files files = BaseFiles();
  files["envoys.vgo"] =
      "envoys:\n  - match: \"web-*\"\n    environment: prod\n    roles: [web]\n"
      "  - match: \"api-*\"\n    environment: prod\n    roles: [web]\n"
      "  - match: \"db-*\"\n    environment: prod\n    roles: [web]\n";
  files["configcrates/app.vgo"] =
      "configcrate: app\nresources:\n"
      "  - name: a\n    type: file\n    target_path: \"/srv/{{ .Vars.missing }}\"\n";
  std::vector<LoadError> errors = LoadErrors(files);
  std::string all;
  for (const LoadError& e : errors) all += e.ToString() + "\n";
  ASSERT_EQ(errors.size(), 1u) << all;
  EXPECT_THAT(errors[0].ToString(), ::testing::HasSubstr("unknown template name '.Vars.missing'"));
  EXPECT_THAT(errors[0].ToString(), ::testing::HasSubstr("envoys matching 'web-*'"));
  EXPECT_THAT(errors[0].ToString(), ::testing::HasSubstr("and 2 other rules"));
}

TEST_F(StacksErrorsTest, AbsolutePathsWithRepeatedSlashesStillLoad) {
  Files files = BaseFiles();
  files["configcrates/app.vgo"] = CrateWithPath("/etc//app.conf");
  auto stacks = Stacks::LoadFiles(files, backend_, nullptr);
  EXPECT_TRUE(stacks.ok()) << stacks.status();
}

}  // namespace
}  // namespace vigo::server
