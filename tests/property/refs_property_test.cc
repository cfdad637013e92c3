// Properties of the reference/marker grammar and of SecretBuffer.
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "common/secret_ref.h"
#include "gtest/gtest.h"
// rapidcheck's gtest glue needs gtest declared first.
#include <rapidcheck/gtest.h>  // NOLINT(build/include_order)

#include "sandbox/secret_buffer.h"

namespace vigo {
namespace {

using sandbox::SecretBuffer;

constexpr char kSegmentChars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";

// A segment built from tokens that resemble marker pieces ("_", "END",
// "VIGO", "SECRET") as well as random characters, then repaired into the
// grammar: no "__", not "." or "..".
rc::Gen<std::string> GenSegment() {
  auto token = rc::gen::oneOf(rc::gen::elementOf(std::vector<std::string>{
                                  "_", "END", "VIGO", "SECRET", ".", "-", "E", "S"}),
                              rc::gen::map(rc::gen::elementOf(std::string(kSegmentChars)),
                                           [](char c) { return std::string(1, c); }));
  return rc::gen::map(
      rc::gen::resize(6, rc::gen::nonEmpty(rc::gen::container<std::vector<std::string>>(token))),
      [](const std::vector<std::string>& tokens) {
        std::string s;
        for (const std::string& t : tokens) s += t;
        if (s.empty()) s = "a";
        std::string out;
        for (char c : s) {
          if (c == '_' && !out.empty() && out.back() == '_') continue;
          out.push_back(c);
        }
        if (out == "." || out == "..") out += "x";
        return out;
      });
}

rc::Gen<std::string> GenValidPath() {
  return rc::gen::suchThat(
      rc::gen::map(
          rc::gen::resize(
              12, rc::gen::nonEmpty(rc::gen::container<std::vector<std::string>>(GenSegment()))),
          [](const std::vector<std::string>& segs) {
            std::string p;
            for (size_t i = 0; i < segs.size(); ++i) {
              if (i > 0) p += '/';
              p += segs[i];
            }
            return p;
          }),
      [](const std::string& p) { return p.size() <= kMaxSecretPathLen; });
}

// Text around markers, rich in marker fragments so overlaps happen.
rc::Gen<std::string> GenTrickyText() {
  auto piece = rc::gen::weightedOneOf<std::string>(
      {{1, rc::gen::elementOf(std::vector<std::string>{
               "_", "__", "___", "VIGO", "SECRET", "END", "__VIGO_SECRET", "__VIGO_SECRET_",
               "_VIGO_SECRET__", "__END", "__END_", "E", "/", "secret:", " "})},
       {12, rc::gen::map(rc::gen::arbitrary<char>(), [](char c) { return std::string(1, c); })}});
  return rc::gen::map(rc::gen::container<std::vector<std::string>>(piece),
                      [](const std::vector<std::string>& v) {
                        std::string s;
                        for (const std::string& x : v) s += x;
                        return s;
                      });
}

// Text that cannot interact with a marker: no '_' at all.
rc::Gen<std::string> GenPlainText() {
  return rc::gen::map(rc::gen::string<std::string>(), [](std::string s) {
    for (char& c : s) {
      if (c == '_') c = '.';
    }
    return s;
  });
}

std::string Str(const SecretBuffer& b) {
  return std::string(reinterpret_cast<const char*>(b.Reveal().data()), b.size());
}

SecretBuffer Buf(const std::string& s) {
  auto b = SecretBuffer::CopyFrom({reinterpret_cast<const uint8_t*>(s.data()), s.size()});
  RC_ASSERT(b.ok());
  return std::move(*b);
}

RC_GTEST_PROP(RefsProperty, GeneratedPathsAreValid, ()) {
  const std::string p = *GenValidPath();
  RC_ASSERT(ValidateSecretPath(p).ok());
}

RC_GTEST_PROP(RefsProperty, MarkerRoundTripsForEveryValidPath, ()) {
  const std::string p = *GenValidPath();
  const std::string m = MarkerFor(p);
  auto found = FindMarkers(m);
  RC_ASSERT(found.ok());
  RC_ASSERT(found->size() == 1u);
  RC_ASSERT((*found)[0].path == p);
  RC_ASSERT((*found)[0].offset == 0u);
  RC_ASSERT((*found)[0].length == m.size());
}

RC_GTEST_PROP(RefsProperty, ReferenceToMarkerToPathRoundTrips, ()) {
  const std::string p = *GenValidPath();
  auto whole = ReplaceReferencesWithMarkers("secret:" + p, RefScan::kWholeValue);
  RC_ASSERT(whole.ok());
  RC_ASSERT(*whole == MarkerFor(p));
  auto embedded = ReplaceReferencesWithMarkers("password = secret:" + p + "\n", RefScan::kEmbedded);
  RC_ASSERT(embedded.ok());
  auto found = FindMarkers(*embedded);
  RC_ASSERT(found.ok());
  RC_ASSERT(found->size() == 1u);
  RC_ASSERT((*found)[0].path == p);
}

// Markers concatenated with each other and with text full of marker
// fragments: the scan may refuse the text, but it never reports a marker at
// an inserted position with a different path, and when it succeeds it
// reports every inserted marker.
// Paths and text ends chosen to collide with the delimiters: a path like
// "END" after text ending in "__VIGO_SECRET_" is the classic mis-parse.
rc::Gen<std::string> GenCollidingPath() {
  return rc::gen::weightedOneOf<std::string>(
      {{2, GenValidPath()},
       {1, rc::gen::elementOf(std::vector<std::string>{
               "END", "_END", "E", "_", "END_", "VIGO_SECRET", "_VIGO_SECRET", "SECRET_", "_E"})}});
}

rc::Gen<std::string> GenFragment() {
  return rc::gen::weightedOneOf<std::string>(
      {{4, rc::gen::just(std::string())},
       {1, rc::gen::elementOf(std::vector<std::string>{"_", "__", "__VIGO_SECRET", "__VIGO_SECRET_",
                                                       "__VIGO_", "__END", "__END_",
                                                       "VIGO_SECRET__"})}});
}

RC_GTEST_PROP(RefsProperty, NoMarkerParsesAsADifferentPath, ()) {
  const auto paths =
      *rc::gen::nonEmpty(rc::gen::container<std::vector<std::string>>(GenCollidingPath()));
  std::string text;
  std::map<size_t, std::string> inserted;
  for (const std::string& p : paths) {
    text += *GenFragment() + *GenTrickyText() + *GenFragment();
    inserted[text.size()] = p;
    text += MarkerFor(p);
  }
  text += *GenFragment() + *GenTrickyText();
  auto found = FindMarkers(text);
  RC_CLASSIFY(!found.ok(), "refused");
  if (!found.ok()) {
    RC_ASSERT(found.status().code() == absl::StatusCode::kInvalidArgument);
    return;
  }
  size_t matched = 0;
  size_t prev_end = 0;
  for (const MarkerMatch& m : *found) {
    RC_ASSERT(m.offset >= prev_end);  // one reading of every byte
    prev_end = m.offset + m.length;
    RC_ASSERT(text.substr(m.offset, m.length) == MarkerFor(m.path));
    RC_ASSERT(ValidateSecretPath(m.path).ok());
    auto it = inserted.find(m.offset);
    if (it != inserted.end()) {
      RC_ASSERT(m.path == it->second);
      ++matched;
    }
  }
  RC_ASSERT(matched == inserted.size());
}

RC_GTEST_PROP(RefsProperty, MarkersInPlainTextAreFoundExactly, ()) {
  const auto paths = *rc::gen::container<std::vector<std::string>>(GenValidPath());
  std::string text;
  std::vector<std::pair<size_t, std::string>> inserted;
  for (const std::string& p : paths) {
    text += *GenPlainText();
    inserted.emplace_back(text.size(), p);
    text += MarkerFor(p);
  }
  text += *GenPlainText();
  auto found = FindMarkers(text);
  RC_ASSERT(found.ok());
  RC_ASSERT(found->size() == inserted.size());
  for (size_t i = 0; i < inserted.size(); ++i) {
    RC_ASSERT((*found)[i].offset == inserted[i].first);
    RC_ASSERT((*found)[i].path == inserted[i].second);
  }
}

RC_GTEST_PROP(RefsProperty, SubstitutionLeavesNoMarker, ()) {
  const auto paths = *rc::gen::container<std::vector<std::string>>(GenValidPath());
  std::map<std::string, SecretBuffer> values;
  std::string text;
  std::string expected;
  for (const std::string& p : paths) {
    const std::string filler = *GenPlainText();
    text += filler;
    expected += filler;
    text += MarkerFor(p);
    if (!values.count(p)) {
      const std::string v =
          *rc::gen::suchThat(rc::gen::string<std::string>(),
                             [](const std::string& s) { return !ContainsMarkerText(s); });
      values.emplace(p, Buf(v));
    }
    expected += Str(values.at(p));
  }
  const std::string tail = *GenPlainText();
  text += tail;
  expected += tail;
  RC_PRE(!ContainsMarkerText(expected));  // a value ending "__VIGO_" next to "SECRET__..." text
  SecretLookup lookup = [&](std::string_view path) -> absl::StatusOr<const SecretBuffer*> {
    auto it = values.find(std::string(path));
    if (it == values.end()) return absl::NotFoundError("unexpected lookup");
    return &it->second;
  };
  auto out = SubstituteMarkers(text, lookup);
  RC_ASSERT(out.ok());
  RC_ASSERT(Str(*out) == expected);
  const std::string rescanned = Str(*out);
  RC_ASSERT(!ContainsMarkerText(rescanned));
  auto again = FindMarkers(rescanned);
  RC_ASSERT(again.ok());
  RC_ASSERT(again->empty());
}

RC_GTEST_PROP(RefsProperty, BreakingTheGrammarIsRejected, ()) {
  const std::string p = *GenValidPath();
  const size_t at = *rc::gen::inRange<size_t>(0, p.size() + 1);
  const std::string bad = *rc::gen::elementOf(
      std::vector<std::string>{"//", "__", " ", "\n", std::string(1, '\0'), "\xff", "$"});
  std::string broken = p.substr(0, at) + bad + p.substr(at);
  RC_ASSERT(!ValidateSecretPath(broken).ok());
  RC_ASSERT(!ValidateSecretPath("/" + p).ok());
  RC_ASSERT(!ValidateSecretPath(p + "/").ok());
  RC_ASSERT(!ValidateSecretPath(p + "/..").ok());
}

RC_GTEST_PROP(SecretBufferProperty, MovePreservesSizeAndBytesAndEmptiesSource,
              (const std::vector<uint8_t>& bytes)) {
  auto created = SecretBuffer::CopyFrom(bytes);
  RC_ASSERT(created.ok());
  SecretBuffer a = std::move(*created);
  RC_ASSERT(a.size() == bytes.size());
  SecretBuffer b(std::move(a));
  RC_ASSERT(a.empty());  // NOLINT(bugprone-use-after-move)
  RC_ASSERT(a.size() == 0u);
  RC_ASSERT(b.size() == bytes.size());
  RC_ASSERT(std::equal(b.Reveal().begin(), b.Reveal().end(), bytes.begin(), bytes.end()));
  SecretBuffer c;
  c = std::move(b);
  RC_ASSERT(b.empty());  // NOLINT(bugprone-use-after-move)
  RC_ASSERT(c.size() == bytes.size());
  RC_ASSERT(std::equal(c.Reveal().begin(), c.Reveal().end(), bytes.begin(), bytes.end()));
}

RC_GTEST_PROP(SecretBufferProperty, EqualityIffByteEquality,
              (const std::vector<uint8_t>& x, const std::vector<uint8_t>& y)) {
  // Half the time compare a vector with a copy that differs in at most one byte.
  std::vector<uint8_t> other = y;
  if (*rc::gen::arbitrary<bool>()) {
    other = x;
    if (!other.empty() && *rc::gen::arbitrary<bool>()) {
      const size_t i = *rc::gen::inRange<size_t>(0, other.size());
      other[i] = static_cast<uint8_t>(other[i] ^ *rc::gen::inRange<int>(1, 256));
    }
  }
  auto a = SecretBuffer::CopyFrom(x);
  auto b = SecretBuffer::CopyFrom(other);
  RC_ASSERT(a.ok() && b.ok());
  RC_ASSERT((*a == *b) == (x == other));
  RC_ASSERT(sandbox::ConstantTimeEquals(a->Reveal(), b->Reveal()) == (x == other));
  auto clone = a->Clone();
  RC_ASSERT(clone.ok());
  RC_ASSERT(*clone == *a);
}

RC_GTEST_PROP(SecretBufferProperty, ResizePreservesPrefix, (const std::vector<uint8_t>& bytes)) {
  const size_t new_len = *rc::gen::inRange<size_t>(0, 3 * bytes.size() + 200);
  auto b = SecretBuffer::CopyFrom(bytes);
  RC_ASSERT(b.ok());
  RC_ASSERT(b->Resize(new_len).ok());
  RC_ASSERT(b->size() == new_len);
  const size_t keep = std::min(new_len, bytes.size());
  // (Not inside RC_ASSERT: its expression capture does not short-circuit ||.)
  const bool prefix_kept = keep == 0 || std::memcmp(b->Reveal().data(), bytes.data(), keep) == 0;
  RC_ASSERT(prefix_kept);
  for (size_t i = keep; i < new_len; ++i) RC_ASSERT(b->Reveal()[i] == 0);
}

}  // namespace
}  // namespace vigo
