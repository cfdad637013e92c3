#include "server/service/leak_scan.h"

#include <algorithm>
#include <cstring>

#include "common/status_macros.h"
#include "common/strings.h"

namespace vigo::server::service {
namespace {

absl::StatusOr<sandbox::SecretBuffer> HexForm(std::span<const uint8_t> v, bool upper) {
  const char* digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer out, sandbox::SecretBuffer::Create(v.size() * 2));
  auto o = out.RevealMutable();
  for (size_t i = 0; i < v.size(); ++i) {
    o[2 * i] = static_cast<uint8_t>(digits[v[i] >> 4]);
    o[2 * i + 1] = static_cast<uint8_t>(digits[v[i] & 0xf]);
  }
  return out;
}

// The base64 characters that encode `v` when it starts at byte offset
// `align` (0, 1 or 2) of a larger base64'd blob (e.g. "user:" + value in
// HTTP Basic auth): only characters fully determined by the value's bits are
// kept, so the form matches whatever bytes surround the value. With
// `ends_blob`, the value is taken to end the encoded blob, so its last partial
// character (completed by zero padding bits) is kept too. Empty when fewer
// than 8 characters remain (too short to tell from chance).
absl::StatusOr<sandbox::SecretBuffer> Base64Form(std::span<const uint8_t> v, bool url,
                                                 size_t align, bool ends_blob) {
  const char* abc = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                        : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const size_t len = align + v.size();  // bytes of (unknown prefix + value)
  const size_t chars = (len * 4 + 2) / 3;  // unpadded characters for them
  // Leading characters that mix in prefix bits, and one trailing character
  // that mixes in the following byte when the value does not end a group.
  static constexpr size_t kLeadingUnknown[3] = {0, 2, 3};
  const size_t skip_front = kLeadingUnknown[align];
  const size_t skip_back = (len % 3 == 0 || ends_blob) ? 0 : 1;
  if (chars < skip_front + skip_back + 8) return sandbox::SecretBuffer();
  const size_t n = chars - skip_front - skip_back;
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer out, sandbox::SecretBuffer::Create(n));
  auto o = out.RevealMutable();
  auto byte_at = [&](size_t i) -> uint32_t { return i < align || i >= len ? 0 : v[i - align]; };
  size_t j = 0;  // index among all `chars`
  size_t w = 0;  // index in `out`
  for (size_t i = 0; i < len; i += 3) {
    uint32_t chunk = byte_at(i) << 16 | byte_at(i + 1) << 8 | byte_at(i + 2);
    for (size_t k = 0; k < 4 && j < chars; ++k, ++j) {
      if (j < skip_front || j >= chars - skip_back) continue;
      o[w++] = static_cast<uint8_t>(abc[(chunk >> (18 - 6 * k)) & 0x3f]);
    }
  }
  return out;
}

}  // namespace

absl::Status LeakScanner::Add(std::string_view path, const sandbox::SecretBuffer& value) {
  if (value.size() < kMinLeakScanLen) return absl::OkStatus();
  auto v = value.Reveal();
  std::vector<sandbox::SecretBuffer> forms;
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer raw, value.Clone());
  forms.push_back(std::move(raw));
  for (bool upper : {false, true}) {
    VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer h, HexForm(v, upper));
    forms.push_back(std::move(h));
  }
  for (bool url : {false, true}) {
    for (size_t align = 0; align < 3; ++align) {
      for (bool ends_blob : {false, true}) {
        VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer b, Base64Form(v, url, align, ends_blob));
        if (!b.empty()) forms.push_back(std::move(b));
      }
    }
  }
  for (auto& f : forms) {
    bool dup = false;
    for (const Form& existing : forms_) {
      if (existing.path == path && existing.bytes == f) dup = true;
    }
    if (!dup) forms_.push_back(Form{std::string(path), std::move(f)});
  }
  std::stable_sort(forms_.begin(), forms_.end(),
                   [](const Form& a, const Form& b) { return a.bytes.size() > b.bytes.size(); });
  return absl::OkStatus();
}

std::string LeakScanner::Redact(std::string_view text, std::set<std::string>* leaked_paths) const {
  if (forms_.empty() || text.empty()) return std::string(text);
  // Mark every byte covered by any form, then rebuild the text with one
  // marker per maximal covered run.
  std::vector<int> owner(text.size(), -1);
  const auto* t = static_cast<const uint8_t*>(static_cast<const void*>(text.data()));
  for (size_t f = 0; f < forms_.size(); ++f) {
    auto needle = forms_[f].bytes.Reveal();
    if (needle.size() > text.size()) continue;
    const uint8_t* begin = t;
    const uint8_t* end = t + text.size();
    const uint8_t* it = begin;
    while (true) {
      it = std::search(it, end, needle.begin(), needle.end());
      if (it == end) break;
      size_t off = static_cast<size_t>(it - begin);
      for (size_t k = 0; k < needle.size(); ++k) {
        if (owner[off + k] < 0) owner[off + k] = static_cast<int>(f);
      }
      if (leaked_paths != nullptr) leaked_paths->insert(forms_[f].path);
      ++it;
    }
  }
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (owner[i] < 0) {
      out.push_back(text[i]);
      ++i;
      continue;
    }
    int f = owner[i];
    while (i < text.size() && owner[i] >= 0) ++i;
    StrAppend(&out, "[redacted:", forms_[static_cast<size_t>(f)].path, "]");
  }
  return out;
}

}  // namespace vigo::server::service
