// Exec output scrubbing: every encoded form of every value is redacted.
#include "agent-worker/scrub.h"

#include <string>

#include "gtest/gtest.h"
#include "rapidcheck/gtest.h"
#include "tests/support/test_env.h"

namespace vigo::worker {
namespace {

using sandbox::SecretBuffer;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

std::string Scrub(std::string_view out, std::string_view value) {
  SecretBuffer v = *SecretBuffer::CopyFrom(Bytes(value));
  return ScrubOutput(Bytes(out), {&v});
}

TEST(ScrubTest, RawHexBase64UrlForms) {
  const std::string canary = "s3cr3t/value+x?";
  for (const std::string& form : vigo::testing::CanaryForms(canary)) {
    std::string out = Scrub("before " + form + " after", canary);
    EXPECT_TRUE(vigo::testing::FindCanariesIn(out, "out", {canary}).empty())
        << form << " -> " << out;
    EXPECT_NE(out.find("before "), std::string::npos);
    EXPECT_NE(out.find(" after"), std::string::npos);
  }
}

TEST(ScrubTest, Base64AtAnyAlignment) {
  // base64 of "x" + value and "xy" + value (value not 3-byte aligned in the stream).
  // base64("xcanary-value-1234") and base64("xycanary-value-1234") computed by hand below.
  const std::string v = "canary-value-1234";
  auto b64 = [](std::string_view in) {
    static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    size_t i = 0;
    for (; i + 2 < in.size(); i += 3) {
      uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
      for (int k = 0; k < 4; ++k) out.push_back(t[(n >> (18 - 6 * k)) & 63]);
    }
    return out;  // whole groups only; enough for the test
  };
  for (std::string prefix : {"", "x", "xy"}) {
    std::string enc = b64(prefix + v + "zzz");
    std::string out = Scrub(enc, v);
    EXPECT_NE(out.find("[REDACTED]"), std::string::npos) << prefix << ": " << out;
    // No 8-char run of the value's core encoding survives.
    std::string core = b64(v.substr(0, 15));
    EXPECT_EQ(out.find(core.substr(4, 8)), std::string::npos) << prefix << ": " << out;
  }
}

TEST(ScrubTest, TruncatedFragmentAtEdges) {
  const std::string v = "canary-value-abcdef";
  EXPECT_EQ(Scrub("tail: canary-val", v), "tail: [REDACTED]");
  EXPECT_EQ(Scrub("lue-abcdef and more", v), "[REDACTED] and more");
}

TEST(ScrubTest, LeavesOtherTextAlone) {
  EXPECT_EQ(Scrub("nothing to see here", "canary-value"), "nothing to see here");
  EXPECT_EQ(ScrubOutput(Bytes("abc"), {}), "abc");
}

RC_GTEST_PROP(ScrubProperty, EmbeddedValueNeverSurvives,
              (const std::string& pre, const std::string& post)) {
  // Lower-case alphanumerics: the value cannot be re-formed around "[REDACTED]".
  std::string value = *rc::gen::suchThat(
      rc::gen::container<std::string>(rc::gen::elementOf(
          std::string("abcdefghijklmnopqrstuvwxyz0123456789"))),
      [](const std::string& s) { return s.size() >= 8; });
  std::string out = Scrub(pre + value + post, value);
  RC_ASSERT(out.find(value) == std::string::npos);
}

}  // namespace
}  // namespace vigo::worker
