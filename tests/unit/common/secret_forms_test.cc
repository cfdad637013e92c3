// The forms of a value: checked against RFC 4648 test vectors.
#include "common/secret_forms.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace vigo {
namespace {

std::vector<std::pair<std::string, std::string>> Forms(std::string_view v) {
  std::vector<std::pair<std::string, std::string>> out;
  auto st = ForEachForm({reinterpret_cast<const uint8_t*>(v.data()), v.size()},
                        [&](FormKind kind, sandbox::SecretBuffer form) {
                          auto b = form.Reveal();
                          out.emplace_back(std::string(FormKindName(kind)),
                                           std::string(b.begin(), b.end()));
                          return absl::OkStatus();
                        });
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

bool Has(const std::vector<std::pair<std::string, std::string>>& forms, std::string_view kind,
         std::string_view form) {
  for (const auto& [k, f] : forms) {
    if (k == kind && f == form) return true;
  }
  return false;
}

TEST(SecretFormsTest, AlignedFormsMatchRfc4648Vectors) {
  auto f = Forms("foobar");
  EXPECT_TRUE(Has(f, "raw", "foobar"));
  EXPECT_TRUE(Has(f, "reversed", "raboof"));
  EXPECT_TRUE(Has(f, "hex", "666f6f626172"));
  EXPECT_TRUE(Has(f, "HEX", "666F6F626172"));
  EXPECT_TRUE(Has(f, "base64", "Zm9vYmFy"));
  EXPECT_TRUE(Has(f, "base64url", "Zm9vYmFy"));
  // base32("foobar") = "MZXW6YTBOI======": 9 characters carry only the
  // value's bits; the 10th is zero-padded and kept as the ends-stream form.
  EXPECT_TRUE(Has(f, "base32", "MZXW6YTBO"));
  EXPECT_TRUE(Has(f, "base32", "MZXW6YTBOI"));
  // base64("fooba") = "Zm9vYmE=": "Zm9vYm" pure, "Zm9vYmE" ending the stream.
  auto g = Forms("fooba");
  EXPECT_TRUE(Has(g, "base64", "Zm9vYm"));
  EXPECT_TRUE(Has(g, "base64", "Zm9vYmE"));
}

TEST(SecretFormsTest, ShiftedFormsAreWhatALongerStreamShows) {
  // base64("x" + "secret-value") = "eHNlY3JldC12YWx1ZQ==": after the two
  // characters mixed with "x", the value's own characters follow.
  auto f = Forms("secret-value");
  EXPECT_TRUE(Has(f, "base64", "NlY3JldC12YWx1Z"));
  EXPECT_TRUE(Has(f, "base64", "NlY3JldC12YWx1ZQ"));
  // Whitespace is dropped for the no-whitespace form only when there is some.
  EXPECT_FALSE(Has(f, "no-whitespace", "secret-value"));
  EXPECT_TRUE(Has(Forms("two words"), "no-whitespace", "twowords"));
  EXPECT_TRUE(Forms("").empty());
}

}  // namespace
}  // namespace vigo
