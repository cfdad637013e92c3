// Unit tests for the isopass response parsers (server/isopass/isopass_parse.h).
#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/isopass/isopass_parse.h"

namespace vigo::server::isopass {
namespace {

using sandbox::SecretBuffer;
using ::testing::HasSubstr;

SecretBuffer Buf(std::string_view s) {
  std::vector<uint8_t> bytes(s.begin(), s.end());
  auto b = SecretBuffer::CopyFrom(bytes);
  EXPECT_TRUE(b.ok()) << b.status();
  return std::move(*b);
}

std::string Str(const SecretBuffer& b) {
  auto bytes = b.Reveal();
  return std::string(bytes.begin(), bytes.end());
}

const SecretBuffer* Field(const ParsedSecret& s, std::string_view name) {
  for (const auto& [k, v] : s.fields) {
    if (k == name) return &v;
  }
  return nullptr;
}

TEST(IsopassRfc3339, ParsesZuluFractionAndOffsets) {
  auto t = ParseRfc3339("1970-01-01T00:00:10Z");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(t->time_since_epoch()).count(), 10);
  auto frac = ParseRfc3339("1970-01-01T00:00:10.25z");
  ASSERT_TRUE(frac.ok());
  EXPECT_EQ(std::chrono::duration_cast<std::chrono::milliseconds>(frac->time_since_epoch()).count(),
            10250);
  auto off = ParseRfc3339("2026-11-28T12:00:00+01:00");
  auto zulu = ParseRfc3339("2026-11-28T11:00:00Z");
  ASSERT_TRUE(off.ok() && zulu.ok());
  EXPECT_EQ(*off, *zulu);
  auto leap = ParseRfc3339("2024-02-29T23:59:59-00:30");
  EXPECT_TRUE(leap.ok());
}

TEST(IsopassRfc3339, RejectsMalformed) {
  for (std::string_view bad :
       {"", "2026-11-28", "2026-11-28T11:00:00", "2026-13-01T00:00:00Z", "2026-11-28T25:00:00Z",
        "2026-11-28T11:00:00.Z", "2026-11-28T11:00:00+0100", "2026-11-28T11:00:00Zjunk",
        "20261128T110000Z", "2026-02-30T00:00:00Z",
                               "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"}) {
    EXPECT_FALSE(ParseRfc3339(bad).ok()) << bad;
  }
}

TEST(IsopassTokenResponse, ParsesTokenIntoSecretBuffer) {
  auto g = ParseTokenResponse(Buf(R"({"token":"abcDEF123","expires_at":"2030-01-01T00:00:00Z"})"));
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(Str(g->token), "abcDEF123");
  EXPECT_EQ(*ParseRfc3339("2030-01-01T00:00:00Z"), g->expires_at);
}

TEST(IsopassTokenResponse, RejectsBadShapesWithoutEchoingThem) {
  struct Case {
    std::string_view body;
    std::string_view message;
  } cases[] = {
      {R"({"expires_at":"2030-01-01T00:00:00Z"})", "no string 'token'"},
      {R"({"token":"tok-Xq9","expires_at":"soon"})", "not an RFC 3339 time"},
      {R"({"token":"tok-Xq9"})", "no string 'expires_at'"},
      {R"({"token":"tok Xq9","expires_at":"2030-01-01T00:00:00Z"})",
       "not allowed in an HTTP header"},
      {R"({"token":"tok\r\nX-Evil: 1","expires_at":"2030-01-01T00:00:00Z"})",
       "not allowed in an HTTP header"},
      {R"(["tok-Xq9"])", "not a JSON object"},
      {R"({"token":"tok-Xq9",)", "not valid JSON"},
      {"", "not valid JSON"},
  };
  for (const Case& c : cases) {
    auto g = ParseTokenResponse(Buf(c.body));
    ASSERT_FALSE(g.ok()) << c.body;
    EXPECT_EQ(g.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(std::string(g.status().message()), HasSubstr(c.message));
    EXPECT_THAT(std::string(g.status().message()), ::testing::Not(HasSubstr("Xq9")));
  }
}

TEST(IsopassSearchResponse, ParsesEveryType) {
  constexpr std::string_view kBody = R"([
    {"id":"1","name":"app/api_key","type":"api_key","organization":"acme","value":"k-\u00e9\n\"q\""},
    {"id":"2","name":"pin","type":"number","value":12345678901234567890},
    {"id":"3","name":"flag","type":"other","value":true},
    {"id":"4","name":"db-admin","type":"username_password","value":{"username":"admin","password":"pw1"}},
    {"id":"5","name":"db-legacy","type":"username_password",
     "value":"{\"username\":\"legacy\",\"password\":\"p\\\"w2\"}"},
    {"id":"6","name":"cfg","type":"key_value_pair","version":7,
     "value":{"region":"eu","port":5432,"debug":false,"nested":{"x":1},"nothing":null}},
    {"id":"7","name":"web-tls","type":"tls_bundle","updated_at":"1970-01-01T00:00:01Z",
     "value":{"certificate":"CERT","private_key":"KEY","ca_chain":["CA1","CA2"]}}
  ])";
  auto r = ParseSearchResponse(Buf(kBody), 100);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 7u);
  const auto& s = *r;
  EXPECT_EQ(s[0].name, "app/api_key");
  EXPECT_EQ(s[0].kind, SecretKind::kRaw);
  EXPECT_EQ(s[0].organization, "acme");
  EXPECT_EQ(Str(s[0].raw), "k-\xc3\xa9\n\"q\"");
  EXPECT_FALSE(s[0].service_version.has_value());
  EXPECT_EQ(Str(s[1].raw), "12345678901234567890");
  EXPECT_EQ(Str(s[2].raw), "true");
  EXPECT_EQ(s[3].kind, SecretKind::kUsernamePassword);
  ASSERT_NE(Field(s[3], "password"), nullptr);
  EXPECT_EQ(Str(*Field(s[3], "password")), "pw1");
  EXPECT_EQ(Str(*Field(s[3], "username")), "admin");
  EXPECT_TRUE(s[4].value_error.empty()) << s[4].value_error;
  ASSERT_NE(Field(s[4], "password"), nullptr);
  EXPECT_EQ(Str(*Field(s[4], "password")), "p\"w2");
  EXPECT_EQ(s[5].kind, SecretKind::kKeyValuePair);
  EXPECT_EQ(s[5].service_version, 7u);
  EXPECT_EQ(Str(*Field(s[5], "port")), "5432");
  EXPECT_EQ(Str(*Field(s[5], "debug")), "false");
  EXPECT_EQ(Field(s[5], "nested"), nullptr);
  EXPECT_EQ(Field(s[5], "nothing"), nullptr);
  EXPECT_EQ(s[6].kind, SecretKind::kTlsBundle);
  EXPECT_EQ(s[6].service_version, 1000000u);
  EXPECT_EQ(Str(*Field(s[6], "ca_chain")), "CA1\nCA2");
  EXPECT_EQ(Str(*Field(s[6], "private_key")), "KEY");
}

