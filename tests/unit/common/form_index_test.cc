// FormBatch: one pass over a text finds every occurrence of every form, with
// its tag, exactly as a naive search would.
#include "common/form_index.h"

#include <cstring>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "rapidcheck/gtest.h"

namespace vigo {
namespace {

sandbox::SecretBuffer Buf(const std::string& s) {
  auto b = sandbox::SecretBuffer::Create(s.size());
  EXPECT_TRUE(b.ok());
  if (!s.empty()) std::memcpy(b->RevealMutable().data(), s.data(), s.size());
  return std::move(*b);
}

std::span<const uint8_t> Bytes(const std::string& s) {
  return {static_cast<const uint8_t*>(static_cast<const void*>(s.data())), s.size()};
}

using Hit = std::tuple<uint32_t, size_t, size_t>;

std::set<Hit> Naive(const std::vector<std::string>& forms, const std::string& text) {
  std::set<Hit> out;
  for (size_t f = 0; f < forms.size(); ++f) {
    if (forms[f].empty()) continue;
    for (size_t i = 0; i + forms[f].size() <= text.size(); ++i) {
      if (text.compare(i, forms[f].size(), forms[f]) == 0) {
        out.insert({static_cast<uint32_t>(f), i, i + forms[f].size()});
      }
    }
  }
  return out;
}

std::set<Hit> Indexed(const std::vector<std::string>& forms, const std::string& text) {
  FormBatch batch;
  for (size_t f = 0; f < forms.size(); ++f) batch.Add(Buf(forms[f]), static_cast<uint32_t>(f));
  std::set<Hit> out;
  absl::Status st = batch.Search(Bytes(text), [&](uint32_t tag, size_t a, size_t b) {
    out.insert({tag, a, b});
  });
  EXPECT_TRUE(st.ok()) << st;
  return out;
}

TEST(FormBatchTest, FindsOverlappingShortAndLongFormsWithTheirTags) {
  const std::vector<std::string> forms = {"abcabc", "bca", "c", "abcabcabc", "zzzz", ""};
  const std::string text = "xabcabcabcx c zzzzz";
  EXPECT_EQ(Indexed(forms, text), Naive(forms, text));
  EXPECT_FALSE(Indexed(forms, text).empty());
}

TEST(FormBatchTest, ClearForgetsEverything) {
  FormBatch batch;
  batch.Add(Buf("secret-form"), 1);
  EXPECT_EQ(batch.bytes(), 11u);
  batch.Clear();
  EXPECT_TRUE(batch.empty());
  int hits = 0;
  std::string text = "a secret-form here";
  ASSERT_TRUE(batch.Search(Bytes(text), [&](uint32_t, size_t, size_t) { ++hits; }).ok());
  EXPECT_EQ(hits, 0);
}

RC_GTEST_PROP(FormBatchProperty, SameHitsAsANaiveSearch, ()) {
  // A small alphabet so that forms recur and collide in buckets.
  const auto alpha = rc::gen::elementOf(std::string("abcd\x00\xff", 6));
  const auto word = rc::gen::container<std::string>(alpha);
  const std::vector<std::string> forms =
      *rc::gen::container<std::vector<std::string>>(rc::gen::resize(9, word));
  std::string text = *rc::gen::resize(200, word);
  // Plant some forms so hits are common.
  for (const std::string& f : forms) {
    if (*rc::gen::inRange(0, 3) == 0) text += f;
  }
  RC_ASSERT(Indexed(forms, text) == Naive(forms, text));
}

}  // namespace
}  // namespace vigo
