#include "server/service/leak_scan.h"

#include <utility>

#include "common/decode_views.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/utf8_text.h"
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

constexpr size_t kBatchBytes = size_t{1} << 20;

LeakScanner::LeakScanner(std::vector<std::string_view> texts)
    : texts_(std::move(texts)), marks_(texts_.size()) {}

void LeakScanner::MarkHit(size_t text, size_t begin, size_t end, uint32_t path) {
  std::vector<Mark>& m = marks_[text];
  if (m.empty()) m.resize(texts_[text].size());
  const auto len = static_cast<uint32_t>(end - begin);
  for (size_t k = begin; k < end; ++k) {
    if (m[k].path < 0 || m[k].form_len < len) m[k] = Mark{static_cast<int>(path), len};
  }
  leaked_.insert(paths_[path]);
}

absl::Status LeakScanner::Flush() {
  if (batch_.empty()) return absl::OkStatus();
  ++passes_;
  for (size_t i = 0; i < texts_.size(); ++i) {
    if (texts_[i].empty()) continue;
    auto search = [&](const DecodeView& view) {
      return batch_.Search(view.Data(), [&](uint32_t path, size_t a, size_t b) {
        // The text bytes the hit was decoded from (the escaped occurrence).
        MarkHit(i, view.OriginalBegin(a), view.OriginalEnd(b), path);
      });
    };
    VIGO_RETURN_IF_ERROR(search(DecodeView::Identity(AsBytes(texts_[i]))));
    for (DecodeViewKind kind : kDecodeViewKinds) {
      VIGO_ASSIGN_OR_RETURN(std::optional<DecodeView> view,
                            BuildDecodeView(kind, AsBytes(texts_[i])));
      if (view) VIGO_RETURN_IF_ERROR(search(*view));
    }
  }
  batch_.Clear();
  return absl::OkStatus();
}

absl::Status LeakScanner::Scan(std::string_view path, const sandbox::SecretBuffer& value) {
  if (value.size() < kMinLeakScanLen) return absl::OkStatus();
  const auto idx = static_cast<uint32_t>(paths_.size());
  paths_.emplace_back(path);
  auto v = value.Reveal();
  // A full batch is searched before the next form is built, so a large
  // value's forms never sit in locked memory all at once.
  auto add = [&](sandbox::SecretBuffer form) {
    ++forms_scanned_;
    batch_.Add(std::move(form), idx);
    return batch_.bytes() >= kBatchBytes ? Flush() : absl::OkStatus();
  };
  VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer raw, value.Clone());
  VIGO_RETURN_IF_ERROR(add(std::move(raw)));
  for (bool upper : {false, true}) {
    VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer h, HexForm(v, upper));
    VIGO_RETURN_IF_ERROR(add(std::move(h)));
  }
  for (bool url : {false, true}) {
    for (size_t align = 0; align < 3; ++align) {
      for (bool ends_blob : {false, true}) {
        VIGO_ASSIGN_OR_RETURN(sandbox::SecretBuffer b, Base64Form(v, url, align, ends_blob));
        VIGO_RETURN_IF_ERROR(add(std::move(b)));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status LeakScanner::Finish() { return Flush(); }

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

std::string StoredReportText(std::string_view redacted, size_t max_bytes) {
  std::string out = ValidUtf8Text(redacted);
  if (out.size() > max_bytes) out = StrCat(Utf8Head(out, max_bytes), "...[truncated]");
  return out;
}

}  // namespace vigo::server::service
