#include "common/secret_forms.h"

#include <algorithm>
#include <utility>

#include "vocab/hex.h"

namespace vigo {
namespace {

using sandbox::SecretBuffer;
using Bytes = std::span<const uint8_t>;

constexpr char kBase64Abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kBase64UrlAbc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr char kBase32Abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

absl::StatusOr<SecretBuffer> Make(size_t n) {
  auto buf = SecretBuffer::Create(n);
  if (!buf.ok()) {
    return absl::ResourceExhaustedError("secret forms: locked arena cannot hold a form");
  }
  return buf;
}

bool IsAsciiSpace(uint8_t c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

absl::Status EmitHex(Bytes v, FormKind kind, const FormSink& sink) {
  auto buf = Make(v.size() * 2);
  if (!buf.ok()) return buf.status();
  const vocab::HexCase hex_case =
      kind == FormKind::kHexUpper ? vocab::HexCase::kUpper : vocab::HexCase::kLower;
  if (!vocab::HexInto(v, buf->RevealMutable(), hex_case)) {
    return absl::InternalError("secret forms: hex form length mismatch");
  }
  return sink(kind, std::move(*buf));
}

// The characters of a 2^bits-radix encoding (base64: 6, base32: 5) of a
// stream in which `shift` unknown bytes precede `v`: characters [first, end)
// of the stream's encoding, where character j carries bits [j*bits,
// (j+1)*bits) of the stream and bytes outside `v` read as zero.
absl::Status EmitRadix(Bytes v, size_t shift, unsigned bits, const char* abc, FormKind kind,
                       const FormSink& sink) {
  const size_t vbeg = shift * 8, vend = (shift + v.size()) * 8;  // the value's bits
  const size_t first = (vbeg + bits - 1) / bits;  // first character with only its bits
  const size_t pure_end = vend / bits;            // characters fully inside end here
  // The pure characters, then (when the value's last bits do not end a
  // character) the one zero-padded character a stream ending with the value
  // would have.
  for (bool ends_stream : {false, true}) {
    size_t end = pure_end;
    if (ends_stream) {
      if (vend % bits == 0) break;
      end = pure_end + 1;
    }
    if (end <= first) continue;
    const size_t n = end - first;
    if (shift != 0 && n < kMinShiftedFormChars) continue;
    auto buf = Make(n);
    if (!buf.ok()) return buf.status();
    std::span<uint8_t> out = buf->RevealMutable();
    // Bytes of the stream through a bit accumulator, one character out per
    // `bits` bits; bytes outside the value read as zero.
    uint32_t acc = 0;
    unsigned have = 0;
    size_t j = 0;
    for (size_t byte = 0; j < end; ++byte) {
      const uint8_t b = byte >= shift && byte < shift + v.size() ? v[byte - shift] : 0;
      acc = (acc << 8) | b;
      have += 8;
      while (have >= bits && j < end) {
        have -= bits;
        if (j >= first)
          out[j - first] = static_cast<uint8_t>(abc[(acc >> have) & ((1u << bits) - 1)]);
        ++j;
      }
      acc &= (1u << have) - 1;
    }
    absl::Status st = sink(kind, std::move(*buf));
    if (!st.ok()) return st;
  }
  return absl::OkStatus();
}

}  // namespace

std::string_view FormKindName(FormKind kind) {
  switch (kind) {
    case FormKind::kRaw:
      return "raw";
    case FormKind::kReversed:
      return "reversed";
    case FormKind::kNoWhitespace:
      return "no-whitespace";
    case FormKind::kHexLower:
      return "hex";
    case FormKind::kHexUpper:
      return "HEX";
    case FormKind::kBase64:
      return "base64";
    case FormKind::kBase64Url:
      return "base64url";
    case FormKind::kBase32:
      return "base32";
  }
  return "unknown";
}

absl::Status ForEachForm(std::span<const uint8_t> v, const FormSink& sink) {
  if (v.empty()) return absl::OkStatus();
  {
    auto raw = SecretBuffer::CopyFrom(v);
    if (!raw.ok()) {
      return absl::ResourceExhaustedError("secret forms: locked arena cannot hold a form");
    }
    if (absl::Status st = sink(FormKind::kRaw, std::move(*raw)); !st.ok()) return st;
  }
  if (v.size() > 1) {
    auto rev = Make(v.size());
    if (!rev.ok()) return rev.status();
    std::reverse_copy(v.begin(), v.end(), rev->RevealMutable().begin());
    if (absl::Status st = sink(FormKind::kReversed, std::move(*rev)); !st.ok()) return st;
  }
  const size_t spaces = static_cast<size_t>(std::count_if(v.begin(), v.end(), IsAsciiSpace));
  if (spaces > 0 && spaces < v.size()) {
    auto squeezed = Make(v.size() - spaces);
    if (!squeezed.ok()) return squeezed.status();
    std::copy_if(v.begin(), v.end(), squeezed->RevealMutable().begin(),
                 [](uint8_t c) { return !IsAsciiSpace(c); });
    if (absl::Status st = sink(FormKind::kNoWhitespace, std::move(*squeezed)); !st.ok()) return st;
  }
  for (FormKind hex : {FormKind::kHexLower, FormKind::kHexUpper}) {
    if (absl::Status st = EmitHex(v, hex, sink); !st.ok()) return st;
  }
  for (size_t shift = 0; shift < 3; ++shift) {
    if (absl::Status st = EmitRadix(v, shift, 6, kBase64Abc, FormKind::kBase64, sink); !st.ok()) {
      return st;
    }
  }
  for (size_t shift = 0; shift < 3; ++shift) {
    if (absl::Status st = EmitRadix(v, shift, 6, kBase64UrlAbc, FormKind::kBase64Url, sink);
        !st.ok()) {
      return st;
    }
  }
  for (size_t shift = 0; shift < 5; ++shift) {
    if (absl::Status st = EmitRadix(v, shift, 5, kBase32Abc, FormKind::kBase32, sink); !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

}  // namespace vigo
