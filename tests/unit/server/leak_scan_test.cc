// The server's leak scanner (ReportResult defence in depth): a value the
// envoy is entitled to is found in raw, hex and base64 form, including base64
// of a larger blob in which the value starts at any byte offset (HTTP Basic
// auth "user:pass", base64'd config files).
#include "server/service/leak_scan.h"

#include <cstring>
#include <set>
#include <string>
#include <vector>

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

// Scans `text` for kValue under path "db/pw".
struct One {
  explicit One(std::string t) : text(std::move(t)), scanner({text}) {
    EXPECT_TRUE(scanner.Scan("db/pw", Buf(kValue)).ok());
  }
  std::string text;
  LeakScanner scanner;
};

TEST(LeakScanTest, Base64AtEveryOffsetAndBothAlphabetsIsFound) {
  for (const std::string prefix : {"", "u:", "user:", "admin:", "{\"p\":\""}) {
    for (const std::string suffix : {"", "\n", "\"}", "@host:5432/db"}) {
      const std::string blob = prefix + kValue + suffix;
      for (bool url : {false, true}) {
        std::string enc = url ? absl::WebSafeBase64Escape(blob) : absl::Base64Escape(blob);
        One one("Authorization: Basic " + enc + " end");
        EXPECT_EQ(one.scanner.leaked().count("db/pw"), 1u)
            << "prefix '" << prefix << "' suffix '" << suffix << "' url=" << url << ": "
            << one.scanner.Redacted(0);
      }
    }
  }
}

TEST(LeakScanTest, RawAndHexAreFoundAndRedacted) {
  std::string hex = absl::BytesToHexString(kValue);
  One one(std::string("pw=") + kValue + " hex=" + hex);
  std::string out = one.scanner.Redacted(0);
  EXPECT_EQ(one.scanner.leaked().count("db/pw"), 1u);
  EXPECT_EQ(out.find(kValue), std::string::npos) << out;
  EXPECT_EQ(out.find(hex), std::string::npos) << out;
}

TEST(LeakScanTest, UnrelatedTextIsLeftAlone) {
  const std::string text = "wrote 3 files; base64 " +
                           absl::Base64Escape(std::string("another value entirely!")) + " done";
  One one(text);
  EXPECT_EQ(one.scanner.Redacted(0), text);
  EXPECT_TRUE(one.scanner.leaked().empty());
}

TEST(LeakScanTest, ValuesTooBigToScanTogetherAreScannedOneAtATime) {
  // Twelve 1 MiB values: their encoded forms together (~21 MiB each) would
  // not fit in the 16 MiB locked arena; scanned one form at a time they do.
  std::string text = "head ";
  std::vector<sandbox::SecretBuffer> values;
  for (int i = 0; i < 12; ++i) {
    auto v = sandbox::SecretBuffer::Create(1 << 20);
    ASSERT_TRUE(v.ok());
    for (size_t k = 0; k < v->size(); ++k) {
      v->RevealMutable()[k] = static_cast<uint8_t>('a' + (k * 7 + static_cast<size_t>(i)) % 26);
    }
    values.push_back(std::move(*v));
  }
  // The last value, hex-encoded, is in the text.
  auto last = values.back().Reveal();
  text +=
      absl::BytesToHexString(std::string(reinterpret_cast<const char*>(last.data()), last.size()));
  text += " tail";
  LeakScanner scanner({text});
  for (int i = 0; i < 12; ++i) {
    ASSERT_TRUE(scanner.Scan("big/" + std::to_string(i), values[static_cast<size_t>(i)]).ok()) << i;
  }
  EXPECT_EQ(scanner.leaked(), std::set<std::string>{"big/11"});
  EXPECT_EQ(scanner.Redacted(0), "head [redacted:big/11] tail");
}

}  // namespace
}  // namespace vigo::server::service
