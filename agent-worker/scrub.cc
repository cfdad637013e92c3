#include "agent-worker/scrub.h"

#include <algorithm>
#include <cstring>

namespace vigo::worker {
namespace {

using sandbox::SecretBuffer;

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr size_t kMinFragment = 4;

// Appends a form built by `fill` (which writes into a SecretBuffer of `len`).
template <typename Fill>
void AddForm(std::vector<SecretBuffer>* forms, size_t len, Fill fill) {
  if (len == 0) return;
  auto buf = SecretBuffer::Create(len);
  if (!buf.ok()) return;  // arena full: raw form still scrubbed (added first)
  fill(buf->RevealMutable());
  forms->push_back(std::move(*buf));
}

void AddHex(std::vector<SecretBuffer>* forms, std::span<const uint8_t> v, bool upper) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  AddForm(forms, v.size() * 2, [&](std::span<uint8_t> out) {
    for (size_t i = 0; i < v.size(); ++i) {
      out[2 * i] = static_cast<uint8_t>(digits[v[i] >> 4]);
      out[2 * i + 1] = static_cast<uint8_t>(digits[v[i] & 15]);
    }
  });
}

// Base64 of `v` as it appears inside a longer stream where `shift` (0..2)
// unknown bytes precede it: the characters that depend only on v's bytes.
void AddBase64(std::vector<SecretBuffer>* forms, std::span<const uint8_t> v, size_t shift,
               bool url) {
  size_t total = shift + v.size();
  size_t groups = (total + 2) / 3;
  auto full = SecretBuffer::Create(groups * 4);
  auto in = SecretBuffer::Create(groups * 3);
  if (!full.ok() || !in.ok()) return;
  std::span<uint8_t> src = in->RevealMutable();
  std::copy(v.begin(), v.end(), src.begin() + static_cast<ptrdiff_t>(shift));
  std::span<uint8_t> dst = full->RevealMutable();
  for (size_t g = 0; g < groups; ++g) {
    uint32_t n = (uint32_t{src[3 * g]} << 16) | (uint32_t{src[3 * g + 1]} << 8) | src[3 * g + 2];
    for (int k = 0; k < 4; ++k) {
      char c = kB64[(n >> (18 - 6 * k)) & 63];
      if (url && c == '+') c = '-';
      if (url && c == '/') c = '_';
      dst[4 * g + static_cast<size_t>(k)] = static_cast<uint8_t>(c);
    }
  }
  // Characters fully determined by v: skip those touching the shifted prefix,
  // keep only whole characters before the data ends.
  size_t first_char = (shift * 8 + 5) / 6;           // first char with only v's bits
  size_t last_char = (total * 8) / 6;                // chars [first, last) fully inside
  if (shift == 0) first_char = 0;
  if (last_char <= first_char) return;
  size_t len = last_char - first_char;
  if (len < kMinFragment && !(shift == 0 && v.size() < 3)) return;
  AddForm(forms, len, [&](std::span<uint8_t> out) {
    std::copy(dst.begin() + static_cast<ptrdiff_t>(first_char),
              dst.begin() + static_cast<ptrdiff_t>(last_char), out.begin());
  });
}

bool Unreserved(uint8_t c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '_' || c == '.' || c == '~';
}

void AddUrl(std::vector<SecretBuffer>* forms, std::span<const uint8_t> v, bool upper) {
  size_t len = 0;
  bool differs = false;
  for (uint8_t c : v) {
    len += Unreserved(c) ? 1 : 3;
    differs |= !Unreserved(c);
  }
  if (!differs) return;
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  AddForm(forms, len, [&](std::span<uint8_t> out) {
    size_t o = 0;
    for (uint8_t c : v) {
      if (Unreserved(c)) {
        out[o++] = c;
      } else {
        out[o++] = '%';
        out[o++] = static_cast<uint8_t>(digits[c >> 4]);
        out[o++] = static_cast<uint8_t>(digits[c & 15]);
      }
    }
  });
}

void AddJson(std::vector<SecretBuffer>* forms, std::span<const uint8_t> v) {
  size_t len = 0;
  bool differs = false;
  for (uint8_t c : v) {
    if (c == '"' || c == '\\' || c == '\n' || c == '\t' || c == '\r') {
      len += 2;
      differs = true;
    } else if (c < 0x20) {
      len += 6;
      differs = true;
    } else {
      len += 1;
    }
  }
  if (!differs) return;
  AddForm(forms, len, [&](std::span<uint8_t> out) {
    size_t o = 0;
    for (uint8_t c : v) {
      auto esc = [&](char e) {
        out[o++] = '\\';
        out[o++] = static_cast<uint8_t>(e);
      };
      if (c == '"') esc('"');
      else if (c == '\\') esc('\\');
      else if (c == '\n') esc('n');
      else if (c == '\t') esc('t');
      else if (c == '\r') esc('r');
      else if (c < 0x20) {
        const char* d = "0123456789abcdef";
        out[o++] = '\\';
        out[o++] = 'u';
        out[o++] = '0';
        out[o++] = '0';
        out[o++] = static_cast<uint8_t>(d[c >> 4]);
        out[o++] = static_cast<uint8_t>(d[c & 15]);
      } else {
        out[o++] = c;
      }
    }
  });
}

bool MatchAt(std::span<const uint8_t> out, size_t i, std::span<const uint8_t> form) {
  return out.size() - i >= form.size() &&
         std::memcmp(out.data() + i, form.data(), form.size()) == 0;
}

}  // namespace

std::string ScrubOutput(std::span<const uint8_t> output,
                        const std::vector<const SecretBuffer*>& values) {
  std::vector<SecretBuffer> forms;
  for (const SecretBuffer* v : values) {
    if (v == nullptr || v->empty()) continue;
    std::span<const uint8_t> b = v->Reveal();
    AddForm(&forms, b.size(), [&](std::span<uint8_t> o) { std::copy(b.begin(), b.end(), o.begin()); });
    AddHex(&forms, b, false);
    AddHex(&forms, b, true);
    for (size_t shift = 0; shift < 3; ++shift) {
      AddBase64(&forms, b, shift, false);
      AddBase64(&forms, b, shift, true);
    }
    AddUrl(&forms, b, false);
    AddUrl(&forms, b, true);
    AddJson(&forms, b);
  }

  // Fragments cut off at the edges of the captured output.
  size_t begin = 0;
  size_t end = output.size();
  for (const SecretBuffer& f : forms) {
    std::span<const uint8_t> fb = f.Reveal();
    for (size_t len = std::min(fb.size() - 1, output.size()); len >= kMinFragment; --len) {
      if (std::memcmp(output.data(), fb.data() + fb.size() - len, len) == 0) {
        begin = std::max(begin, len);
        break;
      }
    }
    for (size_t len = std::min(fb.size() - 1, output.size()); len >= kMinFragment; --len) {
      if (std::memcmp(output.data() + output.size() - len, fb.data(), len) == 0) {
        end = std::min(end, output.size() - len);
        break;
      }
    }
  }

  std::string out;
  if (begin > 0) out.append(kRedacted);
  size_t i = begin;
  while (i < end) {
    size_t best = 0;
    for (const SecretBuffer& f : forms) {
      if (f.size() > best && MatchAt(output.first(end), i, f.Reveal())) best = f.size();
    }
    if (best > 0) {
      out.append(kRedacted);
      i += best;
    } else {
      out.push_back(static_cast<char>(output[i]));
      ++i;
    }
  }
  if (end < output.size() && end >= begin) out.append(kRedacted);
  return out;
}

}  // namespace vigo::worker
