// Property of the worker's output scrubber: a value of random bytes, printed
// in every encoding a command may use (raw, hex, base64 at any alignment and
// both alphabets, MIME/PEM-wrapped base64, URL form encoding, JSON escapes,
// Python \xNN repr, octal escapes) at random places in random text, leaves no
// 8-character window of any of those encodings in the scrubbed output.
#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "agent-worker/scrub.h"
#include "gtest/gtest.h"
// rapidcheck's gtest glue needs gtest declared first.
#include <rapidcheck/gtest.h>  // NOLINT(build/include_order)

#include "sandbox/secret_buffer.h"
#include "tests/support/encodings.h"

namespace vigo::worker {
namespace {

namespace enc = vigo::testing::enc;
using sandbox::SecretBuffer;

constexpr size_t kWindow = 8;

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

using enc::AllEncodings;
using enc::Printed;
using enc::StripLineBreaks;

// Text around the encodings: letters, digits, spaces, punctuation that does
// not start an escape (a stray '\' or '%' right before an encoding would
// change how it reads; real output puts encodings in well-formed context).
rc::Gen<std::string> Filler() {
  return rc::gen::container<std::string>(
      rc::gen::elementOf(std::string("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                     "0123456789 \n:=,;.-_\"'{}[]()")));
}

RC_GTEST_PROP(ScrubProperty, NoEncodedFormOfARandomValueSurvives, ()) {
  const std::string value =
      *rc::gen::suchThat(rc::gen::container<std::string>(rc::gen::arbitrary<char>()),
                         [](const std::string& s) { return s.size() >= 8 && s.size() <= 300; })
           .as("value");
  const std::string pre =
      *rc::gen::container<std::string>(*rc::gen::inRange<size_t>(0, 3), rc::gen::arbitrary<char>());
  const std::string post =
      *rc::gen::container<std::string>(*rc::gen::inRange<size_t>(0, 3), rc::gen::arbitrary<char>());
  const bool upper = *rc::gen::arbitrary<bool>();
  std::vector<Printed> printed = AllEncodings(value, pre, post, upper);
  // A random order, a random subset repeated, random text between.
  const auto order =
      *rc::gen::container<std::vector<size_t>>(rc::gen::inRange<size_t>(0, printed.size()));
  std::vector<size_t> all(printed.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  std::vector<size_t> sequence =
      *rc::gen::unique<std::vector<size_t>>(printed.size(), rc::gen::elementOf(all));
  sequence.insert(sequence.end(), order.begin(), order.end());
  std::string output = *Filler();
  for (size_t i : sequence) {
    output += " " + printed[i].text + " ";
    output += *Filler();
  }

  auto v = SecretBuffer::CopyFrom(Bytes(value));
  RC_ASSERT(v.ok());
  const std::string scrubbed = ScrubOutput(Bytes(output), {&*v});
  RC_ASSERT(scrubbed != std::string(kWithheld));
  const std::string unwrapped = StripLineBreaks(scrubbed);
  for (const Printed& p : printed) {
    const std::string& haystack = p.wrapped ? unwrapped : scrubbed;
    for (size_t i = 0; i + kWindow <= p.secret_part.size(); ++i) {
      RC_ASSERT_FALSE(haystack.find(p.secret_part.substr(i, kWindow)) != std::string::npos);
    }
  }
}

// A value longer than the kept output tail: the output is an interior slice
// (at least half) of one of its encodings, cut at arbitrary places, even
// inside escapes. The whole output is redacted.
RC_GTEST_PROP(ScrubProperty, InteriorSliceOfALongerFormIsRedacted, ()) {
  const std::string value = *rc::gen::container<std::string>(*rc::gen::inRange<size_t>(200, 401),
                                                             rc::gen::arbitrary<char>());
  std::vector<Printed> printed = AllEncodings(value, "", "", *rc::gen::arbitrary<bool>());
  const Printed& p = *rc::gen::elementOf(printed);
  const std::string form = p.wrapped ? StripLineBreaks(p.secret_part) : p.secret_part;
  const size_t len = *rc::gen::inRange<size_t>(form.size() / 2, form.size() - 30);
  const size_t at = *rc::gen::inRange<size_t>(1, form.size() - len - 1);
  const std::string slice = form.substr(at, len);
  auto v = SecretBuffer::CopyFrom(Bytes(value));
  RC_ASSERT(v.ok());
  const std::string scrubbed = ScrubOutput(Bytes(slice), {&*v});
  RC_ASSERT(scrubbed == std::string(kRedacted));
}

}  // namespace
}  // namespace vigo::worker
