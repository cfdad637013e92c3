// The window index finds exactly the windows a naive search finds, and the
// scrubber redacts every window of a value's forms while leaving shorter
// fragments and unrelated text alone. RC_PARAMS (size, max_success, seed) is
// honoured as is: `RC_PARAMS="max_success=100000 seed=42" <binary>` for a soak.
#include <rapidcheck.h>

#include <set>
#include <string>
#include <vector>

#include "agent-worker/scrub.h"
#include "common/secret_forms.h"
#include "common/window_index.h"
#include "gtest/gtest.h"
#include "rapidcheck/gtest.h"

namespace vigo {
namespace {

using sandbox::SecretBuffer;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
SecretBuffer Buf(std::string_view s) { return *SecretBuffer::CopyFrom(Bytes(s)); }

// Small alphabet: windows repeat and overlap often.
rc::Gen<std::string> SmallAlphabet(size_t min, size_t max) {
  return rc::gen::mapcat(rc::gen::inRange(min, max + 1), [](size_t n) {
    return rc::gen::container<std::string>(n, rc::gen::elementOf(std::string("abc")));
  });
}

RC_GTEST_PROP(WindowIndexProperty, FindsExactlyTheWindowsANaiveSearchFinds, ()) {
  const size_t window = *rc::gen::inRange<size_t>(kMinRedactionWindow, 16);
  const auto forms =
      *rc::gen::container<std::vector<std::string>>(*rc::gen::inRange(1, 6), SmallAlphabet(1, 40));
  const std::string text = *SmallAlphabet(0, 200);
  WindowIndex index(window, /*keep_tags=*/true);
  for (size_t f = 0; f < forms.size(); ++f) {
    RC_ASSERT(index
                  .Add(Buf(forms[f]), static_cast<uint32_t>(f),
                       [] { return absl::InternalError("no flush expected"); })
                  .ok());
  }
  std::set<std::pair<size_t, size_t>> got;
  RC_ASSERT(index.Search(Bytes(text),
                         [&](uint32_t, size_t a, size_t b) {
                           got.insert({a, b});
                         })
                .ok());
  std::set<std::pair<size_t, size_t>> want;
  for (const std::string& f : forms) {
    if (f.size() < window) {
      for (size_t i = text.find(f); i != std::string::npos; i = text.find(f, i + 1)) {
        want.insert({i, i + f.size()});
      }
      continue;
    }
    for (size_t i = 0; i + window <= text.size(); ++i) {
      if (f.find(text.substr(i, window)) != std::string::npos) want.insert({i, i + window});
    }
  }
  RC_ASSERT(got == want);
}

// High-entropy forms and text made of random text with slices of the forms
// spliced in: most probes miss the gram filter, so this exercises the sampled
// probes (one every window - 7 bytes) and the candidate ranges they open at
// both ends of the text and between slices.
RC_GTEST_PROP(WindowIndexProperty, SampledProbesFindEverySplicedSlice, ()) {
  const size_t window = *rc::gen::inRange<size_t>(kMinRedactionWindow, 41);
  const std::string abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  auto random_text = [&](size_t min, size_t max) {
    return *rc::gen::mapcat(rc::gen::inRange(min, max + 1), [&](size_t n) {
      return rc::gen::container<std::string>(n, rc::gen::elementOf(abc));
    });
  };
  std::vector<std::string> forms;
  const int nforms = *rc::gen::inRange(1, 5);
  for (int i = 0; i < nforms; ++i) forms.push_back(random_text(1, 120));
  std::string text;
  const int parts = *rc::gen::inRange(0, 8);
  for (int i = 0; i < parts; ++i) {
    text += random_text(0, 30);
    const std::string& f = forms[*rc::gen::inRange<size_t>(0, forms.size())];
    const size_t a = *rc::gen::inRange<size_t>(0, f.size());
    const size_t len = *rc::gen::inRange<size_t>(1, f.size() - a + 1);
    text += f.substr(a, len);
  }
  text += random_text(0, 30);
  WindowIndex index(window, /*keep_tags=*/false);
  for (const std::string& f : forms) {
    RC_ASSERT(index.Add(Buf(f), 0, [] { return absl::InternalError("no flush expected"); }).ok());
  }
  std::set<std::pair<size_t, size_t>> got;
  RC_ASSERT(index.Search(Bytes(text),
                         [&](uint32_t, size_t a, size_t b) {
                           got.insert({a, b});
                         })
                .ok());
  std::set<std::pair<size_t, size_t>> want;
  for (const std::string& f : forms) {
    if (f.size() < window) {
      for (size_t i = text.find(f); i != std::string::npos; i = text.find(f, i + 1)) {
        want.insert({i, i + f.size()});
      }
      continue;
    }
    for (size_t i = 0; i + window <= text.size(); ++i) {
      if (f.find(text.substr(i, window)) != std::string::npos) want.insert({i, i + window});
    }
  }
  RC_ASSERT(got == want);
}

TEST(WindowIndexTest, LongFormsAreIndexedInPiecesWithoutLosingAWindow) {
  // A 1.5 MiB form is added in batch_bytes() pieces overlapping by
  // window - 1: a window straddling a piece boundary is still found.
  std::string form(3 << 19, 'x');
  for (size_t i = 0; i < form.size(); ++i) form[i] = static_cast<char>('a' + (i * 7919) % 26);
  WindowIndex index(12);
  int flushes = 0;
  std::set<size_t> hits;
  const std::string probe = form.substr(index.batch_bytes() - 6, 12);  // straddles piece 1|2
  auto flush = [&] {
    ++flushes;
    absl::Status st =
        index.Search(Bytes("<" + probe + ">"), [&](uint32_t, size_t a, size_t) { hits.insert(a); });
    index.Clear();
    return st;
  };
  ASSERT_TRUE(index.Add(Buf(form), 0, flush).ok());
  ASSERT_TRUE(flush().ok());
  EXPECT_GE(flushes, 3);
  EXPECT_EQ(hits, std::set<size_t>{1});
}

// Longer than the scrubber's edge trim (12), so that no interior check can
// take the ordinary text for a slice of a low-entropy value.
// Made of characters no value here holds (values are alphanumeric), so no
// decoding view can join them with a slice into a window of the value.
constexpr std::string_view kLead = "<<<<<---- [[[ ";
constexpr std::string_view kTail = " ]]] ---->>>>>";

// Scrubbing: any run of >= 12 bytes of a value, in any form, is redacted;
// shorter fragments in the middle of other text are not.
RC_GTEST_PROP(WindowIndexProperty, ScrubberRedactsEverySliceAndLeavesShortFragments, ()) {
  const auto value = *rc::gen::container<std::string>(
      *rc::gen::inRange<size_t>(24, 400),
      rc::gen::elementOf(
          std::string("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")));
  const size_t len = *rc::gen::inRange<size_t>(12, value.size() + 1);
  const size_t at = *rc::gen::inRange<size_t>(0, value.size() - len + 1);
  const std::string slice = value.substr(at, len);
  SecretBuffer v = Buf(value);
  const std::string out =
      worker::ScrubOutput(Bytes(std::string(kLead) + slice + std::string(kTail)), {&v});
  RC_ASSERT(out.find(slice) == std::string::npos);
  RC_ASSERT(out.find(kLead) != std::string::npos);
  RC_ASSERT(out.find(kTail) != std::string::npos);
  // A fragment shorter than the window, between ordinary words, stays
  // (unless it happens to be a whole form or line of the value).
  const std::string frag = value.substr(at, 7);
  const std::string text = std::string(kLead) + frag + std::string(kTail);
  RC_ASSERT(worker::ScrubOutput(Bytes(text), {&v}) == text);
}

}  // namespace
}  // namespace vigo
