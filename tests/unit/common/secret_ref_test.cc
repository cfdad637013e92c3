#include "common/secret_ref.h"

#include <cstring>
#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace vigo {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string Msg(const absl::Status& s) { return std::string(s.message()); }

void ExpectRejected(std::string_view path, std::string_view problem) {
  absl::Status st = ValidateSecretPath(path);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << "path accepted: " << path;
  EXPECT_THAT(Msg(st), HasSubstr(std::string(problem)))
      << "for path of " << path.size() << " bytes";
}

TEST(ValidateSecretPathTest, AcceptsContractExamples) {
  for (std::string_view p : {"webapp/db_pw", "webapp/prod/db_password", "a", "A-Z.0_9", "x/y/z",
                             "_", "a_", "_a", "..a", "a..", ".hidden", "a-b/c.d/e_f"}) {
    EXPECT_TRUE(ValidateSecretPath(p).ok()) << p << ": " << ValidateSecretPath(p);
  }
  EXPECT_TRUE(ValidateSecretPath(std::string(256, 'a')).ok());
}

TEST(ValidateSecretPathTest, EveryRejectionNamesTheProblem) {
  ExpectRejected("", "secret path is empty");
  ExpectRejected("..", "segment '..' is not allowed");
  ExpectRejected("a/../b", "segment '..' is not allowed");
  ExpectRejected(".", "segment '.' is not allowed");
  ExpectRejected("a/./b", "segment '.' is not allowed");
  ExpectRejected("/a", "starts with '/'");
  ExpectRejected("a/", "ends with '/'");
  ExpectRejected("a//b", "empty segment");
  ExpectRejected("a b", "character that is not allowed at byte 1");
  ExpectRejected("a$b", "character that is not allowed at byte 1");
  ExpectRejected("a:b", "character that is not allowed at byte 1");
  ExpectRejected("a\\b", "character that is not allowed at byte 1");
  ExpectRejected(std::string(257, 'a'), "secret path is 257 bytes; the limit is 256");
  ExpectRejected(std::string("ab\0c", 4), "NUL byte at byte 2");
  ExpectRejected("caf\xc3\xa9", "non-ASCII byte at byte 3");
  ExpectRejected("a__b", "'__'");
}

TEST(ValidateSecretPathTest, ErrorsQuoteThePathSafely) {
  absl::Status st = ValidateSecretPath(std::string("x\0\n", 3));
  EXPECT_THAT(Msg(st), HasSubstr("'x\\x00\\x0a'"));
  EXPECT_THAT(Msg(st), Not(HasSubstr("\n")));
  st = ValidateSecretPath(std::string(300, 'a'));
  EXPECT_THAT(Msg(st), HasSubstr("..."));
  EXPECT_LT(Msg(st).size(), 200u);
  st = ValidateSecretPath("a/../b");
  EXPECT_THAT(Msg(st), HasSubstr("'a/../b'"));
}

TEST(MarkerForTest, Format) {
  EXPECT_EQ(MarkerFor("webapp/db_pw"), "__VIGO_SECRET__webapp/db_pw__END__");
}

