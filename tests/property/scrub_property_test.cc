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

std::string StripLineBreaks(std::string s) {
  s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n'; }),
          s.end());
  return s;
}

// One printed encoding: the text put into the output, and the part of it
// that must not survive (`wrapped`: compare with line breaks removed).
struct Printed {
  std::string name;
  std::string text;
  std::string secret_part;
  bool wrapped = false;
};

std::vector<Printed> AllEncodings(const std::string& v, const std::string& pre,
                                  const std::string& post, bool upper) {
  std::vector<Printed> p;
  p.push_back({"raw", v, v});
  p.push_back({"hex", enc::Hex(v, upper), enc::Hex(v, upper)});
  for (bool url : {false, true}) {
    // Inside a longer base64 stream: `pre` bytes before the value.
    const std::string stream = enc::Base64(pre + v + post, url);
    const std::string core = enc::Base64Core(v, pre.size(), url);
    p.push_back({url ? "base64url" : "base64", stream, core});
  }
  const std::string b64 = enc::Base64(pre + v + post);
  const std::string core = enc::Base64Core(v, pre.size());
  p.push_back({"mime", enc::Wrap(b64, 76, "\r\n"), core, true});
  p.push_back({"pem", enc::Wrap(b64, 64, "\n"), core, true});
  p.push_back({"url-form", enc::UrlForm(v, upper), enc::UrlForm(v, upper)});
  p.push_back({"json", enc::JsonBytes(v, upper), enc::JsonBytes(v, upper)});
  p.push_back({"json-all", enc::JsonBytes(v, upper, true), enc::JsonBytes(v, upper, true)});
  p.push_back({"python", enc::PyRepr(v), enc::PyRepr(v)});
  p.push_back({"octal", enc::Octal(v), enc::Octal(v)});
  return p;
}

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
