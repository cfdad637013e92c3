// The server's leak scanner (ReportResult defence in depth): a value the
// envoy is entitled to is found in raw, hex and base64 form, including base64
// of a larger blob in which the value starts at any byte offset (HTTP Basic
// auth "user:pass", base64'd config files).
#include "server/service/leak_scan.h"

#include <cstring>
#include <set>
#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"

namespace vigo::server::service {
namespace {

sandbox::SecretBuffer Buf(const std::string& s) {
  auto b = sandbox::SecretBuffer::Create(s.size());
  EXPECT_TRUE(b.ok());
  std::memcpy(b->RevealMutable().data(), s.data(), s.size());
  return std::move(*b);
}

constexpr const char* kValue = "S3cr3t-Passw0rd!x";

TEST(LeakScanTest, Base64AtEveryOffsetAndBothAlphabetsIsFound) {
  LeakScanner scanner;
  ASSERT_TRUE(scanner.Add("db/pw", Buf(kValue)).ok());
  for (const std::string prefix : {"", "u:", "user:", "admin:", "{\"p\":\""}) {
    for (const std::string suffix : {"", "\n", "\"}", "@host:5432/db"}) {
      const std::string blob = prefix + kValue + suffix;
      for (bool url : {false, true}) {
        std::string enc = url ? absl::WebSafeBase64Escape(blob) : absl::Base64Escape(blob);
        std::set<std::string> leaked;
        std::string out = scanner.Redact("Authorization: Basic " + enc + " end", &leaked);
        EXPECT_EQ(leaked.count("db/pw"), 1u) << "prefix '" << prefix << "' suffix '" << suffix
                                             << "' url=" << url << ": " << out;
      }
    }
  }
}

TEST(LeakScanTest, RawAndHexAreFoundAndRedacted) {
  LeakScanner scanner;
  ASSERT_TRUE(scanner.Add("db/pw", Buf(kValue)).ok());
  std::set<std::string> leaked;
  std::string hex = absl::BytesToHexString(kValue);
  std::string out = scanner.Redact(std::string("pw=") + kValue + " hex=" + hex, &leaked);
  EXPECT_EQ(leaked.count("db/pw"), 1u);
  EXPECT_EQ(out.find(kValue), std::string::npos) << out;
  EXPECT_EQ(out.find(hex), std::string::npos) << out;
}

TEST(LeakScanTest, UnrelatedTextIsLeftAlone) {
  LeakScanner scanner;
  ASSERT_TRUE(scanner.Add("db/pw", Buf(kValue)).ok());
  std::set<std::string> leaked;
  const std::string text =
      "wrote 3 files; base64 " + absl::Base64Escape(std::string("another value entirely!")) +
      " done";
  EXPECT_EQ(scanner.Redact(text, &leaked), text);
  EXPECT_TRUE(leaked.empty());
}

}  // namespace
}  // namespace vigo::server::service