TEST(FindReferencesTest, WholeValue) {
  auto refs = FindReferences("secret:webapp/db_pw", RefScan::kWholeValue);
  ASSERT_TRUE(refs.ok());
  ASSERT_EQ(refs->size(), 1u);
  EXPECT_EQ((*refs)[0].path, "webapp/db_pw");
  EXPECT_EQ((*refs)[0].offset, 0u);
  EXPECT_EQ((*refs)[0].length, 19u);

  // Not references.
  for (std::string_view v :
       {"plain", "", "secret:", "secret: x", "xsecret:a", " secret:a", "Secret:a"}) {
    refs = FindReferences(v, RefScan::kWholeValue);
    ASSERT_TRUE(refs.ok()) << v;
    EXPECT_TRUE(refs->empty()) << v;
  }
  // Malformed references are errors that name the problem.
  refs = FindReferences("secret:a//b", RefScan::kWholeValue);
  EXPECT_THAT(Msg(refs.status()), HasSubstr("empty segment"));
  refs = FindReferences("secret:../x", RefScan::kWholeValue);
  EXPECT_THAT(Msg(refs.status()), HasSubstr("'..'"));
  // In whole-value mode the whole rest must be the path.
  refs = FindReferences("secret:a/b trailing", RefScan::kWholeValue);
  EXPECT_EQ(refs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(Msg(refs.status()), HasSubstr("not allowed at byte 3"));
}

TEST(FindReferencesTest, EmbeddedFindsEveryReferenceWithWordBoundary) {
  std::string v =
      "user: app\npassword = secret:webapp/db_pw\nclient_secret: x\n"
      "token=secret:api/token,secret:z\nmysecret:no\n";
  auto refs = FindReferences(v, RefScan::kEmbedded);
  ASSERT_TRUE(refs.ok()) << refs.status();
  ASSERT_EQ(refs->size(), 3u);
  EXPECT_EQ((*refs)[0].path, "webapp/db_pw");
  EXPECT_EQ(v.substr((*refs)[0].offset, (*refs)[0].length), "secret:webapp/db_pw");
  EXPECT_EQ((*refs)[1].path, "api/token");
  EXPECT_EQ((*refs)[2].path, "z");
  EXPECT_EQ(v.substr((*refs)[2].offset, (*refs)[2].length), "secret:z");
}

TEST(FindReferencesTest, EmbeddedYamlKeyIsNotAReference) {
  auto refs = FindReferences("client_secret: x", RefScan::kEmbedded);
  ASSERT_TRUE(refs.ok());
  EXPECT_TRUE(refs->empty());
  refs = FindReferences("secret: x", RefScan::kEmbedded);
  ASSERT_TRUE(refs.ok());
  EXPECT_TRUE(refs->empty());
  refs = FindReferences("secret:", RefScan::kEmbedded);
  ASSERT_TRUE(refs.ok());
  EXPECT_TRUE(refs->empty());
}

TEST(FindReferencesTest, EmbeddedStartOfStringAndDelimiters) {
  auto refs = FindReferences("secret:a/b", RefScan::kEmbedded);
  ASSERT_TRUE(refs.ok());
  ASSERT_EQ(refs->size(), 1u);
  refs = FindReferences("\"secret:q\" (secret:r) [secret:s]", RefScan::kEmbedded);
  ASSERT_TRUE(refs.ok());
  ASSERT_EQ(refs->size(), 3u);
  EXPECT_EQ((*refs)[0].path, "q");
  EXPECT_EQ((*refs)[1].path, "r");
  EXPECT_EQ((*refs)[2].path, "s");
}

TEST(FindReferencesTest, EmbeddedMalformedIsAnErrorWithoutSurroundingText) {
  auto refs = FindReferences("do-not-echo-me password=secret:a//b", RefScan::kEmbedded);
  ASSERT_FALSE(refs.ok());
  EXPECT_THAT(Msg(refs.status()), HasSubstr("at byte 24"));
  EXPECT_THAT(Msg(refs.status()), HasSubstr("empty segment"));
  EXPECT_THAT(Msg(refs.status()), Not(HasSubstr("do-not-echo-me")));
  EXPECT_FALSE(FindReferences("x secret:../etc", RefScan::kEmbedded).ok());
  EXPECT_FALSE(FindReferences("x secret:a/ y", RefScan::kEmbedded).ok());
  EXPECT_FALSE(FindReferences("x secret:" + std::string(257, 'a'), RefScan::kEmbedded).ok());
}

TEST(ReplaceReferencesWithMarkersTest, ReplacesEachReference) {
  auto out = ReplaceReferencesWithMarkers("password = secret:webapp/db_pw\nk: secret:x\n",
                                          RefScan::kEmbedded);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "password = __VIGO_SECRET__webapp/db_pw__END__\nk: __VIGO_SECRET__x__END__\n");
  out = ReplaceReferencesWithMarkers("secret:a", RefScan::kWholeValue);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "__VIGO_SECRET__a__END__");
  out = ReplaceReferencesWithMarkers("no refs", RefScan::kEmbedded);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(*out, "no refs");
  EXPECT_FALSE(ReplaceReferencesWithMarkers("secret:/x", RefScan::kEmbedded).ok());
}

TEST(FindMarkersTest, FindsMarkersInOrder) {
  std::string t = "a " + MarkerFor("x/y") + MarkerFor("z_") + " b " + MarkerFor("_") + "\n";
  auto m = FindMarkers(t);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->size(), 3u);
  EXPECT_EQ((*m)[0].path, "x/y");
  EXPECT_EQ((*m)[0].offset, 2u);
  EXPECT_EQ(t.substr((*m)[0].offset, (*m)[0].length), MarkerFor("x/y"));
  EXPECT_EQ((*m)[1].path, "z_");
  EXPECT_EQ(t.substr((*m)[1].offset, (*m)[1].length), MarkerFor("z_"));
  EXPECT_EQ((*m)[2].path, "_");
  m = FindMarkers("nothing here __VIGO_ not a prefix");
  ASSERT_TRUE(m.ok());
  EXPECT_TRUE(m->empty());
}

