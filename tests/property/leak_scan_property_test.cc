// Property of the server's report leak scan: a value of random bytes, printed
// in every encoding an agent's report may carry it in (raw, hex, base64 at
// any alignment and both alphabets, MIME/PEM-wrapped base64, URL form
// encoding, JSON escapes, Python \xNN repr, octal escapes) at random places
// in several report texts, leaves no 8-character window of any of those
// encodings in the redacted texts, and the leak names the value's path;
// texts holding only other values' encodings come out unchanged.
#include <algorithm>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "server/service/leak_scan.h"
// rapidcheck's gtest glue needs gtest declared first.
#include <rapidcheck/gtest.h>  // NOLINT(build/include_order)

#include "sandbox/secret_buffer.h"
#include "tests/support/encodings.h"

namespace vigo::server::service {
namespace {

namespace enc = vigo::testing::enc;
using sandbox::SecretBuffer;

constexpr size_t kWindow = 8;
constexpr char kPath[] = "team/db_password";

std::span<const uint8_t> Bytes(std::string_view s) {
  return {static_cast<const uint8_t*>(static_cast<const void*>(s.data())), s.size()};
}

using enc::AllEncodings;
using enc::Printed;
using enc::StripLineBreaks;

// Text around the encodings: nothing that starts an escape (a stray '\' or
// '%' right before an encoding would change how it reads).
rc::Gen<std::string> Filler() {
  return rc::gen::container<std::string>(
      rc::gen::elementOf(std::string("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789 \n:=,;.-_\"'{}[]()")));
}

rc::Gen<std::string> RandomValue() {
  return rc::gen::suchThat(rc::gen::container<std::string>(rc::gen::arbitrary<char>()),
                           [](const std::string& s) { return s.size() >= 8 && s.size() <= 300; });
}

// Report texts: a filler-only one first, then `n` texts that carry the
// printed encodings in a random order (each at least once) between fillers.
std::vector<std::string> Texts(const std::vector<Printed>& printed, size_t n) {
  std::vector<std::string> texts = {*Filler()};
  std::vector<size_t> all(printed.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  std::vector<size_t> sequence =
      *rc::gen::unique<std::vector<size_t>>(printed.size(), rc::gen::elementOf(all));
  const auto extra =
      *rc::gen::container<std::vector<size_t>>(rc::gen::inRange<size_t>(0, printed.size()));
  sequence.insert(sequence.end(), extra.begin(), extra.end());
  for (size_t t = 0; t < n; ++t) texts.push_back(*Filler());
  for (size_t i : sequence) {
    std::string& text = texts[1 + *rc::gen::inRange<size_t>(0, n)];
    text += " " + printed[i].text + " " + *Filler();
  }
  return texts;
}

std::vector<std::string_view> Views(const std::vector<std::string>& texts) {
  return std::vector<std::string_view>(texts.begin(), texts.end());
}

RC_GTEST_PROP(LeakScanProperty, NoEncodedFormOfARandomValueSurvives, ()) {
  const std::string value = *RandomValue().as("value");
  const std::string pre =
      *rc::gen::container<std::string>(*rc::gen::inRange<size_t>(0, 3), rc::gen::arbitrary<char>());
  const std::string post =
      *rc::gen::container<std::string>(*rc::gen::inRange<size_t>(0, 3), rc::gen::arbitrary<char>());
  const std::vector<Printed> printed = AllEncodings(value, pre, post, *rc::gen::arbitrary<bool>());
  const std::vector<std::string> texts = Texts(printed, *rc::gen::inRange<size_t>(1, 4));

  auto v = SecretBuffer::CopyFrom(Bytes(value));
  RC_ASSERT(v.ok());
  LeakScanner scanner(Views(texts));
  RC_ASSERT(scanner.Scan(kPath, *v).ok());
  RC_ASSERT(scanner.Finish().ok());
  RC_ASSERT(scanner.leaked() == std::set<std::string>{kPath});
  RC_ASSERT(scanner.Redacted(0) == texts[0]);
  for (size_t t = 1; t < texts.size(); ++t) {
    const std::string redacted = scanner.Redacted(t);
    const std::string unwrapped = StripLineBreaks(redacted);
    for (const Printed& p : printed) {
      const std::string& haystack = p.wrapped ? unwrapped : redacted;
      for (size_t i = 0; i + kWindow <= p.secret_part.size(); ++i) {
        RC_ASSERT_FALSE(haystack.find(p.secret_part.substr(i, kWindow)) != std::string::npos);
      }
    }
  }
}

RC_GTEST_PROP(LeakScanProperty, EncodingsOfAnotherValueAreLeftAlone, ()) {
  const std::string value = *RandomValue().as("value");
  // Every byte differs from the value's (high bit flipped), so no form of
  // the value occurs in any encoding of this one.
  std::string other = value;
  for (char& c : other) c = static_cast<char>(c ^ 0x80);
  const std::vector<std::string> texts =
      Texts(AllEncodings(other, "", "", *rc::gen::arbitrary<bool>()), 2);

  auto v = SecretBuffer::CopyFrom(Bytes(value));
  RC_ASSERT(v.ok());
  LeakScanner scanner(Views(texts));
  RC_ASSERT(scanner.Scan(kPath, *v).ok());
  RC_ASSERT(scanner.Finish().ok());
  RC_ASSERT(scanner.leaked().empty());
  for (size_t t = 0; t < texts.size(); ++t) RC_ASSERT(scanner.Redacted(t) == texts[t]);
}

}  // namespace
}  // namespace vigo::server::service
