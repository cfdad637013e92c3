// The server's leak scanner (ReportResult defence in depth): a value the
// envoy is entitled to is found in raw, hex and base64 form, including base64
// of a larger blob in which the value starts at any byte offset (HTTP Basic
// auth "user:pass", base64'd config files), and through the decoding views
// shared with the worker's scrubber (JSON \u escapes, URL %XX and '+', C
// \xNN escapes, base64 wrapped across lines): the escaped occurrence is what
// gets redacted.
#include "server/service/leak_scan.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "common/utf8_text.h"
#include "gtest/gtest.h"
#include "tests/support/encodings.h"

namespace vigo::server::service {
namespace {

namespace enc = vigo::testing::enc;

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
    EXPECT_TRUE(scanner.Finish().ok());
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

TEST(LeakScanTest, ValueWithNonUtf8BytesIsFoundInTheEscapedOutputAgentsReport) {
  // Agents report non-UTF-8 output as \xHH (common/utf8_text.h); the C-escape
  // view reads it back, so a raw binary value the worker missed is still found.
  const std::string value =
      "K9\xff\xfe"
      "BIN-77a1\xe9";
  const std::string text = EscapeInvalidUtf8("out: " + value + " end");
  ASSERT_TRUE(IsValidUtf8(text));
  LeakScanner scanner({text});
  ASSERT_TRUE(scanner.Scan("app/bin", Buf(value)).ok());
  ASSERT_TRUE(scanner.Finish().ok());
  EXPECT_EQ(scanner.leaked().count("app/bin"), 1u);
  EXPECT_EQ(scanner.Redacted(0), "out: [redacted:app/bin] end");
}

TEST(LeakScanTest, StoredTextIsValidUtf8AndCutAtACharacter) {
  EXPECT_EQ(StoredReportText("caf\xe9", 100), "caf\\xe9");
  EXPECT_EQ(StoredReportText("ab\xe2\x82\xac", 4), "ab...[truncated]");
  EXPECT_EQ(StoredReportText("plain", 100), "plain");
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

// Scans `text` for `value` under `path`, expecting success.
std::string ScanOne(const std::string& text, const std::string& value, const std::string& path,
                    std::set<std::string>* leaked) {
  LeakScanner scanner({text});
  EXPECT_TRUE(scanner.Scan(path, Buf(value)).ok());
  EXPECT_TRUE(scanner.Finish().ok());
  *leaked = scanner.leaked();
  return scanner.Redacted(0);
}

TEST(LeakScanTest, JsonUnicodeEscapedValueIsRedacted) {
  std::set<std::string> leaked;
  // Every byte as \u00XX, as a JSON encoder that escapes everything prints it.
  const std::string text =
      std::string("{\"out\":\"") + enc::JsonBytes(kValue, false, /*all=*/true) + "\",\"rc\":0}";
  EXPECT_EQ(ScanOne(text, kValue, "db/pw", &leaked), "{\"out\":\"[redacted:db/pw]\",\"rc\":0}");
  EXPECT_EQ(leaked, std::set<std::string>{"db/pw"});
  // Upper-case hex digits and a value with bytes >= 0x80 (Latin-1 view).
  const std::string latin = "caf\xe9-p\xe4ss-w\xf6rd";
  const std::string text2 = "msg=\"" + enc::JsonBytes(latin, /*upper=*/true) + "\" end";
  EXPECT_EQ(ScanOne(text2, latin, "app/pw", &leaked), "msg=\"[redacted:app/pw]\" end");
  EXPECT_EQ(leaked, std::set<std::string>{"app/pw"});
}

TEST(LeakScanTest, UrlEncodedValueWithPercentAndPlusIsRedacted) {
  std::set<std::string> leaked;
  const std::string value = "my s3cret pass/word!";
  const std::string form = enc::UrlForm(value);  // my+s3cret+pass%2Fword%21
  ASSERT_NE(form.find('+'), std::string::npos);
  ASSERT_NE(form.find('%'), std::string::npos);
  const std::string text = "curl -d 'user=bob&pw=" + form + "&next=1' https://h/";
  EXPECT_EQ(ScanOne(text, value, "web/pw", &leaked),
            "curl -d 'user=bob&pw=[redacted:web/pw]&next=1' https://h/");
  EXPECT_EQ(leaked, std::set<std::string>{"web/pw"});
  // Lower-case %xx, every character escaped.
  std::string all;
  for (unsigned char c : value) all += "%" + enc::Hex(std::string(1, static_cast<char>(c)));
  EXPECT_EQ(ScanOne("q=" + all, value, "web/pw", &leaked), "q=[redacted:web/pw]");
  EXPECT_EQ(leaked, std::set<std::string>{"web/pw"});
}

TEST(LeakScanTest, CHexEscapedValueIsRedacted) {
  std::set<std::string> leaked;
  std::string all;  // \xNN for every byte
  for (unsigned char c : std::string(kValue)) {
    all += "\\x" + enc::Hex(std::string(1, static_cast<char>(c)));
  }
  EXPECT_EQ(ScanOne("b'" + all + "'", kValue, "db/pw", &leaked), "b'[redacted:db/pw]'");
  EXPECT_EQ(leaked, std::set<std::string>{"db/pw"});
  // Python's repr: printable bytes as is, the rest as \xNN.
  const std::string bin = std::string("k\x01\x02ey\xffmat\x7f", 10) + "erial";
  EXPECT_EQ(ScanOne("key=b'" + enc::PyRepr(bin) + "'", bin, "tls/key", &leaked),
            "key=b'[redacted:tls/key]'");
  EXPECT_EQ(leaked, std::set<std::string>{"tls/key"});
}

TEST(LeakScanTest, Base64WrappedAt76ColumnsIsRedacted) {
  std::string value;  // 120 bytes: 160 base64 characters, three lines
  for (int i = 0; i < 120; ++i) value.push_back(static_cast<char>('!' + (i * 37) % 90));
  for (const std::string eol : {"\r\n", "\n"}) {
    std::set<std::string> leaked;
    const std::string wrapped = enc::Wrap(enc::Base64(value), 76, eol);
    ASSERT_EQ(std::count(wrapped.begin(), wrapped.end(), '\n'), 2);
    const std::string text = "-----BEGIN KEY-----" + eol + wrapped + eol + "-----END KEY-----";
    EXPECT_EQ(ScanOne(text, value, "pki/key", &leaked),
              "-----BEGIN KEY-----" + eol + "[redacted:pki/key]" + eol + "-----END KEY-----");
    EXPECT_EQ(leaked, std::set<std::string>{"pki/key"});
  }
}

TEST(LeakScanTest, OrdinaryEscapedTextIsLeftAlone) {
  const std::string text =
      "{\"msg\":\"line1\\nline2 caf\\u00e9 \\ud83d\\ude00 \\/tmp\"}\n"
      "GET /a?q=100%25+done&x=%zz HTTP/1.1\r\n"
      "printf 'C:\\x41\\101\\t'\n" +
      enc::Wrap(enc::Base64("another value entirely, long enough to wrap across lines"), 20, "\n");
  LeakScanner scanner({text, "plain"});
  ASSERT_TRUE(scanner.Scan("db/pw", Buf(kValue)).ok());
  ASSERT_TRUE(scanner.Finish().ok());
  EXPECT_EQ(scanner.Redacted(0), text);
  EXPECT_EQ(scanner.Redacted(1), "plain");
  EXPECT_TRUE(scanner.leaked().empty());
}

TEST(LeakScanTest, EscapedHitInOneTextLeavesOtherTextsAlone) {
  const std::string hit = "pw=" + enc::UrlForm(std::string(kValue) + " x");
  const std::string other = "100%25 ok\nnext";
  LeakScanner scanner({other, hit, other});
  ASSERT_TRUE(scanner.Scan("db/pw", Buf(kValue)).ok());
  ASSERT_TRUE(scanner.Finish().ok());
  EXPECT_EQ(scanner.Redacted(0), other);
  EXPECT_EQ(scanner.Redacted(1), "pw=[redacted:db/pw]+x");
  EXPECT_EQ(scanner.Redacted(2), other);
}

TEST(LeakScanTest, ViewThatDoesNotFitFailsClosed) {
  // A 2 MiB text with a line break needs a 2 MiB unwrapped view; fill the
  // locked arena so that the value's small forms still fit but the view does
  // not.
  std::string text(2 << 20, 'a');
  text[1000] = '\n';
  auto value = Buf("zzzz-not-in-text");
  std::vector<sandbox::SecretBuffer> fill;
  for (size_t chunk = 1 << 20; chunk >= 4096; chunk /= 2) {
    while (true) {
      auto b = sandbox::SecretBuffer::Create(chunk);
      if (!b.ok()) break;
      fill.push_back(std::move(*b));
    }
  }
  ASSERT_FALSE(fill.empty());
  // At least 48 KiB free: room for the forms and their index, not the view.
  for (size_t freed = 0; freed < (48u << 10) && !fill.empty(); fill.pop_back()) {
    freed += fill.back().size();
  }
  LeakScanner scanner({text});
  ASSERT_TRUE(scanner.Scan("db/pw", value).ok());  // queues the forms
  absl::Status st = scanner.Finish();              // builds the views
  EXPECT_TRUE(absl::IsResourceExhausted(st)) << st;
  // It is the view, not a form, that did not fit.
  EXPECT_NE(st.message().find("decode view"), absl::string_view::npos) << st;
  fill.clear();
  // With room again, the same scan succeeds.
  LeakScanner again({text});
  EXPECT_TRUE(again.Scan("db/pw", value).ok());
  EXPECT_TRUE(again.Finish().ok());
  EXPECT_TRUE(again.leaked().empty());
}

TEST(LeakScanTest, ValuesTooBigToScanTogetherAreScannedOneAtATime) {
  // Two 1 MiB values: their encoded forms together (~21 MiB each) would
  // not fit in the 16 MiB locked arena; scanned a batch at a time they do.
  std::string text = "head ";
  std::vector<sandbox::SecretBuffer> values;
  std::mt19937 rng(7);
  for (int i = 0; i < 2; ++i) {
    auto v = sandbox::SecretBuffer::Create(1 << 20);
    ASSERT_TRUE(v.ok());
    for (size_t k = 0; k < v->size(); ++k) {
      v->RevealMutable()[k] = static_cast<uint8_t>('a' + rng() % 26);
    }
    values.push_back(std::move(*v));
  }
  // The first 64 KiB of the last value, hex-encoded, is in the text.
  auto last = values.back().Reveal().first(64 << 10);
  text +=
      absl::BytesToHexString(std::string(reinterpret_cast<const char*>(last.data()), last.size()));
  text += " tail";
  LeakScanner scanner({text});
  for (int i = 0; i < 2; ++i) {
    absl::Status st = scanner.Scan("big/" + std::to_string(i), values[static_cast<size_t>(i)]);
    ASSERT_TRUE(st.ok()) << i << " " << st;
  }
  ASSERT_TRUE(scanner.Finish().ok());
  EXPECT_GE(scanner.passes(), 2u);  // more than one batch of forms
  EXPECT_EQ(scanner.leaked(), std::set<std::string>{"big/1"});
  EXPECT_EQ(scanner.Redacted(0), "head [redacted:big/1] tail");
}

TEST(LeakScanTest, ManySmallValuesAreSearchedInOnePass) {
  // 1,000 entitled values, 1,000 results: two passes over the texts (one per
  // 256 KiB batch of forms), and the one leaked value (hex, in result 500)
  // is found and named, although windows of its hex are shared with others.
  std::vector<std::string> storage;
  for (int i = 0; i < 1000; ++i) storage.push_back("created (fingerprint 0123456789abcdef)");
  storage[500] = "oops " + absl::BytesToHexString("value-0500-xyz") + " done";
  std::vector<std::string_view> texts(storage.begin(), storage.end());
  LeakScanner scanner(texts);
  for (int i = 0; i < 1000; ++i) {
    char v[32];
    std::snprintf(v, sizeof(v), "value-%04d-xyz", i);
    ASSERT_TRUE(scanner.Scan("app/" + std::to_string(i), Buf(v)).ok());
  }
  ASSERT_TRUE(scanner.Finish().ok());
  EXPECT_EQ(scanner.passes(), 2u);
  EXPECT_EQ(scanner.leaked(), std::set<std::string>{"app/500"});
  EXPECT_EQ(scanner.Redacted(500), "oops [redacted:app/500] done");
  EXPECT_EQ(scanner.Redacted(0), storage[0]);
}

}  // namespace
}  // namespace vigo::server::service