TEST(FindMarkersTest, MalformedMarkerIsAnError) {
  for (std::string t :
       {"__VIGO_SECRET__", "x __VIGO_SECRET__abc", "__VIGO_SECRET__a b__END__",
        "__VIGO_SECRET____END__", "__VIGO_SECRET__a//b__END__", "__VIGO_SECRET__../x__END__",
        "__VIGO_SECRET__a__b__END__", "__VIGO_SECRET__a__EN", "__VIGO_SECRET__/a__END__"}) {
    auto m = FindMarkers(t);
    EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << t;
    EXPECT_THAT(Msg(m.status()), HasSubstr("malformed secret marker at byte")) << t;
  }
}

TEST(FindMarkersTest, OverlappingPrefixIsAnErrorNotAnotherPath) {
  // "__VIGO_SECRET_" + marker("END"): a naive scan would read the path
  // "_VIGO_SECRET" from the first (overlapping) prefix.
  std::string t = "__VIGO_SECRET_" + MarkerFor("END");
  auto m = FindMarkers(t);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(Msg(m.status()), HasSubstr("overlaps"));
}

TEST(ContainsMarkerTextTest, Detects) {
  EXPECT_TRUE(ContainsMarkerText("x__VIGO_SECRET__"));
  EXPECT_TRUE(ContainsMarkerText(MarkerFor("a")));
  EXPECT_FALSE(ContainsMarkerText("__VIGO_SECRET_"));
  EXPECT_FALSE(ContainsMarkerText("secret:a"));
}

class SubstituteTest : public ::testing::Test {
 protected:
  void Put(const std::string& path, std::string_view value) {
    auto b = sandbox::SecretBuffer::CopyFrom(
        {reinterpret_cast<const uint8_t*>(value.data()), value.size()});
    ASSERT_TRUE(b.ok());
    values_.insert_or_assign(path, std::move(*b));
  }
  SecretLookup Lookup() {
    return [this](std::string_view path) -> absl::StatusOr<const sandbox::SecretBuffer*> {
      ++lookups_;
      auto it = values_.find(std::string(path));
      if (it == values_.end()) {
        return absl::NotFoundError("no secret " + std::string(path));
      }
      return &it->second;
    };
  }
  static std::string Str(const sandbox::SecretBuffer& b) {
    return std::string(reinterpret_cast<const char*>(b.Reveal().data()), b.size());
  }
  std::map<std::string, sandbox::SecretBuffer> values_;
  int lookups_ = 0;
};

TEST_F(SubstituteTest, ReplacesMarkersWithValues) {
  Put("webapp/db_pw", "s3cr3t");
  Put("e", "");
  std::string text = "user: app\npassword: " + MarkerFor("webapp/db_pw") +
                     "\nempty:" + MarkerFor("e") + MarkerFor("webapp/db_pw") + "!";
  auto out = SubstituteMarkers(text, Lookup());
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(Str(*out), "user: app\npassword: s3cr3t\nempty:s3cr3t!");
  EXPECT_EQ(lookups_, 3);
}

TEST_F(SubstituteTest, NoMarkersCopiesText) {
  auto out = SubstituteMarkers("plain text", Lookup());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(Str(*out), "plain text");
  out = SubstituteMarkers("", Lookup());
  ASSERT_TRUE(out.ok());
  EXPECT_TRUE(out->empty());
}

TEST_F(SubstituteTest, ValueContainingMarkerTextIsNotExpandedAgain) {
  Put("a", MarkerFor("b"));
  Put("b", "never");
  auto out = SubstituteMarkers(MarkerFor("a"), Lookup());
  ASSERT_TRUE(out.ok());
  EXPECT_EQ(Str(*out), MarkerFor("b"));
}

TEST_F(SubstituteTest, LookupErrorPropagates) {
  Put("a", "x");
  auto out = SubstituteMarkers(MarkerFor("a") + MarkerFor("missing"), Lookup());
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(Msg(out.status()), HasSubstr("missing"));
}

TEST_F(SubstituteTest, NullLookupResultIsAnError) {
  SecretLookup null_lookup = [](std::string_view) -> absl::StatusOr<const sandbox::SecretBuffer*> {
    return nullptr;
  };
  auto out = SubstituteMarkers(MarkerFor("a"), null_lookup);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal);
}

TEST_F(SubstituteTest, MalformedMarkerIsAnError) {
  auto out = SubstituteMarkers("x __VIGO_SECRET__a b", Lookup());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(lookups_, 0);
}

}  // namespace
}  // namespace vigo
