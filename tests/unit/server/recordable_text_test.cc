// Issue 15.2: the formats of what the server records of envoy-chosen text.
#include "server/service/recordable_text.h"

#include "gtest/gtest.h"

namespace vigo::server::service {
namespace {

TextFingerprinter Fp(std::string_view key) {
  auto fp = TextFingerprinter::FromKeyMaterial(key);
  EXPECT_TRUE(fp.ok()) << fp.status();
  return std::move(*fp);
}

TEST(RecordableTextTest, FingerprintIsKeyedStableAndHidesTheText) {
  TextFingerprinter a = Fp("key material one");
  TextFingerprinter b = Fp("key material two");
  const std::string f = a.Fingerprint("hunter2");
  EXPECT_EQ(f.size(), 16u);
  EXPECT_EQ(f, a.Fingerprint("hunter2"));
  EXPECT_NE(f, a.Fingerprint("hunter3"));
  // Keyed: another key gives another fingerprint, so the log alone does not
  // let anyone test guesses.
  EXPECT_NE(f, b.Fingerprint("hunter2"));
  // Not a plain SHA-256 of the text (its first 8 bytes).
  EXPECT_NE(f, "f52fbd32b2b3b86f");
  const std::string r = a.Recorded("hunter2");
  EXPECT_EQ(r, "<text, 7 bytes, fp=" + f + ">");
  EXPECT_EQ(r.find("hunter2"), std::string::npos);
}

TEST(RecordableTextTest, InvalidPathIsRecordedByLengthOnly) {
  EXPECT_EQ(InvalidPathRecord(20), "<invalid path, 20 bytes>");
}

TEST(RecordableTextTest, DeniedSampleNamesOnlyValidCleanPathsAndCountsTheRest) {
  TextFingerprinter fp = Fp("k");
  const std::vector<std::string> refs = {"a/b", "not a path!", "my-value-path", "c/d"};
  const std::vector<bool> clean = {true, true, false, true};
  DeniedRefRecord d = DeniedRefSample(refs, clean, fp);
  EXPECT_EQ(d.sample, (std::vector<std::string>{"a/b", "<invalid path, 11 bytes>", "c/d"}));
  EXPECT_EQ(d.detail, "denied=4 named=2 invalid=1 withheld=1 " + fp.Recorded("my-value-path"));
  EXPECT_EQ(d.detail.find("my-value-path"), std::string::npos);
}

TEST(RecordableTextTest, DeniedSampleIsBounded) {
  TextFingerprinter fp = Fp("k");
  std::vector<std::string> refs;
  for (int i = 0; i < 50; ++i) refs.push_back("p/" + std::to_string(i));
  DeniedRefRecord d = DeniedRefSample(refs, std::vector<bool>(50, true), fp);
  EXPECT_EQ(d.sample.size(), kDeniedRefSample);
  EXPECT_EQ(d.detail, "denied=50 named=50 invalid=0 withheld=0");
  // Unscanned (clean missing or false): never named, fingerprints bounded too.
  DeniedRefRecord u = DeniedRefSample(refs, {}, fp);
  EXPECT_TRUE(u.sample.empty());
  size_t fps = 0;
  for (size_t at = 0; (at = u.detail.find("fp=", at)) != std::string::npos; ++at) ++fps;
  EXPECT_EQ(fps, kDeniedRefSample);
}

}  // namespace
}  // namespace vigo::server::service
