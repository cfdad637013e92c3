#include "server/service/leak_scan.h"

#include <map>
#include <utility>

#include "common/decode_views.h"
#include "common/secret_forms.h"
#include "common/status_macros.h"
#include "common/strings.h"
#include "common/utf8_text.h"
#include "server/vault/vault_crypto.h"

namespace vigo::server::service {
namespace {

using vault::AsBytes;

}  // namespace

LeakScanner::LeakScanner(std::vector<std::string_view> texts, size_t window)
    : texts_(std::move(texts)), marks_(texts_.size()), index_(window, /*keep_tags=*/true) {}

namespace {

// Tags carry the path's index and the form's kind.
uint32_t Tag(uint32_t path, FormKind kind) {
  return path * static_cast<uint32_t>(kFormKindCount) + static_cast<uint32_t>(kind);
}

std::string_view ViewName(int view) {
  if (view < 0) return "";
  switch (kDecodeViewKinds[view]) {
    case DecodeViewKind::kUnwrapLines:
      return "unwrapped";
    case DecodeViewKind::kUrl:
      return "url-escaped";
    case DecodeViewKind::kCEscape:
      return "c-escaped";
    case DecodeViewKind::kJsonUtf8:
    case DecodeViewKind::kJsonLatin1:
      return "json-escaped";
    case DecodeViewKind::kNoWhitespace:
      return "spaced";
    case DecodeViewKind::kOdChars:
      return "od-c";
    case DecodeViewKind::kHexDump:
      return "hexdump";
  }
  return "decoded";
}

}  // namespace

void LeakScanner::MarkHit(size_t text, size_t begin, size_t end, uint32_t tag, int view) {
  std::vector<Mark>& m = marks_[text];
  if (m.empty()) m.resize(texts_[text].size());
  // Longer hits name a run before shorter ones, and a window no other value
  // shares before one it does.
  const uint32_t shared = (tag & WindowIndex::kSharedTag) != 0 ? 0 : 1;
  const uint32_t rank = static_cast<uint32_t>(end - begin) * 2 + shared;
  const auto t = static_cast<int>(tag & ~WindowIndex::kSharedTag);
  for (size_t k = begin; k < end; ++k) {
    if (m[k].tag < 0 || m[k].rank < rank) m[k] = Mark{t, rank, view};
  }
}

absl::Status LeakScanner::Flush() {
  if (index_.empty()) return absl::OkStatus();
  ++passes_;
  for (size_t i = 0; i < texts_.size(); ++i) {
    if (texts_[i].empty()) continue;
    auto search = [&](const DecodeView& view, int view_index) {
      return index_.Search(view.Data(), [&](uint32_t tag, size_t a, size_t b) {
        // The text bytes the hit was decoded from (the escaped occurrence).
        MarkHit(i, view.OriginalBegin(a), view.OriginalEnd(b), tag, view_index);
      });
    };
    VIGO_RETURN_IF_ERROR(search(DecodeView::Identity(AsBytes(texts_[i])), -1));
    for (size_t k = 0; k < std::size(kDecodeViewKinds); ++k) {
      VIGO_ASSIGN_OR_RETURN(std::optional<DecodeView> view,
                            BuildDecodeView(kDecodeViewKinds[k], AsBytes(texts_[i])));
      if (view) VIGO_RETURN_IF_ERROR(search(*view, static_cast<int>(k)));
    }
  }
  index_.Clear();
  return absl::OkStatus();
}

absl::Status LeakScanner::Scan(std::string_view path, const sandbox::SecretBuffer& value) {
  if (value.size() < kMinLeakScanLen) return absl::OkStatus();
  const auto idx = static_cast<uint32_t>(paths_.size());
  paths_.emplace_back(path);
  // A full batch is searched before the next form is built, so a large
  // value's forms never sit in locked memory all at once.
  return ForEachForm(value.Reveal(), [&](FormKind kind, sandbox::SecretBuffer form) {
    ++forms_scanned_;
    return index_.Add(std::move(form), Tag(idx, kind), [this] { return Flush(); });
  });
}

template <typename Fn>
void LeakScanner::ForEachRun(size_t i, Fn&& fn) const {
  const std::vector<Mark>& m = marks_[i];
  for (size_t k = 0; k < m.size();) {
    if (m[k].tag < 0) {
      ++k;
      continue;
    }
    // The run is named by its highest-ranked covering hit.
    const size_t begin = k;
    Mark best = m[k];
    for (; k < m.size() && m[k].tag >= 0; ++k) {
      if (m[k].rank > best.rank) best = m[k];
    }
    fn(begin, k, best);
  }
}

absl::Status LeakScanner::Finish() {
  VIGO_RETURN_IF_ERROR(Flush());
  leaked_.clear();
  leaks_.clear();
  std::map<std::pair<std::string, std::string>, size_t> counts;
  for (size_t i = 0; i < texts_.size(); ++i) {
    ForEachRun(i, [&](size_t, size_t, const Mark& best) {
      const std::string& path = paths_[static_cast<size_t>(best.tag) / kFormKindCount];
      leaked_.insert(path);
      std::string form(FormKindName(static_cast<FormKind>(best.tag % kFormKindCount)));
      if (best.view >= 0) StrAppend(&form, "/", ViewName(best.view));
      ++counts[{path, form}];
    });
  }
  for (auto& [key, n] : counts) leaks_.push_back(Leak{key.first, key.second, n});
  return absl::OkStatus();
}

std::string LeakScanner::Redacted(size_t i) const {
  std::string_view text = texts_.at(i);
  if (marks_[i].empty()) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t at = 0;
  ForEachRun(i, [&](size_t begin, size_t end, const Mark& best) {
    out.append(text.substr(at, begin - at));
    StrAppend(&out, "[redacted:", paths_[static_cast<size_t>(best.tag) / kFormKindCount], "]");
    at = end;
  });
  out.append(text.substr(at));
  return out;
}

std::string StoredReportText(std::string_view redacted, size_t max_bytes) {
  std::string out = ValidUtf8Text(redacted);
  if (out.size() > max_bytes) out = StrCat(Utf8Head(out, max_bytes), "...[truncated]");
  return out;
}

}  // namespace vigo::server::service
