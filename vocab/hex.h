// Lower-case hex, the one encoder of the tree (ids, fingerprints, digests).
//
//   std::string id = vocab::Hex(bytes);          // "00ff..."
//   bool ok = vocab::IsLowerHex(id, 32);         // exactly 32 digits 0-9a-f
//
// Header-only; no allocation but the returned string.
#ifndef VIGO_VOCAB_HEX_H_
#define VIGO_VOCAB_HEX_H_

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace vigo::vocab {

inline constexpr char kLowerHexDigits[] = "0123456789abcdef";

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

// True when `s` is exactly `digits` characters of 0-9a-f (any length when
// `digits` is 0, but not empty).
inline bool IsLowerHex(std::string_view s, size_t digits = 0) {
  if (s.empty() || (digits != 0 && s.size() != digits)) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace vigo::vocab

#endif  // VIGO_VOCAB_HEX_H_
