#include "common/args.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vigo {
namespace {

using ::testing::HasSubstr;

ArgSpec SetSpec() {
  return ArgSpec{"vigocli secrets set PATH [--from-file F]",
                 "Store a secret value.",
                 {{"from-file", true, "read the value from FILE"}, {"json", false, "JSON output"}},
                 1,
                 1};
}

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

TEST(ParseArgsTest, PositionalAndFlagsBothForms) {
  auto a = ParseArgs(SetSpec(), {"webapp/db_pw", "--from-file", "/tmp/f"});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(a->help());
  ASSERT_EQ(a->positional().size(), 1u);
  EXPECT_EQ(a->positional()[0], "webapp/db_pw");
  EXPECT_TRUE(a->Has("from-file"));
  EXPECT_EQ(a->Get("from-file"), "/tmp/f");
  EXPECT_FALSE(a->Has("json"));
  EXPECT_EQ(a->Get("json"), std::nullopt);

  a = ParseArgs(SetSpec(), {"--from-file=/tmp/x=y", "--json", "p"});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->Get("from-file"), "/tmp/x=y");  // only the first '=' splits
  EXPECT_TRUE(a->Has("json"));
  EXPECT_EQ(a->Get("json"), "");
  EXPECT_EQ(a->positional()[0], "p");
}

TEST(ParseArgsTest, EmptyInlineValueIsAValue) {
  auto a = ParseArgs(SetSpec(), {"p", "--from-file="});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->Get("from-file"), "");
}

TEST(ParseArgsTest, LastRepeatedFlagWins) {
  auto a = ParseArgs(SetSpec(), {"p", "--from-file", "a", "--from-file", "b"});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->Get("from-file"), "b");
}

// A repeatable flag (`vigo --hide PATH --hide PATH`) keeps every value, in
// order and in both forms; Get still answers the last one.
TEST(ParseArgsTest, GetAllReturnsEveryValueOfARepeatedFlag) {
  auto a = ParseArgs(SetSpec(), {"p", "--from-file", "a", "--from-file=b", "--from-file", "a"});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->GetAll("from-file"), (std::vector<std::string>{"a", "b", "a"}));
  EXPECT_EQ(a->Get("from-file"), "a");
  EXPECT_TRUE(a->GetAll("json").empty());
}

TEST(ParseArgsTest, UnknownFlagsAreErrorsNamingTheFlag) {
  auto a = ParseArgs(SetSpec(), {"p", "--bogus"});
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(a.status()), HasSubstr("unknown flag '--bogus'"));
  a = ParseArgs(SetSpec(), {"p", "--bogus=1"});
  EXPECT_THAT(Msg(a.status()), HasSubstr("unknown flag '--bogus'"));
  a = ParseArgs(SetSpec(), {"p", "-x"});
  EXPECT_THAT(Msg(a.status()), HasSubstr("unknown flag '-x'"));
}

TEST(ParseArgsTest, MissingValueAndUnexpectedValue) {
  auto a = ParseArgs(SetSpec(), {"p", "--from-file"});
  EXPECT_THAT(Msg(a.status()), HasSubstr("flag '--from-file' needs a value"));
  a = ParseArgs(SetSpec(), {"p", "--json=yes"});
  EXPECT_THAT(Msg(a.status()), HasSubstr("flag '--json' takes no value"));
}

TEST(ParseArgsTest, PositionalCounts) {
  auto a = ParseArgs(SetSpec(), {});
  EXPECT_EQ(a.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(a.status()), HasSubstr("missing argument"));
  EXPECT_THAT(Msg(a.status()), HasSubstr("vigocli secrets set PATH"));
  a = ParseArgs(SetSpec(), {"one", "two"});
  EXPECT_THAT(Msg(a.status()), HasSubstr("unexpected argument 'two'"));
}

TEST(ParseArgsTest, DoubleDashEndsFlags) {
  auto a = ParseArgs(SetSpec(), {"--", "--json"});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_FALSE(a->Has("json"));
  ASSERT_EQ(a->positional().size(), 1u);
  EXPECT_EQ(a->positional()[0], "--json");
}

TEST(ParseArgsTest, SingleDashIsPositional) {
  auto a = ParseArgs(SetSpec(), {"-"});
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->positional()[0], "-");
}

TEST(ParseArgsTest, HelpAlwaysRecognisedAndSkipsPositionalChecks) {
  for (const char* h : {"--help", "-h"}) {
    auto a = ParseArgs(SetSpec(), {h});
    ASSERT_TRUE(a.ok()) << h << ": " << a.status();
    EXPECT_TRUE(a->help());
  }
  auto a = ParseArgs(SetSpec(), {"a", "b", "c", "--help"});
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(a->help());
  // An unknown flag is still an error, even next to --help.
  EXPECT_FALSE(ParseArgs(SetSpec(), {"--help", "--bogus"}).ok());
}

TEST(HelpTextTest, ListsUsageSummaryAndFlags) {
  std::string h = HelpText(SetSpec());
  EXPECT_THAT(h, ::testing::StartsWith("usage: vigocli secrets set PATH [--from-file F]\n"));
  EXPECT_THAT(h, HasSubstr("Store a secret value."));
  EXPECT_THAT(h, HasSubstr("--from-file VALUE"));
  EXPECT_THAT(h, HasSubstr("read the value from FILE"));
  EXPECT_THAT(h, HasSubstr("--json"));
  EXPECT_THAT(h, HasSubstr("--help"));
}

// Issue 15.3: with echo_arguments off, a refused argument is named by
// position and length only.
TEST(ParseArgsTest, QuietSpecNamesARefusedArgumentByPositionAndLengthOnly) {
  ArgSpec spec = SetSpec();
  spec.echo_arguments = false;
  auto extra = ParseArgs(spec, {"a/b", "s3cret-on-argv"});
  ASSERT_FALSE(extra.ok());
  EXPECT_THAT(extra.status().message(), HasSubstr("unexpected argument (argument 2, 14 bytes)"));
  EXPECT_THAT(std::string(extra.status().message()), ::testing::Not(HasSubstr("s3cret")));
  for (const char* flag : {"--s3cret-flag", "--s3cret-flag=v", "-s3cret"}) {
    auto bad = ParseArgs(spec, {"a/b", flag});
    ASSERT_FALSE(bad.ok()) << flag;
    EXPECT_THAT(bad.status().message(), HasSubstr("unknown flag (argument 2, ")) << flag;
    EXPECT_THAT(std::string(bad.status().message()), ::testing::Not(HasSubstr("s3cret")));
  }
  // The default still quotes (other binaries' errors are unchanged).
  auto loud = ParseArgs(SetSpec(), {"a/b", "extra"});
  ASSERT_FALSE(loud.ok());
  EXPECT_THAT(loud.status().message(), HasSubstr("'extra'"));
}

}  // namespace
}  // namespace vigo