TEST(IsopassSearchResponse, BadValuesAreReportedPerSecret) {
  constexpr std::string_view kBody = R"([
    {"name":"a","type":"username_password","value":"not json at all"},
    {"name":"b","type":"username_password","value":{"username":"u"}},
    {"name":"c","type":"key_value_pair","value":{"k":"1","k":"2"}},
    {"name":"d","type":"raw","value":{"obj":1}},
    {"name":"e","type":"raw"},
    {"name":"f","type":"key_value_pair","value":42},
    {"name":"g","type":"key_value_pair","value":"\"just a string\""}
  ])";
  auto r = ParseSearchResponse(Buf(kBody), 100);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 7u);
  EXPECT_THAT((*r)[0].value_error, HasSubstr("not valid JSON"));
  EXPECT_THAT((*r)[1].value_error, HasSubstr("no 'password' field"));
  EXPECT_THAT((*r)[2].value_error, HasSubstr("field 'k' twice"));
  EXPECT_THAT((*r)[3].value_error, HasSubstr("not a string"));
  EXPECT_THAT((*r)[4].value_error, HasSubstr("no value"));
  EXPECT_THAT((*r)[5].value_error, HasSubstr("not a JSON object"));
  EXPECT_THAT((*r)[6].value_error, HasSubstr("not a JSON object"));
  for (const auto& s : *r) EXPECT_TRUE(s.fields.empty()) << s.name;
}

TEST(IsopassSearchResponse, CountEqualToLimitIsTruncationError) {
  auto r = ParseSearchResponse(Buf(R"([{"name":"a","type":"t","value":"1"},
                                       {"name":"b","type":"t","value":"2"}])"),
                               2);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("truncated"));
  EXPECT_TRUE(ParseSearchResponse(Buf(R"([{"name":"a","type":"t","value":"1"}])"), 2).ok());
}

TEST(IsopassSearchResponse, MalformedBodiesAreClearErrors) {
  struct Case {
    std::string body;
    std::string_view message;
  } cases[] = {
      {"[{\"name\":\"a\",\"type\":\"t\",\"value\":\"s3cr3tXYZ\"", "not valid JSON"},
      {"{\"name\":\"a\"}", "not a JSON array"},
      {"[1]", "not a JSON object"},
      {"[{\"type\":\"t\",\"value\":\"s3cr3tXYZ\"}]", "without a string 'name'"},
      {"[{\"name\":\"a\",\"value\":\"s3cr3tXYZ\"}]", "without a string 'type'"},
      {std::string("[{\"name\":\"a\",\"type\":\"t\",\"value\":\"s3cr3tXYZ\"}]") +
           std::string(1, '\0') + "junk",
       "NUL byte"},
      {"[{\"name\":\"a\",\"type\":\"t\",\"value\":\"\xff\xfe s3cr3tXYZ\"}]", "not valid JSON"},
      {"[{\"name\":\"a\",\"type\":\"t\",\"value\":\"s3cr3tXYZ\"}] trailing", "not valid JSON"},
      {std::string(200000, '[') + std::string(200000, ']'), "not a JSON object"},
  };
  for (const Case& c : cases) {
    auto r = ParseSearchResponse(Buf(c.body), 100);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(c.message));
    EXPECT_THAT(std::string(r.status().message()), ::testing::Not(HasSubstr("s3cr3t")));
  }
}

TEST(IsopassMeResponse, RequiresObject) {
  EXPECT_TRUE(ParseMeResponse(Buf(R"({"email":"a@b","organizations":[],"scopes":[]})")).ok());
  EXPECT_FALSE(ParseMeResponse(Buf("[]")).ok());
  EXPECT_FALSE(ParseMeResponse(Buf("<html>")).ok());
}

}  // namespace
}  // namespace vigo::server::isopass
