// Hex, the one encoder and decoder of the tree (ids, fingerprints, digests,
// key files, escapes).
//
//   std::string id = vocab::Hex(bytes);          // "00ff..."
//   bool ok = vocab::IsLowerHex(id, 32);         // exactly 32 digits 0-9a-f
//   std::optional<std::vector<uint8_t>> b = vocab::ParseHex("00FF");  // {0x00, 0xff}
//   bool wrote = vocab::HexInto(key.Reveal(), buf.RevealMutable());  // no std::string
//
// Encoding is lower case unless HexCase::kUpper is asked for; decoding and
// IsHex accept either case, IsLowerHex only lower case.
//
// Header-only; no allocation but the returned string or vector. HexInto and
// ParseHexInto write only into the caller's span, so key material whose hex
// form must stay in a SecretBuffer never passes through a std::string.
#ifndef VIGO_VOCAB_HEX_H_
#define VIGO_VOCAB_HEX_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace vigo::vocab {

inline constexpr char kLowerHexDigits[] = "0123456789abcdef";
inline constexpr char kUpperHexDigits[] = "0123456789ABCDEF";

enum class HexCase { kLower, kUpper };

inline std::string Hex(std::span<const uint8_t> bytes) {
  std::string out;
  out.resize(bytes.size() * 2);
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kLowerHexDigits[bytes[i] >> 4];
    out[2 * i + 1] = kLowerHexDigits[bytes[i] & 0xf];
  }
  return out;
}

inline std::string Hex(std::string_view bytes) {
  return Hex(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

// The hex of `bytes` written into `out`, which must be exactly
// 2 * bytes.size() long; any other length writes nothing and returns false.
[[nodiscard]] inline bool HexInto(std::span<const uint8_t> bytes, std::span<uint8_t> out,
                                  HexCase hex_case = HexCase::kLower) {
  if (out.size() != bytes.size() * 2) return false;
  const char* digits = hex_case == HexCase::kUpper ? kUpperHexDigits : kLowerHexDigits;
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = static_cast<uint8_t>(digits[bytes[i] >> 4]);
    out[2 * i + 1] = static_cast<uint8_t>(digits[bytes[i] & 0xf]);
  }
  return true;
}

// 0-15 for an ASCII hex digit (either case), else -1.
constexpr int HexDigitValue(uint8_t c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// True when `s` is exactly `digits` characters of 0-9a-f (any length when
// `digits` is 0, but not empty).
inline bool IsLowerHex(std::string_view s, size_t digits = 0) {
  if (s.empty() || (digits != 0 && s.size() != digits)) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// True when `s` is not empty and every character is a hex digit of either
// case.
inline bool IsHex(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (HexDigitValue(static_cast<uint8_t>(c)) < 0) return false;
  }
  return true;
}

// Hex text (either case) to bytes in `out`, which must be exactly
// hex.size() / 2 long. False on odd length, a wrong `out` size or a non-hex
// character; `out` may then hold part of the bytes (a SecretBuffer caller
// drops it, which zeroes it).
[[nodiscard]] inline bool ParseHexInto(std::span<const uint8_t> hex, std::span<uint8_t> out) {
  if (hex.size() % 2 != 0 || out.size() != hex.size() / 2) return false;
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = HexDigitValue(hex[2 * i]);
    const int lo = HexDigitValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}

// Hex text (either case) to bytes; std::nullopt on odd length or a non-hex
// character. The empty text is the empty byte string.
inline std::optional<std::vector<uint8_t>> ParseHex(std::string_view hex) {
  std::vector<uint8_t> out(hex.size() / 2);
  const auto* text = static_cast<const uint8_t*>(static_cast<const void*>(hex.data()));
  if (!ParseHexInto(std::span<const uint8_t>(text, hex.size()), out)) {
    return std::nullopt;
  }
  return out;
}

}  // namespace vigo::vocab

#endif  // VIGO_VOCAB_HEX_H_
