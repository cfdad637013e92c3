#include "server/service/leak_scan.h"

#include <string.h>  // memmem

#include <utility>

#include "common/decode_views.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "server/vault/vault_crypto.h"

namespace vigo::server::service {
namespace {

using vault::AsBytes;

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
absl::StatusOr<sandbox::SecretBuffer> Base64Form(std::span<const uint8_t> v, bool url, size_t align,
                                                 bool ends_blob) {
  const char* abc = url ? "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
                        : "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const size_t len = align + v.size();     // bytes of (unknown prefix + value)
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

LeakScanner::LeakScanner(std::vector<std::string_view> texts)
    : texts_(std::move(texts)), marks_(texts_.size()) {}

void LeakScanner::MarkForm(std::span<const uint8_t> form, int path,
                           const std::vector<std::optional<DecodeView>>& views) {
  ++forms_scanned_;
  if (form.empty()) return;
  for (size_t i = 0; i < texts_.size(); ++i) {
    if (!views[i]) continue;
    const DecodeView& view = *views[i];
    std::span<const uint8_t> d = view.Data();
    if (form.size() > d.size()) continue;
    const uint8_t* base = d.data();
    size_t from = 0;
    while (from + form.size() <= d.size()) {
      const void* hit = ::memmem(base + from, d.size() - from, form.data(), form.size());
      if (hit == nullptr) break;
      const size_t off = static_cast<size_t>(static_cast<const uint8_t*>(hit) - base);
      // The text bytes the hit was decoded from (the escaped occurrence).
      const size_t a = view.OriginalBegin(off);
      const size_t b = view.OriginalEnd(off + form.size());
      std::vector<Mark>& m = marks_[i];
      if (m.empty()) m.resize(texts_[i].size());
      for (size_t k = a; k < b; ++k) {
        if (m[k].path < 0 || m[k].form_len < b - a) {
          m[k] = Mark{path, static_cast<uint32_t>(b - a)};
        }
      }
      leaked_.insert(paths_[static_cast<size_t>(path)]);
      from = off + 1;
    }
  }
}

absl::Status LeakScanner::ForEachForm(std::span<const uint8_t> v,
                                      const std::function<void(std::span<const uint8_t>)>& fn) {
  fn(v);
  for (bool upper : {false, true}) {
    VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer h, HexForm(v, upper));
    fn(h.Reveal());
  }
  for (bool url : {false, true}) {
    for (size_t align = 0; align < 3; ++align) {
      for (bool ends_blob : {false, true}) {
        VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer b, Base64Form(v, url, align, ends_blob));
        fn(b.Reveal());
      }
    }
  }
  return absl::OkStatus();
}

absl::Status LeakScanner::Scan(std::string_view path, const sandbox::SecretBuffer& value) {
  if (value.size() < kMinLeakScanLen) return absl::OkStatus();
  const int idx = static_cast<int>(paths_.size());
  paths_.emplace_back(path);
  auto v = value.Reveal();
  // One kind of view at a time, for all texts: the texts themselves first,
  // then each decoding. Views are rebuilt per call (see the header's Memory).
  std::vector<std::optional<DecodeView>> views(texts_.size());
  for (size_t i = 0; i < texts_.size(); ++i) views[i] = DecodeView::Identity(AsBytes(texts_[i]));
  auto mark = [&](std::span<const uint8_t> form) { MarkForm(form, idx, views); };
  VIGO_RETURN_IF_ERROR(ForEachForm(v, mark));
  for (DecodeViewKind kind : kDecodeViewKinds) {
    // The previous kind's views go before this kind's are built.
    for (std::optional<DecodeView>& view : views) view.reset();
    bool any = false;
    for (size_t i = 0; i < texts_.size(); ++i) {
      VIGO_ASSIGN_OR_RETURN(views[i], BuildDecodeView(kind, AsBytes(texts_[i])));
      any = any || views[i].has_value();
    }
    if (any) VIGO_RETURN_IF_ERROR(ForEachForm(v, mark));
  }
  return absl::OkStatus();
}

std::string LeakScanner::Redacted(size_t i) const {
  std::string_view text = texts_.at(i);
  const std::vector<Mark>& m = marks_[i];
  if (m.empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  for (size_t k = 0; k < text.size();) {
    if (m[k].path < 0) {
      out.push_back(text[k]);
      ++k;
      continue;
    }
    // The run is named by its longest covering form.
    int best = m[k].path;
    uint32_t best_len = m[k].form_len;
    while (k < text.size() && m[k].path >= 0) {
      if (m[k].form_len > best_len) {
        best = m[k].path;
        best_len = m[k].form_len;
      }
      ++k;
    }
    StrAppend(&out, "[redacted:", paths_[static_cast<size_t>(best)], "]");
  }
  return out;
}

}  // namespace vigo::server::service
